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

// AppendCancel writes the CANCEL for the request req that this element
// sent (RFC 3261 §9.1): the same Request-URI, Call-ID, From, To and CSeq
// number, only the top Via (so the branch matches), the Route headers, and
// Max-Forwards: 70.
func AppendCancel(dst []byte, req *Message) []byte {
	return appendHopRequest(dst, req, "CANCEL", nil)
}

// AppendAck writes the ACK for a non-2xx final response to the INVITE req
// (RFC 3261 §17.1.1.3): like CANCEL, but with the To header value of the
// response (it carries the callee's tag).
func AppendAck(dst []byte, req *Message, respTo []byte) []byte {
	return appendHopRequest(dst, req, "ACK", respTo)
}

func appendHopRequest(dst []byte, req *Message, method string, to []byte) []byte {
	dst = append(dst, method...)
	dst = append(dst, ' ')
	dst = append(dst, req.RequestURI()...)
	dst = append(dst, " SIP/2.0\r\n"...)
	if v, err := req.TopVia(); err == nil {
		dst = append(dst, "Via: "...)
		dst = append(dst, v.Raw...)
		dst = append(dst, "\r\n"...)
	}
	for i := 0; i < req.nhdrs; i++ {
		h := &req.hdrs[i]
		switch h.id {
		case HdrRoute, HdrFrom, HdrCallID:
			dst = appendHeaderLine(dst, req, h)
		case HdrTo:
			if to != nil {
				dst = append(dst, "To: "...)
				dst = append(dst, to...)
				dst = append(dst, "\r\n"...)
			} else {
				dst = appendHeaderLine(dst, req, h)
			}
		}
	}
	n, _, _ := req.CSeq()
	dst = append(dst, "CSeq: "...)
	dst = strconv.AppendUint(dst, uint64(n), 10)
	dst = append(dst, ' ')
	dst = append(dst, method...)
	dst = append(dst, "\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"...)
	return dst
}
