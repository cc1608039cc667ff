package proxy_test

import (
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veloxsip/velox/module/looseroute"
	"github.com/veloxsip/velox/module/recordroute"
	"github.com/veloxsip/velox/module/relay"
	"github.com/veloxsip/velox/module/sanity"
	"github.com/veloxsip/velox/proxy"
	"github.com/veloxsip/velox/sip"
	"github.com/veloxsip/velox/transport"
)

var uas2Addr = netip.MustParseAddrPort("192.0.2.21:5070")

// sfx is a stateful proxy driven by hand: a manual clock, a recorder for
// both the worker's batch and the timers' direct sends.
type sfx struct {
	t   *testing.T
	srv *proxy.Server
	w   *proxy.Worker
	r   *recorder
	now int64
}

func (r *recorder) WriteTo(b []byte, dst netip.AddrPort) error {
	r.Send(b, dst)
	return nil
}

func newStateful(t *testing.T, o relay.Options) *sfx {
	t.Helper()
	f := &sfx{t: t, now: int64(time.Hour)}
	rl, err := relay.New(o)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = proxy.NewServer(proxy.Pipeline{
		{Name: "sanity", Handler: sanity.New()},
		{Name: "record-route", Handler: recordroute.New(recordroute.Options{})},
		{Name: "loose-route", Handler: looseroute.New()},
		{Name: "relay", Handler: rl},
	}, proxy.Options{Stateful: proxy.StatefulOptions{Clock: func() int64 { return f.now }, Buckets: 1024}})
	f.srv.AddListener(transport.UDP, proxyAddr, "")
	f.r = &recorder{buf: make([]byte, 0, 65535)}
	f.srv.AddConn(transport.UDP, proxyAddr, f.r)
	f.w = f.srv.NewWorker(0).(*proxy.Worker)
	return f
}

// in delivers a message and returns what the proxy sent.
func (f *sfx) in(msg string, src netip.AddrPort) []sent {
	f.r.sent = nil
	f.w.Handle([]byte(msg), src, f.r)
	return f.r.sent
}

// wait moves the clock and fires timers; it returns what they sent.
func (f *sfx) wait(d time.Duration) []sent {
	f.r.sent = nil
	step := 10 * time.Millisecond
	for d > 0 {
		s := min(step, d)
		f.now += int64(s)
		d -= s
		f.srv.AdvanceTimers()
	}
	return f.r.sent
}

// one returns the single message sent to dst whose first line starts with
// prefix, failing the test otherwise.
func (f *sfx) one(out []sent, dst netip.AddrPort, prefix string) string {
	f.t.Helper()
	var got []string
	for _, s := range out {
		if s.dst == dst && strings.HasPrefix(s.data, prefix) {
			got = append(got, s.data)
		}
	}
	if len(got) != 1 {
		f.t.Fatalf("want one %q to %v, got %d in:\n%s", prefix, dst, len(got), dump(out))
	}
	return got[0]
}

func none(t *testing.T, out []sent, prefix string) {
	t.Helper()
	for _, s := range out {
		if strings.HasPrefix(s.data, prefix) {
			t.Fatalf("unexpected %q to %v:\n%s", prefix, s.dst, s.data)
		}
	}
}

func dump(out []sent) string {
	var b strings.Builder
	for _, s := range out {
		fmt.Fprintf(&b, "-> %v\n%s\n", s.dst, s.data)
	}
	return b.String()
}

// reply builds the response of the callee to the request it received.
func reply(t *testing.T, req string, code int, reason, tag string) string {
	t.Helper()
	var m sip.Message
	if err := m.Parse([]byte(req)); err != nil {
		t.Fatalf("parse %q: %v", req, err)
	}
	return string(sip.AppendResponse(nil, &m, code, reason, []byte(tag), nil))
}

func inviteN(n int) string {
	return string(crlf(strings.ReplaceAll(invite, "z9hG4bK-1", fmt.Sprintf("z9hG4bK-%d", n))))
}

func (f *sfx) live() int64 { return f.srv.TxStats().Live }

