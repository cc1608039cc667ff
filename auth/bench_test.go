package auth

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// benchHeaders returns n Authorization values of alice registering from
// fresh nonces issued at now, 4 counts per nonce (nc 1…4), built with the
// package's own hashing (the tests check it against the RFCs and an
// independent client).
func benchHeaders(a *Authenticator, alg Algorithm, now time.Time, n int) [][]byte {
	ha1 := []byte(HA1(alg, "alice", a.realm, "s3cret"))
	out := make([][]byte, n)
	var nonce []byte
	for i := range out {
		nc := uint32(i%4 + 1)
		if nc == 1 {
			nonce = a.AppendNonce(nil, addr1, now.Add(time.Duration(i)))
		}
		var buf [64]byte
		resp := alg.response(&buf, ha1, nonce, nc, []byte("0a4f113b"), QopAuth,
			[]byte("REGISTER"), []byte("sip:example.com"))
		h := []byte(`Digest username="alice", realm="`)
		h = append(h, a.realm...)
		h = append(h, `", nonce="`...)
		h = append(h, nonce...)
		h = append(h, `", uri="sip:example.com", response="`...)
		h = append(h, resp...)
		h = append(h, `", algorithm=`...)
		h = append(h, alg.String()...)
		h = append(h, `, cnonce="0a4f113b", qop=auth, nc=`...)
		h = append(h, []byte(strconv.FormatUint(uint64(nc)|1<<32, 16))[1:]...)
		out[i] = h
	}
	return out
}

// benchVerify measures ParseCredentials + Verify of a valid Authorization
// with a precomputed HA1: the registrar's per-request cost. Every
// iteration is a new (nonce, nc) and must return OK; new headers are made
// off the clock every 1024 iterations, 2 s later, so that the replay
// table holds at most one batch of live nonces.
func benchVerify(b *testing.B, alg Algorithm, password bool) {
	a := newAuth(b, func(c *Config) { c.NonceTTL = time.Second })
	ha1 := []byte(HA1(alg, "alice", a.realm, "s3cret"))
	pw := []byte("s3cret")
	method := []byte("REGISTER")
	const batch = 1024
	var headers [][]byte
	var now time.Time
	var c Credentials
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%batch == 0 {
			b.StopTimer()
			now = t0.Add(time.Duration(i/batch) * 2 * time.Second)
			headers = benchHeaders(a, alg, now, batch)
			b.StartTimer()
		}
		if err := ParseCredentials(headers[i%batch], &c); err != nil {
			b.Fatal(err)
		}
		var r Result
		if password {
			r = a.VerifyPassword(&c, method, pw, addr1, now)
		} else {
			r = a.Verify(&c, method, ha1, addr1, now)
		}
		if r != OK {
			b.Fatal(r)
		}
	}
}

func BenchmarkVerifyMD5(b *testing.B)            { benchVerify(b, MD5, false) }
func BenchmarkVerifySHA256(b *testing.B)         { benchVerify(b, SHA256, false) }
func BenchmarkVerifySHA512_256(b *testing.B)     { benchVerify(b, SHA512_256, false) }
func BenchmarkVerifySHA256Sess(b *testing.B)     { benchVerify(b, SHA256Sess, false) }
func BenchmarkVerifyPasswordSHA256(b *testing.B) { benchVerify(b, SHA256, true) }

// Workers verifying at once (replay table shared): the headers repeat, so
// a result is OK the first time and Replay after; both take the whole path.
func BenchmarkVerifySHA256Parallel(b *testing.B) {
	a := newAuth(b, nil)
	ha1 := []byte(HA1(SHA256, "alice", a.realm, "s3cret"))
	headers := benchHeaders(a, SHA256, t0, 1<<14)
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var c Credentials
		method := []byte("REGISTER")
		for pb.Next() {
			h := headers[next.Add(1)%uint64(len(headers))]
			if err := ParseCredentials(h, &c); err != nil {
				panic(err)
			}
			if r := a.Verify(&c, method, ha1, addr1, t0); r != OK && r != Replay {
				panic(r.String())
			}
		}
	})
}

func BenchmarkParseCredentials(b *testing.B) {
	a := newAuth(b, nil)
	h := benchHeaders(a, SHA256, t0, 1)[0]
	var c Credentials
	b.ReportAllocs()
	for b.Loop() {
		if err := ParseCredentials(h, &c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendChallenges(b *testing.B) {
	a := newAuth(b, func(c *Config) { c.Algorithms = []Algorithm{SHA256, MD5} })
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = a.AppendChallenges(buf[:0], false, false, addr1, t0)
	}
}
