package proxy

import (
	"bytes"
	"net/netip"
	"strconv"
	"time"

	"github.com/veloxsip/velox/sip"
	"github.com/veloxsip/velox/transport"
	"github.com/veloxsip/velox/txn"
)

// This file is the transaction-stateful proxy (RFC 3261 §16 with the
// transactions of §17 and RFC 6026): request retransmissions absorbed,
// CANCEL, forking, best-response selection, failover and timers.

// sendFrom sends b to dst from the listener li: through the worker's
// batch when the worker serves that listener, through the listener's Conn
// otherwise.
func (s *Server) sendFrom(out Sender, li *listenerInfo, b []byte, dst netip.AddrPort) {
	if li.servedBy(out) {
		out.Send(append(out.Buffer(), b...), dst)
	} else if li.conn != nil {
		_ = li.conn.WriteTo(b, dst)
	}
}

// buildBuf returns the buffer to build a message for li in: the free
// slot of the worker's batch when the worker serves li (saving a copy),
// else the scratch buffer. sendBuilt then sends what was built there.
func (s *Server) buildBuf(out Sender, li *listenerInfo, sc *scratch) []byte {
	if li.servedBy(out) {
		return out.Buffer()
	}
	return sc.buf[:0]
}

// absorb handles a request that belongs to an existing server
// transaction: a retransmission (answered with the last response), the ACK
// of a non-2xx final, or a CANCEL. It reports whether the request was
// consumed; false sends it through the pipeline.
func (w *Worker) absorb(c *Context) bool {
	t := w.srv.tm
	if !t.ready.Load() {
		return false // no stateful relay yet: nothing to match
	}
	m := c.Msg
	key, h := c.txKey()
	bi := uint32(h) & t.mask
	b := &t.buckets[bi]
	meth := m.Method()
	invite := meth == sip.INVITE || meth == sip.ACK || meth == sip.CANCEL
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.head == nil && b.tombs == nil {
		return false
	}
	cl := b.find(h, key, invite, meth, m.MethodName())
	if cl == nil {
		if tm := b.findTomb(h, key, invite, meth); tm != nil {
			return w.absorbTomb(c, tm)
		}
		return false
	}
	switch meth {
	case sip.ACK:
		switch cl.state {
		case sCompleted:
			cl.state = sConfirmed
			cl.wheel.Stop(&cl.tRetr)
			cl.wheel.Start(&cl.tWait, udpOnly(cl.li, t.t.T4)) // timer I
			return true
		case sConfirmed:
			return true
		}
		return false // the ACK of a 2xx goes end to end
	case sip.CANCEL:
		c.Reply(200, "OK") // §9.2: the CANCEL matched a transaction
		if cl.state == sProceeding && !cl.canceled {
			cl.canceled = true
			for i := 0; i < cl.nbr; i++ {
				t.cancelBranch(cl, i, c.out, &w.sc)
			}
		}
		return true
	}
	// A retransmission of the request.
	w.st.Retransmissions.Add(1)
	c.Done = true
	if (cl.state == sProceeding || cl.state == sCompleted) && cl.rsp != nil {
		w.srv.sendFrom(c.out, cl.li, cl.rsp.b, cl.rspDst)
	}
	return true
}

// Relay forwards the request statefully to the destinations (RFC 3261
// §16.6): a server transaction answers retransmissions, a client
// transaction per branch retransmits and times out, responses are chosen
// as §16.7 says. Without Parallel, the destinations are tried in order
// while a branch ends in a failover code. ACK and an unmatched CANCEL are
// forwarded statelessly to the first destination (§16.10, §16.11).
func (c *Context) Relay(dsts []Dest, opt RelayOptions) {
	var ts [maxDests]Target
	n := 0
	for _, d := range dsts {
		if n < len(ts) {
			ts[n] = Target{Addr: d.Addr, Proto: d.Proto}
			n++
		}
	}
	c.RelayTargets(ts[:n], opt)
}

