package sip

import (
	"bytes"
	"net/netip"
)

// MaxHeaders is the number of header lines one message may carry. A message
// with more is rejected with ErrTooManyHeaders.
const MaxHeaders = 128

// Method is a request method known by the server. Others are MethodOther and
// keep their text in Message.MethodName.
type Method uint8

// Request methods.
const (
	MethodOther Method = iota
	INVITE
	ACK
	BYE
	CANCEL
	REGISTER
	OPTIONS
	INFO
	UPDATE
	PRACK
	SUBSCRIBE
	NOTIFY
	MESSAGE
	REFER
	PUBLISH
	methodCount
)

var methodNames = [methodCount]string{"", "INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "INFO", "UPDATE", "PRACK", "SUBSCRIBE", "NOTIFY", "MESSAGE", "REFER", "PUBLISH"}

// String returns the method name ("" for MethodOther).
func (m Method) String() string {
	if m < methodCount {
		return methodNames[m]
	}
	return ""
}

// LookupMethod maps a method token to its Method (case-sensitive, RFC 3261 §7.1).
func LookupMethod(b []byte) Method {
	for i := Method(1); i < methodCount; i++ {
		if string(b) == methodNames[i] {
			return i
		}
	}
	return MethodOther
}

// span is a byte range of the message buffer: buf[off:end].
type span struct{ off, end uint32 }

func (s span) len() int { return int(s.end - s.off) }

// headerLine is one indexed header line.
type headerLine struct {
	id    HeaderID
	name  span // the name as written
	value span // the value, trimmed; folded continuations are unfolded in place
	line  span // the whole line including its line ending
}

// Message is a SIP request or response parsed lazily over a buffer it does
// not own. Parse indexes the start line and the header positions only; the
// typed accessors parse a header on first use and cache the result. Every
// []byte a Message returns aliases the buffer. Changes are kept as an edit
// list (see edit.go) and applied by AppendTo.
//
// A Message is reused: Parse resets it. It is not safe for concurrent use.
type Message struct {
	buf []byte

	request   bool
	method    Method
	methodTok span
	ruri      span
	version   span
	status    int
	reason    span
	start     uint32 // offset of the start line (leading CRLFs skipped)
	startEnd  uint32 // offset just after the start line's line ending
	hdrEnd    uint32 // offset of the empty line that ends the headers
	body      span

	hdrs  [MaxHeaders]headerLine
	nhdrs int

	cache cache
	edits editList

	// Src is the address the message came from; Local the socket it
	// arrived on. Transports set them; Parse leaves them alone.
	Src   netip.AddrPort
	Local netip.AddrPort
}

// Parse indexes buf as one SIP message (a whole UDP datagram or one framed
// stream message). Leading CRLFs are skipped (RFC 3261 §7.5). Folded header
// lines are unfolded in place, so buf is modified. When Content-Length
// announces fewer bytes than follow the headers, the body is cut to it; when
// more, ErrBodyTruncated is returned. A malformed header line is skipped and
// its error returned after the rest is indexed, so that a 400 can still be
// routed back.
func (m *Message) Parse(buf []byte) error {
	m.reset()
	m.buf = buf
	pos := 0
	for pos+1 < len(buf) && buf[pos] == '\r' && buf[pos+1] == '\n' {
		pos += 2
	}
	if pos >= len(buf) {
		return ErrEmpty
	}
	m.start = uint32(pos)
	lineEnd, next := lineAt(buf, pos)
	if lineEnd < 0 {
		return ErrStartLine
	}
	// A bad request line is reported after the headers are indexed, so
	// that the 400 (or 505) can be routed back.
	lineErr := m.parseStartLine(pos, lineEnd)
	if lineErr != nil && !m.request {
		return lineErr
	}
	m.startEnd = uint32(next)
	pos = next
	for {
		lineEnd, next = lineAt(buf, pos)
		if lineEnd < 0 {
			return ErrNoHeaderEnd
		}
		if lineEnd == pos { // empty line: end of headers
			m.hdrEnd = uint32(pos)
			pos = next
			break
		}
		c := buf[pos]
		if c == ' ' || c == '\t' {
			// Continuation of the previous header (folding, §7.3.1).
			if m.nhdrs == 0 {
				return ErrHeaderLine
			}
			h := &m.hdrs[m.nhdrs-1]
			// Unfold: the CRLF before this line becomes spaces.
			for i := int(h.line.end) - 1; i >= int(h.value.end) && (buf[i] == '\r' || buf[i] == '\n'); i-- {
				buf[i] = ' '
			}
			if e := trimRight(buf, pos, lineEnd); e > pos {
				h.value.end = uint32(e)
			}
			h.line.end = uint32(next)
			pos = next
			continue
		}
		if err := m.indexHeader(pos, lineEnd, next); err != nil {
			if err == ErrTooManyHeaders {
				return err
			}
			// Keep indexing: the other headers let a 400 be routed back.
			if lineErr == nil {
				lineErr = err
			}
		}
		pos = next
	}
	m.body = span{uint32(pos), uint32(len(buf))}
	if h := m.first(HdrContentLength); h != nil {
		n, ok := ParseUint(m.bytes(h.value))
		if !ok || n > 1<<24 {
			return ErrContentLength
		}
		if n > m.body.len() {
			return ErrBodyTruncated
		}
		m.body.end = m.body.off + uint32(n)
	}
	return lineErr
}

// lineAt returns the end of the line starting at pos (excluding CR LF) and
// the start of the next line. A bare LF ends a line too. -1 when no line end.
func lineAt(buf []byte, pos int) (end, next int) {
	i := bytes.IndexByte(buf[pos:], '\n')
	if i < 0 {
		return -1, -1
	}
	end = pos + i
	next = end + 1
	if end > pos && buf[end-1] == '\r' {
		end--
	}
	return end, next
}

func (m *Message) parseStartLine(pos, end int) error {
	b := m.buf
	sp1 := bytes.IndexByte(b[pos:end], ' ')
	if sp1 <= 0 {
		return ErrStartLine
	}
	sp1 += pos
	if hasPrefixFold(b[pos:end], "SIP/") {
		// Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
		m.version = span{uint32(pos), uint32(sp1)}
		if !versionIs20(b[pos:sp1]) {
			return ErrVersion
		}
		p := sp1 + 1
		if end-p < 3 {
			return ErrStatus
		}
		code := 0
		for i := p; i < p+3; i++ {
			if b[i] < '0' || b[i] > '9' {
				return ErrStatus
			}
			code = code*10 + int(b[i]-'0')
		}
		if code < 100 || code > 699 || (p+3 < end && b[p+3] != ' ') {
			return ErrStatus
		}
		m.status = code
		r := p + 3
		if r < end {
			r++
		}
		m.reason = span{uint32(r), uint32(end)}
		return nil
	}
	// Request-Line = Method SP Request-URI SP SIP-Version
	m.request = true
	if !isToken(b[pos:sp1]) {
		return ErrMethod
	}
	m.methodTok = span{uint32(pos), uint32(sp1)}
	m.method = LookupMethod(b[pos:sp1])
	sp2 := bytes.LastIndexByte(b[sp1+1:end], ' ')
	if sp2 < 0 {
		return ErrStartLine
	}
	sp2 += sp1 + 1
	if sp2 == sp1+1 {
		return ErrRequestURI
	}
	uri := b[sp1+1 : sp2]
	for _, c := range uri {
		if c == ' ' || c == '\t' || c < 0x21 || c == 0x7f {
			return ErrRequestURI
		}
	}
	m.ruri = span{uint32(sp1 + 1), uint32(sp2)}
	m.version = span{uint32(sp2 + 1), uint32(end)}
	if !hasPrefixFold(b[sp2+1:end], "SIP/") {
		return ErrStartLine
	}
	if !versionIs20(b[sp2+1 : end]) {
		return ErrVersion
	}
	return nil
}

func versionIs20(v []byte) bool { return equalFold(v, "SIP/2.0") }

func (m *Message) indexHeader(pos, lineEnd, next int) error {
	b := m.buf
	colon := bytes.IndexByte(b[pos:lineEnd], ':')
	if colon <= 0 {
		return ErrHeaderLine
	}
	colon += pos
	nameEnd := colon
	for nameEnd > pos && (b[nameEnd-1] == ' ' || b[nameEnd-1] == '\t') {
		nameEnd--
	}
	name := b[pos:nameEnd]
	if !isToken(name) {
		return ErrHeaderName
	}
	if m.nhdrs == MaxHeaders {
		return ErrTooManyHeaders
	}
	v := colon + 1
	for v < lineEnd && (b[v] == ' ' || b[v] == '\t') {
		v++
	}
	h := &m.hdrs[m.nhdrs]
	m.nhdrs++
	h.id = LookupHeader(name)
	h.name = span{uint32(pos), uint32(nameEnd)}
	h.value = span{uint32(v), uint32(trimRight(b, v, lineEnd))}
	h.line = span{uint32(pos), uint32(next)}
	return nil
}

func trimRight(b []byte, start, end int) int {
	for end > start && (b[end-1] == ' ' || b[end-1] == '\t') {
		end--
	}
	return end
}

func (m *Message) reset() {
	m.buf = nil
	m.request = false
	m.method = MethodOther
	m.methodTok, m.ruri, m.version, m.reason, m.body = span{}, span{}, span{}, span{}, span{}
	m.status = 0
	m.start, m.startEnd, m.hdrEnd = 0, 0, 0
	m.nhdrs = 0
	m.cache.reset()
	m.edits.reset()
}

func (m *Message) bytes(s span) []byte { return m.buf[s.off:s.end:s.end] }

// Buf returns the buffer the message was parsed from.
func (m *Message) Buf() []byte { return m.buf }

// IsRequest reports whether the message is a request.
func (m *Message) IsRequest() bool { return m.request }

// Method returns the request method (MethodOther for unknown ones).
func (m *Message) Method() Method { return m.method }

// MethodName returns the method token of a request.
func (m *Message) MethodName() []byte { return m.bytes(m.methodTok) }

// RequestURI returns the Request-URI text of a request.
func (m *Message) RequestURI() []byte { return m.bytes(m.ruri) }

// Version returns the SIP-Version text of the start line.
func (m *Message) Version() []byte { return m.bytes(m.version) }

// StatusCode returns the status code of a response (0 for requests).
func (m *Message) StatusCode() int { return m.status }

// Reason returns the reason phrase of a response.
func (m *Message) Reason() []byte { return m.bytes(m.reason) }

// Body returns the message body (cut to Content-Length).
func (m *Message) Body() []byte { return m.bytes(m.body) }

// NumHeaders returns the number of indexed header lines.
func (m *Message) NumHeaders() int { return m.nhdrs }

// HeaderAt returns the ID, name and value of header line i (0 ≤ i < NumHeaders).
func (m *Message) HeaderAt(i int) (id HeaderID, name, value []byte) {
	h := &m.hdrs[i]
	return h.id, m.bytes(h.name), m.bytes(h.value)
}

func (m *Message) first(id HeaderID) *headerLine {
	for i := 0; i < m.nhdrs; i++ {
		if m.hdrs[i].id == id {
			return &m.hdrs[i]
		}
	}
	return nil
}

// Index returns the index of the first header line with the given ID after
// line from (use -1 to start), or -1.
func (m *Message) Index(id HeaderID, from int) int {
	for i := from + 1; i < m.nhdrs; i++ {
		if m.hdrs[i].id == id {
			return i
		}
	}
	return -1
}

// Header returns the value of the first header line with the given ID.
func (m *Message) Header(id HeaderID) ([]byte, bool) {
	if h := m.first(id); h != nil {
		return m.bytes(h.value), true
	}
	return nil, false
}

// HeaderByName returns the value of the first header with the given name
// (any case; compact forms of known headers match too).
func (m *Message) HeaderByName(name string) ([]byte, bool) {
	id := LookupHeaderString(name)
	if id != HdrOther {
		return m.Header(id)
	}
	for i := 0; i < m.nhdrs; i++ {
		h := &m.hdrs[i]
		if h.id == HdrOther && equalFold(m.bytes(h.name), name) {
			return m.bytes(h.value), true
		}
	}
	return nil, false
}

// Count returns the number of header lines with the given ID.
func (m *Message) Count(id HeaderID) int {
	n := 0
	for i := 0; i < m.nhdrs; i++ {
		if m.hdrs[i].id == id {
			n++
		}
	}
	return n
}

func isTokenChar(c byte) bool { return tokenChars[c] }

var tokenChars = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-.!%*_+`'~" {
		t[c] = true
	}
	return t
}()

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenChars[c] {
			return false
		}
	}
	return true
}

func hasPrefixFold(b []byte, p string) bool {
	return len(b) >= len(p) && equalFold(b[:len(p)], p)
}

// ParseUint parses a decimal number of at most 9 digits, allowing no sign
// or spaces (lengths, ports, expiry and CSeq numbers).
func ParseUint(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