func TestStatefulCallFlow(t *testing.T) {
	f := newStateful(t, relay.Options{To: []string{uasAddr.String()}})
	inv := string(crlf(invite))
	out := f.in(inv, uacAddr)
	f.one(out, uacAddr, "SIP/2.0 100 ")
	fwd := f.one(out, uasAddr, "INVITE ")
	if !strings.Contains(fwd, "Record-Route:") || !strings.Contains(fwd, ";branch=z9hG4bKVx") {
		t.Fatalf("forwarded INVITE:\n%s", fwd)
	}
	// The caller retransmits: absorbed, the 100 again.
	out = f.in(inv, uacAddr)
	f.one(out, uacAddr, "SIP/2.0 100 ")
	none(t, out, "INVITE ")
	// The callee's own 100 stops our retransmissions and is not forwarded.
	none(t, f.in(reply(t, fwd, 100, "Trying", ""), uasAddr), "SIP/2.0")
	none(t, f.wait(2*time.Second), "INVITE ")
	ringing := f.one(f.in(reply(t, fwd, 180, "Ringing", "b1"), uasAddr), uacAddr, "SIP/2.0 180 ")
	if strings.Contains(ringing, "z9hG4bKVx") {
		t.Fatalf("our Via left in the 180:\n%s", ringing)
	}
	f.one(f.in(inv, uacAddr), uacAddr, "SIP/2.0 180 ") // retransmission → last provisional
	ok := reply(t, fwd, 200, "OK", "b1")
	f.one(f.in(ok, uasAddr), uacAddr, "SIP/2.0 200 ")
	f.one(f.in(ok, uasAddr), uacAddr, "SIP/2.0 200 ") // 2xx retransmission goes through
	none(t, f.in(inv, uacAddr), "SIP/2.0")            // Accepted: INVITE absorbed silently
	if st := f.srv.TxStats(); st.Live != 1 || st.Lingering != 1 {
		t.Fatalf("after the 2xx: %+v, want the transaction lingering as a tomb", st)
	}
	f.wait(33 * time.Second) // timers L and M
	if f.live() != 0 {
		t.Fatalf("transaction not released after 64*T1: live = %d", f.live())
	}
	f.one(f.in(ok, uasAddr), uacAddr, "SIP/2.0 200 ") // stateless after the end
}

func TestStatefulRetransmitAndTimeout(t *testing.T) {
	f := newStateful(t, relay.Options{To: []string{uasAddr.String()}, Timeout: 8 * time.Second})
	inv := string(crlf(invite))
	f.in(inv, uacAddr)
	// Timer A: 0.5 s, then 1 s, 2 s, 4 s after that.
	var at []time.Duration
	var elapsed time.Duration
	for elapsed < 7900*time.Millisecond {
		out := f.wait(50 * time.Millisecond)
		elapsed += 50 * time.Millisecond
		for _, s := range out {
			if strings.HasPrefix(s.data, "INVITE ") {
				at = append(at, elapsed)
			}
		}
	}
	want := []time.Duration{500 * time.Millisecond, 1500 * time.Millisecond, 3500 * time.Millisecond, 7500 * time.Millisecond}
	if len(at) != len(want) {
		t.Fatalf("retransmissions at %v, want %v", at, want)
	}
	for i := range want {
		if d := at[i] - want[i]; d < 0 || d > 60*time.Millisecond {
			t.Fatalf("retransmissions at %v, want %v", at, want)
		}
	}
	out := f.wait(200 * time.Millisecond) // fr timer (8 s)
	final := f.one(out, uacAddr, "SIP/2.0 408 ")
	if !strings.Contains(final, ";tag=") {
		t.Fatalf("408 without To tag:\n%s", final)
	}
	// Timer G retransmits the 408 until the ACK comes.
	f.one(f.wait(600*time.Millisecond), uacAddr, "SIP/2.0 408 ")
	ack := strings.Replace(inv, "INVITE sip:", "ACK sip:", 1)
	ack = strings.Replace(ack, "CSeq: 1 INVITE", "CSeq: 1 ACK", 1)
	ack = strings.Replace(ack, "To: <sip:bob@b.example>", "To: <sip:bob@b.example>"+final[strings.Index(final, ";tag="):strings.Index(final, ";tag=")+22], 1)
	none(t, f.in(ack, uacAddr), "ACK ") // absorbed: not forwarded
	none(t, f.wait(5*time.Second), "SIP/2.0 408")
	if f.live() != 0 {
		t.Fatalf("live = %d after timer I", f.live())
	}
}