// RelayTargets is Relay with a Request-URI, Route lines and q-value per
// destination (a registrar's lookup forks to the contacts of a user).
func (c *Context) RelayTargets(ts []Target, opt RelayOptions) {
	m := c.Msg
	if len(ts) == 0 {
		c.Reply(500, "No Destination")
		return
	}
	if m.Method() == sip.ACK || m.Method() == sip.CANCEL {
		if len(ts[0].URI) > 0 {
			m.SetRequestURI(ts[0].URI)
		}
		c.Forward(Dest{ts[0].Addr, ts[0].Proto})
		return
	}
	if c.cell != nil { // in the failure pipeline: more branches for the same transaction
		c.Done = true
		c.cell.opt = opt
		c.cell.setDests(ts, opt)
		c.srv.tm.startDests(c.cell, c.out, c.Msg, c, c.scratch())
		return
	}
	c.Done = true
	t := c.srv.tm
	t.init()
	key, h := c.txKey()
	bi := uint32(h) & t.mask
	b := &t.buckets[bi]
	invite := m.Method() == sip.INVITE
	b.mu.Lock()
	defer b.mu.Unlock()
	if cl := b.find(h, key, invite, m.Method(), m.MethodName()); cl != nil {
		// Another worker created it meanwhile: this is a retransmission.
		if cl.rsp != nil && cl.state <= sCompleted {
			c.srv.sendFrom(c.out, cl.li, cl.rsp.b, cl.rspDst)
		}
		return
	}
	if tm := b.findTomb(h, key, invite, m.Method()); tm != nil {
		if tm.rsp != nil {
			c.srv.sendFrom(c.out, tm.li, tm.rsp.b, tm.rspDst)
		}
		return
	}
	dst, ok := c.srv.responseDest(c, m)
	if !ok {
		c.st.Dropped.Add(1)
		return
	}
	// Checks that end the request before any state is kept.
	if mf, present, err := m.MaxForwards(); err != nil || (present && mf == 0) {
		c.prepareForward(ts[0].Addr) // replies 400 or 483
		return
	}
	cl := t.alloc(b, bi)
	cl.hash = h
	cl.setKey(key)
	cl.method, cl.invite = m.Method(), invite
	if cl.method == sip.MethodOther {
		cl.methodName = append(cl.nameArr[:0], m.MethodName()...)
	}
	cl.src, cl.li, cl.rspDst = c.Src, c.li, dst
	setBuf(&cl.req, m.Buf())
	cl.recordRoute, cl.mfLimit = c.RecordRoute, c.MaxForwardsLimit
	cl.opt = opt
	cl.setDests(ts, opt)
	c.st.Transactions.Add(1)
	if invite && !t.opt.NoTrying {
		b := sip.AppendResponse(c.srv.buildBuf(c.out, cl.li, &c.w.sc), m, 100, "Trying", nil, nil)
		setBuf(&cl.rsp, b)
		cl.code = 100
		c.srv.sendBuilt(c.out, cl.li, b, cl.rspDst)
	}
	t.startDests(cl, c.out, m, c, &c.w.sc)
	if !cl.pending() {
		t.checkFinal(cl, c.out, &c.w.sc)
	}
	t.settle(b, cl, c.st)
}

// startDests starts branches for the cell's remaining destinations: all of
// them for a parallel relay, the next one that can be reached for a serial
// one. m is the request (parsed, possibly with edits from the pipeline)
// and c its context.
func (t *txTable) startDests(cl *cell, out Sender, m *sip.Message, c *Context, sc *scratch) {
	var es sip.EditState
	prepared := false
	var loop uint64
	group := -1
	for cl.nextDest < len(cl.dests) && cl.nbr < MaxBranches {
		tg := &cl.dests[cl.nextDest]
		if group >= 0 && tg.group != group {
			return // the next group starts when this one has failed
		}
		group = tg.group
		dst := tg.addr
		cl.nextDest++
		if t.srv.self.IsLocal(dst) {
			continue // a destination that is this server would loop
		}
		oli := t.srv.self.outListener(cl.li, tg.proto, dst)
		if oli == nil {
			continue // no listener of that transport
		}
		if !prepared {
			// Shared edits once: received/rport, Max-Forwards.
			c.Done = false
			var ok bool
			loop, ok = c.prepareForward(dst)
			c.Done = true
			if !ok {
				// Replied (483, 482, 400): the transaction is over.
				cl.finalSent, cl.state = true, sTerminated
				return
			}
			cl.loop = loop
			m.SaveEdits(&es)
			prepared = true
		}
		br, i := cl.newBranch(dst, oli)
		if len(tg.uri) > 0 {
			m.SetRequestURI(tg.uri)
		}
		var bb [64]byte
		c.addVia(oli, appendBranchID(bb[:0], cl.loop, cl.bucket.Load(), cl.label, i))
		if len(tg.route) > 0 {
			m.InsertHeaderFirst(tg.route)
		}
		out2, err := m.AppendTo(t.srv.buildBuf(out, oli, sc))
		m.RestoreEdits(&es)
		if err != nil {
			br.state, br.code, br.local = bTerminated, 500, true
			continue
		}
		setBuf(&br.req, out2)
		t.srv.sendBuilt(out, oli, out2, dst)
		c.st.Forwarded.Add(1)
		br.interval = t.t.T1
		if !oli.proto.Reliable() { // timers A and E: UDP only
			cl.wheel.Start(&br.tRetr, br.interval)
		}
		fr := t.opt.FinalTimeout
		if cl.opt.FinalTimeout > 0 {
			fr = cl.opt.FinalTimeout
		}
		cl.wheel.Start(&br.tTimeout, fr)
	}
}

