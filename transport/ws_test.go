package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// wsClient is a test WebSocket client (gobwas/ws's Dialer).
type wsClient struct {
	net.Conn
	r io.Reader
}

func dialWS(t testing.TB, l *StreamListener, protocols []string, origin string, tlsCfg *tls.Config) (*wsClient, ws.Handshake, error) {
	t.Helper()
	d := ws.Dialer{Protocols: protocols, Timeout: 5 * time.Second, TLSConfig: tlsCfg}
	if origin != "" {
		d.Header = ws.HandshakeHeaderHTTP(http.Header{"Origin": {origin}})
	}
	scheme := "ws"
	if l.Proto() == WSS {
		scheme = "wss"
	}
	url := fmt.Sprintf("%s://%s/", scheme, l.LocalAddr())
	c, br, hs, err := d.Dial(context.Background(), url)
	if err != nil {
		return nil, hs, err
	}
	t.Cleanup(func() { c.Close() })
	wc := &wsClient{Conn: c, r: c}
	if br != nil {
		wc.r = io.MultiReader(br, c)
	}
	return wc, hs, nil
}

func (c *wsClient) send(t testing.TB, op ws.OpCode, fin bool, p string) {
	t.Helper()
	f := ws.MaskFrameInPlace(ws.NewFrame(op, fin, []byte(p)))
	if err := ws.WriteFrame(c, f); err != nil {
		t.Fatal(err)
	}
}

func (c *wsClient) frame(t testing.TB) ws.Frame {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := ws.ReadFrame(c.r)
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	if f.Header.Masked {
		t.Fatal("server frame masked")
	}
	return f
}

func (c *wsClient) expectText(t testing.TB, want string) {
	t.Helper()
	f := c.frame(t)
	if f.Header.OpCode != ws.OpText || !f.Header.Fin || string(f.Payload) != want {
		t.Fatalf("frame %+v %q, want text %q", f.Header, f.Payload, want)
	}
}

func (c *wsClient) expectClose(t testing.TB, code ws.StatusCode) {
	t.Helper()
	f := c.frame(t)
	if f.Header.OpCode != ws.OpClose {
		t.Fatalf("frame %+v, want close", f.Header)
	}
	if got, _ := ws.ParseCloseFrameData(f.Payload); got != code {
		t.Fatalf("close code %d, want %d", got, code)
	}
	expectClosed(t, c)
}

func listenWS(t testing.TB, s *Streams, proto Proto, ca *testCA, origins ...string) *StreamListener {
	t.Helper()
	cfg := StreamConfig{Proto: proto, Addr: netip.MustParseAddrPort("127.0.0.1:0"), Origins: origins}
	if proto == WSS {
		cf, kf, _ := ca.issue(t, "wss", "sip.example.com", false)
		cfg.TLS = &TLSFiles{Cert: cf, Key: kf}
	}
	return listenStream(t, s, cfg)
}

