package digestauth_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"net/netip"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/veloxsip/velox/module/digestauth"
	"github.com/veloxsip/velox/module/registrar"
	"github.com/veloxsip/velox/proxy"
	"github.com/veloxsip/velox/store"
)

// BenchmarkRegisterAuth is what the register-auth load test asks of one
// server, in process: per iteration a REGISTER without credentials (401
// with an MD5 challenge) and the same REGISTER answering it (auth step,
// registrar, 200), for the next of the users in turn. Cached: 1,000 users;
// Miss: 100,000 users, more than a run reaches (it used to mean a database
// read per REGISTER; the subscribers are all in memory now, so the two
// differ only by CPU cache misses).
// The client side (building the answer: one MD5 and some formatting,
// about 2 µs) is inside the timing.
func BenchmarkRegisterAuth(b *testing.B) {
	for _, c := range []struct {
		name  string
		users int
	}{{"Cached", 1000}, {"Miss", 100_000}} {
		b.Run(c.name, func(b *testing.B) { benchRegisterAuth(b, c.users) })
	}
}

func benchRegisterAuth(b *testing.B, users int) {
	path := filepath.Join(b.TempDir(), "v.db")
	db, err := store.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	pw := func(i int) string { return "pw" + strconv.Itoa(i) }
	_, err = db.ImportUsers(context.Background(), func(yield func(store.UserRow, error) bool) {
		for i := range users {
			if !yield(store.UserRow{Username: "u" + strconv.Itoa(i), Domain: "example.com", Password: pw(i)}, nil) {
				return
			}
		}
	}, store.ImportOptions{})
	db.Close()
	if err != nil {
		b.Fatal(err)
	}
	srv := proxy.NewServer(nil, proxy.Options{})
	b.Cleanup(srv.Close)
	a, err := digestauth.New(digestauth.Options{Realm: "example.com", DB: path, Algorithms: []string{"MD5"}}, srv)
	if err != nil {
		b.Fatal(err)
	}
	reg, err := registrar.New(registrar.Options{Domains: []string{"example.com"}}, srv)
	if err != nil {
		b.Fatal(err)
	}
	srv.SetPipeline(proxy.Pipeline{{Name: "auth", Handler: a}, {Name: "registrar", Handler: reg}})
	out := &okSender{buf: make([]byte, 0, 4096)}
	srv.AddListener(out.Proto(), self, "")
	w := srv.NewWorker(0).(*proxy.Worker)
	src := netip.MustParseAddrPort("198.51.100.7:5060")

	var msg, hexBuf []byte
	build := func(i, round int, authz []byte) []byte {
		u, n := "u"+strconv.Itoa(i), strconv.Itoa(round)
		msg = append(msg[:0], "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK-"+u+"-"+n...)
		if authz != nil {
			msg = append(msg, 'a')
		}
		msg = append(msg, ";rport\r\nFrom: <sip:"+u+"@example.com>;tag=t"+n+"\r\nTo: <sip:"+u+"@example.com>\r\nCall-ID: c"+n+"-"+u+"\r\n"...)
		if authz != nil {
			msg = append(msg, "CSeq: 2 REGISTER\r\nAuthorization: "...)
			msg = append(msg, authz...)
			msg = append(msg, "\r\n"...)
		} else {
			msg = append(msg, "CSeq: 1 REGISTER\r\n"...)
		}
		return append(msg, "Contact: <sip:"+u+"@10.0.0.7:5060>\r\nExpires: 3600\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"...)
	}
	md := func(s ...[]byte) []byte {
		h := md5.New()
		for _, p := range s {
			h.Write(p)
		}
		var sum [16]byte
		hexBuf = hex.AppendEncode(hexBuf[:0], h.Sum(sum[:0]))
		return hexBuf
	}
	ha2 := string(md([]byte("REGISTER:sip:example.com")))
	var authz, nonce []byte
	b.ReportAllocs()
	i, round, stale := 0, 0, 0
	for b.Loop() {
		if i == users {
			i, round = 0, round+1
		}
		w.Handle(build(i, round, nil), src, out)
		u := "u" + strconv.Itoa(i)
		ha1 := string(md([]byte(u + ":example.com:" + pw(i))))
		for try := 0; ; try++ {
			n, ok := findNonce(out.last)
			if !ok || try == 8 {
				b.Fatalf("no challenge or no 200 after %d tries:\n%s", try, out.last)
			}
			nonce = append(nonce[:0], n...)
			resp := md([]byte(ha1+":"), nonce, []byte(":00000001:c0ffee:auth:"+ha2))
			authz = append(authz[:0], `Digest username="`+u+`", realm="example.com", nonce="`...)
			authz = append(authz, nonce...)
			authz = append(authz, `", uri="sip:example.com", algorithm=MD5, qop=auth, nc=00000001, cnonce="c0ffee", response="`...)
			authz = append(authz, resp...)
			authz = append(authz, '"')
			w.Handle(build(i, round, authz), src, out)
			if len(out.last) > 12 && string(out.last[8:11]) == "200" {
				break
			}
			// A stale challenge: answer it, as a client does. At the
			// 100,000 nonces a second of this loop, late in each second
			// some of the replay table's buckets hold 5 nonces of that
			// second, and a new nonce of the same second landing in one
			// is reported forgotten (stale); the next nonce lands in
			// another bucket. Three in a row happened about once a run.
			stale++
		}
		i++
	}
	b.ReportMetric(float64(stale)/float64(b.N), "stale/op")
}

// findNonce returns the first nonce="…" value of a message.
func findNonce(m []byte) ([]byte, bool) {
	const k = `nonce="`
	for i := 0; i+len(k) < len(m); i++ {
		if string(m[i:i+len(k)]) == k {
			rest := m[i+len(k):]
			for j, c := range rest {
				if c == '"' {
					return rest[:j], true
				}
			}
		}
	}
	return nil, false
}