// cancelBranch CANCELs branch i when it has no final response (§9.1): at
// once when it has had a provisional response, else when one arrives.
func (t *txTable) cancelBranch(cl *cell, i int, out Sender, sc *scratch) {
	br := cl.br[i]
	if br.state > bProceeding || br.cancelSt != cNone || !cl.invite {
		return
	}
	if br.state == bCalling {
		br.cancelSt = cPending
		return
	}
	t.sendCancel(cl, br, out, sc)
}

func (t *txTable) sendCancel(cl *cell, br *branch, out Sender, sc *scratch) {
	if sc.msg.Parse(br.req.b) != nil {
		br.cancelSt = cDone
		return
	}
	setBuf(&br.cancel, sip.AppendCancel(sc.buf[:0], &sc.msg))
	t.srv.sendFrom(out, br.li, br.cancel.b, br.dst)
	br.cancelSt = cSent
	br.cancelIv = t.t.T1
	if !br.li.proto.Reliable() {
		cl.wheel.Start(&br.tCancel, br.cancelIv)
	}
	// The callee has 64*T1 to answer the INVITE (487) before the branch
	// is given up.
	cl.wheel.Start(&br.tTimeout, 64*t.t.T1)
}

// response handles a response whose top Via carries a stateful branch of
// ours. It returns false when no transaction matches (the caller then
// forwards it statelessly, e.g. a 2xx retransmission after the end of
// the transaction).
func (w *Worker) response(c *Context, m *sip.Message, top *sip.Via, out Sender) bool {
	t := w.srv.tm
	b, cl, tm, i := t.lockBranch(top.Branch)
	if cl == nil && tm == nil {
		return false
	}
	defer b.mu.Unlock()
	if tm != nil {
		return tm.absorbs(m, i)
	}
	br := cl.br[i]
	if _, meth, err := m.CSeq(); err != nil || string(meth) == "CANCEL" {
		if err == nil && br.cancelSt == cSent {
			br.cancelSt = cDone
			cl.wheel.Stop(&br.tCancel)
			dropBuf(&br.cancel)
		}
		return true
	}
	code := m.StatusCode()
	if cl.invite {
		t.inviteResponse(cl, i, m, code, out, &w.sc)
	} else {
		t.nonInviteResponse(cl, i, m, code, out, &w.sc)
	}
	t.settle(b, cl, w.st)
	return true
}

// lockBranch finds the cell and branch index a branch parameter of ours
// names, or the tomb the cell became, and returns them with the bucket
// locked; cl and tm are nil (and nothing locked) when there is neither.
func (t *txTable) lockBranch(branch []byte) (b *txBucket, cl *cell, tm *tomb, i int) {
	bi, label, i, ok := parseBranchID(branch)
	if !ok || bi > t.mask || !t.ready.Load() {
		return nil, nil, nil, 0
	}
	b = &t.buckets[bi]
	b.mu.Lock()
	if cl = b.findLabel(label); cl != nil && i < cl.nbr {
		return b, cl, nil, i
	}
	if cl == nil {
		if tm = b.findTombLabel(label); tm != nil {
			return b, nil, tm, i
		}
	}
	b.mu.Unlock()
	return nil, nil, nil, 0
}

