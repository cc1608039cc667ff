package transport

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

type refusal struct {
	payload string
	dst     netip.AddrPort
	err     error
}

// relay forwards every datagram that starts with "INVITE" to dead (and
// with fan > 0, also fan copies alternating between live and dead, so that
// sends to a live peer follow refused ones in the same and the next
// sendmmsg); it echoes anything else. It records the refusals it hears of.
type relay struct {
	dead, live netip.AddrPort
	fan        int
	refused    chan refusal
	count      *atomic.Int64 // refusals, when refused is nil
}

func (h *relay) HandlePacket(data []byte, src netip.AddrPort, out *Out) {
	if !bytes.HasPrefix(data, []byte("INVITE")) {
		out.Send(append(out.Buffer(), data...), src)
		return
	}
	out.Send(append(out.Buffer(), data...), h.dead)
	for i := 0; i < h.fan; i++ {
		dst := h.live
		if i%2 == 1 {
			dst = h.dead
		}
		out.Send(append(out.Buffer(), data...), dst)
	}
	if h.count != nil {
		out.Send(append(out.Buffer(), "ok"...), src) // the client waits for this
	}
}

func (h *relay) HandleUnreachable(payload []byte, dst netip.AddrPort, err error) {
	if h.count != nil {
		h.count.Add(1)
		return
	}
	h.refused <- refusal{string(payload), dst, err}
}

