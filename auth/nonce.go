package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"net/netip"
)

// Nonce layout: base64url without padding of
//
//	timestamp (8 bytes, Unix nanoseconds, big endian) | MAC (16 bytes)
//
// MAC = HMAC-SHA256(K, timestamp | binding)[:16], where
// K = HMAC-SHA256(secret, "velox-digest-nonce-v1" 0x00 realm) binds the
// realm, and binding is 17 bytes: 0 and zeros without client-IP binding,
// else 4 or 6 and the 16-byte form of the client address.
const (
	nonceTSLen  = 8
	nonceMACLen = 16
	nonceRawLen = nonceTSLen + nonceMACLen
	// NonceLen is the length of a nonce in characters.
	NonceLen = (nonceRawLen*8 + 5) / 6 // 32
	bindLen  = 17
	macMsg   = nonceTSLen + bindLen
)

// nonceKDFLabel separates the nonce key from any other use of the secret.
const nonceKDFLabel = "velox-digest-nonce-v1\x00"

// macKey is an HMAC-SHA256 key with its padded blocks precomputed, so that
// computing a MAC needs no allocation (crypto/hmac's state is a heap
// object).
type macKey struct {
	ipad, opad [sha256.BlockSize]byte
}

// keys is the current and (optionally) the previous nonce key. It is
// replaced as a whole (atomic pointer) on rotation.
type keys struct {
	cur, prev macKey
	hasPrev   bool
}

// deriveKey derives the realm's nonce key from secret.
func deriveKey(secret []byte, realm string) macKey {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(nonceKDFLabel))
	m.Write([]byte(realm))
	k := m.Sum(nil) // 32 bytes ≤ block size: used as is
	var mk macKey
	for i := range mk.ipad {
		var b byte
		if i < len(k) {
			b = k[i]
		}
		mk.ipad[i] = b ^ 0x36
		mk.opad[i] = b ^ 0x5c
	}
	clear(k)
	return mk
}

// mac computes HMAC-SHA256(k, msg) without allocating.
func (k *macKey) mac(msg *[macMsg]byte) [sha256.Size]byte {
	var in [sha256.BlockSize + macMsg]byte
	copy(in[:], k.ipad[:])
	copy(in[sha256.BlockSize:], msg[:])
	inner := sha256.Sum256(in[:])
	var out [sha256.BlockSize + sha256.Size]byte
	copy(out[:], k.opad[:])
	copy(out[sha256.BlockSize:], inner[:])
	return sha256.Sum256(out[:])
}

// macInput builds timestamp | binding.
func macInput(ts uint64, client netip.Addr, bind bool) (msg [macMsg]byte) {
	binary.BigEndian.PutUint64(msg[:nonceTSLen], ts)
	if bind && client.IsValid() {
		client = client.Unmap()
		if client.Is4() {
			msg[nonceTSLen] = 4
		} else {
			msg[nonceTSLen] = 6
		}
		a := client.As16()
		copy(msg[nonceTSLen+1:], a[:])
	}
	return msg
}

// appendNonce appends a new nonce for time ts (Unix nanoseconds).
func appendNonce(dst []byte, k *macKey, ts uint64, client netip.Addr, bind bool) []byte {
	msg := macInput(ts, client, bind)
	sum := k.mac(&msg)
	var raw [nonceRawLen]byte
	copy(raw[:], msg[:nonceTSLen])
	copy(raw[nonceTSLen:], sum[:nonceMACLen])
	return base64.RawURLEncoding.AppendEncode(dst, raw[:])
}

// checkNonce decodes nonce and verifies its MAC with the current or the
// previous key. It returns the timestamp and the replay-table key (the
// first 8 MAC bytes).
func checkNonce(nonce []byte, ks *keys, client netip.Addr, bind bool) (ts, id uint64, ok bool) {
	if len(nonce) != NonceLen {
		return 0, 0, false
	}
	var raw [nonceRawLen]byte
	if n, err := base64.RawURLEncoding.Decode(raw[:], nonce); err != nil || n != nonceRawLen {
		return 0, 0, false
	}
	ts = binary.BigEndian.Uint64(raw[:nonceTSLen])
	got := raw[nonceTSLen:]
	msg := macInput(ts, client, bind)
	sum := ks.cur.mac(&msg)
	ok = subtle.ConstantTimeCompare(got, sum[:nonceMACLen]) == 1
	if !ok && ks.hasPrev {
		sum = ks.prev.mac(&msg)
		ok = subtle.ConstantTimeCompare(got, sum[:nonceMACLen]) == 1
	}
	if !ok {
		return 0, 0, false
	}
	return ts, binary.LittleEndian.Uint64(got[:8]), true
}
