package sip

import (
	"bytes"
	"net/netip"
	"strconv"
	"unsafe"
)

// URIScheme is the scheme of a URI.
type URIScheme uint8

// URI schemes.
const (
	SchemeUnknown URIScheme = iota // any other absolute URI (http:, mailto: …)
	SchemeSIP
	SchemeSIPS
	SchemeTel
)

// URI is a parsed sip:, sips: or tel: URI (RFC 3261 §19.1, RFC 3966), or
// another absolute URI kept whole. Every []byte aliases the parsed input.
type URI struct {
	Scheme    URIScheme
	SchemeRaw []byte
	User      []byte // user part (tel: the number); nil when absent
	Password  []byte
	Host      []byte // host name, IPv4 address or IPv6 reference in brackets
	Port      uint16 // 0 when absent
	PortRaw   []byte
	Params    []byte // uri-parameters after the first ';', without it
	Headers   []byte // headers after '?', without it
	Raw       []byte // the whole URI
}

// URI parse errors.
var (
	ErrURIScheme = badRequest("Malformed URI scheme")
	ErrURIHost   = badRequest("Malformed URI host")
	ErrURIPort   = badRequest("Malformed URI port")
	ErrURIChar   = badRequest("Invalid character in URI")
	ErrURIEmpty  = badRequest("Empty URI")
)

// ParseURI parses b into u without allocating.
func ParseURI(b []byte, u *URI) error {
	*u = URI{Raw: b}
	if len(b) == 0 {
		return ErrURIEmpty
	}
	for _, c := range b {
		if c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == '"' {
			return ErrURIChar
		}
	}
	colon := bytes.IndexByte(b, ':')
	if colon <= 0 {
		return ErrURIScheme
	}
	u.SchemeRaw = b[:colon]
	if !isAlpha(b[0]) {
		return ErrURIScheme
	}
	for _, c := range u.SchemeRaw {
		if !isAlpha(c) && !(c >= '0' && c <= '9') && c != '+' && c != '-' && c != '.' {
			return ErrURIScheme
		}
	}
	rest := b[colon+1:]
	switch {
	case equalFold(u.SchemeRaw, "sip"):
		u.Scheme = SchemeSIP
	case equalFold(u.SchemeRaw, "sips"):
		u.Scheme = SchemeSIPS
	case equalFold(u.SchemeRaw, "tel"):
		u.Scheme = SchemeTel
		return u.parseTel(rest)
	default:
		if len(rest) == 0 {
			return ErrURIScheme
		}
		return nil
	}
	// userinfo ends at the last '@': the grammar allows '@' nowhere else
	// (the user part itself may hold ';', '?' and '/').
	if at := bytes.LastIndexByte(rest, '@'); at >= 0 {
		ui := rest[:at]
		if pw := bytes.IndexByte(ui, ':'); pw >= 0 {
			u.User, u.Password = ui[:pw], ui[pw+1:]
		} else {
			u.User = ui
		}
		if len(u.User) == 0 {
			return ErrURIChar
		}
		rest = rest[at+1:]
	}
	// host
	i := 0
	if len(rest) > 0 && rest[0] == '[' {
		end := bytes.IndexByte(rest, ']')
		if end < 0 {
			return ErrURIHost
		}
		if _, err := netip.ParseAddr(unsafe.String(unsafe.SliceData(rest[1:end]), end-1)); err != nil || end == 1 {
			return ErrURIHost
		}
		i = end + 1
	} else {
		for i < len(rest) && hostChars[rest[i]] {
			i++
		}
		if i == 0 {
			return ErrURIHost
		}
	}
	u.Host = rest[:i]
	rest = rest[i:]
	if len(rest) > 0 && rest[0] == ':' {
		j := 1
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		p, ok := ParseUint(rest[1:j])
		if !ok || p == 0 || p > 65535 {
			return ErrURIPort
		}
		u.Port, u.PortRaw = uint16(p), rest[1:j]
		rest = rest[j:]
	}
	if len(rest) > 0 && rest[0] == ';' {
		end := bytes.IndexByte(rest, '?')
		if end < 0 {
			end = len(rest)
		}
		u.Params = rest[1:end]
		rest = rest[end:]
	}
	if len(rest) > 0 && rest[0] == '?' {
		u.Headers = rest[1:]
		rest = nil
	}
	if len(rest) > 0 {
		return ErrURIHost
	}
	return nil
}

func (u *URI) parseTel(rest []byte) error {
	if len(rest) == 0 {
		return ErrURIEmpty
	}
	if s := bytes.IndexByte(rest, ';'); s >= 0 {
		u.User, u.Params = rest[:s], rest[s+1:]
	} else {
		u.User = rest
	}
	if len(u.User) == 0 {
		return ErrURIChar
	}
	return nil
}

