package sip

// Contact parameters used by registrars (RFC 3261 §10.2, §20.10; RFC 5626
// §4.2). Each parses on demand from NameAddr.Params and does not allocate.

// ErrContactParam is a malformed expires or q parameter of a Contact.
var ErrContactParam = badRequest("Malformed Contact parameter")

// ExpiresParam returns the expires parameter of a Contact value in
// seconds; present is false when there is none. A value too large for an
// int32 is clamped to 2^31-1 like the Expires header.
func (na *NameAddr) ExpiresParam() (secs int, present bool, err error) {
	v, ok := na.Param("expires")
	if !ok {
		return 0, false, nil
	}
	n, ok := ParseUint(v)
	if !ok {
		if len(v) > 9 && isDigits(v) {
			return 1<<31 - 1, true, nil
		}
		return 0, true, ErrContactParam
	}
	return n, true, nil
}

// Q returns the q parameter in thousandths (q=0.5 → 500); present is
// false when there is none. RFC 3261 §20.10: qvalue = "0" [ "." 0*3DIGIT ]
// / "1" [ "." 0*3("0") ].
func (na *NameAddr) Q() (q int, present bool, err error) {
	v, ok := na.Param("q")
	if !ok {
		return 0, false, nil
	}
	q, ok = parseQ(v)
	if !ok {
		return 0, true, ErrContactParam
	}
	return q, true, nil
}

func parseQ(v []byte) (int, bool) {
	if len(v) == 0 || (v[0] != '0' && v[0] != '1') {
		return 0, false
	}
	q := int(v[0]-'0') * 1000
	if len(v) == 1 {
		return q, true
	}
	if v[1] != '.' || len(v) > 5 {
		return 0, false
	}
	scale := 100
	for _, c := range v[2:] {
		if c < '0' || c > '9' {
			return 0, false
		}
		q += int(c-'0') * scale
		scale /= 10
	}
	if q > 1000 {
		return 0, false
	}
	return q, true
}

// Instance returns the +sip.instance parameter (RFC 5626 §4.1) without its
// quotes and angle brackets, e.g. "urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF".
func (na *NameAddr) Instance() []byte {
	v, ok := na.Param("+sip.instance")
	if !ok {
		return nil
	}
	if len(v) >= 2 && v[0] == '<' && v[len(v)-1] == '>' {
		v = v[1 : len(v)-1]
	}
	return v
}

// RegID returns the reg-id parameter (RFC 5626 §4.2); present is false
// when there is none.
func (na *NameAddr) RegID() (id int, present bool, err error) {
	v, ok := na.Param("reg-id")
	if !ok {
		return 0, false, nil
	}
	n, ok := ParseUint(v)
	if !ok || n == 0 {
		return 0, true, ErrContactParam
	}
	return n, true, nil
}

// ContactStar reports whether the message's Contact is the wildcard "*"
// (RFC 3261 §10.2.2). A "*" mixed with other Contact values is an error.
func (m *Message) ContactStar() (star bool, err error) {
	it := m.NameAddrs(HdrContact)
	var na NameAddr
	n := 0
	for {
		ok, err := it.Next(&na)
		if err == ErrStar {
			star = true
			n++
			continue
		}
		if err != nil {
			return false, err
		}
		if !ok {
			break
		}
		n++
	}
	if star && n > 1 {
		return false, ErrContact
	}
	return star, nil
}
