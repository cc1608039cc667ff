package transport

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// testHandler runs f for each message (default: echo it back over the same
// connection) and passes unreachable reports to a channel.
type testHandler struct {
	f       func(data []byte, src netip.AddrPort, out *StreamOut)
	unreach chan unreachEvent
	n       atomic.Int64
}

type unreachEvent struct {
	payload string
	dst     netip.AddrPort
	err     error
}

func (h *testHandler) HandleStream(data []byte, src netip.AddrPort, out *StreamOut) {
	h.n.Add(1)
	if h.f != nil {
		h.f(data, src, out)
		return
	}
	out.Send(append(out.Buffer(), data...), src)
}

func (h *testHandler) HandleUnreachable(payload []byte, dst netip.AddrPort, err error) {
	select {
	case h.unreach <- unreachEvent{string(payload), dst, err}:
	default:
	}
}

func newTestHandler() *testHandler {
	return &testHandler{unreach: make(chan unreachEvent, 100)}
}

// startStreams makes and starts a Streams with h for every worker, closed
// (and checked for leaked goroutines) at the end of the test.
func startStreams(t testing.TB, opt StreamsOptions, h StreamHandler) *Streams {
	t.Helper()
	s := NewStreams(opt, func(int) StreamHandler { return h })
	s.Start()
	t.Cleanup(func() {
		s.Close()
		if st := s.Stats(); st.Open != 0 {
			t.Errorf("after Close: %d connections open", st.Open)
		}
		checkNoStreamGoroutines(t)
	})
	return s
}

func listenStream(t testing.TB, s *Streams, cfg StreamConfig) *StreamListener {
	t.Helper()
	l, err := s.Listen(cfg)
	if err != nil {
		if strings.Contains(cfg.Addr.String(), "::1") {
			t.Skipf("no IPv6: %v", err)
		}
		t.Fatal(err)
	}
	return l
}

func listenTCP(t testing.TB, s *Streams, addr string) *StreamListener {
	return listenStream(t, s, StreamConfig{Proto: TCP, Addr: netip.MustParseAddrPort(addr)})
}

