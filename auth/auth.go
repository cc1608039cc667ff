// Package auth implements SIP digest authentication (RFC 3261 §22,
// RFC 7616, RFC 8760) for a registrar or proxy: challenges with stateless
// HMAC nonces, verification of Authorization and Proxy-Authorization
// credentials against a password or a stored HA1, and nonce-count replay
// protection. The verify path does not allocate, and an Authenticator is
// safe for concurrent use.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/veloxsip/velox/sip"
)

// Config configures an Authenticator.
type Config struct {
	// Realm is the protection domain, usually the SIP domain. Required; it
	// must not contain '"', '\' or control characters.
	Realm string
	// Algorithms are offered in this order, one challenge each: list the
	// preferred (strongest) first (RFC 8760 §2.4). Only these are accepted.
	// Default: SHA-256, MD5.
	Algorithms []Algorithm
	// NonceTTL is how long a nonce is accepted (default 5 minutes, at
	// most 24 hours). A client reuses a nonce, with increasing nc, until it
	// expires; then Verify returns Stale.
	NonceTTL time.Duration
	// Secret is the HMAC key of the nonces, at least 16 bytes. When nil a
	// random 32-byte secret is generated: nonces then do not survive a
	// restart (clients get stale=true and retry silently). Share it among
	// the nodes that must accept each other's nonces.
	Secret []byte
	// PreviousSecret, if set, is still accepted for verification (key
	// rotation). See also SetSecret.
	PreviousSecret []byte
	// BindClientIP binds each nonce to the client's IP address (the
	// address given to AppendChallenges and Verify). A client whose
	// address changes (NAT rebinding, mobile) gets Stale and retries.
	BindClientIP bool
	// Opaque, if set, is sent in challenges and must come back unchanged.
	Opaque string
	// AllowNoQop accepts MD5 responses without qop (RFC 2069, RFC 2543
	// clients). Such a nonce is single-use: its second use is a Replay.
	// Challenges always carry qop="auth" (RFC 3261 §22.4).
	AllowNoQop bool
	// ReplayEntries is the capacity of the replay table, in tracked nonces
	// (default DefaultReplayEntries = 327680, 8 MiB: 128-byte buckets of 5
	// entries); it is rounded up to 5 times a power of two. Size it to at
	// least twice the number of nonces used within NonceTTL.
	ReplayEntries int
}

// Authenticator issues challenges and verifies credentials for one realm.
// It is safe for concurrent use.
type Authenticator struct {
	realm      string
	algs       []Algorithm
	accept     uint8 // bit per accepted algorithm
	ttl        int64 // ns
	bind       bool
	noQop      bool
	opaque     string
	keys       atomic.Pointer[keys]
	realmBytes []byte // read only
	replay     *replayTable
	prefix     [2]string // [proxy]: header line up to the nonce
}

// Result is the outcome of Verify.
type Result uint8

// Results. What the caller does with each is in the package README.
const (
	// OK: the credentials are valid; the caller still checks URI against
	// the Request-URI and Username against the request's identity.
	OK Result = iota
	// NoCredentials: no credentials were given: challenge (401/407).
	NoCredentials
	// Malformed: required parameters missing or invalid: 400 Bad Request.
	Malformed
	// RealmMismatch: credentials for another realm: challenge.
	RealmMismatch
	// UnknownAlgorithm: an algorithm not offered: challenge.
	UnknownAlgorithm
	// Unsupported: qop=auth-int, userhash=true, no qop when AllowNoQop is
	// off, or a missing/wrong opaque: challenge.
	Unsupported
	// BadCredentials: the response is wrong (wrong password or HA1, or a
	// tampered nonce/uri): challenge again or 403.
	BadCredentials
	// Stale: the response is right but the nonce has expired, was not
	// issued with the current or previous secret, is bound to another
	// address, or was forgotten by a full replay table: challenge with
	// stale=true.
	Stale
	// Replay: this nonce-count was already used with this nonce: challenge
	// with stale=true (a legitimate client then takes a fresh nonce).
	Replay
	// BadHA1: the ha1 argument is not the hex digest of the credentials'
	// algorithm (a caller or database error): 500 or challenge.
	BadHA1
)

var resultNames = [...]string{
	OK:               "ok",
	NoCredentials:    "no credentials",
	Malformed:        "malformed",
	RealmMismatch:    "realm mismatch",
	UnknownAlgorithm: "unknown algorithm",
	Unsupported:      "unsupported",
	BadCredentials:   "bad credentials",
	Stale:            "stale",
	Replay:           "replay",
	BadHA1:           "bad HA1",
}

