package sip

import "unsafe"

// MaxEdits is the number of changes one message can carry.
const MaxEdits = 32

// scratchSize is the per-message space for inserted text. Text that does
// not fit is still accepted (it then lives on the heap).
const scratchSize = 4096

// edit replaces buf[off:end] by data when the message is written.
type edit struct {
	off, end uint32
	data     []byte
}

// editList is the ordered list of a message's pending changes and the
// scratch space their new text is built in.
type editList struct {
	e       [MaxEdits]edit
	n       int
	err     error
	used    int
	scratch [scratchSize]byte
}

func (l *editList) reset() { l.n, l.err, l.used = 0, nil, 0 }

// Scratch returns an empty slice over the message's free scratch space.
// Append new header text to it and hand the result to an edit method; the
// edit then owns those bytes. Building text this way does not allocate.
func (m *Message) Scratch() []byte {
	l := &m.edits
	return l.scratch[l.used:l.used:scratchSize]
}

func (m *Message) add(off, end int, data []byte) {
	l := &m.edits
	if l.n == MaxEdits {
		l.err = ErrTooManyEdits
		return
	}
	// Claim the scratch bytes when data was built in Scratch().
	if len(data) > 0 && l.used < scratchSize &&
		unsafe.Pointer(&data[0]) == unsafe.Pointer(&l.scratch[l.used]) {
		l.used += len(data)
	}
	// Keep edits sorted by offset; equal offsets keep insertion order.
	i := l.n
	// Pure insertions go before a replacement starting at the same offset.
	for i > 0 && (l.e[i-1].off > uint32(off) ||
		(l.e[i-1].off == uint32(off) && off == end && l.e[i-1].end > l.e[i-1].off)) {
		l.e[i] = l.e[i-1]
		i--
	}
	l.e[i] = edit{off: uint32(off), end: uint32(end), data: data}
	l.n++
}

// offsetOf returns the offset of sub within the message buffer, or -1 when
// sub does not alias it.
func (m *Message) offsetOf(sub []byte) int {
	if len(m.buf) == 0 || cap(sub) == 0 {
		return -1
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(m.buf)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(sub)))
	if p < base || p > base+uintptr(len(m.buf)) {
		return -1
	}
	return int(p - base)
}

// InsertHeaderFirst inserts a complete header line (text ending in CRLF)
// right after the start line, before every other header. Used for Via and
// Record-Route, which must come before existing values of their kind.
func (m *Message) InsertHeaderFirst(line []byte) { m.add(int(m.startEnd), int(m.startEnd), line) }

// AppendHeader adds a complete header line (ending in CRLF) after the last
// header.
func (m *Message) AppendHeader(line []byte) { m.add(int(m.hdrEnd), int(m.hdrEnd), line) }

// InsertHeaderBefore inserts a complete header line before header line i.
func (m *Message) InsertHeaderBefore(i int, line []byte) {
	off := int(m.hdrs[i].line.off)
	m.add(off, off, line)
}

// RemoveHeader deletes header line i (with its continuation lines).
func (m *Message) RemoveHeader(i int) {
	h := &m.hdrs[i]
	m.add(int(h.line.off), int(h.line.end), nil)
}

// ReplaceHeaderValue replaces the value of header line i, keeping its name.
func (m *Message) ReplaceHeaderValue(i int, value []byte) {
	h := &m.hdrs[i]
	m.add(int(h.value.off), int(h.value.end), value)
}

// RemoveFirstValue removes the first comma-separated value of header line
// i, where rest is the text after that value's comma (as returned by an
// iterator): the whole line goes when rest is empty.
func (m *Message) RemoveFirstValue(i int, rest []byte) {
	h := &m.hdrs[i]
	off := m.offsetOf(rest)
	if len(rest) == 0 || off < 0 {
		m.RemoveHeader(i)
		return
	}
	off = skipWS(m.buf[:h.value.end], off)
	m.add(int(h.value.off), off, nil)
}

// SetRequestURI replaces the Request-URI.
func (m *Message) SetRequestURI(uri []byte) {
	m.add(int(m.ruri.off), int(m.ruri.end), uri)
	m.cache.done &^= cRURI
}

// InsertAt inserts text at the position of sub, a slice of the message
// buffer, after its end when after is true. It is how a parameter is
// appended to a parsed value (e.g. ";received=…" after a Via).
func (m *Message) InsertAt(sub []byte, after bool, text []byte) {
	off := m.offsetOf(sub)
	if off < 0 {
		m.edits.err = ErrEditOverlap
		return
	}
	if after {
		off += len(sub)
	}
	m.add(off, off, text)
}

// Replace replaces sub, a slice of the message buffer, with text.
func (m *Message) Replace(sub []byte, text []byte) {
	off := m.offsetOf(sub)
	if off < 0 {
		m.edits.err = ErrEditOverlap
		return
	}
	m.add(off, off+len(sub), text)
}

// Edited reports whether the message has pending edits.
func (m *Message) Edited() bool { return m.edits.n > 0 }

// AppendTo writes the message with its edits applied to dst and returns the
// extended slice. Bytes after the body (beyond Content-Length) are not
// written. It fails when edits overlap or too many were made.
func (m *Message) AppendTo(dst []byte) ([]byte, error) {
	l := &m.edits
	if l.err != nil {
		return dst, l.err
	}
	cur := m.start
	for i := 0; i < l.n; i++ {
		e := &l.e[i]
		if e.off < cur {
			return dst, ErrEditOverlap
		}
		dst = append(dst, m.buf[cur:e.off]...)
		dst = append(dst, e.data...)
		cur = e.end
	}
	return append(dst, m.buf[cur:m.body.end]...), nil
}

// RemoveAfter removes the text from the end of a up to the end of b, both
// slices of the message buffer with a before b: how the last value of a
// multi-value header line goes with its comma (a is the value before it).
func (m *Message) RemoveAfter(a, b []byte) {
	from, to := m.offsetOf(a), m.offsetOf(b)
	if from < 0 || to < 0 || to < from+len(a) {
		m.edits.err = ErrEditOverlap
		return
	}
	m.add(from+len(a), to+len(b), nil)
}

// EditState is a saved copy of a message's edit list (see SaveEdits).
type EditState struct {
	e    [MaxEdits]edit
	n    int
	used int
	err  error
}

// SaveEdits records the message's current edits in s, so that a proxy can
// add per-branch edits, write the message, and go back with RestoreEdits
// before building the next branch.
func (m *Message) SaveEdits(s *EditState) {
	l := &m.edits
	s.n, s.used, s.err = l.n, l.used, l.err
	copy(s.e[:l.n], l.e[:l.n])
}

// RestoreEdits returns the edit list to the state saved in s.
func (m *Message) RestoreEdits(s *EditState) {
	l := &m.edits
	l.n, l.used, l.err = s.n, s.used, s.err
	copy(l.e[:s.n], s.e[:s.n])
}
