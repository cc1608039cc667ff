package sip

import "bytes"

// NameAddr is the value of From, To, Contact, Route, Record-Route and the
// like: a name-addr (`"Bob" <sip:bob@b.example>`) or an addr-spec
// (`sip:bob@b.example`), followed by header parameters. Every []byte
// aliases the parsed input.
type NameAddr struct {
	Display []byte // display name (inside the quotes when quoted); nil when absent
	URI     URI
	Params  []byte // header parameters after the URI, without the leading ';'
	Raw     []byte // the whole value, trimmed
}

// ErrStar is returned by ParseNameAddr for a lone "*" (Contact: *), which
// callers handle themselves.
var ErrStar = badRequest("Contact is *")

// Errors of name-addr values.
var (
	ErrNameAddr     = badRequest("Malformed name-addr")
	ErrDisplayName  = badRequest("Malformed display name")
	ErrAngleBracket = badRequest("Unterminated <URI>")
)

// ParseNameAddr parses the first value of b into na and returns the text
// after the ',' that ends it (nil when it was the last value). In the
// addr-spec form the ';' parameters belong to the header, not the URI
// (RFC 3261 §20.10). It does not allocate.
func ParseNameAddr(b []byte, na *NameAddr) (rest []byte, err error) {
	*na = NameAddr{}
	i := skipWS(b, 0)
	start := i
	if i >= len(b) {
		return nil, ErrNameAddr
	}
	if b[i] == '*' {
		if j := skipWS(b, i+1); j == len(b) {
			return nil, ErrStar
		} else if b[j] == ',' {
			return b[j+1:], ErrStar
		}
	}
	lt := -1
	switch {
	case b[i] == '"':
		e := i + 1
		for e < len(b) && b[e] != '"' {
			if b[e] == '\\' {
				e++
			}
			e++
		}
		if e >= len(b) {
			return nil, ErrDisplayName
		}
		na.Display = b[i+1 : e]
		lt = skipWS(b, e+1)
		if lt >= len(b) || b[lt] != '<' {
			return nil, ErrNameAddr
		}
	case b[i] == '<':
		lt = i
	default:
		// A token display name ends at '<'; an addr-spec has none before
		// its parameters or the next value.
		j := i
		for j < len(b) && b[j] != '<' && b[j] != ',' && b[j] != ';' && b[j] != '"' {
			j++
		}
		if j < len(b) && b[j] == '<' {
			d := trimRightWS(b, i, j)
			for _, c := range b[i:d] {
				if !tokenChars[c] && c != ' ' && c != '\t' {
					return nil, ErrDisplayName
				}
			}
			na.Display, lt = b[i:d], j
		}
	}
	var end int
	if lt >= 0 {
		gt := bytes.IndexByte(b[lt:], '>')
		if gt < 0 {
			return nil, ErrAngleBracket
		}
		gt += lt
		u := b[lt+1 : gt] // RFC 3261 allows no whitespace inside <>
		if err := ParseURI(u, &na.URI); err != nil {
			return nil, err
		}
		end = gt + 1
	} else {
		j := i
		for j < len(b) && b[j] != ';' && b[j] != ',' && b[j] != ' ' && b[j] != '\t' && b[j] != '\r' && b[j] != '\n' {
			j++
		}
		if err := ParseURI(b[i:j], &na.URI); err != nil {
			return nil, err
		}
		if na.URI.Headers != nil {
			return nil, ErrNameAddr // §20: an addr-spec may not carry headers
		}
		end = j
	}
	k := skipWS(b, end)
	valueEnd := end
	if k < len(b) && b[k] == ';' {
		pe := paramsEnd(b, k+1)
		na.Params = b[k+1 : trimRightWS(b, k+1, pe)]
		if !validParams(na.Params) {
			return nil, ErrNameAddr
		}
		valueEnd = trimRightWS(b, k+1, pe)
		k = pe
	}
	na.Raw = b[start:valueEnd]
	k = skipWS(b, k)
	if k >= len(b) {
		return nil, nil
	}
	if b[k] != ',' {
		return nil, ErrNameAddr
	}
	return b[k+1:], nil
}

// Tag returns the tag parameter.
func (na *NameAddr) Tag() []byte { v, _ := ParamValue(na.Params, "tag"); return v }

// Param returns the value of a header parameter.
func (na *NameAddr) Param(name string) ([]byte, bool) { return ParamValue(na.Params, name) }
