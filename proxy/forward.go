package proxy

import (
	"bytes"
	"errors"
	"hash/maphash"
	"net/netip"
	"strconv"

	"github.com/veloxsip/velox/sip"
	"github.com/veloxsip/velox/transport"
)

// branchPrefix starts every branch this server generates: the RFC 3261
// magic cookie and a mark that lets a response be recognised as ours.
const branchPrefix = sip.MagicCookie + "Vx"

// loopHashLen is the number of hex digits of the loop-detection part.
const loopHashLen = 16

// Reply sends a stateless response to the request (never to an ACK) and
// marks the request done.
func (c *Context) Reply(code int, reason string) { c.ReplyWith(code, reason, nil) }

// ReplyWith is Reply with extra header lines (each ending in CRLF).
func (c *Context) ReplyWith(code int, reason string, extra []byte) {
	c.Done = true
	m := c.Msg
	if m.Method() == sip.ACK {
		return
	}
	if c.cell != nil { // failure pipeline: the transaction's final response
		c.srv.tm.replyCell(c, code, reason, extra)
		return
	}
	dst, ok := c.srv.responseDest(c, m)
	if !ok {
		c.st.Dropped.Add(1)
		return
	}
	b := c.out.Buffer()
	var tag [16]byte
	b = sip.AppendResponse(b, m, code, reason, c.toTag(tag[:0]), extra)
	c.out.Send(b, dst)
	c.st.Replied.Add(1)
}

// toTag returns the To tag for stateless replies: the same for a
// retransmitted request (a hash of Call-ID and From), so it is stable.
func (c *Context) toTag(dst []byte) []byte { return c.srv.toTag(dst, c.Msg) }

// toTag is a To tag derived from the Call-ID and From tag of m.
func (s *Server) toTag(dst []byte, m *sip.Message) []byte {
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.Write(m.CallID())
	if f, err := m.From(); err == nil {
		h.Write(f.Tag())
	}
	return appendHex64(dst, h.Sum64())
}

// responseDest is where a response to request m goes (RFC 3261 §18.2.2 and
// RFC 3581): over a connection, back to its source (the connection
// itself); over UDP the source IP, and the source port when the Via asks
// for rport, else the sent-by port.
func (s *Server) responseDest(c *Context, m *sip.Message) (netip.AddrPort, bool) {
	if c.Proto.Reliable() {
		return c.Src, c.Src.IsValid()
	}
	v, err := m.TopVia()
	if err != nil {
		// A broken Via cannot route the answer: the source address is
		// the best guess (what a UDP sender listens on in practice).
		return c.Src, c.Src.IsValid()
	}
	if v.HasRPort || !c.Src.IsValid() {
		return c.Src, c.Src.IsValid()
	}
	port := v.Port
	if port == 0 {
		port = 5060
	}
	return netip.AddrPortFrom(c.Src.Addr(), port), true
}

// Dest is where a request goes: an address and the transport that
// reaches it.
type Dest struct {
	Addr  netip.AddrPort
	Proto transport.Proto // 0 is UDP
}

// Forward sends the request statelessly to dst (RFC 3261 §16.6, §16.11):
// loop check, Max-Forwards, received/rport on the previous hop's Via, our
// Via with a branch that is the same for a retransmission, Record-Route when
// asked for (two of them, RFC 5658, when the request changes transport or
// interface).
func (c *Context) Forward(dst Dest) {
	c.Done = true
	li := c.srv.self.outListener(c.li, dst.Proto, dst.Addr)
	if li == nil {
		c.Reply(503, "Transport Not Available")
		return
	}
	loop, ok := c.prepareForward(dst.Addr)
	if !ok {
		return
	}
	top, _ := c.Msg.TopVia()
	var b [64]byte
	br := append(b[:0], branchPrefix...)
	br = appendHex64(br, loop)
	br = append(br, '.')
	br = appendHex64(br, c.txHash(top))
	c.addVia(li, br)
	c.send(li, dst.Addr)
}