// forwardUp sends response m (our Via removed) to the caller; keep stores
// it as the last response for retransmissions.
func (t *txTable) forwardUp(cl *cell, m *sip.Message, out Sender, sc *scratch, keep bool) {
	if !m.RemoveTopVia() {
		return
	}
	b, err := m.AppendTo(t.srv.buildBuf(out, cl.li, sc))
	if err != nil {
		return
	}
	if keep {
		setBuf(&cl.rsp, b)
		cl.code = m.StatusCode()
	}
	t.srv.sendBuilt(out, cl.li, b, cl.rspDst)
}

func (t *txTable) inviteResponse(cl *cell, i int, m *sip.Message, code int, out Sender, sc *scratch) {
	br := cl.br[i]
	switch {
	case code < 200:
		if br.state > bProceeding {
			return
		}
		if br.state == bCalling {
			br.state = bProceeding
			cl.wheel.Stop(&br.tRetr)
			if br.cancelSt == cNone {
				iv := t.opt.InviteTimeout
				if cl.opt.InviteTimeout > 0 {
					iv = cl.opt.InviteTimeout
				}
				cl.wheel.Start(&br.tTimeout, iv) // timer C
			}
		}
		br.code = code
		if br.cancelSt == cPending {
			t.sendCancel(cl, br, out, sc)
		}
		if code > 100 && !cl.finalSent {
			t.forwardUp(cl, m, out, sc, true)
		}
	case code < 300:
		switch br.state {
		case bCalling, bProceeding:
			cl.wheel.Stop(&br.tRetr)
			cl.wheel.Stop(&br.tCancel)
			br.state, br.code = bAccepted, code
			cl.wheel.Start(&br.tTimeout, 64*t.t.T1) // timer M
			t.forwardUp(cl, m, out, sc, false)
			// The INVITE is not sent again (the ACK of a 2xx goes end
			// to end) and the server side only absorbs retransmissions.
			dropBuf(&br.req)
			if !cl.finalSent {
				cl.finalSent, cl.code = true, code
				if cl.state == sProceeding {
					cl.state = sAccepted
					cl.wheel.Stop(&cl.tRetr)
					cl.wheel.Start(&cl.tWait, 64*t.t.T1) // timer L
				}
				dropBuf(&cl.rsp)
				dropBuf(&cl.req)
			}
			for j := 0; j < cl.nbr; j++ {
				if j != i {
					t.cancelBranch(cl, j, out, sc)
				}
			}
		case bAccepted:
			t.forwardUp(cl, m, out, sc, false) // 2xx retransmission or another fork's 2xx
		}
	default:
		switch br.state {
		case bCalling, bProceeding:
			cl.wheel.Stop(&br.tRetr)
			cl.wheel.Stop(&br.tCancel)
			t.ackBranch(cl, br, m, out, sc)
			br.state, br.code, br.local = bCompleted, code, false
			cl.wheel.Start(&br.tTimeout, udpOnly(br.li, 32*time.Second)) // timer D
			if m.RemoveTopVia() {
				if b, err := m.AppendTo(sc.buf[:0]); err == nil {
					setBuf(&br.rsp, b)
				}
			}
			if code >= 600 {
				for j := 0; j < cl.nbr; j++ {
					if j != i {
						t.cancelBranch(cl, j, out, sc)
					}
				}
			}
			t.checkFinal(cl, out, sc)
		case bCompleted:
			// A retransmitted final (or the 487 after our timeout):
			// the ACK again.
			t.ackBranch(cl, br, m, out, sc)
		}
	}
}

// ackBranch sends (or re-sends) the hop-by-hop ACK for a non-2xx final on
// br (§17.1.1.3). The first time, br.req turns into the ACK.
func (t *txTable) ackBranch(cl *cell, br *branch, rsp *sip.Message, out Sender, sc *scratch) {
	if !br.acked() {
		to, ok := rsp.Header(sip.HdrTo)
		if !ok || sc.msg.Parse(br.req.b) != nil {
			return
		}
		a := sip.AppendAck(sc.buf[:0], &sc.msg, to)
		setBuf(&br.req, append(a, 0)) // the trailing NUL marks the ACK
	}
	t.srv.sendFrom(out, br.li, br.req.b[:len(br.req.b)-1], br.dst)
}

