package proxy_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/veloxsip/velox/module/forward"
	"github.com/veloxsip/velox/module/looseroute"
	"github.com/veloxsip/velox/module/maxforwards"
	"github.com/veloxsip/velox/module/recordroute"
	"github.com/veloxsip/velox/module/sanity"
	"github.com/veloxsip/velox/proxy"
	"github.com/veloxsip/velox/sip"
	"github.com/veloxsip/velox/transport"
)

var (
	proxyAddr = netip.MustParseAddrPort("192.0.2.10:5060")
	uacAddr   = netip.MustParseAddrPort("192.0.2.1:5061")
	uasAddr   = netip.MustParseAddrPort("192.0.2.20:5070")
)

// recorder is a proxy.Sender that keeps what was sent.
type recorder struct {
	buf     []byte
	sent    []sent
	discard bool // benchmarks: count nothing, keep nothing
}

type sent struct {
	dst  netip.AddrPort
	data string
}

func (r *recorder) Buffer() []byte         { return r.buf[:0] }
func (r *recorder) Local() netip.AddrPort  { return proxyAddr }
func (r *recorder) Proto() transport.Proto { return transport.UDP }
func (r *recorder) Send(b []byte, dst netip.AddrPort) {
	if !r.discard {
		r.sent = append(r.sent, sent{dst, string(b)})
	}
}

func newProxy(t testing.TB) (*proxy.Worker, *recorder) {
	t.Helper()
	mf, _ := maxforwards.New(maxforwards.Options{})
	fwd, err := forward.New(forward.Options{To: uasAddr.String()})
	if err != nil {
		t.Fatal(err)
	}
	srv := proxy.NewServer(proxy.Pipeline{
		{Name: "sanity", Handler: sanity.New()},
		{Name: "max-forwards", Handler: mf},
		{Name: "record-route", Handler: recordroute.New(recordroute.Options{})},
		{Name: "loose-route", Handler: looseroute.New()},
		{Name: "forward", Handler: fwd},
	}, proxy.Options{})
	srv.AddListener(transport.UDP, proxyAddr, "")
	w := srv.NewWorker(0).(*proxy.Worker)
	return w, &recorder{buf: make([]byte, 0, 65535)}
}

func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

const invite = `INVITE sip:bob@192.0.2.20:5070 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1:5061;branch=z9hG4bK-1;rport
Max-Forwards: 70
From: <sip:alice@a.example>;tag=a1
To: <sip:bob@b.example>
Call-ID: c1@a
CSeq: 1 INVITE
Contact: <sip:alice@192.0.2.1:5061>
Content-Length: 0

`

func handle(w *proxy.Worker, r *recorder, s string, src netip.AddrPort) sent {
	r.sent = r.sent[:0]
	w.Handle(crlf(s), src, r)
	if len(r.sent) != 1 {
		return sent{}
	}
	return r.sent[0]
}

func parse(t *testing.T, s string) *sip.Message {
	t.Helper()
	var m sip.Message
	if err := m.Parse([]byte(s)); err != nil {
		t.Fatalf("output does not parse: %v\n%s", err, s)
	}
	return &m
}

func TestForwardInvite(t *testing.T) {
	w, r := newProxy(t)
	out := handle(w, r, invite, uacAddr)
	if out.dst != uasAddr {
		t.Fatalf("sent to %v, want %v", out.dst, uasAddr)
	}
	m := parse(t, out.data)
	var v sip.Via
	it := m.Vias()
	it.Next(&v)
	if string(v.Host) != "192.0.2.10" || v.Port != 5060 || !strings.HasPrefix(string(v.Branch), "z9hG4bKVx") {
		t.Fatalf("top Via %q", v.Raw)
	}
	it.Next(&v)
	if string(v.Received) != "192.0.2.1" || string(v.RPort) != "5061" {
		t.Fatalf("sender Via %q lacks received/rport", v.Raw)
	}
	if n, _, _ := m.MaxForwards(); n != 69 {
		t.Fatalf("Max-Forwards %d", n)
	}
	if rr, _ := m.Header(sip.HdrRecordRoute); string(rr) != "<sip:192.0.2.10:5060;lr>" {
		t.Fatalf("Record-Route %q", rr)
	}

	// A retransmission and the CANCEL get the same branch.
	again := parse(t, handle(w, r, invite, uacAddr).data)
	v2, _ := again.TopVia()
	cancel := strings.Replace(strings.Replace(invite, "INVITE sip", "CANCEL sip", 1), "1 INVITE", "1 CANCEL", 1)
	c := parse(t, handle(w, r, cancel, uacAddr).data)
	v3, _ := c.TopVia()
	top, _ := m.TopVia()
	if string(v2.Branch) != string(top.Branch) || string(v3.Branch) != string(top.Branch) {
		t.Fatalf("branches differ: %s %s %s", top.Branch, v2.Branch, v3.Branch)
	}
	// A new transaction gets another branch.
	bye := strings.Replace(strings.Replace(invite, "z9hG4bK-1", "z9hG4bK-2", 1), "CSeq: 1 INVITE", "CSeq: 1 INVITE", 1)
	b := parse(t, handle(w, r, bye, uacAddr).data)
	if v4, _ := b.TopVia(); string(v4.Branch) == string(top.Branch) {
		t.Fatal("a new transaction reused the branch")
	}
}

