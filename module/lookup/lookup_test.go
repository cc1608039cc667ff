package lookup_test

import (
	"bytes"
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veloxsip/velox/module/lookup"
	"github.com/veloxsip/velox/module/registrar"
	"github.com/veloxsip/velox/proxy"
	"github.com/veloxsip/velox/store"
	"github.com/veloxsip/velox/transport"
)

var (
	self   = netip.MustParseAddrPort("192.0.2.10:5060")
	phone  = netip.MustParseAddrPort("198.51.100.7:40123")
	caller = netip.MustParseAddrPort("192.0.2.1:5061")
)

// rec keeps the last message sent, in a reused buffer.
type rec struct {
	buf  []byte
	last []byte
	n    int
}

func (r *rec) Buffer() []byte         { return r.buf[:0] }
func (r *rec) Local() netip.AddrPort  { return self }
func (r *rec) Proto() transport.Proto { return transport.UDP }
func (r *rec) Send(b []byte, dst netip.AddrPort) {
	r.last = append(r.last[:0], b...)
	r.n++
}
func (r *rec) WriteTo(b []byte, dst netip.AddrPort) error {
	r.Send(b, dst)
	return nil
}

// status returns the status code of the last response ("" for a request).
func (r *rec) status() string {
	s, ok := bytes.CutPrefix(r.last, []byte("SIP/2.0 "))
	if !ok || len(s) < 3 {
		return ""
	}
	switch string(s[:3]) { // constant strings: no allocation
	case "200":
		return "200"
	case "404":
		return "404"
	case "480":
		return "480"
	}
	return string(s[:3])
}

// setup builds registrar → lookup → a step that answers 200 to whatever
// lookup let through (so a routed request shows as 200). db "" runs lookup
// without a subscriber database.
func setup(t testing.TB, db string) (*proxy.Worker, *rec) {
	t.Helper()
	srv := proxy.NewServer(nil, proxy.Options{})
	t.Cleanup(srv.Close)
	reg, err := registrar.New(registrar.Options{Domains: []string{"example.com"}}, srv)
	if err != nil {
		t.Fatal(err)
	}
	lk, err := lookup.New(lookup.Options{Domains: []string{"example.com"}, DB: db}, srv)
	if err != nil {
		t.Fatal(err)
	}
	routed := proxy.HandlerFunc(func(c *proxy.Context) proxy.Action {
		if len(c.Targets) == 0 {
			c.Reply(599, "No Targets")
		} else {
			c.Reply(200, "Routed")
		}
		return proxy.Stop
	})
	srv.SetPipeline(proxy.Pipeline{{Name: "registrar", Handler: reg}, {Name: "lookup", Handler: lk}, {Name: "routed", Handler: routed}})
	srv.AddListener(transport.UDP, self, "")
	r := &rec{buf: make([]byte, 0, 4096)}
	srv.AddConn(transport.UDP, self, r)
	return srv.NewWorker(0).(*proxy.Worker), r
}