// acked reports whether br.req holds the ACK (marked by a trailing NUL,
// which no request we send ends with).
func (br *branch) acked() bool {
	return br.req != nil && len(br.req.b) > 0 && br.req.b[len(br.req.b)-1] == 0
}

func (t *txTable) nonInviteResponse(cl *cell, i int, m *sip.Message, code int, out Sender, sc *scratch) {
	br := cl.br[i]
	if br.state > bProceeding {
		return
	}
	if code < 200 {
		if br.state == bCalling {
			br.state = bProceeding
		}
		br.code = code
		if code > 100 && !cl.finalSent {
			t.forwardUp(cl, m, out, sc, true)
		}
		return
	}
	cl.wheel.Stop(&br.tRetr)
	br.state, br.code, br.local = bCompleted, code, false
	cl.wheel.Start(&br.tTimeout, udpOnly(br.li, t.t.T4)) // timer K
	dropBuf(&br.req)
	if code < 300 {
		if !cl.finalSent {
			t.forwardUp(cl, m, out, sc, true)
			t.finishServer(cl)
		}
		return
	}
	if m.RemoveTopVia() {
		if b, err := m.AppendTo(sc.buf[:0]); err == nil {
			setBuf(&br.rsp, b)
		}
	}
	t.checkFinal(cl, out, sc)
}

// finishServer moves the server transaction on after its final response
// went out: INVITE non-2xx → Completed (G, H); non-INVITE → Completed (J).
func (t *txTable) finishServer(cl *cell) {
	cl.finalSent = true
	if cl.state != sProceeding {
		return
	}
	if cl.invite && cl.code >= 200 && cl.code < 300 {
		cl.state = sAccepted
		cl.wheel.Start(&cl.tWait, 64*t.t.T1)
		return
	}
	cl.state = sCompleted
	if cl.invite {
		if !cl.li.proto.Reliable() {
			cl.retrIv = t.t.T1
			cl.wheel.Start(&cl.tRetr, cl.retrIv) // timer G
		}
		cl.wheel.Start(&cl.tWait, 64*t.t.T1) // timer H
	} else {
		cl.wheel.Start(&cl.tWait, udpOnly(cl.li, 64*t.t.T1)) // timer J
	}
	// The request copy is not needed any more.
	dropBuf(&cl.req)
}

// best picks the response to send upstream from the finished branches
// (§16.7 step 6): a 6xx if any, else the lowest class; real responses
// before locally generated ones, then the lowest code.
func (cl *cell) best() int {
	bi, rank := -1, 1<<30
	for i := 0; i < cl.nbr; i++ {
		br := cl.br[i]
		if br.state <= bProceeding || br.code < 300 {
			continue
		}
		r := (br.code/100)*10000 + br.code
		if br.code >= 600 {
			r = br.code
		}
		if br.local || br.rsp == nil {
			r += 1000
		}
		if r < rank {
			bi, rank = i, r
		}
	}
	return bi
}

// checkFinal runs when a branch ended without a 2xx: once no branch is
// pending, it tries the next destination, then the failure pipeline, and
// finally sends the best response upstream.
func (t *txTable) checkFinal(cl *cell, out Sender, sc *scratch) {
	if cl.finalSent || cl.pending() || cl.state != sProceeding {
		return
	}
	bi := cl.best()
	code := 500
	if bi >= 0 {
		code = cl.br[bi].code
	}
	if !cl.canceled && cl.req != nil {
		failover := cl.opt.FailoverOn
		if failover == nil {
			failover = DefaultFailover
		}
		if cl.nextDest < len(cl.dests) && failover(code) {
			if t.restart(cl, out, sc, code, false) {
				return
			}
		}
		if fp := t.srv.failure.Load(); fp != nil && len(*fp) > 0 && cl.nbr < MaxBranches {
			if t.restart(cl, out, sc, code, true) {
				return
			}
		}
	}
	t.sendFinal(cl, bi, out, sc)
}

