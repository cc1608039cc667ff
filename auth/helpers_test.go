package auth

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// An independent client-side implementation (streaming hash.Hash, strings)
// so that the tests do not check the package against itself.

func testHash(alg string) func(string) string {
	var newH func() hash.Hash
	switch strings.TrimSuffix(strings.ToUpper(alg), "-SESS") {
	case "MD5", "":
		newH = md5.New
	case "SHA-256":
		newH = sha256.New
	case "SHA-512-256":
		newH = sha512.New512_256
	default:
		panic("algorithm " + alg)
	}
	return func(s string) string {
		h := newH()
		h.Write([]byte(s))
		return hex.EncodeToString(h.Sum(nil))
	}
}

// client describes one Authorization header a test client sends.
type client struct {
	alg              string // "" = no algorithm parameter (MD5)
	user, pw, realm  string
	method, uri      string
	nonce, cnonce    string
	nc               uint32
	qop              string // "" = none
	opaque           string
	extra            string // appended parameters
	responseOverride string
}

func (c client) response() string {
	if c.responseOverride != "" {
		return c.responseOverride
	}
	h := testHash(c.alg)
	ha1 := h(c.user + ":" + c.realm + ":" + c.pw)
	if strings.HasSuffix(strings.ToLower(c.alg), "-sess") {
		ha1 = h(ha1 + ":" + c.nonce + ":" + c.cnonce)
	}
	ha2 := h(c.method + ":" + c.uri)
	if c.qop == "" {
		return h(ha1 + ":" + c.nonce + ":" + ha2)
	}
	return h(fmt.Sprintf("%s:%s:%08x:%s:%s:%s", ha1, c.nonce, c.nc, c.cnonce, c.qop, ha2))
}

func (c client) header() string {
	var b strings.Builder
	fmt.Fprintf(&b, `Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s"`,
		c.user, c.realm, c.nonce, c.uri, c.response())
	if c.alg != "" {
		fmt.Fprintf(&b, ", algorithm=%s", c.alg)
	}
	if c.qop != "" {
		fmt.Fprintf(&b, `, qop=%s, nc=%08x, cnonce="%s"`, c.qop, c.nc, c.cnonce)
	}
	if c.opaque != "" {
		fmt.Fprintf(&b, `, opaque="%s"`, c.opaque)
	}
	b.WriteString(c.extra)
	return b.String()
}

var (
	t0      = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	addr1   = netip.MustParseAddr("192.0.2.10")
	addr2   = netip.MustParseAddr("2001:db8::7")
	secret1 = []byte("0123456789abcdef0123456789abcdef")
	secret2 = []byte("fedcba9876543210fedcba9876543210")
)

const testRealm = "example.com"

func newAuth(t testing.TB, mod func(*Config)) *Authenticator {
	t.Helper()
	cfg := Config{
		Realm:      testRealm,
		Algorithms: []Algorithm{SHA512_256, SHA256, MD5, SHA512_256Sess, SHA256Sess, MD5Sess},
		Secret:     secret1,
	}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// nonceFrom returns the nonce of a challenge line.
func nonceFrom(t testing.TB, line string) string {
	t.Helper()
	_, after, ok := strings.Cut(line, `nonce="`)
	if !ok {
		t.Fatalf("no nonce in %q", line)
	}
	n, _, _ := strings.Cut(after, `"`)
	return n
}

// reg returns a REGISTER client for a with a fresh nonce issued at now.
func reg(t testing.TB, a *Authenticator, alg string, now time.Time) client {
	t.Helper()
	return client{
		alg: alg, user: "alice", pw: "s3cret", realm: a.Realm(),
		method: "REGISTER", uri: "sip:example.com",
		nonce:  string(a.AppendNonce(nil, addr1, now)),
		cnonce: "0a4f113b", nc: 1, qop: "auth",
	}
}

// verify parses header and runs Verify with the HA1 of password pw.
func verify(t testing.TB, a *Authenticator, header, method, pw string, from netip.Addr, now time.Time) Result {
	t.Helper()
	var c Credentials
	if err := ParseCredentials([]byte(header), &c); err != nil {
		t.Fatalf("ParseCredentials(%q): %v", header, err)
	}
	alg := c.Algorithm
	if !alg.Valid() {
		alg = MD5
	}
	ha1 := HA1(alg, string(c.AppendUsername(nil)), a.Realm(), pw)
	return a.Verify(&c, []byte(method), []byte(ha1), from, now)
}