// prepareForward runs the checks and edits every forwarded copy of the
// request shares (§16.6 steps 3–8 except our Via): a destination that is
// this server, Max-Forwards (483), loops (482), received/rport on the
// sender's Via, the Max-Forwards decrement. It replies itself and returns
// false when the request must not go on. loop is the loop-detection hash
// for our branch.
func (c *Context) prepareForward(dst netip.AddrPort) (loop uint64, ok bool) {
	m := c.Msg
	if c.srv.self.IsLocal(dst) {
		c.Reply(482, "Loop Detected")
		return 0, false
	}
	// §16.6 step 3: Max-Forwards.
	mf, present, err := m.MaxForwards()
	if lim := c.MaxForwardsLimit; present && lim > 0 && mf > lim {
		mf = lim
	}
	switch {
	case err != nil:
		c.Reply(400, "Malformed Max-Forwards")
		return 0, false
	case present && mf == 0:
		c.Reply(483, "Too Many Hops")
		return 0, false
	}
	loop = c.loopHash()
	if c.looped(loop) {
		c.Reply(482, "Loop Detected")
		return 0, false
	}
	top, _ := m.TopVia()

	// RFC 3581 / §18.2.1: received and rport on the sender's Via. Over a
	// connection both are always added: the port is the connection's, and
	// responses must find their way back to it (WebSocket clients put an
	// unresolvable .invalid host there).
	src := c.Src.Addr()
	sentBy, isIP := ParseIP(top.Host)
	if top.HasRPort || c.Proto.Reliable() {
		if !top.HasRPort {
			t := append(m.Scratch(), ";rport="...)
			t = strconv.AppendUint(t, uint64(c.Src.Port()), 10)
			m.InsertAt(top.Raw, true, t)
		} else if len(top.RPort) == 0 {
			// The rport value first: when rport is the last parameter both
			// insertions fall at the same offset and keep this order.
			t := append(m.Scratch(), '=')
			t = strconv.AppendUint(t, uint64(c.Src.Port()), 10)
			m.InsertAt(top.RPortName(), true, t)
		}
		if len(top.Received) == 0 {
			t := append(m.Scratch(), ";received="...)
			m.InsertAt(top.Raw, true, appendAddr(t, src))
		}
	} else if (!isIP || sentBy != src) && len(top.Received) == 0 {
		t := append(m.Scratch(), ";received="...)
		t = appendAddr(t, src)
		m.InsertAt(top.Raw, true, t)
	}

	if present {
		m.ReplaceHeaderValue(m.MaxForwardsIndex(), strconv.AppendInt(m.Scratch(), int64(mf-1), 10))
	} else {
		lim := c.MaxForwardsLimit
		if lim <= 0 {
			lim = 70
		}
		t := append(m.Scratch(), "Max-Forwards: "...)
		t = strconv.AppendInt(t, int64(lim), 10)
		m.AppendHeader(append(t, "\r\n"...))
	}
	return loop, true
}

// addVia puts our Via for the listener li the request leaves from, with
// the given branch, before every other header, and our Record-Route when
// asked for: one, or two with ;r2=on when li is not the listener the
// request came in on (RFC 5658) — the outgoing one first, since the callee
// reads the route set from the top.
func (c *Context) addVia(li *listenerInfo, branch []byte) {
	m := c.Msg
	t := append(m.Scratch(), li.viaPrefix...)
	t = append(t, branch...)
	t = append(t, "\r\n"...)
	if c.RecordRoute {
		if li == c.li {
			t = append(t, li.rr...)
		} else {
			t = append(t, li.rr2...)
			t = append(t, c.li.rr2...)
		}
	}
	m.InsertHeaderFirst(t)
}

// send writes the request to dst from the listener li.
func (c *Context) send(li *listenerInfo, dst netip.AddrPort) {
	b, err := c.Msg.AppendTo(c.out.Buffer())
	if err != nil {
		c.srv.log.Warn("proxy: cannot write message", "err", err)
		c.st.Dropped.Add(1)
		return
	}
	c.srv.sendBuilt(c.out, li, b, dst)
	c.st.Forwarded.Add(1)
}

// sendBuilt sends b, built in out.Buffer(), to dst from li: through out
// when it serves li, else through li's Conn.
func (s *Server) sendBuilt(out Sender, li *listenerInfo, b []byte, dst netip.AddrPort) {
	if li.servedBy(out) {
		out.Send(b, dst)
	} else if li.conn != nil {
		_ = li.conn.WriteTo(b, dst)
	}
}

