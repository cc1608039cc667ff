package auth

import "errors"

// Qop is the quality of protection of a response (RFC 7616 §3.4).
type Qop uint8

// Qop values.
const (
	QopNone    Qop = iota // no qop: RFC 2069 compatibility
	QopAuth               // "auth"
	QopAuthInt            // "auth-int" (parsed, not supported by Verify)
)

// Errors of ParseCredentials.
var (
	// ErrNotDigest: the scheme is not Digest (e.g. Basic).
	ErrNotDigest = errors.New("auth: not a Digest authorization")
	// ErrMalformed: syntax error, missing, repeated or invalid parameter.
	ErrMalformed = errors.New("auth: malformed digest credentials")
)

// Credentials are the parsed parameters of an Authorization or
// Proxy-Authorization header (RFC 3261 §25.1 digest-response, RFC 7616
// §3.4). Every []byte aliases the header value given to ParseCredentials;
// quoted values are given without the quotes, with any backslash escapes
// as written (see AppendUsername).
type Credentials struct {
	Username  []byte
	Realm     []byte
	Nonce     []byte
	URI       []byte // digest-uri: the caller checks it against the Request-URI
	Response  []byte // hex, as sent
	CNonce    []byte
	Opaque    []byte
	Algorithm Algorithm // MD5 when the parameter is absent; 0 when unknown (see AlgorithmName)
	Qop       Qop
	NC        uint32 // nonce-count; 0 without qop
	// AlgorithmName is the algorithm parameter as written (empty when absent).
	AlgorithmName []byte
	// UserHash is true when the client sent userhash=true (RFC 7616 §3.4.4),
	// which Verify rejects as Unsupported.
	UserHash bool
}

// Parameter bits, to reject repeated parameters.
const (
	pUsername = 1 << iota
	pRealm
	pNonce
	pURI
	pResponse
	pCNonce
	pOpaque
	pAlgorithm
	pQop
	pNC
	pUserHash
)

// ParseCredentials parses value, the value of an Authorization or
// Proxy-Authorization header ("Digest username=…, …"), into c. The scheme
// is case-insensitive; unknown parameters are ignored. It returns
// ErrNotDigest for another scheme and ErrMalformed when the syntax is wrong,
// a parameter is repeated, username, realm, nonce, uri or response is
// missing, qop is neither auth nor auth-int, or with qop nc is not 8 hex
// digits (or is zero) or cnonce is missing. An unknown algorithm is not an
// error: c.Algorithm is 0 and Verify returns UnknownAlgorithm. It does not
// allocate.
func ParseCredentials(value []byte, c *Credentials) error {
	*c = Credentials{}
	i := skipLWS(value, 0)
	j := tokenEnd(value, i)
	if j == i {
		return ErrMalformed
	}
	if !equalFold(value[i:j], "Digest") {
		return ErrNotDigest
	}
	if k := skipLWS(value, j); k == j && k < len(value) {
		return ErrMalformed // no space after the scheme
	}
	it := paramIter{rest: value[j:]}
	var seen uint32
	var nc []byte
	for {
		name, v, ok := it.next()
		if it.err {
			return ErrMalformed
		}
		if !ok {
			break
		}
		var bit uint32
		switch {
		case equalFold(name, "username"):
			bit, c.Username = pUsername, v
		case equalFold(name, "realm"):
			bit, c.Realm = pRealm, v
		case equalFold(name, "nonce"):
			bit, c.Nonce = pNonce, v
		case equalFold(name, "uri"):
			bit, c.URI = pURI, v
		case equalFold(name, "response"):
			bit, c.Response = pResponse, v
		case equalFold(name, "cnonce"):
			bit, c.CNonce = pCNonce, v
		case equalFold(name, "opaque"):
			bit, c.Opaque = pOpaque, v
		case equalFold(name, "algorithm"):
			bit, c.AlgorithmName = pAlgorithm, v
			c.Algorithm, _ = ParseAlgorithm(v)
		case equalFold(name, "qop"):
			bit = pQop
			switch {
			case equalFold(v, "auth"):
				c.Qop = QopAuth
			case equalFold(v, "auth-int"):
				c.Qop = QopAuthInt
			default:
				return ErrMalformed
			}
		case equalFold(name, "nc"):
			bit, nc = pNC, v
		case equalFold(name, "userhash"):
			bit = pUserHash
			c.UserHash = equalFold(v, "true")
		default:
			continue
		}
		if seen&bit != 0 {
			return ErrMalformed
		}
		seen |= bit
	}
	const required = pUsername | pRealm | pNonce | pURI | pResponse
	if seen&required != required {
		return ErrMalformed
	}
	if seen&pAlgorithm == 0 {
		c.Algorithm = MD5
	}
	if c.Qop != QopNone {
		n, ok := parseNC(nc)
		if !ok || len(c.CNonce) == 0 {
			return ErrMalformed
		}
		c.NC = n
	} else {
		// RFC 2617 §3.2.2: without qop there is no cnonce or nc.
		c.CNonce = nil
	}
	return nil
}

