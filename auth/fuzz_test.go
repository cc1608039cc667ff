package auth

import (
	"bytes"
	"strings"
	"testing"
)

// fuzzAuthenticator returns a fresh Authenticator with a tiny replay table,
// so that every fuzz run starts from the same state (the fuzzer needs
// deterministic coverage to minimize inputs).
func fuzzAuthenticator(t testing.TB) *Authenticator {
	a, err := New(Config{
		Realm:      testRealm,
		Algorithms: []Algorithm{SHA512_256, SHA256, MD5, SHA512_256Sess, SHA256Sess, MD5Sess},
		Secret:     secret1, AllowNoQop: true, ReplayEntries: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func FuzzParseCredentials(f *testing.F) {
	for _, v := range rfcVectors {
		f.Add([]byte(client{alg: v.alg, user: v.user, pw: v.pw, realm: v.realm, method: v.method, uri: v.uri,
			nonce: v.nonce, cnonce: v.cnonce, nc: v.nc, qop: v.qop}.header()))
	}
	f.Add([]byte(`Digest username="a\"b", realm="example.com", nonce="x", uri="sip:x", response="0", qop=auth-int, nc=00000001, cnonce="c"`))
	f.Add([]byte(`Digest realm=example.com, username=u, nonce=n, uri=u, response=r, algorithm=MD5-sess, userhash=true,`))
	f.Add([]byte("Basic abc"))
	f.Add([]byte(`Digest ,,, a = "b\` + "\r\n"))
	f.Fuzz(func(t *testing.T, value []byte) {
		a := fuzzAuthenticator(t)
		var c Credentials
		err := ParseCredentials(value, &c)
		if err != nil {
			if err != ErrMalformed && err != ErrNotDigest {
				t.Fatalf("error %v", err)
			}
			return
		}
		for _, b := range [][]byte{c.Username, c.Realm, c.Nonce, c.URI, c.Response, c.CNonce, c.Opaque, c.AlgorithmName} {
			if len(b) > 0 && !aliases(value, b) {
				t.Fatalf("%q does not alias the input", b)
			}
		}
		if c.Nonce == nil || c.Username == nil || c.Realm == nil || c.URI == nil || c.Response == nil {
			t.Fatalf("missing required field: %+v", c)
		}
		if c.Qop != QopNone && (c.NC == 0 || len(c.CNonce) == 0) {
			t.Fatalf("qop without nc/cnonce: %+v", c)
		}
		c.AppendUsername(nil)
		now := t0
		ha1 := []byte(strings.Repeat("a", 2*c.Algorithm.Size()))
		a.Verify(&c, []byte("REGISTER"), ha1, addr1, now)
		a.Verify(&c, []byte("REGISTER"), value, addr1, now)
		a.VerifyPassword(&c, []byte("REGISTER"), value, addr1, now)
	})
}

func aliases(buf, b []byte) bool {
	if len(b) == 0 {
		return true
	}
	for i := 0; i+len(b) <= len(buf); i++ {
		if &buf[i] == &b[0] {
			return true
		}
	}
	return false
}

// FuzzVerify builds an Authorization header for a fresh nonce from fuzzed
// fields with the independent test client. Whenever the fields can be sent
// as is, Verify must accept it exactly once; with arbitrary trailing text
// nothing may panic.
func FuzzVerify(f *testing.F) {
	f.Add("REGISTER", "alice", "pw", "sip:example.com", "0a4f113b", uint32(1), uint8(0), "", false)
	f.Add("INVITE", "bob", "", "sip:bob@example.com;transport=tcp", "c", uint32(0xffffffff), uint8(3), `, foo="bar"`, false)
	f.Add("ACK", "j\u00e4s\u00f8n", "p,w", "tel:+123", "x", uint32(7), uint8(5), `, opaque=x`, true)
	f.Add("OPTIONS", "u", "p", "sip:x", "", uint32(0), uint8(2), `, response=00`, false)
	f.Fuzz(func(t *testing.T, method, user, pw, uri, cnonce string, nc uint32, algIdx uint8, extra string, noQop bool) {
		a := fuzzAuthenticator(t)
		now := t0
		alg := a.algs[int(algIdx)%len(a.algs)]
		cl := client{alg: alg.String(), user: user, pw: pw, realm: testRealm, method: method, uri: uri,
			nonce: string(a.AppendNonce(nil, addr1, now)), cnonce: cnonce, nc: nc, qop: "auth", extra: extra}
		if noQop {
			cl.qop = ""
		}
		header := []byte(cl.header())
		var c Credentials
		err := ParseCredentials(header, &c)
		clean := extra == "" && quotedSafe(user) && quotedSafe(uri) && quotedSafe(cnonce)
		if clean && (cl.qop == "" || (nc != 0 && cnonce != "")) {
			if err != nil {
				t.Fatalf("ParseCredentials(%q): %v", header, err)
			}
			want := OK
			if cl.qop == "" && alg != MD5 {
				want = Unsupported
			}
			ha1 := []byte(HA1(alg, user, testRealm, pw))
			if r := a.Verify(&c, []byte(method), ha1, addr1, now); r != want {
				t.Fatalf("Verify(%q) = %v, want %v", header, r, want)
			}
			if want == OK {
				if r := a.VerifyPassword(&c, []byte(method), []byte(pw), addr1, now); r != Replay {
					t.Fatalf("second Verify(%q) = %v, want replay", header, r)
				}
				if r := a.Verify(&c, []byte(method+"x"), ha1, addr1, now); r != BadCredentials {
					t.Fatalf("Verify(%q) for another method = %v", header, r)
				}
			}
			return
		}
		if err == nil {
			a.Verify(&c, []byte(method), []byte(HA1(alg, user, testRealm, pw)), addr1, now)
			a.VerifyPassword(&c, []byte(method), []byte(pw), addr1, now)
		}
	})
}

// quotedSafe reports whether s can be put in a quoted-string unchanged and
// read back the same.
func quotedSafe(s string) bool {
	return !strings.ContainsAny(s, "\"\\") && !bytes.ContainsFunc([]byte(s), func(r rune) bool { return r < 0x20 || r == 0x7f })
}