func TestStatefulCancel(t *testing.T) {
	f := newStateful(t, relay.Options{To: []string{uasAddr.String()}})
	inv := string(crlf(invite))
	fwd := f.one(f.in(inv, uacAddr), uasAddr, "INVITE ")
	cancel := strings.Replace(strings.Replace(inv, "INVITE sip:", "CANCEL sip:", 1), "CSeq: 1 INVITE", "CSeq: 1 CANCEL", 1)
	// Before any provisional: 200 to the CANCEL, but no CANCEL downstream yet (§9.1).
	out := f.in(cancel, uacAddr)
	f.one(out, uacAddr, "SIP/2.0 200 ")
	none(t, out, "CANCEL ")
	out = f.in(reply(t, fwd, 180, "Ringing", "b1"), uasAddr)
	down := f.one(out, uasAddr, "CANCEL ")
	var dm, fm sip.Message
	dm.Parse([]byte(down))
	fm.Parse([]byte(fwd))
	dv, _ := dm.TopVia()
	fv, _ := fm.TopVia()
	if string(dv.Branch) != string(fv.Branch) || dm.Count(sip.HdrVia) != 1 {
		t.Fatalf("CANCEL must carry only the INVITE's top Via:\n%s", down)
	}
	// Our CANCEL is retransmitted until answered.
	f.one(f.wait(600*time.Millisecond), uasAddr, "CANCEL ")
	none(t, f.in(reply(t, down, 200, "OK", "b1"), uasAddr), "SIP/2.0")
	none(t, f.wait(5*time.Second), "CANCEL ")
	out = f.in(reply(t, fwd, 487, "Request Terminated", "b1"), uasAddr)
	ack := f.one(out, uasAddr, "ACK ")
	if !strings.Contains(ack, "tag=b1") || !strings.Contains(ack, "CSeq: 1 ACK") {
		t.Fatalf("ACK for the 487:\n%s", ack)
	}
	f.one(out, uacAddr, "SIP/2.0 487 ")
}

func TestStatefulCancelWithoutAnswer(t *testing.T) {
	f := newStateful(t, relay.Options{To: []string{uasAddr.String()}, InviteTimeout: 3 * time.Second})
	inv := string(crlf(invite))
	fwd := f.one(f.in(inv, uacAddr), uasAddr, "INVITE ")
	f.in(reply(t, fwd, 180, "Ringing", "b1"), uasAddr)
	// Timer C (invite_timeout): the branch is CANCELled, the caller gets 408.
	out := f.wait(3100 * time.Millisecond)
	f.one(out, uasAddr, "CANCEL ")
	f.one(out, uacAddr, "SIP/2.0 408 ")
}

func TestStatefulSerialFailover(t *testing.T) {
	f := newStateful(t, relay.Options{To: []string{uasAddr.String(), uas2Addr.String()}})
	inv := string(crlf(invite))
	fwd := f.one(f.in(inv, uacAddr), uasAddr, "INVITE ")
	out := f.in(reply(t, fwd, 486, "Busy Here", "b1"), uasAddr)
	f.one(out, uasAddr, "ACK ")
	fwd2 := f.one(out, uas2Addr, "INVITE ")
	none(t, out, "SIP/2.0 486")
	f.one(f.in(reply(t, fwd2, 200, "OK", "c1"), uas2Addr), uacAddr, "SIP/2.0 200 ")
}

func TestStatefulSerialFailoverExhausted(t *testing.T) {
	f := newStateful(t, relay.Options{To: []string{uasAddr.String(), uas2Addr.String()}})
	fwd := f.one(f.in(string(crlf(invite)), uacAddr), uasAddr, "INVITE ")
	fwd2 := f.one(f.in(reply(t, fwd, 503, "Service Unavailable", "b1"), uasAddr), uas2Addr, "INVITE ")
	out := f.in(reply(t, fwd2, 486, "Busy Here", "c1"), uas2Addr)
	f.one(out, uacAddr, "SIP/2.0 486 ") // the best of 503 and 486: the lower class
}

