package transport

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gobwas/ws"
)

// SIP over WebSocket (RFC 7118) on WS (TCP) and WSS (TLS) listeners. The
// HTTP upgrade is gobwas/ws's Upgrader: the client must offer the "sip"
// subprotocol (else 400) and, with an Origin allow-list, send an allowed
// Origin (else 403; a request without Origin, from a non-browser client,
// is accepted). Each data message, text or binary, is one SIP message;
// every message this side sends is one text frame. Frame headers are read
// and written by gobwas/ws (ReadHeader, WriteHeader, Cipher). Connections
// cannot be opened from this side: a WS destination without a
// connection is ErrNoConnection.

// wsMaxRequest bounds the HTTP upgrade request.
const wsMaxRequest = 16 << 10

var (
	errWSRequest = errors.New("transport: WebSocket upgrade request too large")
	// wsPingFrame is sent to WebSocket connections idle for half the
	// IdleTimeout.
	wsPingFrame = ws.CompiledPing
)

// upgradeWS reads the HTTP upgrade request and answers it, within the
// ConnectTimeout. Bytes the client sent after the request are kept.
func (c *conn) upgradeWS() error {
	c.tcp.SetReadDeadline(time.Now().Add(c.s.opt.ConnectTimeout))
	defer c.tcp.SetReadDeadline(time.Time{})
	buf := make([]byte, 0, 2048)
	end := -1
	for end < 0 {
		if len(buf) == cap(buf) {
			if cap(buf) >= wsMaxRequest {
				return errWSRequest
			}
			buf = append(buf, make([]byte, cap(buf))...)[:len(buf)]
		}
		var n int
		var err error
		if c.tls != nil {
			n, err = c.tls.Read(buf[len(buf):cap(buf)])
		} else {
			n, err = c.tcp.Read(buf[len(buf):cap(buf)])
		}
		buf = buf[:len(buf)+n]
		if i := bytes.Index(buf, crlf2); i >= 0 {
			end = i + 4
		} else if err != nil {
			return err
		}
	}
	sip := false
	u := ws.Upgrader{
		Protocol: func(p []byte) bool {
			if string(p) == "sip" {
				sip = true
			}
			return sip
		},
		OnHeader: func(k, v []byte) error {
			if asciiEqualFold(k, "origin") && !c.ln.originAllowed(v) {
				return ws.RejectConnectionError(ws.RejectionStatus(http.StatusForbidden),
					ws.RejectionReason("origin not allowed"))
			}
			return nil
		},
		OnBeforeUpgrade: func() (ws.HandshakeHeader, error) {
			if !sip {
				return nil, ws.RejectConnectionError(ws.RejectionStatus(http.StatusBadRequest),
					ws.RejectionReason(`subprotocol "sip" required`))
			}
			return nil, nil
		},
	}
	if _, err := u.Upgrade(&handshakeIO{r: bytes.NewReader(buf[:end]), c: c}); err != nil {
		return err
	}
	if len(buf) > end {
		c.rest = append([]byte(nil), buf[end:]...)
	}
	return nil
}

// originAllowed reports whether a WebSocket Origin is on the allow-list
// (an empty list allows any).
func (l *StreamListener) originAllowed(origin []byte) bool {
	if len(l.origins) == 0 {
		return true
	}
	for _, o := range l.origins {
		if strings.EqualFold(o, string(origin)) {
			return true
		}
	}
	return false
}

// handshakeIO gives the Upgrader the request read so far and writes its
// response on the connection.
type handshakeIO struct {
	r *bytes.Reader
	c *conn
}

func (h *handshakeIO) Read(p []byte) (int, error) { return h.r.Read(p) }

func (h *handshakeIO) Write(p []byte) (int, error) {
	if err := h.c.writeWire(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// frameBuf assembles a WebSocket frame; it is the io.Writer ws.WriteHeader
// writes to.
type frameBuf struct{ b []byte }

func (f *frameBuf) Write(p []byte) (int, error) {
	f.b = append(f.b, p...)
	return len(p), nil
}

// text makes f a final text frame carrying p and returns the header length.
func (f *frameBuf) text(p []byte) int { return f.frame(ws.OpText, p) }

// frame makes f a final frame of op carrying p and returns the header
// length (server frames are not masked).
func (f *frameBuf) frame(op ws.OpCode, p []byte) int {
	f.b = f.b[:0]
	ws.WriteHeader(f, ws.Header{Fin: true, OpCode: op, Length: int64(len(p))})
	hl := len(f.b)
	f.b = append(f.b, p...)
	return hl
}

// processWS handles the complete frames in the worker's buffer and moves
// what is left to its start.
func (c *conn) processWS() error {
	w := c.rw
	buf := w.rbuf[:c.have]
	max := c.s.opt.MaxMessage
	off := 0
	defer func() {
		if off > 0 {
			c.have = copy(w.rbuf, buf[off:])
		}
	}()
	for len(buf)-off >= ws.MinHeaderSize {
		b := buf[off:]
		w.hdr.Reset(b)
		h, err := ws.ReadHeader(&w.hdr)
		if err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return c.wsFail(ws.StatusProtocolError)
		}
		if h.Length > int64(max) {
			return c.wsFail(ws.StatusMessageTooBig)
		}
		hl := len(b) - w.hdr.Len()
		total := hl + int(h.Length)
		if len(b) < total {
			return nil
		}
		if !h.Masked || h.Rsv != 0 {
			return c.wsFail(ws.StatusProtocolError) // client frames are masked; no extension was agreed
		}
		payload := b[hl:total]
		off += total
		ws.Cipher(payload, h.Mask, 0)
		switch h.OpCode {
		case ws.OpText, ws.OpBinary:
			if c.fragOp != 0 {
				return c.wsFail(ws.StatusProtocolError)
			}
			if h.Fin {
				if len(payload) > 0 {
					c.deliver(w, payload)
				}
				break
			}
			c.fragOp = byte(h.OpCode)
			c.frag = append(c.frag[:0], payload...)
		case ws.OpContinuation:
			if c.fragOp == 0 {
				return c.wsFail(ws.StatusProtocolError)
			}
			if len(c.frag)+len(payload) > max {
				return c.wsFail(ws.StatusMessageTooBig)
			}
			c.frag = append(c.frag, payload...)
			if h.Fin {
				if len(c.frag) > 0 {
					c.deliver(w, c.frag)
				}
				c.frag, c.fragOp = nil, 0
			}
		case ws.OpPing, ws.OpPong, ws.OpClose:
			if !h.Fin || h.Length > 125 {
				return c.wsFail(ws.StatusProtocolError)
			}
			switch h.OpCode {
			case ws.OpPing:
				w.frame.frame(ws.OpPong, payload)
				c.writeWire(w.frame.b)
			case ws.OpClose:
				// Answer with the same status code, then close once written.
				code := ws.StatusNormalClosure
				if len(payload) >= 2 {
					code, _ = ws.ParseCloseFrameDataUnsafe(payload)
				}
				c.writeWire(ws.MustCompileFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(code, ""))))
				return errDrainClose
			}
		default:
			return c.wsFail(ws.StatusProtocolError)
		}
		if c.state.Load() == stClosed {
			return ErrConnClosed
		}
	}
	return nil
}

// wsFail sends a close frame with code for a protocol error or an
// oversized message, counted as a framing error; the connection closes
// once it is written.
func (c *conn) wsFail(code ws.StatusCode) error {
	c.s.st.framingErrors.Add(1)
	c.writeWire(ws.MustCompileFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(code, ""))))
	return errDrainClose
}
