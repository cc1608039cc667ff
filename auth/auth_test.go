package auth

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/veloxsip/velox/sip"
)

func TestNewConfig(t *testing.T) {
	bad := []Config{
		{},
		{Realm: `a"b`},
		{Realm: `a\b`},
		{Realm: "a\nb"},
		{Realm: "r", Opaque: `"`},
		{Realm: "r", Secret: []byte("short")},
		{Realm: "r", PreviousSecret: []byte("short")},
		{Realm: "r", NonceTTL: time.Millisecond},
		{Realm: "r", NonceTTL: 25 * time.Hour},
		{Realm: "r", Algorithms: []Algorithm{0}},
		{Realm: "r", Algorithms: []Algorithm{numAlgorithms}},
		{Realm: "r", Algorithms: []Algorithm{MD5, SHA256, MD5}},
	}
	for _, cfg := range bad {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	a, err := New(Config{Realm: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(a.Algorithms()); got != "[SHA-256 MD5]" {
		t.Errorf("default algorithms %s", got)
	}
	if a.ttl != int64(DefaultNonceTTL) {
		t.Errorf("default TTL %v", time.Duration(a.ttl))
	}
	if s := a.Stats(t0); s.Capacity < DefaultReplayEntries || s.Live != 0 {
		t.Errorf("stats %+v", s)
	}
	// Two authenticators with random secrets do not accept each other's nonces.
	b, _ := New(Config{Realm: "r"})
	n := a.AppendNonce(nil, netip.Addr{}, t0)
	if _, _, ok := checkNonce(n, b.keys.Load(), netip.Addr{}, false); ok {
		t.Error("random secrets collide")
	}
}

func TestAlgorithmNames(t *testing.T) {
	for alg := MD5; alg < numAlgorithms; alg++ {
		for _, name := range []string{alg.String(), strings.ToLower(alg.String()), strings.ToUpper(alg.String())} {
			if got, ok := ParseAlgorithm([]byte(name)); !ok || got != alg {
				t.Errorf("ParseAlgorithm(%q) = %v, %v", name, got, ok)
			}
		}
		if alg.Base().Sess() || alg.Sess() != strings.HasSuffix(alg.String(), "-sess") {
			t.Errorf("%v: Base %v Sess %v", alg, alg.Base(), alg.Sess())
		}
		if h := HA1(alg, "u", "r", "p"); len(h) != 2*alg.Size() || h != HA1(alg.Base(), "u", "r", "p") {
			t.Errorf("HA1(%v) = %q", alg, h)
		}
	}
	for _, name := range []string{"", "MD", "SHA256", "SHA-512", "MD5-sess-x", "token"} {
		if _, ok := ParseAlgorithm([]byte(name)); ok {
			t.Errorf("ParseAlgorithm(%q) succeeded", name)
		}
	}
	if Algorithm(0).String() != "" || Algorithm(0).Size() != 0 || HA1(0, "u", "r", "p") != "" {
		t.Error("zero algorithm")
	}
	if HA1(MD5, "Mufasa", "testrealm@host.com", "Circle Of Life") != "939e7578ed9e3c518a452acee763bce9" {
		t.Error("HA1 MD5")
	}
}

func TestChallengeFormat(t *testing.T) {
	a := newAuth(t, func(c *Config) { c.Algorithms = []Algorithm{SHA256, MD5}; c.Opaque = "op" })
	got := string(a.AppendChallenges([]byte("X\r\n"), false, false, addr1, t0))
	lines := strings.Split(got, "\r\n")
	if len(lines) != 4 || lines[0] != "X" || lines[3] != "" {
		t.Fatalf("lines %q", lines)
	}
	n := nonceFrom(t, lines[1])
	if len(n) != NonceLen || nonceFrom(t, lines[2]) != n {
		t.Fatalf("nonce %q", n)
	}
	want1 := `WWW-Authenticate: Digest realm="example.com", nonce="` + n + `", algorithm=SHA-256, qop="auth", opaque="op"`
	want2 := `WWW-Authenticate: Digest realm="example.com", nonce="` + n + `", algorithm=MD5, qop="auth", opaque="op"`
	if lines[1] != want1 || lines[2] != want2 {
		t.Fatalf("got\n%s\n%s", lines[1], lines[2])
	}
	p := string(a.AppendChallenges(nil, true, true, addr1, t0))
	if !strings.HasPrefix(p, `Proxy-Authenticate: Digest realm="example.com", nonce="`) ||
		!strings.Contains(p, `, algorithm=SHA-256, qop="auth", stale=true, opaque="op"`+"\r\n") {
		t.Fatalf("proxy challenge %q", p)
	}
	one := string(a.AppendChallenge(nil, SHA512_256Sess, false, false, addr1, t0))
	if !strings.Contains(one, "algorithm=SHA-512-256-sess,") || strings.Count(one, "\r\n") != 1 {
		t.Fatalf("single challenge %q", one)
	}
	// Nonces differ with time and are URL-safe base64.
	if n2 := string(a.AppendNonce(nil, addr1, t0.Add(time.Nanosecond))); n2 == n ||
		strings.ContainsAny(n2, `+/="\`) {
		t.Fatalf("nonce %q after %q", n2, n)
	}
}

// Every algorithm, through the challenge text: client answers, Verify OK.
func TestRoundTrip(t *testing.T) {
	a := newAuth(t, nil)
	for p, proxy := range []bool{false, true} {
		for i := range a.algs {
			// One nonce is shared by the challenges of a response; take a
			// fresh response per algorithm so that each starts at nc=1.
			ch := string(a.AppendChallenges(nil, proxy, false, addr1, t0.Add(time.Duration(10*p+i))))
			lines := strings.Split(strings.TrimSuffix(ch, "\r\n"), "\r\n")
			if len(lines) != 6 {
				t.Fatalf("%d challenges", len(lines))
			}
			line := lines[i]
			_, val, _ := strings.Cut(line, ": ")
			var chal Credentials // reuse the parameter parser on the challenge
			it := paramIter{rest: []byte(strings.TrimPrefix(val, "Digest "))}
			for {
				name, v, ok := it.next()
				if !ok {
					break
				}
				switch string(name) {
				case "realm":
					chal.Realm = v
				case "nonce":
					chal.Nonce = v
				case "algorithm":
					chal.AlgorithmName = v
				}
			}
			if it.err || string(chal.AlgorithmName) != a.algs[i].String() {
				t.Fatalf("challenge %q", line)
			}
			cl := client{alg: string(chal.AlgorithmName), user: "alice", pw: "pw", realm: string(chal.Realm),
				method: "INVITE", uri: "sip:bob@example.com", nonce: string(chal.Nonce), cnonce: "abcdef", nc: 1, qop: "auth"}
			for nc := uint32(1); nc <= 3; nc++ {
				cl.nc = nc
				if r := verify(t, a, cl.header(), "INVITE", "pw", addr1, t0.Add(time.Second)); r != OK {
					t.Fatalf("%s nc=%d: %v", cl.alg, nc, r)
				}
			}
			// VerifyPassword and an upper-case stored HA1.
			cl.nc = 4
			var c Credentials
			if err := ParseCredentials([]byte(cl.header()), &c); err != nil {
				t.Fatal(err)
			}
			if r := a.VerifyPassword(&c, []byte("INVITE"), []byte("pw"), addr1, t0); r != OK {
				t.Fatalf("%s VerifyPassword: %v", cl.alg, r)
			}
			cl.nc = 5
			ParseCredentials([]byte(cl.header()), &c)
			ha1 := strings.ToUpper(HA1(c.Algorithm.Base(), "alice", testRealm, "pw"))
			if r := a.Verify(&c, []byte("INVITE"), []byte(ha1), addr1, t0); r != OK {
				t.Fatalf("%s upper-case HA1: %v", cl.alg, r)
			}
			// An upper-case response is accepted too.
			cl.nc = 6
			cl.responseOverride = strings.ToUpper(cl.response())
			if r := verify(t, a, cl.header(), "INVITE", "pw", addr1, t0); r != OK {
				t.Fatalf("%s upper-case response: %v", cl.alg, r)
			}
		}
	}
}

func TestWrongCredentials(t *testing.T) {
	a := newAuth(t, nil)
	for i, alg := range []string{"MD5", "SHA-256", "SHA-512-256", "MD5-sess", "SHA-256-sess"} {
		cl := reg(t, a, alg, t0.Add(time.Duration(i)))
		h := cl.header()
		if r := verify(t, a, h, "REGISTER", "wrong", addr1, t0); r != BadCredentials {
			t.Errorf("%s wrong password: %v", alg, r)
		}
		if r := verify(t, a, h, "INVITE", cl.pw, addr1, t0); r != BadCredentials {
			t.Errorf("%s wrong method: %v", alg, r)
		}
		// Fields covered by the digest.
		for _, mod := range []func(*client){
			func(c *client) { c.uri = "sip:evil.com" },
			func(c *client) { c.cnonce = "other" },
			func(c *client) { c.nc = 2 },
			func(c *client) { c.user = "bob" },
		} {
			m := cl
			mod(&m)
			m.responseOverride = cl.response()
			if r := verify(t, a, m.header(), "REGISTER", cl.pw, addr1, t0); r != BadCredentials {
				t.Errorf("%s modified field: %v", alg, r)
			}
		}
		// Failed attempts are not recorded: the right answer still works.
		if r := verify(t, a, h, "REGISTER", cl.pw, addr1, t0); r != OK {
			t.Errorf("%s after failures: %v", alg, r)
		}
	}
}

func TestNonceAge(t *testing.T) {
	a := newAuth(t, func(c *Config) { c.NonceTTL = time.Minute })
	cl := reg(t, a, "SHA-256", t0)
	h := cl.header()
	if r := verify(t, a, h, "REGISTER", cl.pw, addr1, t0.Add(time.Minute+time.Nanosecond)); r != Stale {
		t.Errorf("expired: %v", r)
	}
	if r := verify(t, a, h, "REGISTER", cl.pw, addr1, t0.Add(-maxSkew-time.Nanosecond)); r != Stale {
		t.Errorf("from the future: %v", r)
	}
	if r := verify(t, a, h, "REGISTER", "wrong", addr1, t0.Add(time.Hour)); r != BadCredentials {
		t.Errorf("expired, wrong password: %v (stale only for a right digest)", r)
	}
	if r := verify(t, a, h, "REGISTER", cl.pw, addr1, t0.Add(time.Minute)); r != OK {
		t.Errorf("at the TTL: %v", r)
	}
	cl.nc = 2
	if r := verify(t, a, cl.header(), "REGISTER", cl.pw, addr1, t0.Add(-maxSkew)); r != OK {
		t.Errorf("within the skew: %v", r)
	}
}

func TestTamperedNonce(t *testing.T) {
	a := newAuth(t, nil)
	cl := reg(t, a, "SHA-256", t0)
	for i := range cl.nonce {
		m := cl
		b := []byte(m.nonce)
		b[i] ^= 1 // still base64 for most characters
		m.nonce = string(b)
		// The response computed over the original nonce: wrong digest.
		m.responseOverride = cl.response()
		if r := verify(t, a, m.header(), "REGISTER", cl.pw, addr1, t0); r != BadCredentials {
			t.Fatalf("byte %d: %v", i, r)
		}
		// A client that knows the password and answers the altered nonce:
		// the nonce is not ours, so stale (it gets a fresh one).
		m.responseOverride = ""
		if r := verify(t, a, m.header(), "REGISTER", cl.pw, addr1, t0); r != Stale {
			t.Fatalf("byte %d re-signed: %v", i, r)
		}
	}
	for _, n := range []string{"", "short", cl.nonce + "A", cl.nonce[:NonceLen-1] + "=", strings.Repeat("A", NonceLen),
		cl.nonce[:10] + "\r\n" + cl.nonce[12:]} {
		m := cl
		m.nonce = n
		if r := verify(t, a, m.header(), "REGISTER", cl.pw, addr1, t0); r != Stale {
			t.Fatalf("nonce %q: %v", n, r)
		}
	}
	// Another realm or secret does not accept it.
	for _, other := range []*Authenticator{
		newAuth(t, func(c *Config) { c.Secret = secret2 }),
		newAuth(t, func(c *Config) { c.Realm = "other.com" }),
	} {
		m := cl
		m.realm = other.Realm()
		if r := verify(t, other, m.header(), "REGISTER", cl.pw, addr1, t0); r != Stale {
			t.Fatalf("other authenticator: %v", r)
		}
	}
	if r := verify(t, a, cl.header(), "REGISTER", cl.pw, addr1, t0); r != OK {
		t.Fatalf("original: %v", r)
	}
}

func TestReplay(t *testing.T) {
	a := newAuth(t, nil)
	cl := reg(t, a, "MD5", t0)
	at := func(nc uint32) Result {
		m := cl
		m.nc = nc
		return verify(t, a, m.header(), "REGISTER", cl.pw, addr1, t0)
	}
	steps := []struct {
		nc   uint32
		want Result
	}{
		{1, OK}, {1, Replay}, {3, OK}, {2, OK}, {2, Replay}, {3, Replay},
		{66, OK}, {3, Replay}, {2, Replay}, // 66-64 = 2 is outside the window
		{4, OK}, {5, OK}, {4, Replay}, // inside the window, not seen before
	}
	for i, s := range steps {
		if r := at(s.nc); r != s.want {
			t.Fatalf("step %d nc=%d: %v, want %v", i, s.nc, r, s.want)
		}
	}
	if r := at(1000); r != OK {
		t.Fatal(r)
	}
	if r := at(0xffffffff); r != OK {
		t.Fatal(r)
	}
	if r := at(0xffffffff); r != Replay {
		t.Fatal(r)
	}
	// A replay with a wrong digest is a bad credential, not a replay.
	m := cl
	m.responseOverride = strings.Repeat("0", 32)
	if r := verify(t, a, m.header(), "REGISTER", cl.pw, addr1, t0); r != BadCredentials {
		t.Fatal(r)
	}
	// Another nonce has its own counts.
	cl2 := reg(t, a, "MD5", t0.Add(time.Millisecond))
	if r := verify(t, a, cl2.header(), "REGISTER", cl.pw, addr1, t0); r != OK {
		t.Fatal(r)
	}
	if s := a.Stats(t0); s.Live != 2 || s.Evictions != 0 {
		t.Fatalf("stats %+v", s)
	}
	// After expiry the entries are free (and the nonces stale).
	if s := a.Stats(t0.Add(DefaultNonceTTL + 2*time.Second)); s.Live != 0 {
		t.Fatalf("stats after expiry %+v", s)
	}
}

// The replay window in isolation.
func TestReplayWindow(t *testing.T) {
	var e entry
	e.max, e.win = 100, 1
	for nc := uint32(37); nc < 100; nc++ {
		if e.see(nc) != replayOK {
			t.Fatalf("nc %d rejected", nc)
		}
	}
	for nc := uint32(1); nc <= 100; nc++ {
		if e.see(nc) != replaySeen {
			t.Fatalf("nc %d accepted twice", nc)
		}
	}
	if e.see(101) != replayOK || e.see(36) != replaySeen || e.see(38) != replaySeen {
		t.Fatal("window after advance")
	}
}

// A full bucket evicts its oldest nonce; a forgotten nonce is never
// accepted again, it is stale.
func TestReplayTableFull(t *testing.T) {
	a := newAuth(t, func(c *Config) { c.ReplayEntries = 1; c.NonceTTL = 10 * time.Second })
	if s := a.Stats(t0); s.Capacity != bucketWays {
		t.Fatalf("capacity %d", s.Capacity)
	}
	var cls []client
	for i := range bucketWays + 1 {
		cls = append(cls, reg(t, a, "MD5", t0.Add(time.Duration(i)*time.Second)))
	}
	now := t0.Add(bucketWays * time.Second)
	for i, cl := range cls[:bucketWays] {
		if r := verify(t, a, cl.header(), "REGISTER", cl.pw, addr1, now); r != OK {
			t.Fatalf("nonce %d: %v", i, r)
		}
	}
	// The 6th (newest) evicts the oldest (cls[0]).
	if r := verify(t, a, cls[bucketWays].header(), "REGISTER", cls[0].pw, addr1, now); r != OK {
		t.Fatalf("newest: %v", r)
	}
	if s := a.Stats(now); s.Live != bucketWays || s.Evictions != 1 {
		t.Fatalf("stats %+v", s)
	}
	// The evicted nonce: its replay is not accepted.
	if r := verify(t, a, cls[0].header(), "REGISTER", cls[0].pw, addr1, now); r != Stale {
		t.Fatalf("evicted nonce: %v", r)
	}
	// The others are still tracked.
	if r := verify(t, a, cls[1].header(), "REGISTER", cls[0].pw, addr1, now); r != Replay {
		t.Fatalf("tracked nonce: %v", r)
	}
	// A never-used nonce older than every tracked one does not evict.
	old := reg(t, a, "MD5", t0.Add(-time.Second))
	if r := verify(t, a, old.header(), "REGISTER", old.pw, addr1, now); r != Stale {
		t.Fatalf("old nonce in a full table: %v", r)
	}
	// Once the first ones expire, their entries are reused.
	later := t0.Add(12 * time.Second)
	fresh := reg(t, a, "MD5", later)
	if r := verify(t, a, fresh.header(), "REGISTER", fresh.pw, addr1, later); r != OK {
		t.Fatalf("after expiry: %v", r)
	}
	if s := a.Stats(later); s.Evictions != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestSecretRotation(t *testing.T) {
	a := newAuth(t, nil)
	cl := reg(t, a, "SHA-256", t0)
	if err := a.SetSecret([]byte("short")); err == nil {
		t.Fatal("short secret accepted")
	}
	if err := a.SetSecret(secret2); err != nil {
		t.Fatal(err)
	}
	if r := verify(t, a, cl.header(), "REGISTER", cl.pw, addr1, t0); r != OK {
		t.Fatalf("after one rotation: %v", r)
	}
	cl2 := reg(t, a, "SHA-256", t0) // signed with secret2
	if err := a.SetSecret([]byte("a third secret, long enough")); err != nil {
		t.Fatal(err)
	}
	cl.nc = 2
	if r := verify(t, a, cl.header(), "REGISTER", cl.pw, addr1, t0); r != Stale {
		t.Fatalf("after two rotations: %v", r)
	}
	if r := verify(t, a, cl2.header(), "REGISTER", cl.pw, addr1, t0); r != OK {
		t.Fatalf("previous secret: %v", r)
	}
	// Config.PreviousSecret.
	b := newAuth(t, func(c *Config) { c.Secret, c.PreviousSecret = secret2, secret1 })
	old := reg(t, newAuth(t, nil), "SHA-256", t0)
	if r := verify(t, b, old.header(), "REGISTER", old.pw, addr1, t0); r != OK {
		t.Fatalf("Config.PreviousSecret: %v", r)
	}
}

func TestBindClientIP(t *testing.T) {
	a := newAuth(t, func(c *Config) { c.BindClientIP = true })
	cl := reg(t, a, "SHA-256", t0) // issued for addr1
	if r := verify(t, a, cl.header(), "REGISTER", cl.pw, addr2, t0); r != Stale {
		t.Fatalf("other address: %v", r)
	}
	if r := verify(t, a, cl.header(), "REGISTER", cl.pw, netip.Addr{}, t0); r != Stale {
		t.Fatalf("no address: %v", r)
	}
	mapped := netip.AddrFrom16(addr1.As16())
	if r := verify(t, a, cl.header(), "REGISTER", cl.pw, mapped, t0); r != OK {
		t.Fatalf("v4-mapped address: %v", r)
	}
	cl6 := cl
	cl6.nonce = string(a.AppendNonce(nil, addr2, t0))
	if r := verify(t, a, cl6.header(), "REGISTER", cl.pw, addr2, t0); r != OK {
		t.Fatalf("IPv6: %v", r)
	}
	// Without binding the address is ignored.
	b := newAuth(t, nil)
	clb := reg(t, b, "SHA-256", t0)
	if r := verify(t, b, clb.header(), "REGISTER", cl.pw, addr2, t0); r != OK {
		t.Fatalf("unbound: %v", r)
	}
}

func TestResults(t *testing.T) {
	a := newAuth(t, func(c *Config) { c.Algorithms = []Algorithm{SHA256}; c.Opaque = "xyz" })
	base := reg(t, a, "SHA-256", t0)
	base.opaque = "xyz"
	cases := []struct {
		name string
		mod  func(*client)
		want Result
	}{
		{"ok", func(c *client) {}, OK},
		{"realm", func(c *client) { c.realm = "other.com" }, RealmMismatch},
		{"realm case", func(c *client) { c.realm = "Example.com" }, RealmMismatch},
		{"MD5 not offered", func(c *client) { c.alg = "MD5" }, UnknownAlgorithm},
		{"absent algorithm is MD5", func(c *client) { c.alg = "" }, UnknownAlgorithm},
		{"unknown algorithm", func(c *client) { c.alg = "SHA-1"; c.responseOverride = strings.Repeat("a", 64) }, UnknownAlgorithm},
		{"auth-int", func(c *client) { c.qop = "auth-int" }, Unsupported},
		{"no qop", func(c *client) { c.qop = "" }, Unsupported},
		{"userhash", func(c *client) { c.extra = ", userhash=true" }, Unsupported},
		{"userhash false", func(c *client) { c.extra = ", userhash=false" }, OK},
		{"no opaque", func(c *client) { c.opaque = "" }, Unsupported},
		{"wrong opaque", func(c *client) { c.opaque = "abc" }, Unsupported},
		{"short response", func(c *client) { c.responseOverride = strings.Repeat("a", 32) }, Malformed},
		{"non-hex response", func(c *client) { c.responseOverride = strings.Repeat("g", 64) }, Malformed},
		{"unknown parameter", func(c *client) { c.extra = `, foo="bar", baz=1` }, OK},
	}
	for i, tc := range cases {
		cl := base
		cl.nc = uint32(i + 1)
		tc.mod(&cl)
		if r := verify(t, a, cl.header(), "REGISTER", cl.pw, addr1, t0); r != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, r, tc.want)
		}
	}
	if r := a.Verify(nil, nil, nil, addr1, t0); r != NoCredentials {
		t.Errorf("nil: %v", r)
	}
	if r := a.Verify(&Credentials{}, nil, nil, addr1, t0); r != NoCredentials {
		t.Errorf("zero: %v", r)
	}
	var c Credentials
	base.nc = 100
	ParseCredentials([]byte(base.header()), &c)
	for _, ha1 := range []string{"", "abc", HA1(MD5, "alice", testRealm, "s3cret"), strings.Repeat("z", 64)} {
		if r := a.Verify(&c, []byte("REGISTER"), []byte(ha1), addr1, t0); r != BadHA1 {
			t.Errorf("HA1 %q: %v", ha1, r)
		}
	}
	for r := OK; r <= BadHA1+1; r++ {
		if r.String() == "" {
			t.Errorf("Result(%d) has no name", r)
		}
	}
}

func TestNoQop(t *testing.T) {
	a := newAuth(t, func(c *Config) { c.AllowNoQop = true })
	cl := reg(t, a, "MD5", t0)
	cl.qop = ""
	if r := verify(t, a, cl.header(), "REGISTER", cl.pw, addr1, t0); r != OK {
		t.Fatalf("RFC 2069 MD5: %v", r)
	}
	if r := verify(t, a, cl.header(), "REGISTER", cl.pw, addr1, t0); r != Replay {
		t.Fatalf("second use: %v", r)
	}
	cl = reg(t, a, "MD5", t0.Add(time.Millisecond))
	cl.qop, cl.alg = "", ""
	cl.extra = `, nc=00000005, cnonce="ignored"` // ignored without qop
	if r := verify(t, a, cl.header(), "REGISTER", cl.pw, addr1, t0); r != OK {
		t.Fatalf("RFC 2069, no algorithm: %v", r)
	}
	for _, alg := range []string{"SHA-256", "MD5-sess"} {
		cl := reg(t, a, alg, t0)
		cl.qop = ""
		if r := verify(t, a, cl.header(), "REGISTER", cl.pw, addr1, t0); r != Unsupported {
			t.Fatalf("no qop with %s: %v", alg, r)
		}
	}
}

func TestParseCredentials(t *testing.T) {
	const valid = `Digest username="bob", realm="r", nonce="n", uri="sip:r", response="00", qop=auth, nc=0000000a, cnonce="c"`
	var c Credentials
	if err := ParseCredentials([]byte(valid), &c); err != nil {
		t.Fatal(err)
	}
	if string(c.Username) != "bob" || string(c.Realm) != "r" || string(c.Nonce) != "n" || string(c.URI) != "sip:r" ||
		string(c.Response) != "00" || c.Qop != QopAuth || c.NC != 10 || string(c.CNonce) != "c" || c.Algorithm != MD5 {
		t.Fatalf("%+v", c)
	}
	ok := []string{
		"dIgEsT USERNAME=\"bob\",REALM=\"r\",NONCE=\"n\",URI=\"sip:r\",RESPONSE=\"00\"",
		"Digest\r\n username=\"bob\" ,\r\n\trealm = \"r\", , nonce=n, uri=\"sip:r\", response=00,",
		"Digest username=bob, realm=r, nonce=n/+=, uri=sip:bob@r;transport=udp, response=00",
		`Digest username="b\"o\\b", realm="r", nonce="n", uri="sip:r", response="00", algorithm="SHA-256", qop="auth", nc=FFFFFFFF, cnonce="c"`,
		`Digest username="", realm="", nonce="", uri="", response=""`,
		`Digest username="bob", realm="r", nonce="n", uri="sip:r", response="00", algorithm=SHA-1024`,
	}
	for _, s := range ok {
		if err := ParseCredentials([]byte(s), &c); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	if ParseCredentials([]byte(ok[3]), &c); string(c.AppendUsername(nil)) != `b"o\b` || c.NC != 0xffffffff || c.Algorithm != SHA256 {
		t.Errorf("escapes: %q %+v", c.AppendUsername(nil), c)
	}
	if ParseCredentials([]byte(ok[5]), &c); c.Algorithm != 0 || string(c.AlgorithmName) != "SHA-1024" {
		t.Errorf("unknown algorithm: %+v", c)
	}
	bad := map[string]error{
		`Basic YWxhZGRpbjpvcGVuc2VzYW1l`: ErrNotDigest,
		`Bearer x`:                       ErrNotDigest,
		``:                               ErrMalformed,
		`Digest`:                         ErrMalformed,
		`Digestusername="bob"`:           ErrNotDigest,
		`Digest username="bob", realm="r", nonce="n", uri="sip:r"`:                                                  ErrMalformed,
		`Digest username="bob", realm="r", nonce="n", uri="sip:r", response="00", realm="s"`:                        ErrMalformed,
		`Digest username="bob", realm="r", nonce="n", uri="sip:r", response="00", qop=auth`:                         ErrMalformed,
		`Digest username="bob", realm="r", nonce="n", uri="sip:r", response="00", qop=x, nc=00000001, cnonce=c`:     ErrMalformed,
		`Digest username="bob", realm="r", nonce="n", uri="sip:r", response="00", qop=auth, nc=1, cnonce=c`:         ErrMalformed,
		`Digest username="bob", realm="r", nonce="n", uri="sip:r", response="00", qop=auth, nc=00000000, cnonce=c`:  ErrMalformed,
		`Digest username="bob", realm="r", nonce="n", uri="sip:r", response="00", qop=auth, nc=0000000g, cnonce=c`:  ErrMalformed,
		`Digest username="bob", realm="r", nonce="n", uri="sip:r", response="00", qop=auth, nc=00000001`:            ErrMalformed,
		`Digest username="bob", realm="r", nonce="n", uri="sip:r", response="00", qop=auth, nc=00000001, cnonce=""`: ErrMalformed,
		`Digest username="bob", realm="r", nonce="n", uri="sip:r", response="00`:                                    ErrMalformed,
		`Digest username="bob" realm="r"`: ErrMalformed,
		`Digest username`:                 ErrMalformed,
		`Digest =x`:                       ErrMalformed,
		`Digest username="bob", realm="r", nonce="n", uri="sip:r", response="00", algorithm=MD5, algorithm=MD5`: ErrMalformed,
	}
	for s, want := range bad {
		if err := ParseCredentials([]byte(s), &c); err != want {
			t.Errorf("%q: %v, want %v", s, err, want)
		}
	}
}

func TestFindCredentials(t *testing.T) {
	a := newAuth(t, nil)
	cl := reg(t, a, "SHA-256", t0)
	cl.method = "INVITE"
	other := cl
	other.realm = "upstream.net"
	msg := "INVITE sip:bob@example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\r\n" +
		"From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n" +
		"Call-ID: x\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n" +
		"Proxy-Authorization: Basic abc\r\n" +
		"Proxy-Authorization: " + other.header() + "\r\n" +
		"Proxy-Authorization: " + cl.header() + "\r\n" +
		"Authorization: " + other.header() + "\r\n" +
		"Content-Length: 0\r\n\r\n"
	var m sip.Message
	if err := m.Parse([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	var c Credentials
	if ok, err := a.FindCredentials(&m, true, &c); !ok || err != nil || string(c.Realm) != testRealm {
		t.Fatalf("proxy: %v %v %+v", ok, err, c)
	}
	if r := a.VerifyPassword(&c, m.MethodName(), []byte(cl.pw), addr1, t0); r != OK {
		t.Fatal(r)
	}
	if !bytes.Equal(c.URI, []byte(cl.uri)) {
		t.Fatalf("uri %q", c.URI)
	}
	if ok, err := a.FindCredentials(&m, false, &c); ok || err != nil || c.Nonce != nil {
		t.Fatalf("www: %v %v %+v", ok, err, c)
	}
	// A malformed header for our realm is reported, one for another realm skipped.
	msg2 := strings.Replace(msg, "Proxy-Authorization: Basic abc", `Proxy-Authorization: Digest realm="upstream.net", nc=1`, 1)
	msg2 = strings.Replace(msg2, "\r\nAuthorization: Digest", "\r\nAuthorization: Digest realm=\"example.com\", nonce=x", 1)
	if err := m.Parse([]byte(msg2)); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.FindCredentials(&m, true, &c); !ok || err != nil {
		t.Fatalf("proxy, malformed other realm: %v %v", ok, err)
	}
	if ok, err := a.FindCredentials(&m, false, &c); !ok || err != ErrMalformed {
		t.Fatalf("www, malformed ours: %v %v", ok, err)
	}
}

// The memory figures the README gives.
func TestReplayLayout(t *testing.T) {
	if s := unsafe.Sizeof(bucket{}); s != 128 {
		t.Errorf("bucket is %d bytes", s)
	}
	if s := unsafe.Sizeof(entry{}); s != 24 {
		t.Errorf("entry is %d bytes", s)
	}
	if s := unsafe.Sizeof(lock{}); s != 64 {
		t.Errorf("lock is %d bytes", s)
	}
	if c := newReplayTable(0).capacity(); c != 5*65536 {
		t.Errorf("default capacity %d", c)
	}
}

// A quoted username with escapes: the HA1 uses the unescaped form.
func TestEscapedUsername(t *testing.T) {
	a := newAuth(t, nil)
	for i, user := range []string{`a"b\c`, strings.Repeat(`\"`, 100)} {
		cl := reg(t, a, "SHA-256", t0.Add(time.Duration(i)))
		cl.user = user
		h := cl.response()
		cl.user = strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(user)
		cl.responseOverride = h
		var c Credentials
		if err := ParseCredentials([]byte(cl.header()), &c); err != nil {
			t.Fatal(err)
		}
		if got := string(c.AppendUsername(nil)); got != user {
			t.Fatalf("AppendUsername = %q, want %q", got, user)
		}
		if r := a.VerifyPassword(&c, []byte("REGISTER"), []byte(cl.pw), addr1, t0); r != OK {
			t.Fatalf("VerifyPassword: %v", r)
		}
		cl.nc = 2
		cl.user = user
		cl.responseOverride = ""
		h = cl.response()
		cl.user = strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(user)
		cl.responseOverride = h
		if r := verify(t, a, cl.header(), "REGISTER", cl.pw, addr1, t0); r != OK {
			t.Fatalf("Verify: %v", r)
		}
	}
}