func TestStatefulDeclineStopsFailover(t *testing.T) {
	f := newStateful(t, relay.Options{To: []string{uasAddr.String(), uas2Addr.String()}})
	fwd := f.one(f.in(string(crlf(invite)), uacAddr), uasAddr, "INVITE ")
	out := f.in(reply(t, fwd, 603, "Decline", "b1"), uasAddr)
	none(t, out, "INVITE ")
	f.one(out, uacAddr, "SIP/2.0 603 ")
}

func TestStatefulParallelFork(t *testing.T) {
	f := newStateful(t, relay.Options{To: []string{uasAddr.String(), uas2Addr.String()}, Fork: "parallel"})
	out := f.in(string(crlf(invite)), uacAddr)
	a := f.one(out, uasAddr, "INVITE ")
	b := f.one(out, uas2Addr, "INVITE ")
	f.in(reply(t, a, 180, "Ringing", "a1"), uasAddr)
	f.in(reply(t, b, 180, "Ringing", "b1"), uas2Addr)
	out = f.in(reply(t, a, 200, "OK", "a1"), uasAddr)
	f.one(out, uacAddr, "SIP/2.0 200 ")
	f.one(out, uas2Addr, "CANCEL ")
	out = f.in(reply(t, b, 487, "Request Terminated", "b1"), uas2Addr)
	f.one(out, uas2Addr, "ACK ")
	none(t, out, "SIP/2.0 487") // never forwarded once a 2xx went up
}

func TestStatefulChallengesMerged(t *testing.T) {
	f := newStateful(t, relay.Options{To: []string{uasAddr.String(), uas2Addr.String()}, Fork: "parallel"})
	out := f.in(string(crlf(invite)), uacAddr)
	a := f.one(out, uasAddr, "INVITE ")
	b := f.one(out, uas2Addr, "INVITE ")
	ra := strings.Replace(reply(t, a, 407, "Proxy Authentication Required", "a1"), "Content-Length: 0", "Proxy-Authenticate: Digest realm=\"a\", nonce=\"1\"\r\nContent-Length: 0", 1)
	rb := strings.Replace(reply(t, b, 401, "Unauthorized", "b1"), "Content-Length: 0", "WWW-Authenticate: Digest realm=\"b\", nonce=\"2\"\r\nContent-Length: 0", 1)
	none(t, f.in(ra, uasAddr), "SIP/2.0 40")
	final := f.one(f.in(rb, uas2Addr), uacAddr, "SIP/2.0 40")
	if !strings.Contains(final, `realm="a"`) || !strings.Contains(final, `realm="b"`) {
		t.Fatalf("challenges not merged:\n%s", final)
	}
}

func TestStatefulUnreachableFailsOver(t *testing.T) {
	f := newStateful(t, relay.Options{To: []string{uasAddr.String(), uas2Addr.String()}})
	fwd := f.one(f.in(string(crlf(invite)), uacAddr), uasAddr, "INVITE ")
	f.r.sent = nil
	f.w.HandleUnreachable([]byte(fwd[:200]), uasAddr, syscall.ECONNREFUSED)
	f.one(f.r.sent, uas2Addr, "INVITE ")
}

