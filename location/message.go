package location

import (
	"github.com/veloxsip/velox/sip"
)

// AppendAOR appends the canonical address-of-record of u to dst (RFC 3261
// §10.3 step 5): the user part with escapes decoded, "@", the host in
// lower case; scheme, password, port and parameters are dropped, so
// "sip:Alice@Example.COM:5060;transport=tcp" gives "Alice@example.com". A
// URI without a user gives the host, a tel: URI its number.
func AppendAOR(dst []byte, u *sip.URI) []byte {
	switch u.Scheme {
	case sip.SchemeTel:
		return sip.AppendUnescaped(dst, u.User)
	case sip.SchemeSIP, sip.SchemeSIPS:
	default:
		return append(dst, u.Raw...)
	}
	if len(u.User) > 0 {
		dst = sip.AppendUnescaped(dst, u.User)
		dst = append(dst, '@')
	}
	for _, c := range u.Host {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// ParseRegister fills r from a parsed REGISTER: the AOR from the To URI,
// Call-ID, CSeq, Expires, the Contact values with their expires, q,
// +sip.instance and reg-id parameters, Path and User-Agent. The transport
// fields (Received, Transport, Socket) are the caller's. r's slices alias
// m's buffer, except AOR, which lives in r. It does not allocate once r has
// grown to the request's size. Errors are *sip.Error (400) or
// ErrInvalidStar.
func ParseRegister(m *sip.Message, r *Register) error {
	r.Reset()
	to, err := m.To()
	if err != nil {
		return err
	}
	r.aorBuf = AppendAOR(r.aorBuf[:0], &to.URI)
	r.AOR = r.aorBuf
	r.CallID = m.CallID()
	if len(r.CallID) == 0 {
		return sip.ErrCallID
	}
	if r.CSeq, _, err = m.CSeq(); err != nil {
		return err
	}
	secs, present, err := m.Expires()
	if err != nil {
		return err
	}
	if present {
		r.Expires = secs
	}
	var na sip.NameAddr
	it := m.NameAddrs(sip.HdrContact)
	for {
		ok, err := it.Next(&na)
		if err == sip.ErrStar {
			if r.Star {
				return ErrInvalidStar
			}
			r.Star = true
			continue
		}
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		c := Contact{URI: na.URI.Raw, Expires: NoValue, Q: NoValue, Instance: na.Instance()}
		if secs, present, err := na.ExpiresParam(); err != nil {
			return err
		} else if present {
			c.Expires = secs
		}
		if q, present, err := na.Q(); err != nil {
			return err
		} else if present {
			c.Q = q
		}
		if id, present, err := na.RegID(); err != nil {
			return err
		} else if present {
			c.RegID = id
		}
		r.Contacts = append(r.Contacts, c)
	}
	if r.Star && len(r.Contacts) > 0 {
		return ErrInvalidStar
	}
	it = m.NameAddrs(sip.HdrPath)
	for {
		ok, err := it.Next(&na)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		r.Path = append(r.Path, na.URI.Raw)
	}
	r.UserAgent, _ = m.Header(sip.HdrUserAgent)
	return nil
}
