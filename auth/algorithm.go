package auth

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
)

// Algorithm is a digest algorithm (RFC 7616 §6.1, RFC 8760). The zero
// value is no algorithm.
type Algorithm uint8

// The supported algorithms. A "-sess" variant uses the HA1 of its base
// algorithm (see Algorithm.Base).
const (
	MD5            Algorithm = iota + 1 // "MD5" (RFC 2617/3261), also the default when algorithm is absent
	MD5Sess                             // "MD5-sess"
	SHA256                              // "SHA-256"
	SHA256Sess                          // "SHA-256-sess"
	SHA512_256                          // "SHA-512-256" (SHA-512/256)
	SHA512_256Sess                      // "SHA-512-256-sess"
	numAlgorithms
)

var algNames = [numAlgorithms]string{
	MD5:            "MD5",
	MD5Sess:        "MD5-sess",
	SHA256:         "SHA-256",
	SHA256Sess:     "SHA-256-sess",
	SHA512_256:     "SHA-512-256",
	SHA512_256Sess: "SHA-512-256-sess",
}

// String returns the RFC 8760 name, e.g. "SHA-256", or "" for an invalid
// algorithm.
func (a Algorithm) String() string {
	if !a.Valid() {
		return ""
	}
	return algNames[a]
}

// Valid reports whether a is one of the supported algorithms.
func (a Algorithm) Valid() bool { return a > 0 && a < numAlgorithms }

// Base returns the algorithm without "-sess": the one whose HA1
// H(username:realm:password) a subscriber database stores.
func (a Algorithm) Base() Algorithm {
	switch a {
	case MD5Sess:
		return MD5
	case SHA256Sess:
		return SHA256
	case SHA512_256Sess:
		return SHA512_256
	}
	return a
}

// Sess reports whether a is a "-sess" variant.
func (a Algorithm) Sess() bool { return a.Valid() && a != a.Base() }

// Size returns the digest size in bytes (16 or 32); the hex form is twice
// as long. It is 0 for an invalid algorithm.
func (a Algorithm) Size() int {
	switch a.Base() {
	case MD5:
		return md5.Size
	case SHA256:
		return sha256.Size
	case SHA512_256:
		return sha512.Size256
	}
	return 0
}

// ParseAlgorithm returns the algorithm named b (case-insensitive, as in
// the algorithm parameter), or 0 and false.
func ParseAlgorithm(b []byte) (Algorithm, bool) {
	for a := MD5; a < numAlgorithms; a++ {
		if equalFold(b, algNames[a]) {
			return a, true
		}
	}
	return 0, false
}

// HA1 returns H(user ":" realm ":" password) in lowercase hex for the base
// algorithm of alg (the value to store per algorithm in a subscriber
// database), or "" for an invalid algorithm. user is the plain username,
// without quoting backslashes.
func HA1(alg Algorithm, user, realm, password string) string {
	if !alg.Valid() {
		return ""
	}
	var out [2 * maxSize]byte
	b := make([]byte, 0, len(user)+len(realm)+len(password)+2)
	b = append(append(append(append(append(b, user...), ':'), realm...), ':'), password...)
	h := alg.sumHex(&out, b)
	clear(b)
	return string(h)
}

// maxSize is the largest digest size.
const maxSize = 32

// hashBufSize is the stack buffer used to hash a joined input without
// allocating; longer inputs (very long URIs or cnonces) take a heap buffer.
const hashBufSize = 1024

// sumHex hashes the parts joined by ':' with the base algorithm of a and
// writes the lowercase hex digest into out, returning it. It does not
// allocate unless the joined input is longer than hashBufSize.
func (a Algorithm) sumHex(out *[2 * maxSize]byte, parts ...[]byte) []byte {
	n := len(parts) - 1
	for _, p := range parts {
		n += len(p)
	}
	var stack [hashBufSize]byte
	var buf []byte
	if n <= len(stack) {
		buf = stack[:0]
	} else {
		buf = make([]byte, 0, n)
	}
	for i, p := range parts {
		if i > 0 {
			buf = append(buf, ':')
		}
		buf = append(buf, p...)
	}
	var sum [maxSize]byte
	var size int
	switch a.Base() {
	case MD5:
		s := md5.Sum(buf)
		size = copy(sum[:], s[:])
	case SHA256:
		s := sha256.Sum256(buf)
		size = copy(sum[:], s[:])
	case SHA512_256:
		s := sha512.Sum512_256(buf)
		size = copy(sum[:], s[:])
	}
	clear(buf) // may hold a password
	hex.Encode(out[:], sum[:size])
	return out[:2*size]
}

// response computes the expected request-digest in lowercase hex into out
// (RFC 7616 §3.4.1, RFC 2617 §3.2.2.1): for qop=auth
//
//	H(HA1 ":" nonce ":" nc ":" cnonce ":" "auth" ":" HA2)
//
// and without qop H(HA1 ":" nonce ":" HA2), where HA2 = H(method ":" uri)
// and, for a -sess algorithm, HA1 = H(ha1 ":" nonce ":" cnonce). ha1 is
// the lowercase hex H(username:realm:password).
func (a Algorithm) response(out *[2 * maxSize]byte, ha1, nonce []byte, nc uint32, cnonce []byte, qop Qop, method, uri []byte) []byte {
	var sessBuf, ha2Buf [2 * maxSize]byte
	if a.Sess() {
		ha1 = a.sumHex(&sessBuf, ha1, nonce, cnonce)
	}
	ha2 := a.sumHex(&ha2Buf, method, uri)
	if qop == QopNone {
		return a.sumHex(out, ha1, nonce, ha2)
	}
	var ncb [8]byte
	for i := range ncb {
		ncb[i] = "0123456789abcdef"[nc>>(28-4*i)&0xf]
	}
	return a.sumHex(out, ha1, nonce, ncb[:], cnonce, []byte("auth"), ha2)
}