// restart builds a context over the stored request and either starts the
// next destination or runs the failure pipeline. It reports whether a new
// branch is pending.
func (t *txTable) restart(cl *cell, out Sender, sc *scratch, code int, failure bool) bool {
	if sc.msg.Parse(cl.req.b) != nil {
		return false
	}
	if p := cl.li.proto; p == transport.WS || p == transport.WSS {
		aliasContact(&sc.msg, cl.src, p) // cl.req is the request as received
	}
	ctx := Context{srv: t.srv}
	ctx.st = &t.failStats
	snd := t.senderFor(out, cl.li)
	ctx.reset(&sc.msg, cl.src, snd)
	ctx.RecordRoute, ctx.MaxForwardsLimit = cl.recordRoute, cl.mfLimit
	ctx.cell, ctx.sc = cl, sc
	ctx.FailureCode = code
	if failure {
		p := *t.srv.failure.Load()
		for i := range p {
			st := &p[i]
			if st.If != nil && !st.If.Eval(&ctx) {
				continue
			}
			if st.Handler.Handle(&ctx) == Stop || ctx.Done {
				break
			}
		}
	} else {
		t.startDests(cl, snd, &sc.msg, &ctx, sc)
	}
	return cl.pending() || cl.finalSent
}

// udpOnly is d for a transaction over UDP and 0 over a reliable
// transport (RFC 3261 §17: timers D, I, J and K wait only for UDP
// retransmissions).
func udpOnly(li *listenerInfo, d time.Duration) time.Duration {
	if li.proto.Reliable() {
		return 0
	}
	return d
}

// senderFor returns out when it sends from li, else a direct sender.
func (t *txTable) senderFor(out Sender, li *listenerInfo) Sender {
	if li.servedBy(out) {
		return out
	}
	return &connSender{srv: t.srv, li: li}
}

// connSender sends through a listener's Conn (timer workers, other sockets).
type connSender struct {
	srv *Server
	li  *listenerInfo
	buf [4096]byte
}

func (s *connSender) Buffer() []byte                    { return s.buf[:0] }
func (s *connSender) Local() netip.AddrPort             { return s.li.local }
func (s *connSender) Proto() transport.Proto            { return s.li.proto }
func (s *connSender) Send(b []byte, dst netip.AddrPort) { s.srv.sendFrom(nil, s.li, b, dst) }

// sendFinal sends the chosen final response upstream, or a local one when
// no branch produced a response worth forwarding.
func (t *txTable) sendFinal(cl *cell, bi int, out Sender, sc *scratch) {
	var src []byte
	code := 0
	if bi >= 0 && cl.br[bi].rsp != nil && !cl.br[bi].local {
		src, code = cl.br[bi].rsp.b, cl.br[bi].code
	}
	switch {
	case src != nil && code == 503:
		// §16.7 step 6: a 503 would make the caller avoid us; send 500.
		setBuf(&cl.rsp, rewriteStatus(sc.buf[:0], src, 500, "Server Internal Error"))
		code = 500
	case src != nil && (code == 401 || code == 407):
		setBuf(&cl.rsp, mergeChallenges(sc.buf[:0], src, cl))
	case src != nil:
		setBuf(&cl.rsp, src)
	default:
		code = 408
		reason := "Request Timeout"
		if bi >= 0 && cl.br[bi].code == 503 {
			code, reason = 500, "Server Internal Error" // every destination unreachable
		}
		if cl.canceled {
			code, reason = 487, "Request Terminated"
		}
		if !cl.invite && code == 408 {
			// RFC 4320: no 408 to a non-INVITE; the caller times out.
			cl.finalSent = true
			cl.state = sTerminated
			return
		}
		if cl.req == nil || sc.msg.Parse(cl.req.b) != nil {
			cl.state = sTerminated
			return
		}
		var tag [16]byte
		setBuf(&cl.rsp, sip.AppendResponse(sc.buf[:0], &sc.msg, code, reason, t.srv.toTag(tag[:0], &sc.msg), nil))
	}
	cl.code = code
	t.srv.sendFrom(out, cl.li, cl.rsp.b, cl.rspDst)
	t.finishServer(cl)
}

// rewriteStatus writes response src with another status line.
func rewriteStatus(dst, src []byte, code int, reason string) []byte {
	i := bytes.Index(src, []byte("\r\n"))
	if i < 0 {
		return append(dst, src...)
	}
	dst = append(dst, "SIP/2.0 "...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, ' ')
	dst = append(dst, reason...)
	return append(dst, src[i:]...)
}