// String returns a short lower-case description for logs.
func (r Result) String() string {
	if int(r) < len(resultNames) {
		return resultNames[r]
	}
	return fmt.Sprintf("result(%d)", uint8(r))
}

// Defaults and limits.
const (
	DefaultNonceTTL = 5 * time.Minute
	MaxNonceTTL     = 24 * time.Hour
	MinSecretLen    = 16
	// maxSkew tolerates a nonce timestamp slightly in the future (clocks of
	// nodes sharing a secret, or calls passing slightly different times).
	maxSkew = 5 * time.Second
)

// New returns an Authenticator for cfg.
func New(cfg Config) (*Authenticator, error) {
	if cfg.Realm == "" {
		return nil, errors.New("auth: empty realm")
	}
	if !quotable(cfg.Realm) {
		return nil, fmt.Errorf("auth: realm %q contains '\"', '\\' or a control character", cfg.Realm)
	}
	if !quotable(cfg.Opaque) {
		return nil, fmt.Errorf("auth: opaque %q contains '\"', '\\' or a control character", cfg.Opaque)
	}
	a := &Authenticator{
		realm:  cfg.Realm,
		ttl:    int64(cfg.NonceTTL),
		bind:   cfg.BindClientIP,
		noQop:  cfg.AllowNoQop,
		opaque: cfg.Opaque,
	}
	if a.ttl == 0 {
		a.ttl = int64(DefaultNonceTTL)
	}
	if a.ttl < int64(time.Second) || a.ttl > int64(MaxNonceTTL) {
		return nil, fmt.Errorf("auth: nonce TTL %v out of range [1s, %v]", cfg.NonceTTL, MaxNonceTTL)
	}
	a.algs = append([]Algorithm(nil), cfg.Algorithms...)
	if len(a.algs) == 0 {
		a.algs = []Algorithm{SHA256, MD5}
	}
	for _, alg := range a.algs {
		if !alg.Valid() {
			return nil, fmt.Errorf("auth: invalid algorithm %d", alg)
		}
		if a.accept&(1<<alg) != 0 {
			return nil, fmt.Errorf("auth: algorithm %v listed twice", alg)
		}
		a.accept |= 1 << alg
	}
	secret := cfg.Secret
	if secret == nil {
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, fmt.Errorf("auth: random secret: %w", err)
		}
	}
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("auth: secret shorter than %d bytes", MinSecretLen)
	}
	ks := &keys{cur: deriveKey(secret, a.realm)}
	if cfg.PreviousSecret != nil {
		if len(cfg.PreviousSecret) < MinSecretLen {
			return nil, fmt.Errorf("auth: previous secret shorter than %d bytes", MinSecretLen)
		}
		ks.prev, ks.hasPrev = deriveKey(cfg.PreviousSecret, a.realm), true
	}
	a.keys.Store(ks)
	a.replay = newReplayTable(cfg.ReplayEntries)
	a.realmBytes = []byte(a.realm)
	a.prefix[0] = `WWW-Authenticate: Digest realm="` + a.realm + `", nonce="`
	a.prefix[1] = `Proxy-Authenticate: Digest realm="` + a.realm + `", nonce="`
	return a, nil
}

// quotable reports whether s can be written in a quoted-string as is.
func quotable(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool {
		return r == '"' || r == '\\' || r < 0x20 || r == 0x7f
	})
}

// SetSecret makes secret the current nonce secret and the current one the
// previous (still accepted) one. Call it periodically to rotate keys: a
// nonce survives one rotation. It is safe to call concurrently with the
// other methods.
func (a *Authenticator) SetSecret(secret []byte) error {
	if len(secret) < MinSecretLen {
		return fmt.Errorf("auth: secret shorter than %d bytes", MinSecretLen)
	}
	for {
		old := a.keys.Load()
		ks := &keys{cur: deriveKey(secret, a.realm), prev: old.cur, hasPrev: true}
		if a.keys.CompareAndSwap(old, ks) {
			return nil
		}
	}
}

// Realm returns the configured realm.
func (a *Authenticator) Realm() string { return a.realm }

// Algorithms returns the offered algorithms, preferred first.
func (a *Authenticator) Algorithms() []Algorithm { return append([]Algorithm(nil), a.algs...) }

