package sip

import "bytes"

// Bits of cache.done / cache.failed, one per lazily parsed field.
const (
	cVia uint32 = 1 << iota
	cFrom
	cTo
	cRURI
	cCSeq
	cMaxFwd
	cExpires
)

// cache holds the typed headers parsed so far.
type cache struct {
	done, failed uint32

	via      Via
	viaLine  int    // header index of the top Via
	viaRest  []byte // what follows the top Via value on its line
	from, to NameAddr
	ruri     URI
	cseqNum  uint32
	cseqMeth []byte
	maxFwd   int
	expires  int
}

func (c *cache) reset() { c.done, c.failed = 0, 0 }

// lookup reports whether bit is cached and, if so, its error.
func (m *Message) cached(bit uint32, err error) (hit bool, e error) {
	if m.cache.done&bit == 0 {
		return false, nil
	}
	if m.cache.failed&bit != 0 {
		return true, err
	}
	return true, nil
}

func (m *Message) store(bit uint32, err error) error {
	m.cache.done |= bit
	if err != nil {
		m.cache.failed |= bit
	}
	return err
}

// TopVia returns the first Via value (parsed once, cached).
func (m *Message) TopVia() (*Via, error) {
	if hit, err := m.cached(cVia, ErrVia); hit {
		return &m.cache.via, err
	}
	h := m.first(HdrVia)
	if h == nil {
		m.cache.via = Via{}
		m.cache.done |= cVia
		m.cache.failed |= cVia
		return &m.cache.via, ErrNoVia
	}
	rest, err := ParseVia(m.bytes(h.value), &m.cache.via)
	m.cache.viaRest, m.cache.viaLine = rest, m.Index(HdrVia, -1)
	return &m.cache.via, m.store(cVia, err)
}

// RemoveTopVia records the removal of the top Via value (its whole line
// when it is alone on it), as a proxy does before forwarding a response.
// It reports false when there is no well-formed top Via.
func (m *Message) RemoveTopVia() bool {
	if _, err := m.TopVia(); err != nil {
		return false
	}
	m.RemoveFirstValue(m.cache.viaLine, m.cache.viaRest)
	return true
}

// ViasAfterTop returns an iterator over the Via values below the top one
// (whose parse is reused); Next fails like TopVia when the top is broken.
func (m *Message) ViasAfterTop() ViaIter {
	if _, err := m.TopVia(); err != nil {
		return ViaIter{m: m, line: -1}
	}
	return ViaIter{m: m, line: m.cache.viaLine, rest: m.cache.viaRest}
}

// From returns the parsed From header.
func (m *Message) From() (*NameAddr, error) {
	return m.nameAddr(cFrom, HdrFrom, &m.cache.from, ErrFrom, ErrNoFrom)
}

// To returns the parsed To header.
func (m *Message) To() (*NameAddr, error) {
	return m.nameAddr(cTo, HdrTo, &m.cache.to, ErrTo, ErrNoTo)
}

func (m *Message) nameAddr(bit uint32, id HeaderID, na *NameAddr, bad, missing *Error) (*NameAddr, error) {
	if m.cache.done&bit != 0 {
		if m.cache.failed&bit != 0 {
			if na.Raw == nil {
				return na, missing
			}
			return na, bad
		}
		return na, nil
	}
	h := m.first(id)
	if h == nil {
		*na = NameAddr{}
		return na, m.store(bit, missing)
	}
	rest, err := ParseNameAddr(m.bytes(h.value), na)
	if err == nil && len(bytes.TrimSpace(rest)) > 0 {
		err = bad
	}
	if err != nil {
		na.Raw = m.bytes(h.value)
		return na, m.store(bit, bad)
	}
	return na, m.store(bit, nil)
}

