package sip

// TEMPORARY stand-ins for the uri branch; deleted at merge.

import "bytes"

type URIScheme uint8

const (
	SchemeUnknown URIScheme = iota
	SchemeSIP
	SchemeSIPS
	SchemeTel
)

type URI struct {
	Scheme    URIScheme
	SchemeRaw []byte
	User      []byte
	Password  []byte
	Host      []byte
	Port      uint16
	PortRaw   []byte
	Params    []byte
	Headers   []byte
	Raw       []byte
}

func ParseURI(b []byte, u *URI) error {
	*u = URI{Raw: b}
	i := bytes.IndexByte(b, ':')
	if i < 0 {
		return ErrRequestURI
	}
	u.SchemeRaw = b[:i]
	u.Scheme = SchemeSIP
	rest := b[i+1:]
	if at := bytes.IndexByte(rest, '@'); at >= 0 {
		u.User = rest[:at]
		rest = rest[at+1:]
	}
	if s := bytes.IndexByte(rest, ';'); s >= 0 {
		u.Params = rest[s+1:]
		rest = rest[:s]
	}
	if c := bytes.LastIndexByte(rest, ':'); c >= 0 && !bytes.Contains(rest[c:], []byte("]")) {
		u.PortRaw = rest[c+1:]
		p, _ := parseUint(u.PortRaw)
		u.Port = uint16(p)
		rest = rest[:c]
	}
	u.Host = rest
	return nil
}

func (u *URI) LR() bool { _, ok := ParamValue(u.Params, "lr"); return ok }

type NameAddr struct {
	Display []byte
	URI     URI
	Params  []byte
	Raw     []byte
}

var ErrStar = badRequest("star")

func ParseNameAddr(b []byte, na *NameAddr) ([]byte, error) {
	*na = NameAddr{}
	b = bytes.TrimSpace(b)
	var rest []byte
	if c := bytes.IndexByte(b, ','); c >= 0 {
		rest = b[c+1:]
		b = b[:c]
	}
	na.Raw = b
	if lt := bytes.IndexByte(b, '<'); lt >= 0 {
		gt := bytes.IndexByte(b, '>')
		if gt < lt {
			return nil, ErrContact
		}
		if err := ParseURI(b[lt+1:gt], &na.URI); err != nil {
			return nil, err
		}
		p := b[gt+1:]
		if s := bytes.IndexByte(p, ';'); s >= 0 {
			na.Params = p[s+1:]
		}
		return rest, nil
	}
	u := b
	if s := bytes.IndexByte(b, ';'); s >= 0 {
		na.Params = b[s+1:]
		u = b[:s]
	}
	return rest, ParseURI(u, &na.URI)
}

func (na *NameAddr) Tag() []byte { v, _ := ParamValue(na.Params, "tag"); return v }

func ParamValue(params []byte, name string) ([]byte, bool) {
	it := NewParamIter(params)
	for {
		n, v, ok := it.Next()
		if !ok {
			return nil, false
		}
		if equalFold(n, name) {
			return v, true
		}
	}
}

type ParamIter struct{ rest []byte }

func NewParamIter(params []byte) ParamIter { return ParamIter{params} }

func (it *ParamIter) Next() (name, value []byte, ok bool) {
	for len(it.rest) > 0 {
		p := it.rest
		if s := bytes.IndexByte(p, ';'); s >= 0 {
			p, it.rest = p[:s], p[s+1:]
		} else {
			it.rest = nil
		}
		p = bytes.TrimSpace(p)
		if len(p) == 0 {
			continue
		}
		if e := bytes.IndexByte(p, '='); e >= 0 {
			return bytes.TrimSpace(p[:e]), bytes.Trim(bytes.TrimSpace(p[e+1:]), "\""), true
		}
		return p, nil, true
	}
	return nil, nil, false
}

func (u *URI) Param(name string) ([]byte, bool) { return ParamValue(u.Params, name) }