// loopHash is the loop-detection part of our branch (§16.6 step 8): a hash
// of the fields that stay the same when a request comes back to us
// unchanged — not the Vias.
func (c *Context) loopHash() uint64 {
	m := c.Msg
	var h maphash.Hash
	h.SetSeed(c.srv.seed)
	h.Write(m.RequestURI())
	h.Write(m.CallID())
	if f, err := m.From(); err == nil {
		h.Write(f.Tag())
	}
	if t, err := m.To(); err == nil {
		h.Write(t.Tag())
	}
	n, _, _ := m.CSeq()
	h.WriteByte(byte(n))
	h.WriteByte(byte(n >> 8))
	h.WriteByte(byte(n >> 16))
	h.WriteByte(byte(n >> 24))
	for i := 0; i < m.NumHeaders(); i++ {
		id, _, v := m.HeaderAt(i)
		switch id {
		case sip.HdrRoute, sip.HdrProxyRequire, sip.HdrProxyAuthorization:
			h.Write(v)
		}
	}
	return h.Sum64()
}

// txHash identifies the transaction: the sender's branch when it is an
// RFC 3261 one (CANCEL and ACK for non-2xx share the INVITE's), else the
// whole top Via (RFC 2543 clients).
func (c *Context) txHash(top *sip.Via) uint64 {
	var h maphash.Hash
	h.SetSeed(c.srv.seed)
	if top.IsRFC3261Branch() {
		h.Write(top.Branch)
	} else {
		h.Write(top.Raw)
		n, _, _ := c.Msg.CSeq()
		h.WriteByte(byte(n))
		h.WriteByte(byte(n >> 8))
	}
	h.Write(top.Host)
	return h.Sum64()
}

// looped reports whether a Via of ours carries the loop hash of the request
// as it is now: the request came back unchanged (§16.3 step 4). A Via of ours
// with another hash is a spiral, which is fine.
func (c *Context) looped(loop uint64) bool {
	// Most requests carry no Via of ours at all: look for our branch
	// prefix in the raw Via lines before parsing any.
	m, ours := c.Msg, false
	for i := m.Index(sip.HdrVia, -1); i >= 0; i = m.Index(sip.HdrVia, i) {
		if _, _, v := m.HeaderAt(i); bytes.Contains(v, []byte(branchPrefix)) {
			ours = true
			break
		}
	}
	if !ours {
		return false
	}
	it := c.Msg.Vias()
	var v sip.Via
	var want [loopHashLen]byte
	appendHex64(want[:0], loop)
	for {
		ok, err := it.Next(&v)
		if !ok || err != nil {
			return false
		}
		b := v.Branch
		if len(b) < len(branchPrefix)+loopHashLen || string(b[:len(branchPrefix)]) != branchPrefix {
			continue
		}
		if !c.srv.self.IsSelf(v.Host, v.Port, false) {
			continue
		}
		if string(b[len(branchPrefix):len(branchPrefix)+loopHashLen]) == string(want[:]) {
			return true
		}
	}
}

const hexDigits = "0123456789abcdef"

func appendHex64(b []byte, v uint64) []byte {
	for s := 60; s >= 0; s -= 4 {
		b = append(b, hexDigits[(v>>uint(s))&0xf])
	}
	return b
}

func appendAddr(b []byte, a netip.Addr) []byte {
	if a.Is6() && !a.Is4In6() {
		b = append(b, '[')
		b = a.AppendTo(b)
		return append(b, ']')
	}
	return a.Unmap().AppendTo(b)
}

// errTransport is URIDest's error for a transport velox does not speak.
var errTransport = errors.New("unsupported transport")

// URIProto is the transport a URI asks for: its transport parameter,
// TLS for sips (WSS with transport=ws), UDP by default. false for a
// transport velox does not speak (sctp).
func URIProto(u *sip.URI) (transport.Proto, bool) {
	p := transport.UDP
	if tp := u.Transport(); len(tp) > 0 {
		var ok bool
		if p, ok = transport.ParseProto(string(tp)); !ok {
			return 0, false
		}
	}
	if u.Scheme == sip.SchemeSIPS {
		switch p {
		case transport.UDP, transport.TCP:
			p = transport.TLS
		case transport.WS:
			p = transport.WSS
		}
	}
	return p, true
}