// AppendNonce appends a new nonce (NonceLen characters) issued at now for
// a client at address client (used only with BindClientIP).
func (a *Authenticator) AppendNonce(dst []byte, client netip.Addr, now time.Time) []byte {
	return appendNonce(dst, &a.keys.Load().cur, uint64(now.UnixNano()), client, a.bind)
}

// AppendChallenges appends one WWW-Authenticate (or, with proxy,
// Proxy-Authenticate) header line per configured algorithm, preferred
// first, each terminated by CRLF and sharing one fresh nonce:
//
//	WWW-Authenticate: Digest realm="…", nonce="…", algorithm=SHA-256, qop="auth"[, stale=true][, opaque="…"]
//
// Set stale after Verify returned Stale or Replay. client is the
// request's source address (used only with BindClientIP). It allocates
// only if dst must grow.
func (a *Authenticator) AppendChallenges(dst []byte, proxy, stale bool, client netip.Addr, now time.Time) []byte {
	var nb [NonceLen]byte
	nonce := a.AppendNonce(nb[:0], client, now)
	for _, alg := range a.algs {
		dst = a.appendChallenge(dst, alg, proxy, stale, nonce)
	}
	return dst
}

// AppendChallenge appends the header line of AppendChallenges for one
// algorithm, with a fresh nonce (alg need not be configured, but Verify
// accepts only configured algorithms).
func (a *Authenticator) AppendChallenge(dst []byte, alg Algorithm, proxy, stale bool, client netip.Addr, now time.Time) []byte {
	var nb [NonceLen]byte
	return a.appendChallenge(dst, alg, proxy, stale, a.AppendNonce(nb[:0], client, now))
}

func (a *Authenticator) appendChallenge(dst []byte, alg Algorithm, proxy, stale bool, nonce []byte) []byte {
	p := 0
	if proxy {
		p = 1
	}
	dst = append(dst, a.prefix[p]...)
	dst = append(dst, nonce...)
	dst = append(dst, `", algorithm=`...)
	dst = append(dst, alg.String()...)
	dst = append(dst, `, qop="auth"`...)
	if stale {
		dst = append(dst, ", stale=true"...)
	}
	if a.opaque != "" {
		dst = append(dst, `, opaque="`...)
		dst = append(dst, a.opaque...)
		dst = append(dst, '"')
	}
	return append(dst, "\r\n"...)
}

// Verify checks credentials c (from ParseCredentials) of a request with
// method (e.g. "REGISTER") from address client, at time now, against
// ha1Hex: H(username:realm:password) in hex (either case) for
// c.Algorithm.Base(), as stored by the subscriber database. The caller
// looks the HA1 up by c.Username (see AppendUsername) and c.Algorithm, and
// checks c.URI against the Request-URI. A nil c gives NoCredentials.
//
// A response is checked before its nonce, so Stale (and Replay) are
// returned only to clients that know the password (RFC 7616 §3.3). Only
// correct responses are recorded in the replay table. It does not
// allocate.
func (a *Authenticator) Verify(c *Credentials, method, ha1Hex []byte, client netip.Addr, now time.Time) Result {
	if r := a.precheck(c); r != OK {
		return r
	}
	size := c.Algorithm.Size()
	var ha1 [2 * maxSize]byte
	if len(ha1Hex) != 2*size || !lowerHex(ha1[:], ha1Hex) {
		return BadHA1
	}
	return a.verify(c, method, ha1[:2*size], client, now)
}

// VerifyPassword is Verify with the plaintext password instead of the HA1.
func (a *Authenticator) VerifyPassword(c *Credentials, method, password []byte, client netip.Addr, now time.Time) Result {
	if r := a.precheck(c); r != OK {
		return r
	}
	user := c.Username
	var ub [128]byte
	if containsByte(user, '\\') {
		user = appendUnq(ub[:0], user) // allocates only past 128 bytes
	}
	var ha1 [2 * maxSize]byte
	h := c.Algorithm.sumHex(&ha1, user, a.realmBytes, password)
	return a.verify(c, method, h, client, now)
}

