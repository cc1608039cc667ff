package sip

import "strconv"

// AppendResponse writes a response to the request req into dst (RFC 3261
// §8.2.6): the Via, From, To, Call-ID and CSeq of the request are copied,
// a To tag is added when the request has none and code > 100, then extra
// header lines (each ending in CRLF, may be nil) and Content-Length: 0.
func AppendResponse(dst []byte, req *Message, code int, reason string, toTag []byte, extra []byte) []byte {
	dst = append(dst, "SIP/2.0 "...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, ' ')
	dst = append(dst, reason...)
	dst = append(dst, "\r\n"...)
	for i := 0; i < req.nhdrs; i++ {
		h := &req.hdrs[i]
		switch h.id {
		case HdrVia, HdrFrom, HdrCallID, HdrCSeq:
			dst = appendHeaderLine(dst, req, h)
		case HdrTo:
			dst = appendHeaderLine(dst, req, h)
			if code > 100 && len(toTag) > 0 {
				if to, err := req.To(); err == nil && len(to.Tag()) == 0 {
					dst = dst[:len(dst)-2] // before CRLF
					dst = append(dst, ";tag="...)
					dst = append(dst, toTag...)
					dst = append(dst, "\r\n"...)
				}
			}
		case HdrRecordRoute:
			// Copied into responses that establish dialogs (§12.1.1).
			if code > 100 && code < 300 && req.method == INVITE {
				dst = appendHeaderLine(dst, req, h)
			}
		}
	}
	dst = append(dst, extra...)
	return append(dst, "Content-Length: 0\r\n\r\n"...)
}

func appendHeaderLine(dst []byte, m *Message, h *headerLine) []byte {
	dst = append(dst, m.bytes(h.name)...)
	dst = append(dst, ": "...)
	dst = append(dst, m.bytes(h.value)...)
	return append(dst, "\r\n"...)
}