// mergeChallenges writes the 401/407 src with the WWW-Authenticate and
// Proxy-Authenticate lines of every other branch's 401/407 added
// (§16.7 step 7), so the caller can answer all challenges at once.
func mergeChallenges(dst, src []byte, cl *cell) []byte {
	end := bytes.Index(src, []byte("\r\n\r\n"))
	if end < 0 {
		return append(dst, src...)
	}
	dst = append(dst, src[:end+2]...)
	for i := 0; i < cl.nbr; i++ {
		br := cl.br[i]
		if br.rsp == nil || (br.code != 401 && br.code != 407) || &br.rsp.b[0] == &src[0] {
			continue
		}
		other := br.rsp.b
		oend := bytes.Index(other, []byte("\r\n\r\n"))
		if oend < 0 {
			continue
		}
		for _, line := range bytes.Split(other[:oend], []byte("\r\n")) {
			name, _, ok := bytes.Cut(line, []byte(":"))
			if !ok {
				continue
			}
			name = bytes.TrimSpace(name)
			if sip.EqualFold(name, "WWW-Authenticate") || sip.EqualFold(name, "Proxy-Authenticate") {
				dst = append(dst, line...)
				dst = append(dst, "\r\n"...)
			}
		}
	}
	return append(dst, src[end+2:]...)
}

// fire handles one expired timer under the lock of its cell's bucket.
func (tw *timerWorker) fire(f txn.Fired) {
	t := tw.tt
	if tm, ok := f.Owner.(*tomb); ok {
		tw.bury(tm, f)
		return
	}
	cl := f.Owner.(*cell)
	bi := cl.bucket.Load()
	b := &t.buckets[bi]
	b.mu.Lock()
	defer b.mu.Unlock()
	if cl.bucket.Load() != bi {
		return // released and recycled into another bucket: a stale timer
	}
	defer tw.recover()
	kind, i := f.Kind&0xf0, int(f.Kind&0x0f)
	switch kind {
	case kSrvRetr:
		if cl.tRetr.Seq != f.Seq || cl.state != sCompleted || cl.rsp == nil {
			return
		}
		t.srv.sendFrom(nil, cl.li, cl.rsp.b, cl.rspDst)
		cl.retrIv = min(2*cl.retrIv, t.t.T2)
		cl.wheel.Start(&cl.tRetr, cl.retrIv)
	case kSrvWait:
		if cl.tWait.Seq != f.Seq {
			return
		}
		cl.wheel.Stop(&cl.tRetr)
		cl.state = sTerminated
		dropBuf(&cl.rsp)
		dropBuf(&cl.req)
	case kBrRetr:
		if i >= cl.nbr || cl.br[i].tRetr.Seq != f.Seq {
			return
		}
		br := cl.br[i]
		if br.state > bProceeding || (cl.invite && br.state != bCalling) || br.req == nil {
			return
		}
		t.srv.sendFrom(nil, br.li, br.req.b, br.dst)
		tw.st.Retransmitted.Add(1)
		if cl.invite {
			br.interval *= 2 // timer A
		} else if br.state == bProceeding {
			br.interval = t.t.T2 // timer E in Proceeding
		} else {
			br.interval = min(2*br.interval, t.t.T2)
		}
		cl.wheel.Start(&br.tRetr, br.interval)
	case kCancelRetr:
		if i >= cl.nbr || cl.br[i].tCancel.Seq != f.Seq {
			return
		}
		br := cl.br[i]
		if br.cancelSt != cSent || br.cancel == nil {
			return
		}
		t.srv.sendFrom(nil, br.li, br.cancel.b, br.dst)
		br.cancelIv = min(2*br.cancelIv, t.t.T2)
		cl.wheel.Start(&br.tCancel, br.cancelIv)
	case kBrTimeout:
		if i >= cl.nbr || cl.br[i].tTimeout.Seq != f.Seq {
			return
		}
		t.branchTimeout(cl, i, tw)
	}
	t.settle(b, cl, &tw.st)
}

// recover keeps a bug in a timer action from taking the server down.
func (tw *timerWorker) recover() {
	if r := recover(); r != nil {
		tw.st.Panics.Add(1)
		tw.tt.srv.log.Error("proxy: panic in a transaction timer", "panic", r)
	}
}

