package sip

import "bytes"

// Via is one via-parm of a Via header (RFC 3261 §20.42, RFC 3581). Every
// []byte aliases the message buffer.
type Via struct {
	Protocol  []byte // protocol name and version, e.g. "SIP/2.0" (as written, may hold LWS)
	Transport []byte // "UDP", "TCP", "TLS", "WS", "WSS", "SCTP" …
	Host      []byte // host name, IPv4 address or bracketed IPv6 reference
	Port      uint16 // 0 when absent
	Params    []byte // the parameters after the first ';', without it
	Branch    []byte
	Received  []byte
	RPort     []byte // the rport value; empty with HasRPort for a bare ";rport"
	HasRPort  bool
	MAddr     []byte
	TTL       []byte
	Raw       []byte // the whole via-parm, trimmed

	// rportName is the "rport" parameter name as written, so a proxy can
	// append "=port" right after it.
	rportName []byte
}

// MagicCookie starts every RFC 3261 branch.
const MagicCookie = "z9hG4bK"

// IsRFC3261Branch reports whether the branch starts with the magic cookie.
func (v *Via) IsRFC3261Branch() bool { return hasPrefixFold(v.Branch, MagicCookie) }

func skipWS(b []byte, i int) int {
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

// ParseVia parses the first via-parm of b into v and returns the text after
// the comma that ends it (nil when it was the last). It does not allocate.
func ParseVia(b []byte, v *Via) (rest []byte, err error) {
	*v = Via{}
	i := skipWS(b, 0)
	start := i
	// sent-protocol = protocol-name SLASH protocol-version SLASH transport
	j := tokenEnd(b, i)
	if j == i {
		return nil, ErrVia
	}
	i = skipWS(b, j)
	if i >= len(b) || b[i] != '/' {
		return nil, ErrVia
	}
	i = skipWS(b, i+1)
	j = tokenEnd(b, i)
	if j == i {
		return nil, ErrVia
	}
	v.Protocol = b[start:j]
	i = skipWS(b, j)
	if i >= len(b) || b[i] != '/' {
		return nil, ErrVia
	}
	i = skipWS(b, i+1)
	j = tokenEnd(b, i)
	if j == i {
		return nil, ErrVia
	}
	v.Transport = b[i:j]
	i = skipWS(b, j)
	if i == j && i < len(b) {
		return nil, ErrVia // sent-protocol and sent-by need LWS between them
	}
	// sent-by = host [ COLON port ]
	if i >= len(b) {
		return nil, ErrVia
	}
	if b[i] == '[' {
		k := bytes.IndexByte(b[i:], ']')
		if k < 0 {
			return nil, ErrVia
		}
		v.Host = b[i : i+k+1]
		i += k + 1
	} else {
		j = i
		for j < len(b) && isHostChar(b[j]) {
			j++
		}
		if j == i {
			return nil, ErrVia
		}
		v.Host = b[i:j]
		i = j
	}
	i = skipWS(b, i)
	if i < len(b) && b[i] == ':' {
		i = skipWS(b, i+1)
		j = i
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		p, ok := ParseUint(b[i:j])
		if !ok || p > 65535 || p == 0 {
			return nil, ErrVia
		}
		v.Port = uint16(p)
		i = skipWS(b, j)
	}
	end := i
	if i < len(b) && b[i] == ';' {
		ps := i + 1
		j = paramsEnd(b, ps)
		v.Params = b[ps:trimRightWS(b, ps, j)]
		end = trimRightWS(b, ps, j)
		i = j
		if !validParams(v.Params) {
			return nil, ErrVia
		}
		if err := v.scanParams(); err != nil {
			return nil, err
		}
	}
	i = skipWS(b, i)
	v.Raw = b[start:end]
	if i >= len(b) {
		return nil, nil
	}
	if b[i] != ',' {
		return nil, ErrVia
	}
	return b[i+1:], nil
}

func (v *Via) scanParams() error {
	it := NewParamIter(v.Params)
	for {
		name, val, ok := it.Next()
		if !ok {
			return nil
		}
		switch len(name) {
		case 6:
			if equalFold(name, "branch") {
				v.Branch = val
			}
		case 8:
			if equalFold(name, "received") {
				v.Received = val
			}
		case 5:
			if equalFold(name, "rport") {
				v.RPort, v.HasRPort, v.rportName = val, true, name
			} else if equalFold(name, "maddr") {
				v.MAddr = val
			}
		case 3:
			if equalFold(name, "ttl") {
				v.TTL = val
			}
		}
	}
}

// paramsEnd returns the index of the top-level ',' (outside quotes) at or
// after i, or len(b).
func paramsEnd(b []byte, i int) int {
	// Fast path: no quoted string before the first comma.
	c := bytes.IndexByte(b[i:], ',')
	q := bytes.IndexByte(b[i:], '"')
	if q < 0 || (c >= 0 && c < q) {
		if c < 0 {
			return len(b)
		}
		return i + c
	}
	inQuote := false
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			inQuote = !inQuote
		case '\\':
			if inQuote {
				i++
			}
		case ',':
			if !inQuote {
				return i
			}
		}
	}
	return len(b)
}

func trimRightWS(b []byte, start, end int) int {
	for end > start && (b[end-1] == ' ' || b[end-1] == '\t' || b[end-1] == '\r' || b[end-1] == '\n') {
		end--
	}
	return end
}

var hostChars = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['.'], t['-'], t['_'] = true, true, true
	return t
}()

func isHostChar(c byte) bool { return hostChars[c] }

// RPortName returns the "rport" parameter name as written (a slice of the
// message), so that "=port" can be inserted right after it.
func (v *Via) RPortName() []byte { return v.rportName }