// RURI returns the parsed Request-URI of a request.
func (m *Message) RURI() (*URI, error) {
	if hit, err := m.cached(cRURI, ErrRequestURI); hit {
		return &m.cache.ruri, err
	}
	if !m.request {
		return &m.cache.ruri, m.store(cRURI, errNotARequest)
	}
	err := ParseURI(m.bytes(m.ruri), &m.cache.ruri)
	if err != nil {
		err = ErrRequestURI
	}
	return &m.cache.ruri, m.store(cRURI, err)
}

// CallID returns the Call-ID value (nil when absent).
func (m *Message) CallID() []byte {
	v, _ := m.Header(HdrCallID)
	return v
}

// CSeq returns the sequence number and method of the CSeq header.
func (m *Message) CSeq() (num uint32, method []byte, err error) {
	if hit, err := m.cached(cCSeq, ErrCSeq); hit {
		return m.cache.cseqNum, m.cache.cseqMeth, err
	}
	h := m.first(HdrCSeq)
	if h == nil {
		return 0, nil, m.store(cCSeq, ErrNoCSeq)
	}
	v := m.bytes(h.value)
	i := 0
	for i < len(v) && v[i] >= '0' && v[i] <= '9' {
		i++
	}
	n, ok := parseUint32(v[:i])
	if !ok {
		return 0, nil, m.store(cCSeq, ErrCSeq)
	}
	j := skipWS(v, i)
	if j == i {
		return 0, nil, m.store(cCSeq, ErrCSeq)
	}
	k := tokenEnd(v, j)
	if k == j || skipWS(v, k) != len(v) {
		return 0, nil, m.store(cCSeq, ErrCSeq)
	}
	m.cache.cseqNum, m.cache.cseqMeth = n, v[j:k]
	return n, v[j:k], m.store(cCSeq, nil)
}

// parseUint32 parses a CSeq number (RFC 3261: less than 2**31).
func parseUint32(b []byte) (uint32, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		n = n*10 + uint64(c-'0')
	}
	if n >= 1<<31 {
		return 0, false
	}
	return uint32(n), true
}

// MaxForwards returns the Max-Forwards value; present is false when the
// header is absent.
func (m *Message) MaxForwards() (n int, present bool, err error) {
	if hit, err := m.cached(cMaxFwd, ErrMaxForwards); hit {
		return m.cache.maxFwd, m.cache.maxFwd >= 0, err
	}
	h := m.first(HdrMaxForwards)
	if h == nil {
		m.cache.maxFwd = -1
		return -1, false, m.store(cMaxFwd, nil)
	}
	v, ok := ParseUint(m.bytes(h.value))
	if !ok || v > 255 {
		m.cache.maxFwd = -1
		return -1, true, m.store(cMaxFwd, ErrMaxForwards)
	}
	m.cache.maxFwd = v
	return v, true, m.store(cMaxFwd, nil)
}

// MaxForwardsIndex returns the header index of Max-Forwards or -1.
func (m *Message) MaxForwardsIndex() int { return m.Index(HdrMaxForwards, -1) }

// ContentLength returns the Content-Length value, or -1 when absent.
func (m *Message) ContentLength() (int, error) {
	h := m.first(HdrContentLength)
	if h == nil {
		return -1, nil
	}
	n, ok := ParseUint(m.bytes(h.value))
	if !ok {
		return -1, ErrContentLength
	}
	return n, nil
}

// ContentType returns the Content-Type value.
func (m *Message) ContentType() []byte {
	v, _ := m.Header(HdrContentType)
	return v
}

