package digestauth_test

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/veloxsip/velox/module/digestauth"
	"github.com/veloxsip/velox/proxy"
	"github.com/veloxsip/velox/store"
	"github.com/veloxsip/velox/transport"
)

// authServer builds steps auth steps with opts and runs the first in front
// of a step answering 200, on a database holding alice@example.com.
func authServer(t testing.TB, steps int, opts digestauth.Options) (*proxy.Server, func(msg string, src netip.AddrPort) string) {
	t.Helper()
	opts.DB = filepath.Join(t.TempDir(), "v.db")
	opts.Realm = "example.com"
	db, err := store.Open(opts.DB)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AddUser(context.Background(), "alice", "example.com", "secret", false); err != nil {
		t.Fatal(err)
	}
	db.Close()
	srv := proxy.NewServer(nil, proxy.Options{})
	t.Cleanup(srv.Close)
	var p proxy.Pipeline
	for i := range steps {
		st, err := digestauth.New(opts, srv)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && st.Failures() != p[0].Handler.(*digestauth.Auth).Failures() {
			t.Fatal("auth steps of one server must share the failure table")
		}
		if i == 0 {
			p = append(p, proxy.Step{Name: "auth", Handler: st})
		}
	}
	p = append(p, proxy.Step{Name: "ok", Handler: proxy.HandlerFunc(func(c *proxy.Context) proxy.Action {
		c.Reply(200, "OK")
		return proxy.Stop
	})})
	srv.SetPipeline(p)
	srv.AddListener(transport.UDP, self, "")
	w := srv.NewWorker(0).(*proxy.Worker)
	return srv, func(msg string, src netip.AddrPort) string {
		r := &rec{}
		w.Handle([]byte(msg), src, r)
		if len(r.sent) != 1 {
			t.Fatalf("%d responses", len(r.sent))
		}
		return r.sent[0]
	}
}

var nonceRE = regexp.MustCompile(`nonce="([^"]+)"`)

// digestAnswer is an Authorization value for alice's REGISTER.
func digestAnswer(nonce, password string, nc int) string {
	ha1 := h("alice:example.com:" + password)
	ncs := fmt.Sprintf("%08x", nc)
	resp := h(ha1 + ":" + nonce + ":" + ncs + ":c0ffee:auth:" + h("REGISTER:sip:example.com"))
	return `Digest username="alice", realm="example.com", nonce="` + nonce + `", uri="sip:example.com", algorithm=SHA-256, qop=auth, nc=` + ncs + `, cnonce="c0ffee", response="` + resp + `"`
}

func TestFailuresObservable(t *testing.T) {
	srv, do := authServer(t, 2, digestauth.Options{MaxFailures: 5, FailureExpiry: 60})
	if _, ok := digestauth.Failures(proxy.NewServer(nil, proxy.Options{})); ok {
		t.Fatal("a server without auth step has no failure table")
	}
	ft, ok := digestauth.Failures(srv)
	if !ok {
		t.Fatal("no failure table")
	}
	src := netip.MustParseAddrPort("198.51.100.7:5060")
	other := netip.MustParseAddrPort("203.0.113.9:5060")
	nonce := nonceRE.FindStringSubmatch(do(register(""), src))[1]
	for i := 1; i <= 4; i++ {
		if got := do(register(digestAnswer(nonce, "wrong", i)), src); !strings.HasPrefix(got, "SIP/2.0 401 ") {
			t.Fatalf("wrong password #%d:\n%s", i, got)
		}
	}
	do(register(digestAnswer(nonce, "guess", 9)), other)
	now := time.Now()
	if n := ft.Failures(src.Addr(), now); n != 4 {
		t.Fatalf("Failures(src) = %d", n)
	}
	top := ft.Top(10, now)
	if len(top) != 2 || top[0].Addr != src.Addr() || top[0].Count != 4 || top[1].Addr != other.Addr() || top[1].Count != 1 {
		t.Fatalf("Top = %+v", top)
	}
	// The fifth failure reaches max_failures: 403.
	if got := do(register(digestAnswer(nonce, "wrong", 5)), src); !strings.HasPrefix(got, "SIP/2.0 403 ") {
		t.Fatalf("fifth failure:\n%s", got)
	}
	// The failures expire failure_expiry after the last one.
	if n := ft.Failures(src.Addr(), now.Add(61*time.Second)); n != 0 {
		t.Fatalf("after expiry: %d", n)
	}
	// A success resets the source.
	if got := do(register(digestAnswer(nonce, "secret", 6)), src); !strings.HasPrefix(got, "SIP/2.0 200 ") {
		t.Fatalf("right password:\n%s", got)
	}
	if n := ft.Failures(src.Addr(), time.Now()); n != 0 {
		t.Fatalf("after success: %d", n)
	}
	if st := ft.Stats(); st.Entries != 1 || st.Capacity < 65536 {
		t.Fatalf("Stats %+v", st)
	}
}

func TestFailureOptions(t *testing.T) {
	srv := proxy.NewServer(nil, proxy.Options{})
	t.Cleanup(srv.Close)
	_, err := digestauth.New(digestauth.Options{Realm: "example.com", DB: filepath.Join(t.TempDir(), "v.db"), FailureTableSize: -1}, srv)
	if err == nil {
		t.Fatal("negative failure_table_size accepted")
	}
	_, err = digestauth.New(digestauth.Options{Realm: "example.com", DB: filepath.Join(t.TempDir(), "v.db"), FailureTableSize: 100}, srv)
	if err != nil {
		t.Fatal(err)
	}
	ft, _ := digestauth.Failures(srv)
	if c := ft.Stats().Capacity; c < 100 || c > 120 {
		t.Fatalf("capacity %d for failure_table_size 100", c)
	}
}

// A successful authentication (cached subscriber, nobody failed) and a
// challenge do not allocate.
func TestAuthOKNoAlloc(t *testing.T) {
	srv, do := authServer(t, 1, digestauth.Options{})
	_ = srv
	src := netip.MustParseAddrPort("198.51.100.7:5060")
	nonce := nonceRE.FindStringSubmatch(do(register(""), src))[1]
	const runs = 100
	msgs := make([][]byte, runs+2)
	for i := range msgs {
		msgs[i] = []byte(register(digestAnswer(nonce, "secret", i+1)))
	}
	w := srv.NewWorker(1).(*proxy.Worker)
	r := &okSender{buf: make([]byte, 0, 4096)}
	w.Handle(msgs[0], src, r)
	i := 1
	n := testing.AllocsPerRun(runs, func() {
		w.Handle(msgs[i], src, r)
		i++
	})
	if !strings.HasPrefix(string(r.last), "SIP/2.0 200 ") {
		t.Fatalf("last answer:\n%s", r.last)
	}
	if n != 0 {
		t.Fatalf("%v allocations per authenticated request", n)
	}
	// Nor does a challenge.
	noCred := []byte(register(""))
	if n := testing.AllocsPerRun(runs, func() { w.Handle(noCred, src, r) }); n != 0 || !strings.HasPrefix(string(r.last), "SIP/2.0 401 ") {
		t.Fatalf("%v allocations per challenge; last answer:\n%s", n, r.last)
	}
}

// okSender keeps the last message in a reused buffer; Local (and whatever
// else a Sender needs) comes from rec.
type okSender struct {
	rec
	buf, last []byte
}

func (r *okSender) Buffer() []byte                    { return r.buf[:0] }
func (r *okSender) Send(b []byte, dst netip.AddrPort) { r.last = append(r.last[:0], b...) }
