package auth

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Many workers verify the same credentials at once while the secret
// rotates: each (nonce, nc) is accepted exactly once, every other attempt
// is a replay.
func TestConcurrentVerify(t *testing.T) {
	a := newAuth(t, func(c *Config) { c.ReplayEntries = 64 })
	const nonces, counts, workers = 16, 40, 8
	type req struct {
		header string
		key    int
	}
	var reqs []req
	for n := range nonces {
		cl := reg(t, a, []string{"MD5", "SHA-256", "SHA-512-256-sess"}[n%3], t0.Add(time.Duration(n)))
		for nc := 1; nc <= counts; nc++ {
			cl.nc = uint32(nc)
			reqs = append(reqs, req{cl.header(), n*counts + nc - 1})
		}
	}
	ha1 := map[Algorithm][]byte{}
	for alg := MD5; alg < numAlgorithms; alg++ {
		ha1[alg] = []byte(HA1(alg, "alice", testRealm, "s3cret"))
	}
	var accepted [nonces * counts]atomic.Int32
	var other atomic.Int32
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c Credentials
			for i := range reqs {
				r := reqs[(i+w*7)%len(reqs)]
				if err := ParseCredentials([]byte(r.header), &c); err != nil {
					panic(err)
				}
				switch res := a.Verify(&c, []byte("REGISTER"), ha1[c.Algorithm], addr1, t0); res {
				case OK:
					accepted[r.key].Add(1)
				case Replay:
				default:
					other.Add(1)
					t.Errorf("%v", res)
				}
				if i%50 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // rotation and monitoring race with the verifiers
		defer wg.Done()
		a.SetSecret([]byte("rotated secret, long enough"))
		for range 10 {
			a.Stats(t0)
			a.AppendChallenges(nil, false, false, addr1, t0)
		}
	}()
	wg.Wait()
	for k := range accepted {
		if n := accepted[k].Load(); n != 1 {
			t.Fatalf("nonce %d nc %d accepted %d times", k/counts, k%counts+1, n)
		}
	}
	if s := a.Stats(t0); s.Live != nonces {
		t.Fatalf("stats %+v", s)
	}
}

// The verify path does not allocate.
func TestVerifyAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations differ under the race detector")
	}
	a := newAuth(t, nil)
	for k, alg := range []string{"MD5", "SHA-256", "SHA-512-256", "SHA-256-sess"} {
		cl := reg(t, a, alg, t0.Add(time.Duration(k)))
		cl.uri = "sip:bob@example.com;transport=udp"
		headers := make([][]byte, 200)
		for i := range headers {
			cl.nc = uint32(i + 1)
			headers[i] = []byte(cl.header())
		}
		alg1, _ := ParseAlgorithm([]byte(alg))
		ha1 := []byte(HA1(alg1, "alice", testRealm, "s3cret"))
		pw := []byte("s3cret")
		method := []byte("REGISTER")
		var c Credentials
		i := 0
		n := testing.AllocsPerRun(90, func() {
			if ParseCredentials(headers[i], &c) != nil {
				t.Fatal("parse")
			}
			i++
			var r Result
			if i%2 == 0 {
				r = a.Verify(&c, method, ha1, addr1, t0)
			} else {
				r = a.VerifyPassword(&c, method, pw, addr1, t0)
			}
			if r != OK {
				t.Fatalf("%s: %v", alg, r)
			}
		})
		if n != 0 {
			t.Errorf("%s: %v allocs per Parse+Verify", alg, n)
		}
		var buf [1024]byte
		if n := testing.AllocsPerRun(50, func() { a.AppendChallenges(buf[:0], true, true, addr1, t0) }); n != 0 {
			t.Errorf("AppendChallenges: %v allocs", n)
		}
	}
}