func TestStatefulNonInvite(t *testing.T) {
	f := newStateful(t, relay.Options{To: []string{uasAddr.String()}, Timeout: 4 * time.Second})
	bye := strings.Replace(strings.Replace(string(crlf(invite)), "INVITE sip:", "BYE sip:", 1), "CSeq: 1 INVITE", "CSeq: 2 BYE", 1)
	out := f.in(bye, uacAddr)
	none(t, out, "SIP/2.0 100") // no automatic 100 for non-INVITE
	f.one(out, uasAddr, "BYE ")
	// Timer E doubles up to T2 (4 s): 0.5, 1, 2 s.
	n := 0
	for _, s := range f.wait(3900 * time.Millisecond) {
		if strings.HasPrefix(s.data, "BYE ") {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d retransmissions of BYE in 3.9 s, want 3", n)
	}
	// RFC 4320: no 408 upstream for a non-INVITE.
	none(t, f.wait(200*time.Millisecond), "SIP/2.0 408")
	f.wait(40 * time.Second)
	if f.live() != 0 {
		t.Fatalf("live = %d", f.live())
	}
}

func TestStatefulNonInviteFinalRetransmitted(t *testing.T) {
	f := newStateful(t, relay.Options{To: []string{uasAddr.String()}})
	bye := strings.Replace(strings.Replace(string(crlf(invite)), "INVITE sip:", "BYE sip:", 1), "CSeq: 1 INVITE", "CSeq: 2 BYE", 1)
	fwd := f.one(f.in(bye, uacAddr), uasAddr, "BYE ")
	f.one(f.in(reply(t, fwd, 200, "OK", "b1"), uasAddr), uacAddr, "SIP/2.0 200 ")
	out := f.in(bye, uacAddr) // retransmission in Completed: the 200 again
	f.one(out, uacAddr, "SIP/2.0 200 ")
	none(t, out, "BYE ")
	f.wait(33 * time.Second) // timer J
	if f.live() != 0 {
		t.Fatalf("live = %d", f.live())
	}
}

// TestStatefulTombs checks what a finished transaction still does while
// it waits out timers J, K, L and M as a tomb.
func TestStatefulTombs(t *testing.T) {
	f := newStateful(t, relay.Options{To: []string{uasAddr.String()}})
	inv := string(crlf(invite))
	fwd := f.one(f.in(inv, uacAddr), uasAddr, "INVITE ")
	ok := reply(t, fwd, 200, "OK", "b1")
	f.one(f.in(ok, uasAddr), uacAddr, "SIP/2.0 200 ")
	bye := strings.Replace(strings.Replace(inv, "INVITE sip:", "BYE sip:", 1), "CSeq: 1 INVITE", "CSeq: 2 BYE", 1)
	bye = strings.Replace(bye, "z9hG4bK-1", "z9hG4bK-2", 1)
	fbye := f.one(f.in(bye, uacAddr), uasAddr, "BYE ")
	byeOK := reply(t, fbye, 200, "OK", "b1")
	f.one(f.in(byeOK, uasAddr), uacAddr, "SIP/2.0 200 ")
	if st := f.srv.TxStats(); st.Live != 2 || st.Lingering != 2 {
		t.Fatalf("after both finals: %+v, want 2 tombs", st)
	}
	// A retransmitted BYE gets the stored 200 (timer J) ...
	out := f.in(bye, uacAddr)
	if got := f.one(out, uacAddr, "SIP/2.0 200 "); !strings.Contains(got, "CSeq: 2 BYE") {
		t.Fatalf("re-sent final:\n%s", got)
	}
	none(t, out, "BYE ")
	// ... the callee's retransmitted 200 to the BYE is absorbed (K) ...
	if out := f.in(byeOK, uasAddr); len(out) != 0 {
		t.Fatalf("a retransmitted non-INVITE final went on:\n%s", dump(out))
	}
	// ... its 2xx to the INVITE still goes up (M) ...
	f.one(f.in(ok, uasAddr), uacAddr, "SIP/2.0 200 ")
	// ... a retransmitted INVITE is absorbed silently (L) ...
	if out := f.in(inv, uacAddr); len(out) != 0 {
		t.Fatalf("a retransmitted INVITE in Accepted:\n%s", dump(out))
	}
	// ... a late CANCEL gets its 200 and cancels nothing ...
	cancel := strings.Replace(strings.Replace(inv, "INVITE sip:", "CANCEL sip:", 1), "CSeq: 1 INVITE", "CSeq: 1 CANCEL", 1)
	out = f.in(cancel, uacAddr)
	if got := f.one(out, uacAddr, "SIP/2.0 200 "); !strings.Contains(got, "CSeq: 1 CANCEL") {
		t.Fatalf("answer to the CANCEL:\n%s", got)
	}
	none(t, out, "CANCEL ")
	// ... and the ACK of the 2xx is routed end to end.
	ack := strings.Replace(strings.Replace(inv, "INVITE sip:", "ACK sip:", 1), "CSeq: 1 INVITE", "CSeq: 1 ACK", 1)
	ack = strings.Replace(ack, "To: <sip:bob@example.com>", "To: <sip:bob@example.com>;tag=b1", 1)
	f.one(f.in(ack, uacAddr), uasAddr, "ACK ")
	f.wait(33 * time.Second)
	if st := f.srv.TxStats(); st.Live != 0 || st.Lingering != 0 {
		t.Fatalf("after 64*T1: %+v", st)
	}
	out = f.in(bye, uacAddr) // a new transaction now
	f.one(out, uasAddr, "BYE ")
}

// heapPer runs step(0) … step(n-1) and returns the heap they left
// allocated, in bytes per step, after a collection on either side.
func heapPer(n int, step func(i int)) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		step(i)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

// TestStatefulMemoryPerTransaction holds 100,000 concurrent INVITE
// transactions (forwarded, ringing) and reports the memory each takes.
func TestStatefulMemoryPerTransaction(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const n = 100000
	f := newStateful(t, relay.Options{To: []string{uasAddr.String()}})
	f.r.buf = make([]byte, 0, 4096)
	per := heapPer(n, func(i int) {
		f.r.sent = f.r.sent[:0]
		f.w.Handle([]byte(inviteN(i)), uacAddr, f.r)
	})
	f.r.sent = nil
	if got := f.live(); got != n {
		t.Fatalf("live = %d, want %d", got, n)
	}
	t.Logf("%d concurrent INVITE transactions: %.0f bytes each (heap %.1f MiB)", n, per, per*n/(1<<20))
	if per > 6000 {
		t.Fatalf("%.0f bytes per transaction", per)
	}
}

// TestStatefulMemoryPerLingeringTransaction finishes 100,000 BYE
// transactions and reports the memory each takes while it waits out
// timers J and K.
func TestStatefulMemoryPerLingeringTransaction(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const n = 100000
	f := newStateful(t, relay.Options{To: []string{uasAddr.String()}})
	f.r.buf = make([]byte, 0, 4096)
	bye := strings.Replace(strings.Replace(string(crlf(invite)), "INVITE sip:", "BYE sip:", 1), "CSeq: 1 INVITE", "CSeq: 2 BYE", 1)
	per := heapPer(n, func(i int) {
		f.r.sent = f.r.sent[:0]
		b := strings.Replace(bye, "z9hG4bK-1", fmt.Sprintf("z9hG4bK-%d", i), 1)
		f.w.Handle([]byte(b), uacAddr, f.r)
		var m sip.Message
		if len(f.r.sent) != 1 || m.Parse([]byte(f.r.sent[0].data)) != nil {
			t.Fatalf("BYE %d: %s", i, dump(f.r.sent))
		}
		f.r.sent = f.r.sent[:0]
		f.w.Handle(sip.AppendResponse(nil, &m, 200, "OK", []byte("b1"), nil), uasAddr, f.r)
	})
	f.r.sent = nil
	if st := f.srv.TxStats(); st.Live != n || st.Lingering != n {
		t.Fatalf("%+v, want %d lingering", st, n)
	}
	t.Logf("%d finished BYE transactions waiting out J and K: %.0f bytes each", n, per)
	if per > 1000 {
		t.Fatalf("%.0f bytes per lingering transaction", per)
	}
}

func TestStatefulFailurePipeline(t *testing.T) {
	f := newStateful(t, relay.Options{To: []string{uasAddr.String()}})
	second, err := relay.New(relay.Options{To: []string{uas2Addr.String()}})
	if err != nil {
		t.Fatal(err)
	}
	// First failure: relay to the second destination. Second failure: 503.
	f.srv.SetFailurePipeline(proxy.Pipeline{
		{Name: "second", If: condFunc(func(c *proxy.Context) bool { return c.FailureCode == 486 }), Handler: second},
		{Name: "reply", Handler: proxy.HandlerFunc(func(c *proxy.Context) proxy.Action {
			c.Reply(503, "All Busy")
			return proxy.Stop
		})},
	})
	fwd := f.one(f.in(string(crlf(invite)), uacAddr), uasAddr, "INVITE ")
	out := f.in(reply(t, fwd, 486, "Busy Here", "b1"), uasAddr)
	fwd2 := f.one(out, uas2Addr, "INVITE ")
	none(t, out, "SIP/2.0 486")
	out = f.in(reply(t, fwd2, 480, "Unavailable", "c1"), uas2Addr)
	f.one(out, uacAddr, "SIP/2.0 503 All Busy")
	none(t, out, "SIP/2.0 480")
	f.one(f.wait(600*time.Millisecond), uacAddr, "SIP/2.0 503 ") // timer G: it is the transaction's final
}

type condFunc func(*proxy.Context) bool

func (f condFunc) Eval(c *proxy.Context) bool { return f(c) }

// BenchmarkStatefulCall runs whole calls through the stateful relay (INVITE,
// 100, 180, 200, ACK, BYE, 200: seven messages in, seven out) and ends
// their transactions with the timers: the processing cost of a call with
// no kernel in the way.
func BenchmarkStatefulCall(b *testing.B) {
	t := &testing.T{}
	f := newStateful(t, relay.Options{To: []string{uasAddr.String()}})
	f.r.buf = make([]byte, 0, 4096)
	const calls = 512
	type call struct{ invite, trying, ringing, ok, ack, bye, byeOK []byte }
	cs := make([]call, calls)
	for i := range cs {
		inv := strings.ReplaceAll(string(crlf(invite)), "z9hG4bK-1", fmt.Sprintf("z9hG4bK-%d", i))
		inv = strings.ReplaceAll(inv, "c1@a", fmt.Sprintf("c%d@a", i))
		out := f.in(inv, uacAddr)
		fwd := f.one(out, uasAddr, "INVITE ")
		ack := strings.Replace(strings.Replace(inv, "INVITE sip:", "ACK sip:", 1), "CSeq: 1 INVITE", "CSeq: 1 ACK", 1)
		ack = strings.Replace(ack, "z9hG4bK-", "z9hG4bKack-", 1)
		bye := strings.Replace(strings.Replace(inv, "INVITE sip:", "BYE sip:", 1), "CSeq: 1 INVITE", "CSeq: 2 BYE", 1)
		bye = strings.Replace(bye, "z9hG4bK-", "z9hG4bKbye-", 1)
		fbye := f.one(f.in(bye, uacAddr), uasAddr, "BYE ")
		cs[i] = call{[]byte(inv), []byte(reply(t, fwd, 100, "Trying", "")), []byte(reply(t, fwd, 180, "Ringing", "b")),
			[]byte(reply(t, fwd, 200, "OK", "b")), []byte(ack), []byte(bye), []byte(reply(t, fbye, 200, "OK", "b"))}
		f.wait(40 * time.Second) // end these transactions: the benchmark recreates them
	}
	h := func(msg []byte, src netip.AddrPort) {
		f.r.sent = f.r.sent[:0]
		f.w.Handle(msg, src, f.r)
	}
	f.r.discard = true
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		c := &cs[n%calls]
		h(c.invite, uacAddr)
		h(c.trying, uasAddr)
		h(c.ringing, uasAddr)
		h(c.ok, uasAddr)
		h(c.ack, uacAddr)
		h(c.bye, uacAddr)
		h(c.byeOK, uasAddr)
		if n%calls == calls-1 {
			b.StopTimer()
			f.wait(40 * time.Second)
			b.StartTimer()
		}
	}
}