func subscriberDB(t testing.TB, users ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "v.db")
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, u := range users {
		user, dom, _ := strings.Cut(u, "@")
		if err := db.AddUser(context.Background(), user, dom, "secret", false); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func register(user, cseq, expires string) []byte {
	return []byte(strings.ReplaceAll("REGISTER sip:example.com SIP/2.0\n"+
		"Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK-r"+cseq+";rport\n"+
		"From: <sip:"+user+"@example.com>;tag=r1\nTo: <sip:"+user+"@example.com>\n"+
		"Call-ID: reg-"+user+"@10.0.0.7\nCSeq: "+cseq+" REGISTER\nMax-Forwards: 70\n"+
		"Contact: <sip:"+user+"@10.0.0.7:5060>;expires="+expires+"\nContent-Length: 0\n\n", "\n", "\r\n"))
}

func invite(ruri string) []byte {
	return []byte(strings.ReplaceAll("INVITE "+ruri+" SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1:5061;branch=z9hG4bK-i1\n"+
		"From: <sip:bob@b.example>;tag=b1\nTo: <"+ruri+">\nCall-ID: call-1\nCSeq: 1 INVITE\nMax-Forwards: 70\nContent-Length: 0\n\n", "\n", "\r\n"))
}

func (r *rec) do(w *proxy.Worker, msg []byte, src netip.AddrPort) string {
	r.last = r.last[:0]
	w.Handle(msg, src, r)
	return r.status()
}

// Without a subscriber database lookup cannot tell an unknown user from a
// known one without bindings: both get 404.
func TestNoBindingWithoutDB(t *testing.T) {
	w, r := setup(t, "")
	if got := r.do(w, register("alice", "1", "600"), phone); got != "200" {
		t.Fatalf("REGISTER: %s", got)
	}
	for ruri, want := range map[string]string{
		"sip:alice@example.com":   "200",
		"sip:bob@example.com":     "404",
		"sip:nobody@example.com":  "404",
		"sip:alice@other.example": "599", // not a served domain: lookup lets it through untouched
	} {
		if got := r.do(w, invite(ruri), caller); got != want {
			t.Errorf("%s: got %s, want %s", ruri, got, want)
		}
	}
}

// With one: 404 for an address-of-record that is not a subscriber, 480 for
// a subscriber without a live binding (never registered, or unregistered).
func TestNoBindingWithDB(t *testing.T) {
	w, r := setup(t, subscriberDB(t, "alice@example.com", "bob@example.com", "j%doe@example.com"))
	if got := r.do(w, register("alice", "1", "600"), phone); got != "200" {
		t.Fatalf("REGISTER: %s", got)
	}
	for ruri, want := range map[string]string{
		"sip:alice@example.com":       "200",
		"sip:alice@EXAMPLE.COM":       "200",
		"sip:bob@example.com":         "480",
		"sip:bob@Example.Com;user=ip": "480",
		"sips:bob@example.com":        "480",
		"sip:j%25doe@example.com":     "480", // the user part unescaped: j%doe
		"sip:nobody@example.com":      "404",
		"sip:Bob@example.com":         "404", // user names are case-sensitive
		"sip:example.com":             "404",
		"sip:a%00b@example.com":       "404",
	} {
		if got := r.do(w, invite(ruri), caller); got != want {
			t.Errorf("%s: got %s, want %s", ruri, got, want)
		}
	}
	// Unregistered: known, but unavailable.
	if got := r.do(w, register("alice", "2", "0"), phone); got != "200" {
		t.Fatalf("unREGISTER: %s", got)
	}
	if got := r.do(w, invite("sip:alice@example.com"), caller); got != "480" {
		t.Fatalf("after unregister: %s", got)
	}
}

// The auth and lookup steps naming the same file share one Subscribers.
func TestSharedSubscribers(t *testing.T) {
	path := subscriberDB(t, "alice@example.com")
	srv := proxy.NewServer(nil, proxy.Options{})
	t.Cleanup(srv.Close)
	if _, err := lookup.New(lookup.Options{DB: path}, srv); err != nil {
		t.Fatal(err)
	}
	if _, err := lookup.New(lookup.Options{DB: path}, srv); err != nil {
		t.Fatal(err)
	}
	if _, err := lookup.New(lookup.Options{DB: filepath.Join(t.TempDir(), "missing", "x.db")}, srv); err == nil {
		t.Fatal("a database that cannot be opened must fail the step")
	}
}

// The 404/480 answers read the in-memory subscriber table without
// allocating.
func TestNoBindingNoAlloc(t *testing.T) {
	w, r := setup(t, subscriberDB(t, "bob@example.com"))
	known, unknown := invite("sip:bob@example.com"), invite("sip:nobody@example.com")
	r.do(w, known, caller)
	r.do(w, unknown, caller)
	n := testing.AllocsPerRun(200, func() {
		if r.do(w, known, caller) != "480" || r.do(w, unknown, caller) != "404" {
			t.Fatal("wrong answer")
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per pair of requests", n)
	}
}

func BenchmarkNoBinding(b *testing.B) {
	for _, c := range []struct{ name, db string }{{"NoDB", ""}, {"DB480", "db"}, {"DB404", "db"}} {
		b.Run(c.name, func(b *testing.B) {
			db := ""
			if c.db != "" {
				db = subscriberDB(b, "bob@example.com")
			}
			w, r := setup(b, db)
			msg := invite("sip:bob@example.com")
			if c.name == "DB404" {
				msg = invite("sip:nobody@example.com")
			}
			r.do(w, msg, caller)
			b.ReportAllocs()
			for b.Loop() {
				w.Handle(msg, caller, r)
			}
		})
	}
}
