package digestauth

import (
	"hash/maphash"
	"strconv"
	"sync"
	"time"

	"github.com/veloxsip/velox/auth"
	"github.com/veloxsip/velox/sip"
)

// A UDP client that does not hear the 200 to an authenticated REGISTER
// sends the same request again, with the same nonce and nonce-count. The
// replay table rightly refuses that count a second time, so the client
// got 401 for a request that had succeeded. The step therefore remembers,
// for 32 s (64*T1, how long a client retransmits), a hash of every
// accepted request — credentials, Call-ID, CSeq and top Via branch — and
// lets an identical request through: the registrar answers it as the
// retransmission it is (same Call-ID and CSeq change nothing), and a
// retransmitted INVITE meets its transaction. Any other reuse of a
// nonce-count is still a replay.

// retransWindow is how long an accepted request may be retransmitted.
const retransWindow = 32 * time.Second

const (
	retransSlots = 1 << 14 // entries; a full slot is overwritten (the cost: a 401)
	retransLocks = 64
)

type retransEntry struct {
	key uint64
	exp int64 // Unix nanoseconds
}

// retransTable is a fixed hash table of recently accepted requests, with
// striped locks and no allocation.
type retransTable struct {
	seed    maphash.Seed
	locks   [retransLocks]sync.Mutex
	entries [retransSlots]retransEntry
}

func newRetransTable() *retransTable { return &retransTable{seed: maphash.MakeSeed()} }

// key hashes what makes a request the same one: its credentials and its
// transaction (Call-ID, CSeq, top Via branch).
func (t *retransTable) key(cr *auth.Credentials, m *sip.Message) uint64 {
	var h maphash.Hash
	h.SetSeed(t.seed)
	h.Write(cr.Nonce)
	var nb [10]byte
	h.Write(strconv.AppendUint(nb[:0], uint64(cr.NC), 16))
	h.Write(cr.CNonce)
	h.Write(cr.Response)
	h.Write(m.CallID())
	n, _, _ := m.CSeq()
	h.Write(strconv.AppendUint(nb[:0], uint64(n), 10))
	if v, err := m.TopVia(); err == nil {
		h.Write(v.Branch)
	}
	k := h.Sum64()
	if k == 0 {
		k = 1 // 0 marks a free slot
	}
	return k
}

// add remembers an accepted request.
func (t *retransTable) add(k uint64, now time.Time) {
	i := k & (retransSlots - 1)
	mu := &t.locks[i&(retransLocks-1)]
	mu.Lock()
	t.entries[i] = retransEntry{key: k, exp: now.Add(retransWindow).UnixNano()}
	mu.Unlock()
}

// seen reports whether an identical request was accepted in the window.
func (t *retransTable) seen(k uint64, now time.Time) bool {
	i := k & (retransSlots - 1)
	mu := &t.locks[i&(retransLocks-1)]
	mu.Lock()
	e := t.entries[i]
	mu.Unlock()
	return e.key == k && e.exp > now.UnixNano()
}