func TestResponseGoesBackAlongVia(t *testing.T) {
	w, r := newProxy(t)
	fwd := parse(t, handle(w, r, invite, uacAddr).data)
	top, _ := fwd.TopVia()
	resp := "SIP/2.0 180 Ringing\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=" + string(top.Branch) +
		"\nVia: SIP/2.0/UDP 192.0.2.1:5061;branch=z9hG4bK-1;rport=40000;received=198.51.100.7\nFrom: <sip:alice@a.example>;tag=a1\nTo: <sip:bob@b.example>;tag=b1\nCall-ID: c1@a\nCSeq: 1 INVITE\nContent-Length: 0\n\n"
	out := handle(w, r, resp, uasAddr)
	if out.dst != netip.MustParseAddrPort("198.51.100.7:40000") {
		t.Fatalf("response sent to %v", out.dst)
	}
	m := parse(t, out.data)
	if m.Count(sip.HdrVia) != 1 {
		t.Fatalf("our Via not removed:\n%s", out.data)
	}
	// A response whose top Via is not ours is dropped.
	foreign := strings.Replace(resp, "192.0.2.10:5060", "203.0.113.9:5060", 1)
	if out := handle(w, r, foreign, uasAddr); out.data != "" {
		t.Fatal("forwarded a response that is not ours")
	}
}

func TestMaxForwardsZero(t *testing.T) {
	w, r := newProxy(t)
	out := handle(w, r, strings.Replace(invite, "Max-Forwards: 70", "Max-Forwards: 0", 1), uacAddr)
	if out.dst != uacAddr || !strings.HasPrefix(out.data, "SIP/2.0 483 ") {
		t.Fatalf("got %v %q", out.dst, out.data)
	}
	m := parse(t, out.data)
	if to, _ := m.To(); len(to.Tag()) == 0 {
		t.Fatal("483 without To tag")
	}
}

func TestLoopDetected(t *testing.T) {
	w, r := newProxy(t)
	first := handle(w, r, invite, uacAddr)
	// The same request coming back through us unchanged has looped.
	back := strings.ReplaceAll(first.data, "\r\n", "\n")
	out := handle(w, r, back, uasAddr)
	if !strings.HasPrefix(out.data, "SIP/2.0 482 ") {
		t.Fatalf("loop not detected: %q", out.data)
	}
	// With another Request-URI it is a spiral and goes on.
	spiral := strings.Replace(back, "sip:bob@192.0.2.20:5070", "sip:carol@192.0.2.20:5070", 1)
	if out := handle(w, r, spiral, uasAddr); !strings.HasPrefix(out.data, "INVITE ") {
		t.Fatalf("spiral not forwarded: %q", out.data)
	}
}

func TestLooseRouteInDialog(t *testing.T) {
	w, r := newProxy(t)
	ack := `ACK sip:bob@198.51.100.20:6000 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1:5061;branch=z9hG4bK-3
Route: <sip:192.0.2.10:5060;lr>
Max-Forwards: 70
From: <sip:alice@a.example>;tag=a1
To: <sip:bob@b.example>;tag=b1
Call-ID: c1@a
CSeq: 1 ACK
Content-Length: 0

`
	out := handle(w, r, ack, uacAddr)
	if out.dst != netip.MustParseAddrPort("198.51.100.20:6000") {
		t.Fatalf("ACK sent to %v", out.dst)
	}
	m := parse(t, out.data)
	if m.Count(sip.HdrRoute) != 0 || m.Count(sip.HdrRecordRoute) != 0 {
		t.Fatalf("Route not removed or RR added:\n%s", out.data)
	}
	// Two routes on one line: ours goes, the next one is the next hop.
	two := strings.Replace(ack, "Route: <sip:192.0.2.10:5060;lr>", "Route: <sip:192.0.2.10:5060;lr>, <sip:198.51.100.30:5080;lr>", 1)
	out = handle(w, r, two, uacAddr)
	if out.dst != netip.MustParseAddrPort("198.51.100.30:5080") {
		t.Fatalf("sent to %v", out.dst)
	}
	m = parse(t, out.data)
	if v, _ := m.Header(sip.HdrRoute); string(v) != "<sip:198.51.100.30:5080;lr>" {
		t.Fatalf("Route left: %q", v)
	}
}

