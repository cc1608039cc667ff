package digestauth_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/veloxsip/velox/module/digestauth"
	"github.com/veloxsip/velox/proxy"
	"github.com/veloxsip/velox/store"
	"github.com/veloxsip/velox/transport"
)

var self = netip.MustParseAddrPort("192.0.2.10:5060")

type rec struct{ sent []string }

func (r *rec) Buffer() []byte                    { return make([]byte, 0, 4096) }
func (r *rec) Local() netip.AddrPort             { return self }
func (r *rec) Proto() transport.Proto            { return transport.UDP }
func (r *rec) Send(b []byte, dst netip.AddrPort) { r.sent = append(r.sent, string(b)) }

func h(s string) string { x := sha256.Sum256([]byte(s)); return hex.EncodeToString(x[:]) }

func register(authz string) string {
	s := "REGISTER sip:example.com SIP/2.0\nVia: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK-1\n" +
		"From: <sip:alice@example.com>;tag=1\nTo: <sip:alice@example.com>\nCall-ID: a1\nCSeq: 1 REGISTER\n" +
		"Contact: <sip:alice@10.0.0.7>\n"
	if authz != "" {
		s += "Authorization: " + authz + "\n"
	}
	return strings.ReplaceAll(s+"Content-Length: 0\n\n", "\n", "\r\n")
}

func TestDigestRegister(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "v.db")
	db, err := store.Open(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AddUser(context.Background(), "alice", "example.com", "secret", false); err != nil {
		t.Fatal(err)
	}
	db.Close()
	srv := proxy.NewServer(nil, proxy.Options{})
	t.Cleanup(srv.Close)
	st, err := digestauth.New(digestauth.Options{Realm: "example.com", DB: dbPath}, srv)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetPipeline(proxy.Pipeline{{Name: "auth", Handler: st}, {Name: "ok", Handler: proxy.HandlerFunc(func(c *proxy.Context) proxy.Action {
		c.Reply(200, "OK")
		return proxy.Stop
	})}})
	srv.AddListener(transport.UDP, self, "")
	w := srv.NewWorker(0).(*proxy.Worker)
	src := netip.MustParseAddrPort("198.51.100.7:5060")
	do := func(msg string) string {
		r := &rec{}
		w.Handle([]byte(msg), src, r)
		if len(r.sent) != 1 {
			t.Fatalf("%d responses", len(r.sent))
		}
		return r.sent[0]
	}
	ch := do(register(""))
	if !strings.HasPrefix(ch, "SIP/2.0 401 ") || !strings.Contains(ch, `WWW-Authenticate: Digest realm="example.com"`) || !strings.Contains(ch, "algorithm=SHA-256") {
		t.Fatalf("challenge:\n%s", ch)
	}
	nonce := regexp.MustCompile(`nonce="([^"]+)"`).FindStringSubmatch(ch)[1]
	answer := func(password, nc string) string {
		ha1 := h("alice:example.com:" + password)
		resp := h(ha1 + ":" + nonce + ":" + nc + ":c0ffee:auth:" + h("REGISTER:sip:example.com"))
		return `Digest username="alice", realm="example.com", nonce="` + nonce + `", uri="sip:example.com", algorithm=SHA-256, qop=auth, nc=` + nc + `, cnonce="c0ffee", response="` + resp + `"`
	}
	if got := do(register(answer("secret", "00000001"))); !strings.HasPrefix(got, "SIP/2.0 200 ") {
		t.Fatalf("right password:\n%s", got)
	}
	// The same request again (a UDP retransmission): accepted again.
	if got := do(register(answer("secret", "00000001"))); !strings.HasPrefix(got, "SIP/2.0 200 ") {
		t.Fatalf("retransmission of an accepted REGISTER:\n%s", got)
	}
	// The nonce-count reused by another request (a new CSeq): a replay.
	replay := strings.Replace(register(answer("secret", "00000001")), "CSeq: 1 REGISTER", "CSeq: 2 REGISTER", 1)
	if got := do(replay); !strings.Contains(got, "stale=true") {
		t.Fatalf("replayed nonce-count must get a stale challenge:\n%s", got)
	}
	for i, want := range []string{"401", "401", "403"} {
		if got := do(register(answer("wrong", "0000000"+string(rune('2'+i))))); !strings.HasPrefix(got, "SIP/2.0 "+want+" ") {
			t.Fatalf("wrong password #%d: want %s, got:\n%s", i+1, want, got)
		}
	}
}