// deadPort returns a loopback address nobody listens on.
func deadPort(t *testing.T, network, ip string) netip.AddrPort {
	t.Helper()
	c, err := net.ListenPacket(network, net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Skipf("%s: %v", network, err)
	}
	ap := c.LocalAddr().(*net.UDPAddr).AddrPort()
	c.Close()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func listenRelay(t *testing.T, addr string, cfg UDPConfig, h *relay) *UDPListener {
	t.Helper()
	cfg.Addr = netip.MustParseAddrPort(addr)
	l, err := ListenUDP(cfg, func(int) Handler { return h })
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	l.Start()
	t.Cleanup(func() { l.Close() })
	return l
}

func invite(tag string) string {
	return "INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-" + tag +
		"\r\nMax-Forwards: 70\r\nCall-ID: " + tag + "\r\nContent-Length: 0\r\n\r\n"
}

func expectRefusal(t *testing.T, h *relay, msg string, dst netip.AddrPort) {
	t.Helper()
	select {
	case r := <-h.refused:
		if r.dst != dst || r.err != syscall.ECONNREFUSED || !bytes.HasPrefix([]byte(msg), []byte(r.payload)) ||
			len(r.payload) < len("INVITE sip:x SIP/2.0\r\nVia: ") {
			t.Fatalf("refusal %q to %v (%v), want %q to %v (ECONNREFUSED)", r.payload, r.dst, r.err, msg, dst)
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("no refusal of the datagram to %v", dst)
	}
}

func TestUnreachableReported(t *testing.T) {
	for _, tc := range []struct {
		name, network, ip string
		cfg               UDPConfig
	}{
		{"v4", "udp4", "127.0.0.1", UDPConfig{Workers: 2}},
		{"v4-one-worker", "udp4", "127.0.0.1", UDPConfig{Workers: 1}},
		{"v4-unordered", "udp4", "127.0.0.1", UDPConfig{Workers: 2, Unordered: true}},
		{"v4-plain", "udp4", "127.0.0.1", UDPConfig{Workers: 2, Mode: ModePlain}},
		{"v4-wildcard", "udp4", "0.0.0.0", UDPConfig{Workers: 2}},
		{"v6", "udp6", "::1", UDPConfig{Workers: 2}},
		{"v6-plain", "udp6", "::1", UDPConfig{Workers: 1, Mode: ModePlain}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dead := deadPort(t, tc.network, loopbackOf(tc.ip))
			h := &relay{dead: dead, refused: make(chan refusal, 16)}
			l := listenRelay(t, net.JoinHostPort(tc.ip, "0"), tc.cfg, h)
			to := netip.AddrPortFrom(netip.MustParseAddr(loopbackOf(tc.ip)), l.LocalAddr().Port())
			c, err := net.DialUDP(tc.network, nil, net.UDPAddrFromAddrPort(to))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()

			// Through a worker's Out, in response to a datagram.
			msg := invite("out-" + tc.name)
			if _, err := c.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			expectRefusal(t, h, msg, dead)
			echoOn(t, c, "after out")

			// Through WriteTo.
			msg = invite("writeto-" + tc.name)
			if err := l.WriteTo([]byte(msg), dead); err != nil {
				t.Fatal(err)
			}
			expectRefusal(t, h, msg, dead)
			echoOn(t, c, "after writeto")

			// WriteTo to the dead port, then at once to a live peer: the
			// second send usually takes the first one's pending error. It
			// must still be sent, and the refusal reported (a worker is
			// woken to drain).
			peer, err := net.ListenUDP(tc.network, &net.UDPAddr{IP: net.ParseIP(loopbackOf(tc.ip))})
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			live := peer.LocalAddr().(*net.UDPAddr).AddrPort()
			live = netip.AddrPortFrom(live.Addr().Unmap(), live.Port())
			for i := 0; i < 3; i++ {
				msg = invite(fmt.Sprintf("again%d-%s", i, tc.name))
				if err := l.WriteTo([]byte(msg), dead); err != nil {
					t.Fatal(err)
				}
				if err := l.WriteTo([]byte("live"), live); err != nil {
					t.Fatal(err)
				}
				expectRefusal(t, h, msg, dead)
				peer.SetDeadline(time.Now().Add(2 * time.Second))
				buf := make([]byte, 16)
				if n, err := peer.Read(buf); err != nil || string(buf[:n]) != "live" {
					t.Fatalf("live peer: %q, %v", buf[:n], err)
				}
			}
			echoOn(t, c, "at the end")
			// Received and Sent count the workers' traffic: the INVITE and three echoes
			// (the last may arrive before its sendmmsg has counted it).
			st := l.Stats()
			for deadline := time.Now().Add(time.Second); st.Sent < 4 && time.Now().Before(deadline); st = l.Stats() {
				time.Sleep(time.Millisecond)
			}
			if st.Received != 4 || st.Sent != 4 || st.Unreachable != 5 || st.SendErrors != 0 || st.RecvErrors != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func loopbackOf(ip string) string {
	switch ip {
	case "0.0.0.0":
		return "127.0.0.1"
	case "::":
		return "::1"
	}
	return ip
}

func echoOn(t *testing.T, c *net.UDPConn, when string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("%s: echo %q, %v", when, buf[:n], err)
	}
}

// TestRefusedSendKeepsBatch mixes datagrams to a dead and a live peer in
// batches: a send that fails because of an earlier datagram's ICMP error
// must be sent again, not dropped, and every refusal reported.
func TestRefusedSendKeepsBatch(t *testing.T) {
	for _, mode := range []string{ModeBatch, ModePlain} {
		t.Run(mode, func(t *testing.T) {
			peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			peer.SetReadBuffer(1 << 20)
			const fan = 7 // live, dead, live, dead, live, dead, live after the first dead
			h := &relay{dead: deadPort(t, "udp4", "127.0.0.1"), live: peer.LocalAddr().(*net.UDPAddr).AddrPort(),
				fan: fan, refused: make(chan refusal, 64)}
			// Batch 3: the sends span several sendmmsg calls, so that a
			// pending error also hits the head of a call.
			l := listenRelay(t, "127.0.0.1:0", UDPConfig{Workers: 1, Batch: 3, Mode: mode}, h)
			c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(l.LocalAddr()))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			const rounds = 3
			for i := 0; i < rounds; i++ {
				c.Write([]byte(invite(fmt.Sprint("fan", i))))
			}
			live, dead := rounds*(fan+1)/2, rounds*(1+fan/2)
			buf := make([]byte, 2048)
			for i := 0; i < live; i++ {
				peer.SetDeadline(time.Now().Add(2 * time.Second))
				if _, err := peer.Read(buf); err != nil {
					t.Fatalf("live peer got %d of %d datagrams: %v (stats %+v)", i, live, err, l.Stats())
				}
			}
			for i := 0; i < dead; i++ {
				select {
				case r := <-h.refused:
					if r.dst != h.dead || r.err != syscall.ECONNREFUSED || !bytes.HasPrefix([]byte(r.payload), []byte("INVITE sip:x SIP/2.0\r\nVia: ")) {
						t.Fatalf("refusal %q to %v (%v)", r.payload, r.dst, r.err)
					}
				case <-time.After(3 * time.Second):
					t.Fatalf("%d of %d refusals (stats %+v)", i, dead, l.Stats())
				}
			}
			echoOn(t, c, "after the batches")
			// The echo may arrive before its sendmmsg returns and counts it.
			st := l.Stats()
			for deadline := time.Now().Add(time.Second); st.Sent < uint64(rounds*(fan+1)+1) && time.Now().Before(deadline); st = l.Stats() {
				time.Sleep(time.Millisecond)
			}
			if st.Sent != uint64(rounds*(fan+1)+1) || st.SendErrors != 0 || st.Unreachable != uint64(dead) {
				t.Fatalf("stats %+v, want %d sent, %d unreachable", st, rounds*(fan+1)+1, dead)
			}
		})
	}
}

// TestNoAllocPerUnreachable checks that draining and reporting refusals
// allocates nothing per refusal.
func TestNoAllocPerUnreachable(t *testing.T) {
	var count atomic.Int64
	h := &relay{dead: deadPort(t, "udp4", "127.0.0.1"), count: &count}
	l := listenRelay(t, "127.0.0.1:0", UDPConfig{Workers: 1, Linger: -1}, h)
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(l.LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	msg := []byte(invite("alloc"))
	exchange := func(k int) {
		for i := 0; i < k; i++ {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			c.Write(msg)
			if _, err := c.Read(buf); err != nil {
				t.Fatal(err)
			}
		}
	}
	exchange(20) // warm up
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	before := count.Load()
	const n = 500
	exchange(n)
	runtime.ReadMemStats(&m1)
	refused := count.Load() - before
	if refused < n/2 { // the last ones may still be queued; ICMP may be rate-limited
		t.Fatalf("%d refusals for %d datagrams", refused, n)
	}
	per := float64(m1.Mallocs-m0.Mallocs) / float64(refused)
	t.Logf("%d refusals, %.3f allocations per refusal (client included)", refused, per)
	if per > 0.05 {
		t.Fatalf("%.2f allocations per refusal", per)
	}
}