// Expires returns the Expires header value in seconds; present is false
// when the header is absent.
func (m *Message) Expires() (secs int, present bool, err error) {
	if hit, err := m.cached(cExpires, ErrExpires); hit {
		return m.cache.expires, m.cache.expires >= 0, err
	}
	h := m.first(HdrExpires)
	if h == nil {
		m.cache.expires = -1
		return -1, false, m.store(cExpires, nil)
	}
	v := m.bytes(h.value)
	n, ok := ParseUint(v)
	if !ok {
		if len(v) > 9 && isDigits(v) {
			n, ok = 1<<31-1, true // absurdly large: treat as the maximum
		}
	}
	if !ok {
		m.cache.expires = -1
		return -1, true, m.store(cExpires, ErrExpires)
	}
	m.cache.expires = n
	return n, true, m.store(cExpires, nil)
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// InDialog reports whether the request carries a To tag.
func (m *Message) InDialog() bool {
	to, err := m.To()
	return err == nil && len(to.Tag()) > 0
}

// ViaIter walks every Via value of a message, across header lines and
// comma-separated values.
type ViaIter struct {
	m    *Message
	line int
	rest []byte
}

// Vias returns an iterator over all Via values, top first.
func (m *Message) Vias() ViaIter { return ViaIter{m: m, line: -1} }

// Next parses the next Via value into v. ok is false at the end.
func (it *ViaIter) Next(v *Via) (ok bool, err error) {
	for len(bytes.TrimSpace(it.rest)) == 0 {
		it.line = it.m.Index(HdrVia, it.line)
		if it.line < 0 {
			return false, nil
		}
		it.rest = it.m.bytes(it.m.hdrs[it.line].value)
	}
	it.rest, err = ParseVia(it.rest, v)
	return err == nil, err
}

// Line returns the header index of the value Next returned last.
func (it *ViaIter) Line() int { return it.line }

// Rest returns what follows the last value on its line (empty when it was
// the last value of the line).
func (it *ViaIter) Rest() []byte { return it.rest }

// NameAddrIter walks the comma-separated name-addr values of one header
// kind (Contact, Route, Record-Route, Path …) across all its lines.
type NameAddrIter struct {
	m    *Message
	id   HeaderID
	line int
	rest []byte
	// first reports whether the last value was the first of its line.
	first bool
}

// NameAddrs returns an iterator over the values of header id.
func (m *Message) NameAddrs(id HeaderID) NameAddrIter {
	return NameAddrIter{m: m, id: id, line: -1}
}

// Next parses the next value into na. ok is false at the end.
func (it *NameAddrIter) Next(na *NameAddr) (ok bool, err error) {
	it.first = false
	for len(bytes.TrimSpace(it.rest)) == 0 {
		it.line = it.m.Index(it.id, it.line)
		if it.line < 0 {
			return false, nil
		}
		it.rest = it.m.bytes(it.m.hdrs[it.line].value)
		it.first = true
	}
	it.rest, err = ParseNameAddr(it.rest, na)
	return err == nil, err
}

// Line returns the header index of the value Next returned last.
func (it *NameAddrIter) Line() int { return it.line }

// Rest returns what follows the last value on its line (nil when it was the
// last value of the line).
func (it *NameAddrIter) Rest() []byte { return it.rest }

// ValueIter walks comma-separated values (option tags, methods …) of one
// header kind across all its lines. Values are trimmed tokens.
type ValueIter struct {
	m    *Message
	id   HeaderID
	line int
	rest []byte
}

// Values returns an iterator over the comma-separated values of header id.
func (m *Message) Values(id HeaderID) ValueIter { return ValueIter{m: m, id: id, line: -1} }

// Next returns the next non-empty value.
func (it *ValueIter) Next() ([]byte, bool) {
	for {
		for len(it.rest) == 0 {
			it.line = it.m.Index(it.id, it.line)
			if it.line < 0 {
				return nil, false
			}
			it.rest = it.m.bytes(it.m.hdrs[it.line].value)
		}
		v := it.rest
		if c := paramsEnd(v, 0); c < len(v) {
			v, it.rest = v[:c], v[c+1:]
		} else {
			it.rest = nil
		}
		v = bytes.TrimSpace(v)
		if len(v) > 0 {
			return v, true
		}
	}
}

// HasValue reports whether header id lists value (case-insensitive), e.g.
// HasValue(HdrSupported, "path").
func (m *Message) HasValue(id HeaderID, value string) bool {
	it := m.Values(id)
	for {
		v, ok := it.Next()
		if !ok {
			return false
		}
		if equalFold(v, value) {
			return true
		}
	}
}