// paramIter iterates the comma-separated auth-params of a credentials
// value (RFC 7616 §3.4: auth-param = token BWS "=" BWS (token /
// quoted-string), separated by commas, empty elements allowed).
type paramIter struct {
	rest []byte
	err  bool
}

// next returns the next auth-param; a quoted value is returned without its
// quotes, escapes as written. At the end it returns ok false; on a syntax
// error it also sets it.err.
func (it *paramIter) next() (name, value []byte, ok bool) {
	b := it.rest
	i := skipLWS(b, 0)
	for i < len(b) && b[i] == ',' {
		i = skipLWS(b, i+1)
	}
	if i >= len(b) {
		it.rest = nil
		return nil, nil, false
	}
	j := tokenEnd(b, i)
	if j == i {
		it.err = true
		return nil, nil, false
	}
	name = b[i:j]
	k := skipLWS(b, j)
	if k >= len(b) || b[k] != '=' {
		it.err = true
		return nil, nil, false
	}
	k = skipLWS(b, k+1)
	if k < len(b) && b[k] == '"' {
		e := k + 1
		for e < len(b) && b[e] != '"' {
			if b[e] == '\\' {
				e++
			}
			e++
		}
		if e >= len(b) {
			it.err = true
			return nil, nil, false
		}
		value = b[k+1 : e]
		k = e + 1
	} else {
		// A token by the grammar; accept anything up to a comma or
		// whitespace, as some clients leave e.g. the uri unquoted.
		e := k
		for e < len(b) && b[e] != ',' && b[e] != ' ' && b[e] != '\t' && b[e] != '\r' && b[e] != '\n' && b[e] != '"' {
			e++
		}
		value = b[k:e]
		k = e
	}
	k = skipLWS(b, k)
	if k < len(b) && b[k] != ',' {
		it.err = true
		return nil, nil, false
	}
	it.rest = b[k:]
	return name, value, true
}

func skipLWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

func tokenEnd(b []byte, i int) int {
	for i < len(b) && tokenChars[b[i]] {
		i++
	}
	return i
}

// tokenChars are the RFC 3261 §25.1 token characters.
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= 'z'; c++ {
		t[c] = c <= '9' || c >= 'a' || (c >= 'A' && c <= 'Z')
	}
	for _, c := range "-.!%*_+`'~" {
		t[c] = true
	}
	return t
}()

// equalFold reports whether b equals the ASCII string s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if x == y {
			continue
		}
		if l := x | 0x20; l != y|0x20 || l < 'a' || l > 'z' {
			return false
		}
	}
	return true
}

// parseNC parses an 8-digit hex nonce-count (RFC 7616 §3.4: nc-value =
// 8LHEX; upper case accepted too). Zero is invalid.
func parseNC(b []byte) (uint32, bool) {
	if len(b) != 8 {
		return 0, false
	}
	var n uint32
	for _, ch := range b {
		d, ok := unhex(ch)
		if !ok {
			return 0, false
		}
		n = n<<4 | uint32(d)
	}
	return n, n != 0
}

func unhex(ch byte) (byte, bool) {
	switch {
	case ch >= '0' && ch <= '9':
		return ch - '0', true
	case ch >= 'a' && ch <= 'f':
		return ch - 'a' + 10, true
	case ch >= 'A' && ch <= 'F':
		return ch - 'A' + 10, true
	}
	return 0, false
}

// AppendUsername appends the username with quoting backslashes removed
// (RFC 7616 unq()), the form a subscriber database is keyed by.
func (c *Credentials) AppendUsername(dst []byte) []byte { return appendUnq(dst, c.Username) }

// appendUnq appends b with each backslash escape replaced by the escaped
// character.
func appendUnq(dst, b []byte) []byte {
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+1 < len(b) {
			i++
		}
		dst = append(dst, b[i])
	}
	return dst
}