// URIDest returns where a request for URI u is sent: its maddr or host,
// its port (5060, or 5061 over TLS, when absent) and its transport.
func (s *Server) URIDest(u *sip.URI) (Dest, error) {
	proto, ok := URIProto(u)
	if !ok {
		return Dest{}, errTransport
	}
	host := u.Host
	if ma, ok := u.Param("maddr"); ok && len(ma) > 0 {
		host = ma
	}
	a, err := s.resolver.Resolve(host)
	if err != nil {
		return Dest{}, err
	}
	port := u.Port
	if port == 0 {
		port = 5060
		if proto.Secure() {
			port = 5061
		}
	}
	return Dest{netip.AddrPortFrom(a, port), proto}, nil
}

// forwardResponse sends a response on along the Via chain (§16.11): the
// top Via must be ours; it is removed and the response goes to the next
// Via's received/rport or sent-by address.
func (s *Server) forwardResponse(c *Context, m *sip.Message, out Sender) {
	st := c.st
	top, err := m.TopVia()
	if err != nil || !hasPrefix(top.Branch, branchPrefix) || !s.self.IsSelf(top.Host, top.Port, false) {
		st.Dropped.Add(1)
		return
	}
	it := m.ViasAfterTop()
	var v sip.Via
	if ok, err := it.Next(&v); !ok || err != nil {
		st.Dropped.Add(1) // a response to a request we originated
		return
	}
	m.RemoveTopVia()
	proto, ok := transport.ParseProto(string(v.Transport))
	if !ok {
		st.Dropped.Add(1)
		return
	}
	var dst netip.AddrPort
	host := v.Host
	if len(v.Received) > 0 {
		host = v.Received
	}
	a, err := s.resolver.Resolve(host)
	if err != nil {
		st.Dropped.Add(1)
		return
	}
	port := v.Port
	if len(v.RPort) > 0 {
		if p, ok := parsePort(v.RPort); ok {
			port = p
		}
	}
	if port == 0 {
		port = 5060
	}
	dst = netip.AddrPortFrom(a, port)
	li := s.self.outListener(c.li, proto, dst)
	if li == nil {
		st.Dropped.Add(1)
		return
	}
	b, err := m.AppendTo(out.Buffer())
	if err != nil {
		st.Dropped.Add(1)
		return
	}
	s.sendBuilt(out, li, b, dst)
	st.ResponsesForwarded.Add(1)
}

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

func parsePort(b []byte) (uint16, bool) {
	n, ok := sip.ParseUint(b)
	if !ok || n == 0 || n > 65535 {
		return 0, false
	}
	return uint16(n), true
}

// NextHop is where a request goes when no fixed destination is set: the
// next hop loose routing chose, else the Request-URI. A failure comes as
// the status and reason to reply with (404 for a Request-URI naming this
// server, 503 when the host does not resolve).
func NextHop(c *Context) (dst Dest, code int, reason string) {
	ru, err := c.Msg.RURI()
	if err != nil {
		return dst, 400, "Malformed Request-URI"
	}
	if !c.Routed || sameBytes(c.NextHop.Raw, ru.Raw) {
		// The Request-URI is the next hop: a Contact alias of ours names
		// the connection it is reached over (alias.go).
		if d, stripped, ok := uriAlias(c.Msg, ru); ok {
			c.Msg.SetRequestURI(stripped)
			return d, 0, ""
		}
	}
	if c.Routed {
		d, err := c.srv.URIDest(&c.NextHop)
		if err != nil {
			return d, 503, "Next Hop Unresolvable"
		}
		return d, 0, ""
	}
	if c.srv.self.IsSelfURI(ru) {
		return dst, 404, "Not Found"
	}
	d, err := c.srv.URIDest(ru)
	if err != nil {
		return d, 503, "Destination Unresolvable"
	}
	return d, 0, ""
}

// sameBytes reports whether a and b are the same bytes in memory.
func sameBytes(a, b []byte) bool { return len(a) == len(b) && len(a) > 0 && &a[0] == &b[0] }
