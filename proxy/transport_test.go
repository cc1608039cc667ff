package proxy_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/veloxsip/velox/module/relay"
	"github.com/veloxsip/velox/transport"
)

// streamRecorder is a recorder that says its messages travel over a
// stream transport.
type streamRecorder struct {
	recorder
	proto transport.Proto
}

func (r *streamRecorder) Proto() transport.Proto { return r.proto }

// withTCP adds a TCP listener on the proxy's address to the fixture and
// returns the recorder that stands for its connections.
func (f *sfx) withTCP() *streamRecorder {
	tcp := &streamRecorder{recorder{buf: make([]byte, 0, 65535)}, transport.TCP}
	f.srv.AddListener(transport.TCP, proxyAddr, "")
	f.srv.AddConn(transport.TCP, proxyAddr, tcp)
	return tcp
}

// A request from UDP relayed to a TCP destination: our Via says TCP, two
// Record-Routes (RFC 5658) name both sides, nothing is retransmitted over
// the stream, and the answer goes back over UDP.
func TestRelayUDPToTCP(t *testing.T) {
	f := newStateful(t, relay.Options{To: []string{"tcp:" + uasAddr.String()}})
	tcp := f.withTCP()
	inv := string(crlf(invite))
	out := f.in(inv, uacAddr)
	f.one(out, uacAddr, "SIP/2.0 100 ")
	none(t, out, "INVITE ")
	fwd := f.one(tcp.sent, uasAddr, "INVITE ")
	if !strings.Contains(fwd, "Via: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bKVx") {
		t.Fatalf("Via of the TCP branch:\n%s", fwd)
	}
	rr := "Record-Route: <sip:192.0.2.10:5060;transport=tcp;r2=on;lr>\r\nRecord-Route: <sip:192.0.2.10:5060;r2=on;lr>\r\n"
	if !strings.Contains(fwd, rr) {
		t.Fatalf("want the double Record-Route\n%s\nin:\n%s", rr, fwd)
	}
	// Timer A does not run over TCP.
	tcp.sent = nil
	f.wait(4 * time.Second)
	none(t, tcp.sent, "INVITE ")
	// The callee answers over its connection; the 200 goes to the caller over UDP.
	tcp.sent = nil
	f.r.sent = nil
	f.w.Handle([]byte(reply(t, fwd, 200, "OK", "b1")), uasAddr, tcp)
	ok := f.one(f.r.sent, uacAddr, "SIP/2.0 200 ")
	if strings.Contains(ok, "SIP/2.0/TCP") {
		t.Fatalf("our Via left in the 200:\n%s", ok)
	}
	if f.live() != 1 { // waiting out timer L
		t.Fatalf("live transactions: %d", f.live())
	}
	f.wait(40 * time.Second)
	if f.live() != 0 {
		t.Fatalf("transaction not released: %d live", f.live())
	}
}

// A request that arrived over TCP is answered over that connection (the
// source address), whatever the Via says, and its Via gets received and
// rport so that stateless responses find the connection too.
func TestTCPRequestAnsweredOnConnection(t *testing.T) {
	f := newStateful(t, relay.Options{To: []string{uasAddr.String()}})
	tcp := f.withTCP()
	src := netip.MustParseAddrPort("192.0.2.1:40001") // the caller's ephemeral port
	inv := strings.Replace(string(crlf(invite)), "SIP/2.0/UDP 192.0.2.1:5061;branch=z9hG4bK-1;rport", "SIP/2.0/TCP 192.0.2.1:5061;branch=z9hG4bK-1", 1)
	tcp.sent, f.r.sent = nil, nil
	f.w.Handle([]byte(inv), src, tcp)
	f.one(tcp.sent, src, "SIP/2.0 100 ")
	fwd := f.one(f.r.sent, uasAddr, "INVITE ") // leaves from UDP through the listener's Conn
	if !strings.Contains(fwd, "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKVx") ||
		!strings.Contains(fwd, "Via: SIP/2.0/TCP 192.0.2.1:5061;branch=z9hG4bK-1;rport=40001") {
		t.Fatalf("forwarded INVITE:\n%s", fwd)
	}
	// The callee's 486 comes back over UDP; the final response goes over the connection.
	tcp.sent, f.r.sent = nil, nil
	f.w.Handle([]byte(reply(t, fwd, 486, "Busy Here", "b1")), uasAddr, f.r)
	f.one(tcp.sent, src, "SIP/2.0 486 ")
	// No retransmission of the final response over TCP (timer G).
	tcp.sent = nil
	f.wait(2 * time.Second)
	none(t, tcp.sent, "SIP/2.0 486 ")
}