func TestStatefulRFC2543Matching(t *testing.T) {
	f := newStateful(t, relay.Options{To: []string{uasAddr.String()}, Timeout: 2 * time.Second})
	old := strings.Replace(string(crlf(invite)), ";branch=z9hG4bK-1;rport", ";rport", 1) // an RFC 2543 client: no branch
	fwd := f.one(f.in(old, uacAddr), uasAddr, "INVITE ")
	out := f.in(old, uacAddr)
	f.one(out, uacAddr, "SIP/2.0 100 ")
	none(t, out, "INVITE ") // matched without a branch
	other := strings.Replace(old, "CSeq: 1 INVITE", "CSeq: 2 INVITE", 1)
	f.one(f.in(other, uacAddr), uasAddr, "INVITE ") // another CSeq: another transaction
	out = f.in(reply(t, fwd, 486, "Busy Here", "b1"), uasAddr)
	final := f.one(out, uacAddr, "SIP/2.0 486 ")
	tag := final[strings.Index(final, ";tag="):]
	tag = tag[:strings.Index(tag, "\r\n")]
	ack := strings.Replace(strings.Replace(old, "INVITE sip:", "ACK sip:", 1), "CSeq: 1 INVITE", "CSeq: 1 ACK", 1)
	ack = strings.Replace(ack, "To: <sip:bob@b.example>", "To: <sip:bob@b.example>"+tag, 1)
	none(t, f.in(ack, uacAddr), "ACK ")           // the ACK of the 486 is ours to absorb
	none(t, f.wait(2*time.Second), "SIP/2.0 486") // Confirmed: no more retransmissions
}

