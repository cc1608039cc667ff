package digestauth

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/veloxsip/velox/store"
)

// The in-memory table of 100,000 subscribers (names like "user123456",
// domain example.com, three HA1s each): bytes per subscriber, counting the
// map, the keys and the records.
func TestSubscribersMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const n = 100_000
	rows := make([]store.Credentials, n)
	for i := range rows {
		u := "user" + strconv.Itoa(i)
		hs := u + ":example.com:pw" + strconv.Itoa(i)
		m, s2, s5 := md5.Sum([]byte(hs)), sha256.Sum256([]byte(hs)), sha512.Sum512_256([]byte(hs))
		rows[i] = store.Credentials{Username: []byte(u), Domain: []byte("example.com"),
			HA1MD5: hex.AppendEncode(nil, m[:]), HA1SHA256: hex.AppendEncode(nil, s2[:]), HA1SHA512256: hex.AppendEncode(nil, s5[:])}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var b builder
	for i := range rows {
		b.add(&rows[i])
	}
	sn := b.finish(time.Now())
	b = builder{}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	runtime.KeepAlive(sn)
	runtime.KeepAlive(rows)
	t.Logf("%d subscribers: %.0f bytes each (record %d, key ~%d)", n, per, recSize, len("user12345@example.com"))
	if len(sn.idx) != n {
		t.Fatalf("%d entries", len(sn.idx))
	}
	if per > 200 {
		t.Fatalf("%.0f bytes per subscriber", per)
	}
}