// An in-dialog request carrying our two r2 Record-Routes as Route loses
// both (one line or two) and goes to the Request-URI over its transport.
func TestDoubleRouteRemoved(t *testing.T) {
	for _, routes := range []string{
		"Route: <sip:192.0.2.10:5060;transport=tcp;r2=on;lr>, <sip:192.0.2.10:5060;r2=on;lr>\r\n",
		"Route: <sip:192.0.2.10:5060;transport=tcp;r2=on;lr>\r\nRoute: <sip:192.0.2.10:5060;r2=on;lr>\r\n",
		"Route: <sip:192.0.2.10:5060;transport=tcp;r2=on;lr>,<sip:192.0.2.10:5060;r2=on;lr>,<sip:192.0.2.30;lr>\r\n",
	} {
		f := newStateful(t, relay.Options{})
		tcp := f.withTCP()
		bye := "BYE sip:alice@192.0.2.1:5061 SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.20:5070;branch=z9hG4bK-b1\r\n" + routes +
			"Max-Forwards: 70\r\nFrom: <sip:bob@b.example>;tag=b1\r\nTo: <sip:alice@a.example>;tag=a1\r\nCall-ID: c1@a\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
		f.r.sent = nil
		f.w.Handle([]byte(bye), netip.MustParseAddrPort("192.0.2.20:40002"), tcp)
		want := uacAddr
		if strings.Contains(routes, "192.0.2.30") {
			want = netip.MustParseAddrPort("192.0.2.30:5060")
		}
		fwd := f.one(f.r.sent, want, "BYE ")
		if strings.Contains(fwd, "192.0.2.10:5060;") && strings.Contains(fwd, "Route: <sip:192.0.2.10") {
			t.Fatalf("our Route left:\n%s", fwd)
		}
		if want != uacAddr && !strings.Contains(fwd, "Route: <sip:192.0.2.30;lr>\r\n") {
			t.Fatalf("the next Route lost:\n%s", fwd)
		}
	}
}

// A WebSocket client's INVITE gets a Contact alias naming its connection;
// the callee's in-dialog request to that Contact goes back over the
// connection, without the alias.
func TestWebSocketContactAlias(t *testing.T) {
	f := newStateful(t, relay.Options{To: []string{uasAddr.String()}})
	ws := &streamRecorder{recorder{buf: make([]byte, 0, 65535)}, transport.WS}
	f.srv.AddListener(transport.WS, proxyAddr, "")
	f.srv.AddConn(transport.WS, proxyAddr, ws)
	client := netip.MustParseAddrPort("192.0.2.1:50123")
	inv := strings.NewReplacer("SIP/2.0/UDP 192.0.2.1:5061;branch=z9hG4bK-1;rport", "SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK-1",
		"Contact: <sip:alice@192.0.2.1:5061>", "Contact: <sip:k3t8@df7jal23ls0d.invalid;transport=ws;ob>").Replace(string(crlf(invite)))
	f.r.sent = nil
	f.w.Handle([]byte(inv), client, ws)
	fwd := f.one(f.r.sent, uasAddr, "INVITE ")
	if !strings.Contains(fwd, "Contact: <sip:k3t8@df7jal23ls0d.invalid;transport=ws;ob;alias=192.0.2.1~50123~5>\r\n") {
		t.Fatalf("no alias in the Contact:\n%s", fwd)
	}
	if !strings.Contains(fwd, "Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK-1;rport=50123;received=192.0.2.1\r\n") {
		t.Fatalf("WebSocket Via without received/rport:\n%s", fwd)
	}
	// The callee sends BYE to the aliased Contact along our two routes.
	bye := "BYE sip:k3t8@df7jal23ls0d.invalid;transport=ws;ob;alias=192.0.2.1~50123~5 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.20:5070;branch=z9hG4bK-b1\r\n" +
		"Route: <sip:192.0.2.10:5060;r2=on;lr>, <sip:192.0.2.10:5060;transport=ws;r2=on;lr>\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:bob@b.example>;tag=b1\r\nTo: <sip:alice@a.example>;tag=a1\r\nCall-ID: c1@a\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
	ws.sent, f.r.sent = nil, nil
	f.w.Handle([]byte(bye), uasAddr, f.r)
	got := f.one(ws.sent, client, "BYE ")
	if !strings.HasPrefix(got, "BYE sip:k3t8@df7jal23ls0d.invalid;transport=ws;ob SIP/2.0\r\nVia: SIP/2.0/WS 192.0.2.10:5060;branch=") {
		t.Fatalf("BYE to the WebSocket client:\n%s", got)
	}
}

// aliasRecorder is a stream recorder that notes RFC 5923 aliases.
type aliasRecorder struct {
	streamRecorder
	aliases [][2]netip.AddrPort
}

func (r *aliasRecorder) Alias(conn, alias netip.AddrPort) {
	r.aliases = append(r.aliases, [2]netip.AddrPort{conn, alias})
}

// A request over TCP whose Via carries ;alias makes its connection
// reachable at the sent-by address, but only for the sender's own IP.
func TestTCPViaAlias(t *testing.T) {
	f := newStateful(t, relay.Options{To: []string{uasAddr.String()}})
	tcp := &aliasRecorder{streamRecorder: streamRecorder{recorder{buf: make([]byte, 0, 65535)}, transport.TCP}}
	f.srv.AddListener(transport.TCP, proxyAddr, "")
	f.srv.AddConn(transport.TCP, proxyAddr, tcp)
	src := netip.MustParseAddrPort("192.0.2.1:40001")
	for i, via := range []string{"SIP/2.0/TCP 192.0.2.1:5061;branch=z9hG4bK-1;alias", "SIP/2.0/TCP 192.0.2.99:5061;branch=z9hG4bK-2;alias"} {
		inv := strings.Replace(inviteN(i+1), "SIP/2.0/UDP 192.0.2.1:5061;branch=z9hG4bK-"+string(rune('1'+i))+";rport", via, 1)
		f.w.Handle([]byte(inv), src, tcp)
	}
	want := [2]netip.AddrPort{src, netip.MustParseAddrPort("192.0.2.1:5061")}
	if len(tcp.aliases) != 1 || tcp.aliases[0] != want {
		t.Fatalf("aliases %v, want only %v", tcp.aliases, want)
	}
}