func TestStrictRouterFixup(t *testing.T) {
	w, r := newProxy(t)
	// A strict router put our Record-Route into the Request-URI and the
	// remote target into the last Route (RFC 3261 §16.4, §16.12).
	req := `BYE sip:192.0.2.10:5060;lr SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1:5061;branch=z9hG4bK-4
Route: <sip:bob@198.51.100.20:6000>
Max-Forwards: 70
From: <sip:alice@a.example>;tag=a1
To: <sip:bob@b.example>;tag=b1
Call-ID: c1@a
CSeq: 2 BYE
Content-Length: 0

`
	out := handle(w, r, req, uacAddr)
	if out.dst != netip.MustParseAddrPort("198.51.100.20:6000") {
		t.Fatalf("sent to %v: %q", out.dst, out.data)
	}
	m := parse(t, out.data)
	if string(m.RequestURI()) != "sip:bob@198.51.100.20:6000" || m.Count(sip.HdrRoute) != 0 {
		t.Fatalf("fix-up wrong:\n%s", out.data)
	}
}

func TestMalformedGets400(t *testing.T) {
	w, r := newProxy(t)
	bad := strings.Replace(invite, "CSeq: 1 INVITE", "CSeq: 1 BYE", 1)
	out := handle(w, r, bad, uacAddr)
	if !strings.HasPrefix(out.data, "SIP/2.0 400 CSeq method does not match") {
		t.Fatalf("got %q", out.data)
	}
	broken := strings.Replace(invite, "Max-Forwards: 70", "Max-Forwards 70", 1)
	out = handle(w, r, broken, uacAddr)
	if !strings.HasPrefix(out.data, "SIP/2.0 400 Malformed header line") {
		t.Fatalf("got %q", out.data)
	}
	// Garbage is dropped and counted.
	before := w.Server().Stats().Malformed
	handle(w, r, "\x00\x01garbage", uacAddr)
	if w.Server().Stats().Malformed != before+1 {
		t.Fatal("garbage not counted")
	}
}

func TestWorkerForwardAllocs(t *testing.T) {
	w, r := newProxy(t)
	r.sent = make([]sent, 0, 1)
	in := crlf(invite)
	buf := make([]byte, len(in))
	var rec nullSender
	rec.buf = make([]byte, 0, 65535)
	n := testing.AllocsPerRun(200, func() {
		copy(buf, in)
		w.Handle(buf, uacAddr, &rec)
	})
	if n != 0 {
		t.Fatalf("%v allocs per forwarded request", n)
	}
}

type nullSender struct{ buf []byte }

func (s *nullSender) Buffer() []byte              { return s.buf[:0] }
func (s *nullSender) Local() netip.AddrPort       { return proxyAddr }
func (s *nullSender) Proto() transport.Proto      { return transport.UDP }
func (s *nullSender) Send([]byte, netip.AddrPort) {}

func BenchmarkWorkerForwardInvite(b *testing.B) {
	w, _ := newProxy(b)
	in := crlf(invite)
	buf := make([]byte, len(in))
	s := &nullSender{buf: make([]byte, 0, 65535)}
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, in)
		w.Handle(buf, uacAddr, s)
	}
}

type closer struct {
	closed *[]string
	name   string
}

func (c closer) Close() error { *c.closed = append(*c.closed, c.name); return nil }

func TestSharedObjects(t *testing.T) {
	srv := proxy.NewServer(nil, proxy.Options{})
	var closed []string
	made := 0
	mk := func(name string) func() (any, error) {
		return func() (any, error) { made++; return closer{&closed, name}, nil }
	}
	a1, _ := srv.Shared("a", mk("a"))
	a2, _ := srv.Shared("a", mk("a"))
	srv.Shared("b", mk("b"))
	if made != 2 || a1 != a2 {
		t.Fatalf("made %d, same %v", made, a1 == a2)
	}
	srv.Close()
	if strings.Join(closed, ",") != "b,a" {
		t.Fatalf("closed %v", closed)
	}
}