// checkNoStreamGoroutines fails if goroutines of this file's Streams are
// still running.
func checkNoStreamGoroutines(t testing.TB) {
	t.Helper()
	var buf []byte
	for i := 0; i < 200; i++ {
		buf = make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		if countStreamGoroutines(buf) == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("leaked goroutines:\n%s", buf)
}

func countStreamGoroutines(stacks []byte) int {
	n := 0
	for _, g := range bytes.Split(stacks, []byte("\n\n")) {
		if bytes.Contains(g, []byte("transport.(*conn)")) || bytes.Contains(g, []byte("transport.(*Streams)")) ||
			bytes.Contains(g, []byte("transport.(*StreamListener)")) {
			n++
		}
	}
	return n
}

// sipMsg returns a request with body and a correct Content-Length.
func sipMsg(tag, body string) string {
	return "OPTIONS sip:bob@example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK" + tag + "\r\n" +
		"Call-ID: " + tag + "\r\n" +
		"CSeq: 1 OPTIONS\r\n" +
		fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body
}

// sipReader reads framed SIP messages (and pongs) from a client socket.
type sipReader struct {
	c    net.Conn
	buf  []byte
	scan int
}

func newSIPReader(c net.Conn) *sipReader { return &sipReader{c: c} }

// next returns the next message, or "\r\n" for a pong.
func (r *sipReader) next(timeout time.Duration) (string, error) {
	r.c.SetReadDeadline(time.Now().Add(timeout))
	tmp := make([]byte, 64<<10)
	for {
		if len(r.buf) >= 2 && r.buf[0] == '\r' && r.buf[1] == '\n' {
			r.buf = r.buf[2:]
			return "\r\n", nil
		}
		if len(r.buf) > 0 {
			kind, n, err := frameSIP(r.buf, 1<<20, &r.scan)
			if err != nil {
				return "", err
			}
			if kind == frameMessage {
				m := string(r.buf[:n])
				r.buf = r.buf[n:]
				return m, nil
			}
		}
		n, err := r.c.Read(tmp)
		r.buf = append(r.buf, tmp[:n]...)
		if err != nil {
			return "", err
		}
	}
}

func dialTCP(t testing.TB, addr netip.AddrPort) net.Conn {
	t.Helper()
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustWrite(t testing.TB, c net.Conn, s string) {
	t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

func expectMsg(t testing.TB, r *sipReader, want string) {
	t.Helper()
	got, err := r.next(5 * time.Second)
	if err != nil {
		t.Fatalf("read: %v (want %q)", err, want)
	}
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

// expectClosed waits for the server to close the client's connection.
func expectClosed(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("connection not closed")
		}
		return
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestProto(t *testing.T) {
	for p := UDP; p <= WSS; p++ {
		q, ok := ParseProto(strings.ToUpper(p.String()))
		if !ok || q != p || p.ViaName() != strings.ToUpper(p.String()) {
			t.Errorf("%d: %q %q %v %v", p, p.String(), p.ViaName(), q, ok)
		}
		if p.Reliable() != (p != UDP) || p.Secure() != (p == TLS || p == WSS) {
			t.Errorf("%s: reliable %v secure %v", p, p.Reliable(), p.Secure())
		}
	}
	if _, ok := ParseProto("sctp"); ok {
		t.Error("sctp parsed")
	}
}

func TestTCPEchoOneRead(t *testing.T) {
	h := newTestHandler()
	s := startStreams(t, StreamsOptions{Workers: 2}, h)
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		l := listenTCP(t, s, addr)
		c := dialTCP(t, l.LocalAddr())
		r := newSIPReader(c)
		m := sipMsg("one", "v=0\r\n")
		mustWrite(t, c, m)
		expectMsg(t, r, m)
	}
	waitFor(t, "sends counted", func() bool { return s.Stats().MessagesOut == 2 }) // counted after the write
	st := s.Stats()
	if st.MessagesIn != 2 || st.Accepted != 2 || st.Open != 2 || st.OpenBy[TCP] != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTCPSplitEveryByte(t *testing.T) {
	h := newTestHandler()
	s := startStreams(t, StreamsOptions{Workers: 1}, h)
	l := listenTCP(t, s, "127.0.0.1:0")
	c := dialTCP(t, l.LocalAddr())
	r := newSIPReader(c)
	m := sipMsg("bytes", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n")
	for round := 0; round < 2; round++ {
		for i := 0; i < len(m); i++ {
			mustWrite(t, c, m[i:i+1])
			if i%4 == 0 {
				time.Sleep(20 * time.Microsecond) // let the server read the pieces apart
			}
		}
		expectMsg(t, r, m)
	}
	// Every split point once, two writes each, plus the next message.
	for k := 1; k < len(m); k++ {
		mustWrite(t, c, m[:k])
		time.Sleep(10 * time.Microsecond)
		mustWrite(t, c, m[k:])
		expectMsg(t, r, m)
	}
	if st := s.Stats(); st.MessagesIn != uint64(len(m)+1) || st.FramingErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTCPSeveralMessagesInOneWrite(t *testing.T) {
	h := newTestHandler()
	s := startStreams(t, StreamsOptions{}, h)
	l := listenTCP(t, s, "127.0.0.1:0")
	c := dialTCP(t, l.LocalAddr())
	r := newSIPReader(c)
	m1, m2, m3 := sipMsg("a", ""), sipMsg("b", "body-b"), sipMsg("c", "body\r\n\r\nc")
	mustWrite(t, c, "\r\n"+m1+m2+"\r\n"+m3)
	expectMsg(t, r, m1)
	expectMsg(t, r, m2)
	expectMsg(t, r, m3)
}

func TestTCPCompactAndOddContentLength(t *testing.T) {
	h := newTestHandler()
	s := startStreams(t, StreamsOptions{}, h)
	l := listenTCP(t, s, "127.0.0.1:0")
	c := dialTCP(t, l.LocalAddr())
	r := newSIPReader(c)
	for _, m := range []string{
		"MESSAGE sip:a SIP/2.0\r\nl: 3\r\n\r\nabc",
		"MESSAGE sip:a SIP/2.0\r\nCONTENT-LENGTH  :\t 2 \r\n\r\nab",
		"SIP/2.0 200 OK\r\ncontent-length:0\r\n\r\n",
	} {
		mustWrite(t, c, m)
		got, err := r.next(5 * time.Second)
		if err != nil || got != m {
			t.Fatalf("%q: got %q %v", m, got, err)
		}
	}
}

func TestTCPKeepAlivePing(t *testing.T) {
	h := newTestHandler()
	s := startStreams(t, StreamsOptions{}, h)
	l := listenTCP(t, s, "127.0.0.1:0")
	c := dialTCP(t, l.LocalAddr())
	r := newSIPReader(c)
	mustWrite(t, c, "\r\n\r\n")
	expectMsg(t, r, "\r\n")
	m := sipMsg("after-ping", "")
	mustWrite(t, c, "\r\n\r")
	time.Sleep(time.Millisecond)
	mustWrite(t, c, "\n"+m)
	expectMsg(t, r, "\r\n")
	expectMsg(t, r, m)
	if st := s.Stats(); st.KeepAlives != 2 || st.MessagesIn != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTCPFramingErrorsClose(t *testing.T) {
	h := newTestHandler()
	s := startStreams(t, StreamsOptions{MaxMessage: 1000}, h)
	l := listenTCP(t, s, "127.0.0.1:0")
	bad := []string{
		"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n",                           // no Content-Length
		"OPTIONS sip:a SIP/2.0\r\nContent-Length: 1x\r\n\r\n",               // malformed
		"OPTIONS sip:a SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab",      // contradictory
		sipMsg("big", strings.Repeat("x", 1000)),                            // body too large
		"OPTIONS sip:a SIP/2.0\r\nX: " + strings.Repeat("y", 1200) + "\r\n", // headers too large
	}
	for i, m := range bad {
		c := dialTCP(t, l.LocalAddr())
		mustWrite(t, c, m)
		expectClosed(t, c)
		waitFor(t, "framing error count", func() bool { return s.Stats().FramingErrors == uint64(i+1) })
	}
	waitFor(t, "connections closed", func() bool { return s.Stats().Open == 0 })
	if h.n.Load() != 0 {
		t.Fatalf("%d bad messages handled", h.n.Load())
	}
}

// TestTCPWriteToOpensConnection sends to a peer without a connection: one
// is opened, and the peer's answer on it comes back from the peer's
// address.
func TestTCPWriteToOpensConnection(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			got := make(chan string, 10)
			h := newTestHandler()
			h.f = func(data []byte, src netip.AddrPort, out *StreamOut) { got <- src.String() + " " + string(data) }
			s := startStreams(t, StreamsOptions{}, h)
			own := listenTCP(t, s, addr)
			peer, err := net.Listen("tcp", addr)
			if err != nil {
				t.Skip(err)
			}
			defer peer.Close()
			pa := peer.Addr().(*net.TCPAddr).AddrPort()
			m1, m2 := sipMsg("out1", "x"), sipMsg("out2", "")
			if err := s.WriteTo(TCP, []byte(m1), pa); err != nil {
				t.Fatal(err)
			}
			if err := s.WriteTo(TCP, []byte(m2), pa); err != nil { // queued while connecting, in order
				t.Fatal(err)
			}
			pc, err := peer.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			// The connection comes from the listener's address (port aside).
			if la := pc.RemoteAddr().(*net.TCPAddr).AddrPort(); la.Addr() != own.LocalAddr().Addr() {
				t.Errorf("connection from %v, listener %v", la, own.LocalAddr())
			}
			r := newSIPReader(pc)
			expectMsg(t, r, m1)
			expectMsg(t, r, m2)
			resp := "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
			mustWrite(t, pc, resp)
			select {
			case g := <-got:
				if g != pa.String()+" "+resp {
					t.Fatalf("handled %q", g)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("answer not handled")
			}
			// A third message reuses the connection.
			m3 := sipMsg("out3", "")
			s.WriteTo(TCP, []byte(m3), pa)
			expectMsg(t, r, m3)
			if st := s.Stats(); st.Connected != 1 || st.Open != 1 || st.MessagesOut != 3 {
				t.Fatalf("stats %+v", st)
			}
			// The peer closes: the entry goes.
			pc.Close()
			waitFor(t, "close", func() bool { return s.Stats().Open == 0 })
		})
	}
}

// freePort returns a loopback port nobody listens on.
func freePort(t testing.TB) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().(*net.TCPAddr).AddrPort()
	l.Close()
	return a
}

func TestTCPWriteToRefusedIsUnreachable(t *testing.T) {
	h := newTestHandler()
	s := startStreams(t, StreamsOptions{}, h)
	dst := freePort(t)
	for round := 0; round < 2; round++ { // the failed entry is removed: the next send retries
		m := sipMsg(fmt.Sprint("refused", round), "")
		m2 := sipMsg(fmt.Sprint("refused-queued", round), "")
		if err := s.WriteTo(TCP, []byte(m), dst); err != nil {
			t.Fatal(err)
		}
		s.WriteTo(TCP, []byte(m2), dst) // queued on the same connection, or on a new one if that failed already
		want := map[string]bool{m: true, m2: true}
		for range 2 {
			select {
			case u := <-h.unreach:
				if !want[u.payload] || u.dst != dst || u.err != syscall.ECONNREFUSED { // the bare errno, as for UDP
					t.Fatalf("unreachable %q %v %v", u.payload, u.dst, u.err)
				}
				delete(want, u.payload)
			case <-time.After(5 * time.Second):
				t.Fatal("no unreachable report")
			}
		}
		waitFor(t, "entry removed", func() bool { return s.Stats().Open == 0 })
	}
	if st := s.Stats(); st.ConnectFailures < 2 || st.ConnectFailures > 4 || st.Unreachable != 4 || st.MessagesOut != 4 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTCPAlias(t *testing.T) {
	h := newTestHandler()
	s := startStreams(t, StreamsOptions{}, h)
	l := listenTCP(t, s, "127.0.0.1:0")
	c := dialTCP(t, l.LocalAddr())
	r := newSIPReader(c)
	m := sipMsg("alias", "")
	mustWrite(t, c, m)
	expectMsg(t, r, m)
	client := c.LocalAddr().(*net.TCPAddr).AddrPort()
	alias := freePort(t) // the client's "listening" address, nobody there
	s.Alias(TCP, client, alias)
	s.Alias(TCP, client, alias) // idempotent
	m2 := sipMsg("to-alias", "")
	if err := s.WriteTo(TCP, []byte(m2), alias); err != nil {
		t.Fatal(err)
	}
	expectMsg(t, r, m2)
	// Mapped IPv4 addresses are the same.
	mapped := netip.AddrPortFrom(netip.AddrFrom16(alias.Addr().As16()), alias.Port())
	s.WriteTo(TCP, []byte(m2), mapped)
	expectMsg(t, r, m2)
	if st := s.Stats(); st.Open != 1 || st.Connected != 0 {
		t.Fatalf("stats %+v", st)
	}
	// The client goes: the alias goes with it, so a send to it opens a
	// connection (refused here).
	c.Close()
	waitFor(t, "close", func() bool { return s.Stats().Open == 0 })
	s.WriteTo(TCP, []byte(m2), alias)
	select {
	case u := <-h.unreach:
		if u.dst != alias {
			t.Fatalf("unreachable %v", u.dst)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("alias still used; stats %+v", s.Stats())
	}
}

func TestTCPIdleTimeout(t *testing.T) {
	h := newTestHandler()
	s := startStreams(t, StreamsOptions{IdleTimeout: 500 * time.Millisecond}, h)
	l := listenTCP(t, s, "127.0.0.1:0")
	idle := dialTCP(t, l.LocalAddr())
	busy := dialTCP(t, l.LocalAddr())
	r := newSIPReader(busy)
	start := time.Now()
	// busy keeps talking (its pings count as traffic) while idle says nothing.
	for time.Since(start) < 1200*time.Millisecond {
		mustWrite(t, busy, "\r\n\r\n")
		expectMsg(t, r, "\r\n")
		time.Sleep(20 * time.Millisecond)
	}
	expectClosed(t, idle)
	if st := s.Stats(); st.IdleClosed != 1 || st.Open != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTCPMaxConns(t *testing.T) {
	h := newTestHandler()
	s := startStreams(t, StreamsOptions{MaxConns: 2}, h)
	l := listenTCP(t, s, "127.0.0.1:0")
	c1 := dialTCP(t, l.LocalAddr())
	c2 := dialTCP(t, l.LocalAddr())
	waitFor(t, "two accepted", func() bool { return s.Stats().Accepted == 2 })
	c3 := dialTCP(t, l.LocalAddr())
	expectClosed(t, c3)
	if st := s.Stats(); st.Refused != 1 || st.Open != 2 {
		t.Fatalf("stats %+v", st)
	}
	// Outbound connections count too.
	if err := s.WriteTo(TCP, []byte(sipMsg("x", "")), freePort(t)); err != ErrTooManyConns {
		t.Fatalf("WriteTo beyond MaxConns: %v", err)
	}
	for _, c := range []net.Conn{c1, c2} {
		r := newSIPReader(c)
		m := sipMsg("ok", "")
		mustWrite(t, c, m)
		expectMsg(t, r, m)
	}
}

// TestTCPSlowReader: a peer that never reads gets its replies queued until
// MaxQueue, then is closed; meanwhile another peer's replies are prompt.
func TestTCPSlowReader(t *testing.T) {
	big := strings.Repeat("b", 32<<10)
	h := newTestHandler()
	h.f = func(data []byte, src netip.AddrPort, out *StreamOut) {
		if bytes.Contains(data, []byte("Call-ID: slow")) {
			out.Send(append(out.Buffer(), sipMsg("reply", big)...), src)
			return
		}
		out.Send(append(out.Buffer(), data...), src)
	}
	s := startStreams(t, StreamsOptions{Workers: 2, MaxQueue: 256 << 10}, h)
	l := listenTCP(t, s, "127.0.0.1:0")
	slow, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(l.LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.SetReadBuffer(4096)
	fast := dialTCP(t, l.LocalAddr())
	r := newSIPReader(fast)

	done := make(chan struct{})
	go func() { // the slow peer asks for big replies and reads none
		defer close(done)
		req := []byte(sipMsg("slow", ""))
		for i := 0; i < 20000 && s.Stats().QueueOverflows == 0; i++ {
			if _, err := slow.Write(req); err != nil {
				return
			}
		}
	}()
	var worst time.Duration
	for i := 0; s.Stats().QueueOverflows == 0 || i < 20; i++ {
		if i > 100000 {
			t.Fatal("no overflow")
		}
		m := sipMsg(fmt.Sprint("fast", i), "")
		t0 := time.Now()
		mustWrite(t, fast, m)
		expectMsg(t, r, m)
		worst = max(worst, time.Since(t0))
	}
	<-done
	expectClosed(t, slow)
	st := s.Stats()
	t.Logf("worst fast round trip %v; queued sends %d, overflows %d", worst, st.Queued, st.QueueOverflows)
	if worst > time.Second {
		t.Errorf("fast peer delayed %v", worst)
	}
	if st.QueueOverflows != 1 || st.Queued == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestTCPQueuedReportedOnOverflow: the messages queued for a peer that does
// not read are reported when the queue overflows.
func TestTCPQueuedReportedOnOverflow(t *testing.T) {
	h := newTestHandler()
	s := startStreams(t, StreamsOptions{MaxQueue: 64 << 10}, h)
	peer, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	pa := peer.Addr().(*net.TCPAddr).AddrPort()
	go func() {
		c, err := peer.Accept()
		if err == nil {
			c.(*net.TCPConn).SetReadBuffer(4096)
			<-time.After(10 * time.Second) // never reads
			c.Close()
		}
	}()
	// Connected first, so that the queue is the open connection's.
	s.WriteTo(TCP, []byte(sipMsg("first", "")), pa)
	waitFor(t, "connected", func() bool { return s.Stats().Connected == 1 })
	body := strings.Repeat("q", 8<<10)
	sent := 0
	for i := 0; i < 10000; i++ {
		if err := s.WriteTo(TCP, []byte(sipMsg(fmt.Sprint("q", i), body)), pa); err != nil {
			if err != ErrQueueFull {
				t.Fatal(err)
			}
			break
		}
		sent++
	}
	if st := s.Stats(); st.QueueOverflows != 1 {
		t.Fatalf("stats %+v", st)
	}
	select {
	case u := <-h.unreach:
		if u.err != ErrQueueFull || !strings.HasPrefix(u.payload, "OPTIONS") || !strings.HasSuffix(u.payload, body) {
			t.Fatalf("report %.60q %v", u.payload, u.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("queued messages not reported")
	}
	t.Logf("%d messages sent before the overflow", sent)
}

func TestStreamsCloseNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	h := newTestHandler()
	s := NewStreams(StreamsOptions{}, func(int) StreamHandler { return h })
	l, err := s.Listen(StreamConfig{Proto: TCP, Addr: netip.MustParseAddrPort("127.0.0.1:0")})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	var clients []net.Conn
	for i := 0; i < 20; i++ {
		c := dialTCP(t, l.LocalAddr())
		mustWrite(t, c, "OPTIONS sip:a SIP/2.0\r\nContent") // an incomplete message held
		clients = append(clients, c)
	}
	s.WriteTo(TCP, []byte(sipMsg("x", "")), freePort(t))
	waitFor(t, "accepted", func() bool { return s.Stats().Accepted == 20 })
	// Half the clients leave: their connections go.
	for _, c := range clients[:10] {
		c.Close()
	}
	waitFor(t, "closed", func() bool { return s.Stats().Open == 10 })
	s.Close()
	if st := s.Stats(); st.Open != 0 {
		t.Fatalf("open after Close: %+v", st)
	}
	checkNoStreamGoroutines(t)
	for _, c := range clients[10:] {
		expectClosed(t, c)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		t.Logf("goroutines %d -> %d", before, n)
	}
	if err := s.WriteTo(TCP, []byte("x"), freePort(t)); err == nil {
		t.Fatal("WriteTo after Close")
	}
}

// TestTCPManyClientsOrder: messages from many connections at once are all
// handled, and each connection's replies come back in order.
func TestTCPManyClientsOrder(t *testing.T) {
	h := newTestHandler()
	s := startStreams(t, StreamsOptions{Workers: 2}, h)
	l := listenTCP(t, s, "127.0.0.1:0")
	const clients, msgs = 20, 200
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		go func(i int) {
			c, err := net.Dial("tcp", l.LocalAddr().String())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			var all strings.Builder
			for j := 0; j < msgs; j++ {
				all.WriteString(sipMsg(fmt.Sprintf("c%d-%d", i, j), "body"))
			}
			go c.Write([]byte(all.String()))
			r := newSIPReader(c)
			for j := 0; j < msgs; j++ {
				m, err := r.next(10 * time.Second)
				if err != nil {
					errs <- err
					return
				}
				if want := sipMsg(fmt.Sprintf("c%d-%d", i, j), "body"); m != want {
					errs <- fmt.Errorf("client %d message %d: %q", i, j, m)
					return
				}
			}
			errs <- nil
		}(i)
	}
	for i := 0; i < clients; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Stats().MessagesIn; n != clients*msgs {
		t.Fatalf("%d messages", n)
	}
}

// echoConn is a client for the allocation test and the benchmark.
type echoConn struct {
	c   net.Conn
	msg []byte
	buf []byte
}

func (e *echoConn) roundTrip() error {
	if _, err := e.c.Write(e.msg); err != nil {
		return err
	}
	_, err := io.ReadFull(e.c, e.buf)
	return err
}

func newEchoConn(t testing.TB, l *StreamListener) *echoConn {
	c := dialTCP(t, l.LocalAddr())
	m := []byte(sipMsg("echo", "v=0\r\n"))
	e := &echoConn{c: c, msg: m, buf: make([]byte, len(m))}
	for i := 0; i < 100; i++ { // warm up
		if err := e.roundTrip(); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// TestTCPNoAllocs: read, handle and reply of a message that arrives in
// one read allocate nothing (in the whole process).
func TestTCPNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations differ under the race detector")
	}
	h := newTestHandler()
	s := startStreams(t, StreamsOptions{Workers: 2}, h)
	l := listenTCP(t, s, "127.0.0.1:0")
	e := newEchoConn(t, l)
	var err error
	allocs := testing.AllocsPerRun(2000, func() {
		if e2 := e.roundTrip(); e2 != nil {
			err = e2
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Fatalf("%v allocations per message", allocs)
	}
}

func BenchmarkTCPEcho(b *testing.B) {
	h := newTestHandler()
	s := startStreams(b, StreamsOptions{Workers: 2}, h)
	l := listenTCP(b, s, "127.0.0.1:0")
	e := newEchoConn(b, l)
	b.ReportAllocs()
	b.SetBytes(int64(len(e.msg)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := e.roundTrip(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTLSEcho(b *testing.B) {
	ca := newTestCA(b)
	h := newTestHandler()
	s := startStreams(b, StreamsOptions{Workers: 2}, h)
	l := listenTLS(b, s, ca, "127.0.0.1:0", nil)
	c, err := dialTLS(b, l.LocalAddr(), &tls.Config{RootCAs: ca.pool, ServerName: "sip.example.com"})
	if err != nil {
		b.Fatal(err)
	}
	m := []byte(sipMsg("echo", "v=0\r\n"))
	e := &echoConn{c: c, msg: m, buf: make([]byte, len(m))}
	for i := 0; i < 100; i++ {
		if err := e.roundTrip(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(m)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := e.roundTrip(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestConnectTimeout: an outbound TLS connection whose peer accepts but
// never answers the handshake is reported after ConnectTimeout as
// syscall.ETIMEDOUT.
func TestConnectTimeout(t *testing.T) {
	peer, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	go func() {
		for {
			c, err := peer.Accept()
			if err != nil {
				return
			}
			defer c.Close() // says nothing
		}
	}()
	h := newTestHandler()
	s := startStreams(t, StreamsOptions{ConnectTimeout: 200 * time.Millisecond}, h)
	dst := peer.Addr().(*net.TCPAddr).AddrPort()
	m := sipMsg("timeout", "")
	start := time.Now()
	s.WriteTo(TLS, []byte(m), dst)
	select {
	case u := <-h.unreach:
		if u.payload != m || u.err != syscall.ETIMEDOUT {
			t.Fatalf("unreachable %q %v (%T)", u.payload, u.err, u.err)
		}
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Fatalf("reported after %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no report")
	}
	if st := s.Stats(); st.ConnectFailures != 1 || st.Open != 0 {
		t.Fatalf("stats %+v", st)
	}
}