func TestWSRoundTrip(t *testing.T) {
	ca := newTestCA(t)
	for _, proto := range []Proto{WS, WSS} {
		t.Run(proto.String(), func(t *testing.T) {
			h := newTestHandler()
			var lastProto atomic.Uint32
			h.f = func(data []byte, src netip.AddrPort, out *StreamOut) {
				lastProto.Store(uint32(out.Proto()))
				out.Send(append(out.Buffer(), data...), src)
			}
			s := startStreams(t, StreamsOptions{}, h)
			l := listenWS(t, s, proto, ca)
			c, hs, err := dialWS(t, l, []string{"foo", "sip"}, "", &tls.Config{RootCAs: ca.pool, ServerName: "sip.example.com"})
			if err != nil {
				t.Fatal(err)
			}
			if hs.Protocol != "sip" {
				t.Fatalf("subprotocol %q", hs.Protocol)
			}
			m := sipMsg("ws", "hello")
			c.send(t, ws.OpText, true, m)
			c.expectText(t, m)
			if p := Proto(lastProto.Load()); p != proto {
				t.Fatalf("out.Proto() %v", p)
			}
			// Binary messages, a long one, and a fragmented one.
			c.send(t, ws.OpBinary, true, m)
			c.expectText(t, m)
			long := sipMsg("long", strings.Repeat("L", 20000))
			c.send(t, ws.OpText, true, long)
			c.expectText(t, long)
			c.send(t, ws.OpText, false, m[:10])
			c.send(t, ws.OpPing, true, "in between")
			c.send(t, ws.OpContinuation, false, m[10:20])
			c.send(t, ws.OpContinuation, true, m[20:])
			if f := c.frame(t); f.Header.OpCode != ws.OpPong || string(f.Payload) != "in between" {
				t.Fatalf("frame %+v %q, want pong", f.Header, f.Payload)
			}
			c.expectText(t, m)
			// WriteTo the client's address uses its connection.
			ca := c.LocalAddr().(*net.TCPAddr).AddrPort()
			if err := s.WriteTo(proto, []byte(m), ca); err != nil {
				t.Fatal(err)
			}
			c.expectText(t, m)
			if err := s.WriteTo(proto, []byte(m), freePort(t)); err != ErrNoConnection {
				t.Fatalf("WriteTo without connection: %v", err)
			}
			if st := s.Stats(); st.MessagesIn != 4 || st.OpenBy[proto] != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestWSHandshakeRejections(t *testing.T) {
	h := newTestHandler()
	s := startStreams(t, StreamsOptions{}, h)
	any := listenWS(t, s, WS, nil)
	allow := listenWS(t, s, WS, nil, "https://good.example", "https://Also.Good.example")
	for _, tc := range []struct {
		l         *StreamListener
		protocols []string
		origin    string
		status    int
	}{
		{any, nil, "", 400},
		{any, []string{"chat"}, "", 400},
		{any, []string{"sip"}, "https://whatever.example", 0},
		{allow, []string{"sip"}, "https://evil.example", 403},
		{allow, []string{"sip"}, "https://good.example", 0},
		{allow, []string{"sip"}, "https://also.good.example", 0},
		{allow, []string{"sip"}, "", 0}, // not a browser
	} {
		_, _, err := dialWS(t, tc.l, tc.protocols, tc.origin, nil)
		var se ws.StatusError
		switch {
		case tc.status == 0 && err != nil:
			t.Errorf("%v %q: %v", tc.protocols, tc.origin, err)
		case tc.status != 0 && (!errors.As(err, &se) || int(se) != tc.status):
			t.Errorf("%v %q: %v, want status %d", tc.protocols, tc.origin, err, tc.status)
		}
	}
	waitFor(t, "rejections counted", func() bool { return s.Stats().HandshakeFailures == 3 })
	waitFor(t, "rejected connections closed", func() bool { return s.Stats().OpenBy[WS] == 4 })
	// Not HTTP at all.
	c := dialTCP(t, any.LocalAddr())
	mustWrite(t, c, sipMsg("plain", ""))
	expectClosed(t, c)
}

func TestWSCloseRemovesConnection(t *testing.T) {
	h := newTestHandler()
	var fwd atomic.Pointer[netip.AddrPort] // where to forward messages, once set
	h.f = func(data []byte, src netip.AddrPort, out *StreamOut) {
		if dst := fwd.Load(); dst != nil {
			out.Send(data, *dst)
		}
	}
	s := startStreams(t, StreamsOptions{}, h)
	l := listenWS(t, s, WS, nil)
	var clients []*wsClient
	for i := 0; i < 10; i++ {
		c, _, err := dialWS(t, l, []string{"sip"}, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	waitFor(t, "open", func() bool { return s.Stats().Open == 10 })
	// A close frame is answered with the same code, then the server closes.
	clients[0].send(t, ws.OpClose, true, string(ws.NewCloseFrameBody(ws.StatusGoingAway, "bye")))
	clients[0].expectClose(t, ws.StatusGoingAway)
	// Clients that just go away.
	for _, c := range clients[1:5] {
		c.Close()
	}
	waitFor(t, "closed", func() bool { return s.Stats().Open == 5 })
	a := clients[0].LocalAddr().(*net.TCPAddr).AddrPort()
	if err := s.WriteTo(WS, []byte("x"), a); err != ErrNoConnection {
		t.Fatalf("WriteTo a closed connection: %v", err)
	}
	// A send to a WS address without a connection is reported.
	got := make(chan error, 1)
	fwd.Store(&a)
	clients[5].send(t, ws.OpText, true, sipMsg("fwd", ""))
	select {
	case u := <-h.unreach:
		got <- u.err
	case <-time.After(5 * time.Second):
		t.Fatalf("no report; stats %+v handled %d", s.Stats(), h.n.Load())
	}
	if err := <-got; err != ErrNoConnection {
		t.Fatalf("report %v", err)
	}
}

func TestWSProtocolErrors(t *testing.T) {
	h := newTestHandler()
	s := startStreams(t, StreamsOptions{MaxMessage: 1000}, h)
	l := listenWS(t, s, WS, nil)
	dial := func() *wsClient {
		c, _, err := dialWS(t, l, []string{"sip"}, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Too big in one frame, and in fragments.
	c := dial()
	c.send(t, ws.OpText, true, strings.Repeat("x", 1001))
	c.expectClose(t, ws.StatusMessageTooBig)
	c = dial()
	c.send(t, ws.OpText, false, strings.Repeat("x", 600))
	c.send(t, ws.OpContinuation, true, strings.Repeat("x", 600))
	c.expectClose(t, ws.StatusMessageTooBig)
	// An unmasked client frame.
	c = dial()
	ws.WriteFrame(c, ws.NewTextFrame([]byte("unmasked")))
	c.expectClose(t, ws.StatusProtocolError)
	// A continuation without a start.
	c = dial()
	c.send(t, ws.OpContinuation, true, "x")
	c.expectClose(t, ws.StatusProtocolError)
	waitFor(t, "closed", func() bool { st := s.Stats(); return st.Open == 0 && st.FramingErrors == 4 })
	if h.n.Load() != 0 {
		t.Fatal("bad frames handled")
	}
}

// TestWSIdlePing: a connection silent for half the IdleTimeout gets a
// ping; one that answers stays, one that does not is closed.
func TestWSIdlePing(t *testing.T) {
	h := newTestHandler()
	s := startStreams(t, StreamsOptions{IdleTimeout: 300 * time.Millisecond}, h)
	l := listenWS(t, s, WS, nil)
	answering, _, err := dialWS(t, l, []string{"sip"}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	silent, _, err := dialWS(t, l, []string{"sip"}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	pings := 0
	for time.Since(start) < 700*time.Millisecond {
		f := answering.frame(t)
		if f.Header.OpCode != ws.OpPing {
			t.Fatalf("frame %+v", f.Header)
		}
		pings++
		answering.send(t, ws.OpPong, true, string(f.Payload))
	}
	if f := silent.frame(t); f.Header.OpCode != ws.OpPing {
		t.Fatalf("frame %+v", f.Header)
	}
	expectClosed(t, silent)
	st := s.Stats()
	if pings < 2 || st.IdleClosed != 1 || st.Open != 1 {
		t.Fatalf("%d pings, stats %+v", pings, st)
	}
}

// TestWSEarlyFrame: a frame sent right behind the upgrade request (in the
// same write) is not lost.
func TestWSEarlyFrame(t *testing.T) {
	h := newTestHandler()
	s := startStreams(t, StreamsOptions{}, h)
	l := listenWS(t, s, WS, nil)
	c := dialTCP(t, l.LocalAddr())
	m := sipMsg("early", "")
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n\r\n"
	f := ws.MaskFrameInPlace(ws.NewTextFrame([]byte(m)))
	frame, _ := ws.CompileFrame(f)
	mustWrite(t, c, req+string(frame))
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Protocol") != "sip" {
		t.Fatalf("response %v %v", resp, err)
	}
	got, err := ws.ReadFrame(br)
	if err != nil || string(got.Payload) != m {
		t.Fatalf("echo %q %v", got.Payload, err)
	}
}

func BenchmarkWSEcho(b *testing.B) {
	h := newTestHandler()
	s := startStreams(b, StreamsOptions{Workers: 2}, h)
	l := listenWS(b, s, WS, nil)
	c, _, err := dialWS(b, l, []string{"sip"}, "", nil)
	if err != nil {
		b.Fatal(err)
	}
	m := []byte(sipMsg("echo", "v=0\r\n"))
	frame, _ := ws.CompileFrame(ws.MaskFrameInPlace(ws.NewTextFrame(append([]byte(nil), m...))))
	reply, _ := ws.CompileFrame(ws.NewTextFrame(m))
	e := &echoConn{c: c, msg: frame, buf: make([]byte, len(reply))}
	b.ReportAllocs()
	b.SetBytes(int64(len(m)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := e.roundTrip(); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzWSFrames writes arbitrary bytes to a WebSocket connection after a
// valid upgrade. The server must never hand its handler a message over
// MaxMessage, must answer or close without hanging, and must drop the
// connection once the client is gone.
func FuzzWSFrames(f *testing.F) {
	const maxMessage = 2000
	masked := func(op ws.OpCode, fin bool, p string) []byte {
		var b bytes.Buffer
		ws.WriteFrame(&b, ws.MaskFrameInPlace(ws.NewFrame(op, fin, []byte(p))))
		return b.Bytes()
	}
	m := sipMsg("fz", "hello")
	f.Add(masked(ws.OpText, true, m))
	f.Add(append(masked(ws.OpText, false, m[:7]), masked(ws.OpContinuation, true, m[7:])...))
	f.Add(append(masked(ws.OpPing, true, "p"), masked(ws.OpBinary, true, m)...))
	f.Add(masked(ws.OpClose, true, "\x03\xe8"))
	f.Add(masked(ws.OpText, true, strings.Repeat("x", maxMessage+1)))
	f.Add([]byte{0x81, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}) // 2^63-1 bytes
	f.Add([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'})                                    // unmasked
	f.Add([]byte{0x8f, 0x80, 0, 0, 0, 0})                                                 // unknown opcode

	var biggest atomic.Int64
	h := newTestHandler()
	h.f = func(data []byte, src netip.AddrPort, out *StreamOut) {
		if n := int64(len(data)); n > biggest.Load() {
			biggest.Store(n)
		}
		out.Send(append(out.Buffer(), data...), src)
	}
	s := startStreams(f, StreamsOptions{MaxMessage: maxMessage, Workers: 1}, h)
	l := listenWS(f, s, WS, nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, _, err := dialWS(t, l, []string{"sip"}, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		c.Write(data)
		// Read whatever the server answers until it closes or goes quiet.
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		io.Copy(io.Discard, c)
		c.Close()
		if b := biggest.Load(); b > maxMessage {
			t.Fatalf("handler got a %d-byte message, limit %d", b, maxMessage)
		}
		waitFor(t, "the connection dropped", func() bool { return s.Stats().Open == 0 })
	})
}
