package sip

// AuthHeader is the value of an Authorization, Proxy-Authorization,
// WWW-Authenticate or Proxy-Authenticate header (RFC 3261 §22, RFC 7616):
// a scheme followed by comma-separated auth-params.
type AuthHeader struct {
	Scheme []byte // e.g. "Digest"
	Params []byte // the auth-params, raw
}

// ParseAuth parses an authentication header value. It does not allocate.
func ParseAuth(b []byte, a *AuthHeader) error {
	*a = AuthHeader{}
	i := skipWS(b, 0)
	j := tokenEnd(b, i)
	if j == i {
		return ErrAuthorization
	}
	a.Scheme = b[i:j]
	k := skipWS(b, j)
	if k == j && k < len(b) {
		return ErrAuthorization
	}
	a.Params = b[k:trimRightWS(b, k, len(b))]
	it := AuthParamIter{rest: a.Params}
	for {
		_, _, ok, err := it.Next()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
	}
}

// Param returns the value of the named auth-param (case-insensitive name),
// without quotes.
func (a *AuthHeader) Param(name string) ([]byte, bool) {
	it := AuthParamIter{rest: a.Params}
	for {
		n, v, ok, err := it.Next()
		if !ok || err != nil {
			return nil, false
		}
		if equalFold(n, name) {
			return v, true
		}
	}
}

// Authorization returns the parsed first header of the given kind (e.g.
// HdrAuthorization, HdrProxyAuthorization) and its index, or -1.
func (m *Message) Authorization(id HeaderID, a *AuthHeader) (int, error) {
	i := m.Index(id, -1)
	if i < 0 {
		return -1, nil
	}
	return i, ParseAuth(m.bytes(m.hdrs[i].value), a)
}

// AuthParamIter iterates the comma-separated name=value pairs of an
// authentication header.
type AuthParamIter struct{ rest []byte }

// Next returns the next auth-param; quoted values are returned without the
// quotes (escapes left as they are).
func (it *AuthParamIter) Next() (name, value []byte, ok bool, err error) {
	b := it.rest
	i := skipWS(b, 0)
	for i < len(b) && b[i] == ',' {
		i = skipWS(b, i+1)
	}
	if i >= len(b) {
		it.rest = nil
		return nil, nil, false, nil
	}
	j := tokenEnd(b, i)
	if j == i {
		return nil, nil, false, ErrAuthorization
	}
	name = b[i:j]
	k := skipWS(b, j)
	if k >= len(b) || b[k] != '=' {
		return nil, nil, false, ErrAuthorization
	}
	k = skipWS(b, k+1)
	if k < len(b) && b[k] == '"' {
		e := k + 1
		for e < len(b) && b[e] != '"' {
			if b[e] == '\\' {
				e++
			}
			e++
		}
		if e >= len(b) {
			return nil, nil, false, ErrAuthorization
		}
		value = b[k+1 : e]
		k = e + 1
	} else {
		e := k
		for e < len(b) && b[e] != ',' && b[e] != ' ' && b[e] != '\t' {
			e++
		}
		value = b[k:e]
		k = e
	}
	k = skipWS(b, k)
	if k < len(b) && b[k] != ',' {
		return nil, nil, false, ErrAuthorization
	}
	it.rest = b[k:]
	return name, value, true, nil
}