// precheck validates the parts of c that do not depend on the secret.
func (a *Authenticator) precheck(c *Credentials) Result {
	if c == nil || c.Nonce == nil {
		return NoCredentials
	}
	if string(c.Realm) != a.realm {
		return RealmMismatch
	}
	if !c.Algorithm.Valid() || a.accept&(1<<c.Algorithm) == 0 {
		return UnknownAlgorithm
	}
	switch c.Qop {
	case QopAuth:
		if c.NC == 0 || len(c.CNonce) == 0 {
			return Malformed
		}
	case QopNone:
		if !a.noQop || c.Algorithm != MD5 {
			return Unsupported
		}
	default:
		return Unsupported
	}
	if c.UserHash {
		return Unsupported
	}
	if a.opaque != "" && string(c.Opaque) != a.opaque {
		return Unsupported
	}
	if len(c.Response) != 2*c.Algorithm.Size() {
		return Malformed
	}
	return OK
}

// verify checks the response for lower-case hex ha1, then the nonce, then
// the replay table.
func (a *Authenticator) verify(c *Credentials, method, ha1 []byte, client netip.Addr, now time.Time) Result {
	var resp, buf [2 * maxSize]byte
	if !lowerHex(resp[:], c.Response) { // length checked by precheck
		return Malformed
	}
	want := c.Algorithm.response(&buf, ha1, c.Nonce, c.NC, c.CNonce, c.Qop, method, c.URI)
	if subtle.ConstantTimeCompare(resp[:len(want)], want) != 1 {
		return BadCredentials
	}

	ts, id, ok := checkNonce(c.Nonce, a.keys.Load(), client, a.bind)
	if !ok {
		return Stale
	}
	nowNs := now.UnixNano()
	its := int64(ts)
	if its < 0 || its > nowNs+int64(maxSkew) || nowNs-its > a.ttl {
		return Stale
	}
	expSec := (its + a.ttl + int64(time.Second) - 1) / int64(time.Second)
	nc := c.NC
	if c.Qop == QopNone {
		nc = 1 // single use
	}
	switch a.replay.check(id, uint32(expSec), nc, uint32(nowNs/int64(time.Second))) {
	case replaySeen:
		return Replay
	case replayForgot:
		return Stale
	}
	return OK
}

// lowerHex copies hex string src into dst in lower case and reports
// whether it is valid hex.
func lowerHex(dst, src []byte) bool {
	for i, ch := range src {
		switch {
		case ch >= '0' && ch <= '9', ch >= 'a' && ch <= 'f':
		case ch >= 'A' && ch <= 'F':
			ch += 'a' - 'A'
		default:
			return false
		}
		dst[i] = ch
	}
	return true
}

func containsByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

// FindCredentials parses into c the first Authorization (or, with proxy,
// Proxy-Authorization) header of m that uses the Digest scheme with this
// realm, skipping the headers for other realms or schemes (credentials for
// other proxies on the path, RFC 3261 §22.3). It returns false when there
// is none, and the first parse error of a Digest header for this realm. It
// does not allocate.
func (a *Authenticator) FindCredentials(m *sip.Message, proxy bool, c *Credentials) (bool, error) {
	id := sip.HdrAuthorization
	if proxy {
		id = sip.HdrProxyAuthorization
	}
	for i := m.Index(id, -1); i >= 0; i = m.Index(id, i) {
		_, _, v := m.HeaderAt(i)
		err := ParseCredentials(v, c)
		if err == ErrNotDigest {
			continue
		}
		if err != nil {
			// A header we cannot parse may be for us: report it only if
			// its realm is ours; otherwise look further.
			if string(realmOf(v)) != a.realm {
				continue
			}
			*c = Credentials{}
			return true, err
		}
		if string(c.Realm) == a.realm {
			return true, nil
		}
	}
	*c = Credentials{}
	return false, nil
}

// realmOf returns the realm parameter of a (possibly malformed)
// credentials value, as far as it can be read.
func realmOf(v []byte) []byte {
	i := tokenEnd(v, skipLWS(v, 0))
	it := paramIter{rest: v[i:]}
	for {
		name, val, ok := it.next()
		if !ok {
			return nil
		}
		if equalFold(name, "realm") {
			return val
		}
	}
}

// Stats describes the replay table.
type Stats struct {
	Capacity  int    // tracked nonces the table can hold
	Live      int    // nonces tracked and not expired
	Evictions uint64 // live nonces evicted because their bucket was full: raise ReplayEntries if this grows
}

// Stats returns replay-table figures at time now. It takes every stripe
// lock in turn: call it from monitoring, not per request.
func (a *Authenticator) Stats(now time.Time) Stats {
	live, ev := a.replay.stats(uint32(now.Unix()))
	return Stats{Capacity: a.replay.capacity(), Live: live, Evictions: ev}
}