// FuzzStateful feeds arbitrary datagrams to a stateful proxy that has a
// transaction open: as requests, as responses from the callee, and as ICMP
// payloads. Nothing may panic (the worker would count it).
func FuzzStateful(f *testing.F) {
	t := &testing.T{}
	inv := string(crlf(invite))
	f.Add(inv)
	f.Add(strings.Replace(inv, "INVITE sip:", "CANCEL sip:", 1))
	f.Add(strings.Replace(inv, "z9hG4bK-1", "z9hG4bKVx0123456789abcdef.s0000000100000001", 1))
	sx := newStateful(t, relay.Options{To: []string{uasAddr.String(), uas2Addr.String()}, Fork: "parallel"})
	fwd := sx.one(sx.in(inv, uacAddr), uasAddr, "INVITE ")
	f.Add(reply(t, fwd, 180, "Ringing", "b"))
	f.Add(reply(t, fwd, 200, "OK", "b"))
	f.Add(reply(t, fwd, 486, "Busy", "b"))
	f.Fuzz(func(t *testing.T, data string) {
		sx.in(data, uacAddr)
		sx.in(data, uasAddr)
		sx.w.HandleUnreachable([]byte(data), uasAddr, syscall.ECONNREFUSED)
		sx.wait(100 * time.Millisecond)
		if p := sx.srv.Stats().Panics; p != 0 {
			t.Fatalf("%d panics", p)
		}
	})
}

