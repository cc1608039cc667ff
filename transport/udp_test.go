package transport

import (
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// echo answers every datagram with its own bytes, from the worker's Out.
type echo struct {
	n *atomic.Int64
}

func (e echo) HandlePacket(data []byte, src netip.AddrPort, out *Out) {
	b := append(out.Buffer(), data...)
	out.Send(b, src)
	if e.n != nil {
		e.n.Add(1)
	}
}

func listen(t *testing.T, addr string, cfg UDPConfig) *UDPListener {
	t.Helper()
	cfg.Addr = netip.MustParseAddrPort(addr)
	l, err := ListenUDP(cfg, func(int) Handler { return echo{} })
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	l.Start()
	t.Cleanup(func() { l.Close() })
	return l
}

// listenLoopback runs a one-worker listener on 127.0.0.1 with handler h
// and returns it with a client connected to it, both closed at the end of
// the test.
func listenLoopback(t *testing.T, h Handler) (*UDPListener, *net.UDPConn) {
	t.Helper()
	l, err := ListenUDP(UDPConfig{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Workers: 1}, func(int) Handler { return h })
	if err != nil {
		t.Fatal(err)
	}
	l.Start()
	t.Cleanup(func() { l.Close() })
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(l.LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return l, c
}

func roundTrip(t *testing.T, l *UDPListener, network string, payload string) {
	t.Helper()
	c, err := net.DialUDP(network, nil, net.UDPAddrFromAddrPort(l.LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(payload)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:n]) != payload {
		t.Fatalf("echo %q, want %q", buf[:n], payload)
	}
}

func TestUDPEchoIPv4AndIPv6(t *testing.T) {
	l4 := listen(t, "127.0.0.1:0", UDPConfig{Workers: 2})
	roundTrip(t, l4, "udp4", "hello v4")
	l6 := listen(t, "[::1]:0", UDPConfig{Workers: 1})
	roundTrip(t, l6, "udp6", "hello v6")
	if st := l4.Stats(); st.Received != 1 || st.Sent != 1 || st.Batches != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSinglePeerSpreadsOverWorkers sends from one socket only: every worker
// must get a share.
func TestSinglePeerSpreadsOverWorkers(t *testing.T) {
	l := listen(t, "127.0.0.1:0", UDPConfig{Workers: 3, TurnSlice: time.Millisecond, Linger: -1})
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(l.LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		c.SetDeadline(time.Now().Add(time.Second))
		c.Write([]byte("x"))
		c.Read(buf)
		if i%50 == 0 {
			time.Sleep(2 * time.Millisecond) // let turns pass
			spread := true
			for _, n := range l.Stats().PerWorker {
				spread = spread && n > 0
			}
			if spread {
				return
			}
		}
	}
	t.Fatalf("traffic of one peer did not reach every worker: %v", l.Stats().PerWorker)
}

// TestOrderKept checks that datagrams leave in the order they came in even
// with several workers.
func TestOrderKept(t *testing.T) {
	l := listen(t, "127.0.0.1:0", UDPConfig{Workers: 2, TurnSlice: 100 * time.Microsecond})
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(l.LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadBuffer(1 << 20)
	const n = 2000
	go func() {
		for i := 0; i < n; i++ {
			c.Write([]byte{byte(i >> 8), byte(i)})
			if i%100 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	buf := make([]byte, 8)
	last := -1
	for got := 0; got < n; got++ {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		k, err := c.Read(buf)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", got, err)
		}
		v := int(buf[0])<<8 | int(buf[1])
		if k != 2 || v <= last {
			t.Fatalf("datagram %d arrived after %d", v, last)
		}
		last = v
	}
}

func TestCloseStopsBlockedWorkers(t *testing.T) {
	before := runtime.NumGoroutine()
	l, err := ListenUDP(UDPConfig{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Workers: 4}, func(int) Handler { return echo{} })
	if err != nil {
		t.Fatal(err)
	}
	l.Start()
	time.Sleep(20 * time.Millisecond) // workers are now blocked in recvmmsg
	done := make(chan struct{})
	go func() { l.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not return")
	}
	deadline := time.Now().Add(time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before {
		t.Fatalf("%d goroutines left, %d before", g, before)
	}
}

func TestWriteTo(t *testing.T) {
	l := listen(t, "127.0.0.1:0", UDPConfig{Workers: 1})
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	dst := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	if err := l.WriteTo([]byte("ping"), dst); err != nil {
		t.Fatal(err)
	}
	pc.SetDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 16)
	n, from, err := pc.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "ping" || from.Port() != l.LocalAddr().Port() {
		t.Fatalf("got %q from %v: %v", buf[:n], from, err)
	}
}

// TestNoAllocPerPacket runs traffic through a listener and checks the
// process allocated (almost) nothing per datagram.
func TestNoAllocPerPacket(t *testing.T) {
	var count atomic.Int64
	_, c := listenLoopback(t, echo{n: &count})
	buf := make([]byte, 64)
	msg := []byte("OPTIONS sip:x SIP/2.0\r\n\r\n")
	exchange := func(k int) {
		for i := 0; i < k; i++ {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			c.Write(msg)
			if _, err := c.Read(buf); err != nil {
				t.Fatal(err)
			}
		}
	}
	exchange(100) // warm up
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	exchange(2000)
	runtime.ReadMemStats(&m1)
	// Neither the listener nor the client may allocate per datagram.
	per := float64(m1.Mallocs-m0.Mallocs) / 2000
	t.Logf("%.2f allocations per round trip (client included)", per)
	if per > 0.05 {
		t.Fatalf("%.2f allocations per datagram round trip", per)
	}
}

// TestLingerBackoff checks the linger's back-off: after a linger that found
// the socket empty the listener skips 1, 3, 7 … (at most maxLingerSkip)
// lingers, and lingers again as soon as one finds datagrams.
func TestLingerBackoff(t *testing.T) {
	var l linger
	for _, want := range []int{1, 3, 7, 15, 31, 63, 63} {
		if !l.allowed() {
			t.Fatalf("linger not allowed before a miss (skip %d)", l.skip)
		}
		l.result(false)
		for i := 0; i < want; i++ {
			if l.allowed() {
				t.Fatalf("linger allowed %d batches after a miss, want %d skipped", i, want)
			}
		}
	}
	l.allowed()
	l.result(true)
	if !l.allowed() || !l.allowed() {
		t.Fatal("a linger that found datagrams did not re-enable lingering")
	}
}

// holdEcho echoes datagrams; on "hold" it first signals held and waits
// for release, so that datagrams sent meanwhile queue up on the socket.
type holdEcho struct {
	held, release chan struct{}
	relayTo       netip.AddrPort // where "relay" goes (it is not echoed)
}

func (h holdEcho) HandlePacket(data []byte, src netip.AddrPort, out *Out) {
	switch string(data) {
	case "hold":
		h.held <- struct{}{}
		<-h.release
	case "wait": // waits for release, at most 3 s
		select {
		case <-h.release:
		case <-time.After(3 * time.Second):
		}
	case "relay":
		out.Send(append(out.Buffer(), data...), h.relayTo)
		return
	}
	out.Send(append(out.Buffer(), data...), src)
}

// queueBatch holds the worker on "hold", queues first and "wait" on the
// socket meanwhile, so that they make one batch, and lets the worker go on.
func queueBatch(t *testing.T, h holdEcho, c *net.UDPConn, first string) {
	t.Helper()
	c.Write([]byte("hold"))
	select {
	case <-h.held:
	case <-time.After(2 * time.Second):
		t.Fatal("the worker did not take the hold datagram")
	}
	c.Write([]byte(first))
	c.Write([]byte("wait"))
	time.Sleep(time.Millisecond) // both are queued on the socket
	h.release <- struct{}{}
}

// TestFirstAnswerOfBatchLeavesAtOnce queues "first" and "wait" while the
// worker is held, so that they make one batch, and checks that the answer
// to "first" arrives while the worker is still handling "wait".
func TestFirstAnswerOfBatchLeavesAtOnce(t *testing.T) {
	h := holdEcho{held: make(chan struct{}), release: make(chan struct{})}
	_, c := listenLoopback(t, h)
	queueBatch(t, h, c, "first")
	buf := make([]byte, 64)
	c.SetDeadline(time.Now().Add(time.Second))
	for _, want := range []string{"hold", "first"} {
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("read %q, %v; want %q before the batch's last datagram is handled", buf[:n], err, want)
		}
	}
	h.release <- struct{}{}
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "wait" {
		t.Fatalf("read %q, %v; want wait", buf[:n], err)
	}
}

// TestRelayedFirstDatagramWaitsForBatch queues "relay" and "wait" in one
// batch: the first datagram is relayed to another peer, not answered, so it
// leaves with the rest of the batch, not at once.
func TestRelayedFirstDatagramWaitsForBatch(t *testing.T) {
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	h := holdEcho{held: make(chan struct{}), release: make(chan struct{}),
		relayTo: sink.LocalAddr().(*net.UDPAddr).AddrPort()}
	_, c := listenLoopback(t, h)
	queueBatch(t, h, c, "relay")
	buf := make([]byte, 64)
	c.SetDeadline(time.Now().Add(time.Second))
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "hold" {
		t.Fatalf("read %q, %v; want hold", buf[:n], err)
	}
	sink.SetDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := sink.Read(buf); err == nil {
		t.Fatalf("the relayed %q left before the batch's last datagram was handled", buf[:n])
	}
	h.release <- struct{}{}
	sink.SetDeadline(time.Now().Add(time.Second))
	if n, err := sink.Read(buf); err != nil || string(buf[:n]) != "relay" {
		t.Fatalf("sink read %q, %v; want relay", buf[:n], err)
	}
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "wait" {
		t.Fatalf("read %q, %v; want wait", buf[:n], err)
	}
}

// TestBurstsStopLinger sends bursts that reach the worker whole (queued
// while it is busy, as from a peer that sends what it has every few
// milliseconds) far enough apart that a linger after each burst ends on an
// empty socket, and checks that the listener stopped lingering while every
// datagram was still answered.
func TestBurstsStopLinger(t *testing.T) {
	h := holdEcho{held: make(chan struct{}), release: make(chan struct{})}
	l, c := listenLoopback(t, h)
	const bursts, size = 12, 5
	buf := make([]byte, 64)
	for b := 0; b < bursts; b++ {
		c.Write([]byte("hold"))
		select {
		case <-h.held:
		case <-time.After(2 * time.Second):
			t.Fatalf("burst %d: the worker did not take the hold datagram", b)
		}
		for i := 0; i < size; i++ {
			c.Write([]byte("x"))
		}
		time.Sleep(time.Millisecond) // the burst is queued on the socket
		h.release <- struct{}{}
		c.SetDeadline(time.Now().Add(2 * time.Second))
		for i := 0; i < size+1; i++ {
			if _, err := c.Read(buf); err != nil {
				t.Fatalf("burst %d: %v", b, err)
			}
		}
		time.Sleep(10 * time.Millisecond) // well past the 2 ms linger
	}
	l.Close() // the worker's state is read after it stopped
	if l.linger.skip < 7 {
		t.Fatalf("linger.skip = %d after %d bursts, want >= 7 (lingering kept missing)", l.linger.skip, bursts)
	}
}

// TestOnlyAnsweredBatchesLinger has a listener handle one datagram and
// reads, once the worker stopped, whether it planned a linger: after an
// answered datagram it does, after a relayed one it does not.
func TestOnlyAnsweredBatchesLinger(t *testing.T) {
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	buf := make([]byte, 64)
	for _, tc := range []struct {
		payload string
		linger  bool
	}{{"relay", false}, {"x", true}} {
		h := holdEcho{relayTo: sink.LocalAddr().(*net.UDPAddr).AddrPort()}
		l, c := listenLoopback(t, h)
		from := c
		if !tc.linger {
			from = sink
		}
		c.Write([]byte(tc.payload))
		from.SetDeadline(time.Now().Add(2 * time.Second))
		if n, err := from.Read(buf); err != nil || string(buf[:n]) != tc.payload {
			t.Fatalf("read %q, %v; want %q", buf[:n], err, tc.payload)
		}
		l.Close() // the worker's state is read after it stopped
		if got := l.linger.next != 0; got != tc.linger {
			t.Errorf("after %q the worker planned a linger: %v, want %v", tc.payload, got, tc.linger)
		}
	}
}
