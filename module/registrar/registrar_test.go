package registrar_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/veloxsip/velox/module/lookup"
	"github.com/veloxsip/velox/module/registrar"
	"github.com/veloxsip/velox/module/relay"
	"github.com/veloxsip/velox/proxy"
	"github.com/veloxsip/velox/transport"
)

var (
	self   = netip.MustParseAddrPort("192.0.2.10:5060")
	phone  = netip.MustParseAddrPort("198.51.100.7:40123") // behind NAT: not the Contact's address
	caller = netip.MustParseAddrPort("192.0.2.1:5061")
)

type rec struct {
	sent []string
	dsts []netip.AddrPort
}

func (r *rec) Buffer() []byte         { return make([]byte, 0, 4096) }
func (r *rec) Local() netip.AddrPort  { return self }
func (r *rec) Proto() transport.Proto { return transport.UDP }
func (r *rec) Send(b []byte, dst netip.AddrPort) {
	r.sent = append(r.sent, string(b))
	r.dsts = append(r.dsts, dst)
}
func (r *rec) WriteTo(b []byte, dst netip.AddrPort) error {
	r.Send(b, dst)
	return nil
}

func setup(t testing.TB, redirect bool) (*proxy.Worker, *rec) {
	t.Helper()
	srv := proxy.NewServer(nil, proxy.Options{})
	t.Cleanup(srv.Close)
	reg, err := registrar.New(registrar.Options{Domains: []string{"example.com"}, MinExpires: 60}, srv)
	if err != nil {
		t.Fatal(err)
	}
	lk, err := lookup.New(lookup.Options{Domains: []string{"example.com"}, Redirect: redirect}, srv)
	if err != nil {
		t.Fatal(err)
	}
	rl, _ := relay.New(relay.Options{})
	srv.SetPipeline(proxy.Pipeline{{Name: "registrar", Handler: reg}, {Name: "lookup", Handler: lk}, {Name: "relay", Handler: rl}})
	srv.AddListener(transport.UDP, self, "")
	r := &rec{}
	srv.AddConn(transport.UDP, self, r)
	return srv.NewWorker(0).(*proxy.Worker), r
}

func register(cseq, contact string) string {
	return strings.ReplaceAll("REGISTER sip:example.com SIP/2.0\n"+
		"Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK-r"+cseq+";rport\n"+
		"From: <sip:alice@example.com>;tag=r1\nTo: <sip:alice@example.com>\n"+
		"Call-ID: reg-1@10.0.0.7\nCSeq: "+cseq+" REGISTER\nMax-Forwards: 70\n"+
		"Contact: "+contact+"\nContent-Length: 0\n\n", "\n", "\r\n")
}

func (r *rec) do(w *proxy.Worker, msg string, src netip.AddrPort) string {
	r.sent, r.dsts = nil, nil
	w.Handle([]byte(msg), src, r)
	return strings.Join(r.sent, "\n----\n")
}

func TestRegisterThenCall(t *testing.T) {
	w, r := setup(t, false)
	out := r.do(w, register("1", "<sip:alice@10.0.0.7:5060>;expires=600"), phone)
	if !strings.HasPrefix(out, "SIP/2.0 200 OK\r\n") || !strings.Contains(out, "Contact: <sip:alice@10.0.0.7:5060>;expires=600\r\n") ||
		!strings.Contains(out, "\r\nDate: ") || r.dsts[0] != phone {
		t.Fatalf("REGISTER answer:\n%s", out)
	}
	// The same request again (a retransmission) gets the same answer.
	if out := r.do(w, register("1", "<sip:alice@10.0.0.7:5060>;expires=600"), phone); !strings.HasPrefix(out, "SIP/2.0 200 OK") {
		t.Fatalf("retransmission:\n%s", out)
	}
	// A refresh that is too short.
	if out := r.do(w, register("2", "<sip:alice@10.0.0.7:5060>;expires=10"), phone); !strings.HasPrefix(out, "SIP/2.0 423 ") || !strings.Contains(out, "Min-Expires: 60\r\n") {
		t.Fatalf("short expiry:\n%s", out)
	}
	// An older CSeq after a newer one: out of order.
	r.do(w, register("5", "<sip:alice@10.0.0.7:5060>;expires=600"), phone)
	if out := r.do(w, register("4", "<sip:alice@10.0.0.7:5060>;expires=600"), phone); !strings.HasPrefix(out, "SIP/2.0 500 ") {
		t.Fatalf("out of order:\n%s", out)
	}
	invite := strings.ReplaceAll("INVITE sip:alice@example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1:5061;branch=z9hG4bK-i1\n"+
		"From: <sip:bob@b.example>;tag=b1\nTo: <sip:alice@example.com>\nCall-ID: call-1\nCSeq: 1 INVITE\nMax-Forwards: 70\nContent-Length: 0\n\n", "\n", "\r\n")
	r.do(w, invite, caller)
	found := false
	for i, s := range r.sent {
		if strings.HasPrefix(s, "INVITE sip:alice@10.0.0.7:5060 SIP/2.0\r\n") && r.dsts[i] == phone {
			found = true
		}
	}
	if !found {
		t.Fatalf("INVITE not sent to the registered contact through the NAT address:\n%s", strings.Join(r.sent, "\n----\n"))
	}
	// Unregister, then the user has no binding.
	if out := r.do(w, register("6", "<sip:alice@10.0.0.7:5060>;expires=0"), phone); !strings.HasPrefix(out, "SIP/2.0 200 OK") || strings.Contains(out, "Contact:") {
		t.Fatalf("unregister:\n%s", out)
	}
	inv2 := strings.Replace(strings.Replace(invite, "z9hG4bK-i1", "z9hG4bK-i2", 1), "call-1", "call-2", 1)
	if out := r.do(w, inv2, caller); !strings.HasPrefix(out, "SIP/2.0 404 ") {
		t.Fatalf("call to an unregistered user:\n%s", out)
	}
}

func TestRedirect(t *testing.T) {
	w, r := setup(t, true)
	r.do(w, register("1", "<sip:alice@10.0.0.7:5060>;q=0.5, <sip:alice@10.0.0.8:5060>"), phone)
	invite := strings.ReplaceAll("INVITE sip:alice@example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1:5061;branch=z9hG4bK-i1\n"+
		"From: <sip:bob@b.example>;tag=b1\nTo: <sip:alice@example.com>\nCall-ID: call-1\nCSeq: 1 INVITE\nMax-Forwards: 70\nContent-Length: 0\n\n", "\n", "\r\n")
	out := r.do(w, invite, caller)
	if !strings.HasPrefix(out, "SIP/2.0 302 ") || strings.Index(out, "10.0.0.8") > strings.Index(out, "10.0.0.7") || !strings.Contains(out, ";q=0.5;") {
		t.Fatalf("302 with contacts by q:\n%s", out)
	}
}