func isAlpha(c byte) bool { return (c|0x20) >= 'a' && (c|0x20) <= 'z' }

// Param returns the value of a URI parameter (any case).
func (u *URI) Param(name string) ([]byte, bool) { return ParamValue(u.Params, name) }

// Transport returns the transport parameter (as written).
func (u *URI) Transport() []byte { v, _ := u.Param("transport"); return v }

// LR reports whether the URI has the lr parameter (a loose router).
func (u *URI) LR() bool { _, ok := u.Param("lr"); return ok }

// MAddr returns the maddr parameter.
func (u *URI) MAddr() []byte { v, _ := u.Param("maddr"); return v }

// IsSecure reports whether the URI is a sips: URI.
func (u *URI) IsSecure() bool { return u.Scheme == SchemeSIPS }

// HostAddr returns the host as an address when it is an IP literal.
func (u *URI) HostAddr() (netip.Addr, bool) {
	h := u.Host
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		h = h[1 : len(h)-1]
	}
	if len(h) == 0 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(unsafe.String(unsafe.SliceData(h), len(h)))
	return a, err == nil
}

// HostIsIP reports whether the host is an IP literal.
func (u *URI) HostIsIP() bool { _, ok := u.HostAddr(); return ok }

// AppendTo writes the URI to dst.
func (u *URI) AppendTo(dst []byte) []byte {
	if u.Scheme == SchemeUnknown {
		return append(dst, u.Raw...)
	}
	dst = append(dst, u.SchemeRaw...)
	dst = append(dst, ':')
	if u.Scheme == SchemeTel {
		dst = append(dst, u.User...)
	} else {
		if u.User != nil {
			dst = append(dst, u.User...)
			if u.Password != nil {
				dst = append(dst, ':')
				dst = append(dst, u.Password...)
			}
			dst = append(dst, '@')
		}
		dst = append(dst, u.Host...)
		if u.Port != 0 {
			dst = append(dst, ':')
			dst = strconv.AppendUint(dst, uint64(u.Port), 10)
		}
	}
	if u.Params != nil {
		dst = append(dst, ';')
		dst = append(dst, u.Params...)
	}
	if u.Headers != nil {
		dst = append(dst, '?')
		dst = append(dst, u.Headers...)
	}
	return dst
}

// EqualURI compares two URIs by the rules of RFC 3261 §19.1.4: scheme, user
// and password exactly (escapes decoded), host in any case, port, the
// user/ttl/method/maddr/transport parameters whenever either URI has them,
// other parameters when both have them, and the headers.
func EqualURI(a, b *URI) bool {
	if a.Scheme != b.Scheme {
		return false
	}
	if a.Scheme == SchemeUnknown {
		return bytes.Equal(a.Raw, b.Raw)
	}
	if !unescapedEqual(a.User, b.User) || !unescapedEqual(a.Password, b.Password) || (a.User == nil) != (b.User == nil) {
		return false
	}
	if a.Scheme != SchemeTel && (!bytesEqualFold(a.Host, b.Host) || a.Port != b.Port) {
		return false
	}
	for _, name := range [...]string{"user", "ttl", "method", "maddr", "transport"} {
		va, oka := a.Param(name)
		vb, okb := b.Param(name)
		if oka != okb || !bytesEqualFold(va, vb) {
			return false
		}
	}
	it := NewParamIter(a.Params)
	for {
		n, _, ok := it.Next()
		if !ok {
			break
		}
		va, _ := ParamValue(a.Params, unsafeString(n)) // the first of duplicates
		if vb, okb := ParamValue(b.Params, unsafeString(n)); okb && !bytesEqualFold(va, vb) {
			return false
		}
	}
	return bytesEqualFold(a.Headers, b.Headers)
}

func bytesEqualFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

// unescapedEqual compares two strings with %XX escapes decoded.
func unescapedEqual(a, b []byte) bool {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		ca, na := unescapeAt(a, i)
		cb, nb := unescapeAt(b, j)
		if ca != cb {
			return false
		}
		i, j = i+na, j+nb
	}
	return i == len(a) && j == len(b)
}

// AppendUnescaped appends s with its %XX escapes decoded (a malformed
// escape is kept as written).
func AppendUnescaped(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c, n := unescapeAt(s, i)
		dst = append(dst, c)
		i += n
	}
	return dst
}

func unescapeAt(s []byte, i int) (byte, int) {
	if s[i] == '%' && i+2 < len(s) {
		h, ok1 := unhex(s[i+1])
		l, ok2 := unhex(s[i+2])
		if ok1 && ok2 {
			return h<<4 | l, 3
		}
	}
	return s[i], 1
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// unsafeString views b as a string without copying; b must not change
// while the string is used.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
