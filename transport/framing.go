package transport

import (
	"bytes"
	"errors"

	"github.com/veloxsip/velox/sip"
)

// Framing of SIP messages on a byte stream (RFC 3261 §18.3): a message ends
// Content-Length bytes after the blank line that ends its headers. Between
// messages, a CRLFCRLF is a keep-alive ping, answered with a CRLF pong
// (RFC 5626 §3.5.1); other CRLFs are skipped.

// frameKind is what frameSIP found at the start of a stream buffer.
type frameKind uint8

const (
	frameMore    frameKind = iota // incomplete: wait for more bytes
	frameMessage                  // a complete message of n bytes
	framePing                     // a CRLFCRLF keep-alive ping (n = 4): answer with CRLF
	frameSkip                     // n bytes of line ends between messages (a pong, padding)
	frameError                    // malformed or oversized: close the connection
)

// Framing errors.
var (
	errNoContentLength  = errors.New("transport: stream message without Content-Length")
	errBadContentLength = errors.New("transport: malformed Content-Length")
	errTooLarge         = errors.New("transport: message larger than MaxMessage")
)

var crlf2 = []byte("\r\n\r\n")

// frameSIP looks at the start of b, the bytes received on a stream after
// the last message consumed, and reports what is there and how many bytes
// it takes. max is the largest message accepted. *scan carries, between
// calls on the same (growing) buffer, how much of it has been searched for
// the end of the headers; it is reset when a message is complete, so that a
// message arriving a byte at a time is not searched again from its start.
func frameSIP(b []byte, max int, scan *int) (kind frameKind, n int, err error) {
	if len(b) == 0 {
		return frameMore, 0, nil
	}
	switch b[0] {
	case '\n':
		return frameSkip, 1, nil
	case '\r':
		// A prefix of CRLFCRLF: a ping, a CRLF, or wait for more.
		for i := 1; i < 4; i++ {
			if i == len(b) {
				return frameMore, 0, nil
			}
			if b[i] != crlf2[i] {
				if i == 1 {
					return frameSkip, 1, nil // a lone CR
				}
				return frameSkip, 2, nil // CRLF
			}
		}
		return framePing, 4, nil
	}
	from := *scan - 3
	if from < 0 {
		from = 0
	}
	i := bytes.Index(b[from:], crlf2)
	if i < 0 {
		if len(b) > max {
			return frameError, 0, errTooLarge
		}
		*scan = len(b)
		return frameMore, 0, nil
	}
	i += from
	if i+4 > max {
		return frameError, 0, errTooLarge
	}
	cl, err := contentLength(b[:i+2])
	if err != nil {
		return frameError, 0, err
	}
	if cl > max-(i+4) {
		return frameError, 0, errTooLarge
	}
	total := i + 4 + cl
	if len(b) < total {
		*scan = i + 3 // the next search finds the end at i again at once
		return frameMore, 0, nil
	}
	*scan = 0
	return frameMessage, total, nil
}

// contentLength finds the Content-Length (or compact "l") header among the
// header lines h (start line first, each line ending in CRLF). Names are
// matched case-insensitively, white space around the colon and the value
// is allowed; a missing, malformed or contradictory value is an error.
func contentLength(h []byte) (int, error) {
	cl, found := 0, false
	first := true
	for len(h) > 0 {
		j := bytes.IndexByte(h, '\n')
		if j < 0 {
			j = len(h) - 1
		}
		line := h[:j]
		h = h[j+1:]
		if first {
			first = false
			continue
		}
		if len(line) == 0 {
			continue
		}
		if c := line[0] | 0x20; c != 'c' && c != 'l' {
			continue // also skips continuation lines (leading SP/HT)
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		name := trimLWS(line[:colon])
		if !asciiEqualFold(name, "content-length") && !asciiEqualFold(name, "l") {
			continue
		}
		v, ok := sip.ParseUint(trimLWS(line[colon+1:]))
		if !ok || found && v != cl {
			return 0, errBadContentLength
		}
		cl, found = v, true
	}
	if !found {
		return 0, errNoContentLength
	}
	return cl, nil
}

// trimLWS trims spaces, tabs and CRs at both ends.
func trimLWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// asciiEqualFold compares b with the lower-case ASCII string s, ignoring case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
