package auth

import (
	"math/bits"
	"sync"
)

// The replay table remembers, for every nonce that passed Verify and has
// not expired, the highest nonce-count seen and which of the 63 counts
// below it were seen (a sliding window, as in IPsec anti-replay: requests
// that share a nonce may arrive out of order over UDP).
//
// It is a fixed array of 128-byte buckets of 5 entries (24 bytes each),
// addressed by the nonce id (64 MAC bits, which no one can choose without
// the secret), guarded by striped mutexes: no global lock and no
// allocation after New. An entry is free once its nonce has expired
// (lazy eviction). When a bucket has no free entry, the entry whose nonce
// expires first is evicted and the bucket's floor is raised to its expiry:
// a nonce not in the bucket whose expiry is at or below the floor may have
// been forgotten, so it is reported stale instead of being accepted again.
// Replays are therefore never accepted, even when the table is too small;
// the cost of a small table is extra challenges.

const (
	bucketWays  = 5
	replayLocks = 256 // power of two
	// DefaultReplayEntries is the default replay table capacity: 65536
	// buckets, 8 MiB.
	DefaultReplayEntries = bucketWays << 16
)

// entry is one tracked nonce.
type entry struct {
	id  uint64 // nonce id
	win uint64 // bit i: count max-i was seen
	max uint32 // highest nonce-count seen
	exp uint32 // Unix seconds after which the nonce is expired (rounded up)
}

// bucket is 128 bytes: two cache lines.
type bucket struct {
	e     [bucketWays]entry
	floor uint32 // highest expiry evicted before its time
	_     uint32
}

// lock is a mutex padded to its own cache line.
type lock struct {
	sync.Mutex
	evictions uint64
	_         [64 - 16]byte
}

type replayTable struct {
	buckets []bucket
	mask    uint64
	locks   [replayLocks]lock
}

// replayStatus is the outcome of a replay check.
type replayStatus uint8

const (
	replayOK     replayStatus = iota
	replaySeen                // the count was seen (or is below the window)
	replayForgot              // the nonce may have been evicted: re-challenge
)

func newReplayTable(entries int) *replayTable {
	if entries <= 0 {
		entries = DefaultReplayEntries
	}
	nb := (entries + bucketWays - 1) / bucketWays
	if nb < 1 {
		nb = 1
	}
	n := 1 << bits.Len(uint(nb-1)) // next power of two
	return &replayTable{buckets: make([]bucket, n), mask: uint64(n - 1)}
}

// capacity returns the number of entries.
func (t *replayTable) capacity() int { return len(t.buckets) * bucketWays }

// check records count nc of nonce id (which expires at exp, Unix seconds
// rounded up) at time now (Unix seconds, rounded down).
func (t *replayTable) check(id uint64, exp, nc, now uint32) replayStatus {
	bi := id & t.mask
	l := &t.locks[bi&(replayLocks-1)]
	b := &t.buckets[bi]
	l.Lock()
	defer l.Unlock()
	var free, oldest *entry
	for i := range b.e {
		e := &b.e[i]
		if e.exp < now { // expired (or never used): free
			if free == nil {
				free = e
			}
			continue
		}
		if e.id == id {
			return e.see(nc)
		}
		if oldest == nil || e.exp < oldest.exp {
			oldest = e
		}
	}
	if exp <= b.floor {
		return replayForgot
	}
	if free == nil {
		if exp <= oldest.exp {
			// This nonce would be the first to go: do not forget a
			// newer one for it.
			return replayForgot
		}
		b.floor = oldest.exp
		l.evictions++
		free = oldest
	}
	*free = entry{id: id, win: 1, max: nc, exp: exp}
	return replayOK
}

// see records count nc for an entry.
func (e *entry) see(nc uint32) replayStatus {
	if nc > e.max {
		if d := nc - e.max; d >= 64 {
			e.win = 1
		} else {
			e.win = e.win<<d | 1
		}
		e.max = nc
		return replayOK
	}
	d := e.max - nc
	if d >= 64 || e.win&(1<<d) != 0 {
		return replaySeen
	}
	e.win |= 1 << d
	return replayOK
}

// stats returns the live entries and the evictions so far. It locks each
// stripe in turn: for monitoring, not for the hot path.
func (t *replayTable) stats(now uint32) (live int, evictions uint64) {
	for li := range t.locks {
		l := &t.locks[li]
		l.Lock()
		evictions += l.evictions
		for bi := li; bi < len(t.buckets); bi += replayLocks {
			for _, e := range t.buckets[bi].e {
				if e.exp >= now {
					live++
				}
			}
		}
		l.Unlock()
	}
	return live, evictions
}