// branchTimeout ends a branch whose timer ran out: no final response in
// time (408, CANCEL when it rang), or the end of its Completed/Accepted
// wait.
func (t *txTable) branchTimeout(cl *cell, i int, tw *timerWorker) {
	br := cl.br[i]
	cl.wheel.Stop(&br.tRetr)
	switch br.state {
	case bCalling, bProceeding:
		tw.st.Timeouts.Add(1)
		if cl.invite && br.state == bProceeding && br.cancelSt == cNone {
			t.sendCancel(cl, br, nil, &tw.sc)
			br.state, br.code, br.local = bCompleted, 408, true
		} else if cl.invite && br.cancelSt == cSent {
			// CANCELled and the callee never sent its 487.
			br.state, br.code, br.local = bTerminated, 408, true
			cl.wheel.Stop(&br.tCancel)
		} else {
			br.state, br.code, br.local = bTerminated, 408, true
		}
		t.checkFinal(cl, nil, &tw.sc)
	default:
		br.state = bTerminated
		cl.wheel.Stop(&br.tCancel)
		dropBuf(&br.req)
		dropBuf(&br.rsp)
		dropBuf(&br.cancel)
	}
}

// unreachable fails the branch a refused datagram belonged to (RFC 3261
// §16.9: a transport error counts as a 503 from that branch).
func (s *Server) unreachable(payload []byte, dst netip.AddrPort, out Sender, sc *scratch, st *WorkerStats) bool {
	t := s.tm
	b, cl, tm, i := t.lockBranch(firstViaBranch(payload))
	if cl == nil && tm == nil {
		return false
	}
	defer b.mu.Unlock()
	if tm != nil {
		return false // the branch has its final response already
	}
	br := cl.br[i]
	if br.dst != dst || br.state > bProceeding || bytes.HasPrefix(payload, []byte("CANCEL ")) || bytes.HasPrefix(payload, []byte("ACK ")) {
		return false
	}
	cl.wheel.Stop(&br.tRetr)
	cl.wheel.Stop(&br.tTimeout)
	br.state, br.code, br.local = bTerminated, 503, true
	t.checkFinal(cl, out, sc)
	t.settle(b, cl, st)
	return true
}

// firstViaBranch finds the branch parameter of the first Via line of a
// (possibly truncated) message.
func firstViaBranch(p []byte) []byte {
	for len(p) > 0 {
		line := p
		if i := bytes.Index(p, []byte("\r\n")); i >= 0 {
			line, p = p[:i], p[i+2:]
		} else {
			p = nil
		}
		name, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		if !sip.EqualFold(name, "Via") && !sip.EqualFold(name, "v") {
			continue
		}
		var v sip.Via
		if _, err := sip.ParseVia(val, &v); err != nil {
			return nil
		}
		return v.Branch
	}
	return nil
}

// scratch is the per-goroutine space the transaction layer builds and
// re-parses messages in: a worker's or a timer worker's.
type scratch struct {
	msg sip.Message
	buf []byte
}

func newScratch() scratch { return scratch{buf: make([]byte, 0, 65536)} }

// scratch returns the scratch space of the context's goroutine.
func (c *Context) scratch() *scratch {
	if c.w != nil {
		return &c.w.sc
	}
	return c.sc
}

// txKey returns the server transaction key of the request and its hash,
// computed once per request.
func (c *Context) txKey() ([]byte, uint64) {
	if c.keyLen == 0 {
		top, _ := c.Msg.TopVia()
		k := txKey(c.keyBuf[:0], c.Msg, top)
		if len(k) > len(c.keyBuf) {
			return k, c.srv.tm.hashKey(k) // too long to cache (allocated)
		}
		c.keyLen = len(k)
		c.keyHash = c.srv.tm.hashKey(k)
	}
	return c.keyBuf[:c.keyLen], c.keyHash
}

// replyCell sends a response built by the failure pipeline as the final
// response of its transaction.
func (t *txTable) replyCell(c *Context, code int, reason string, extra []byte) {
	cl, sc := c.cell, c.scratch()
	if cl.finalSent {
		return
	}
	var tag [16]byte
	setBuf(&cl.rsp, sip.AppendResponse(sc.buf[:0], c.Msg, code, reason, t.srv.toTag(tag[:0], c.Msg), extra))
	cl.code = code
	t.srv.sendFrom(c.out, cl.li, cl.rsp.b, cl.rspDst)
	c.st.Replied.Add(1)
	t.finishServer(cl)
}