func TestStatefulTargetsByQ(t *testing.T) {
	f := newStateful(t, relay.Options{})
	uas3 := netip.MustParseAddrPort("192.0.2.22:5070")
	f.srv.SetPipeline(proxy.Pipeline{{Name: "lookup", Handler: proxy.HandlerFunc(func(c *proxy.Context) proxy.Action {
		c.RelayTargets([]proxy.Target{
			{Addr: uas3, URI: []byte("sip:bob@192.0.2.22:5070"), Q: 500, Route: []byte("Route: <sip:edge.example;lr>\r\n")},
			{Addr: uasAddr, URI: []byte("sip:bob@192.0.2.20:5070;ob"), Q: 1000},
			{Addr: uas2Addr, URI: []byte("sip:bob@192.0.2.21:5070"), Q: 1000},
		}, proxy.RelayOptions{ByQ: true})
		return proxy.Stop
	})}})
	out := f.in(string(crlf(invite)), uacAddr)
	a := f.one(out, uasAddr, "INVITE sip:bob@192.0.2.20:5070;ob SIP/2.0")
	b := f.one(out, uas2Addr, "INVITE sip:bob@192.0.2.21:5070 SIP/2.0")
	none(t, out, "INVITE sip:bob@192.0.2.22")
	none(t, f.in(reply(t, a, 486, "Busy Here", "a"), uasAddr), "INVITE ")
	out = f.in(reply(t, b, 480, "Unavailable", "b"), uas2Addr)
	c := f.one(out, uas3, "INVITE sip:bob@192.0.2.22:5070 SIP/2.0")
	if !strings.Contains(c, "\r\nRoute: <sip:edge.example;lr>\r\n") || strings.Index(c, "Route:") < strings.Index(c, "Via:") {
		t.Fatalf("Route line missing or above our Via:\n%s", c)
	}
	none(t, out, "SIP/2.0 4")
	f.one(f.in(reply(t, c, 486, "Busy Here", "c"), uas3), uacAddr, "SIP/2.0 48")
}
