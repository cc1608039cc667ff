package auth

import (
	"cmp"
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// FailureOptions configure a FailureTable. Zero fields take the defaults.
type FailureOptions struct {
	// Expiry is how long a source is remembered after its last failure
	// (default 10 minutes).
	Expiry time.Duration
	// MaxEntries caps the number of sources tracked (default 65536). When
	// the table is full, a new source replaces an entry chosen among a few
	// sampled ones: expired first, else the one with the fewest failures
	// (then the oldest), so a flood of new addresses with one failure each
	// does not push out the sources that failed many times.
	MaxEntries int
	// SweepInterval is how often a background sweep removes expired
	// entries (default Expiry/4, at least 1 s, at most 1 minute).
	SweepInterval time.Duration
	// IPv6Prefix is the prefix length under which IPv6 sources are counted
	// together (default 64: a host usually holds a whole /64); 128 counts
	// every address apart. IPv4 addresses (and IPv4-mapped IPv6 ones) are
	// always counted per address.
	IPv6Prefix int
	// Clock returns the current time for the background sweep (default
	// time.Now); the other methods take the time as an argument.
	Clock func() time.Time
}

// Default FailureTable settings.
const (
	DefaultFailureExpiry     = 10 * time.Minute
	DefaultFailureMaxEntries = 65536
)

// FailureTable counts authentication failures per source address for a
// while: the auth step answers 403 instead of a new challenge once a source
// reaches its limit, and an anti-flood or management module can read the
// counts (Failures, Snapshot, Top).
//
// The table is split into shards, each with its own mutex and a map from
// address to entry; one background goroutine per table (not one per
// entry) removes entries Expiry after their last failure. Add, Reset and
// Failures do not allocate except when a shard's map grows. A FailureTable
// is safe for concurrent use; Close stops the sweep.
type FailureTable struct {
	shards   []failShard
	mask     uint64
	seed     uint64
	expiry   int64 // ns
	shardCap int
	v6Bits   int
	clock    func() time.Time

	evicted atomic.Uint64 // entries replaced because their shard was full
	expired atomic.Uint64 // entries removed by sweeps

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// failShard is one lock and map, padded to its own cache lines.
type failShard struct {
	mu sync.Mutex
	n  atomic.Int32 // len(m), read without the lock
	m  map[netip.Addr]failEntry
	_  [128 - 24]byte
}

// failEntry is one tracked source.
type failEntry struct {
	count uint32
	first int64 // Unix ns of the first failure of the current series
	last  int64 // Unix ns of the last failure
}

// FailureEntry is one source in a Snapshot or Top list.
type FailureEntry struct {
	// Addr is the source (an IPv6 address masked to IPv6Prefix).
	Addr netip.Addr
	// Count is the number of failures since First.
	Count int
	// First and Last are the times of the first and last failures.
	First, Last time.Time
}

// FailureStats describe a FailureTable.
type FailureStats struct {
	Entries   int    // sources tracked now (expired ones not yet swept included)
	Capacity  int    // MaxEntries, rounded up to a multiple of the shard count
	Evictions uint64 // entries replaced because the table was full
	Expired   uint64 // entries removed by sweeps
}

// NewFailureTable returns a table and starts its sweep.
func NewFailureTable(o FailureOptions) *FailureTable {
	if o.Expiry <= 0 {
		o.Expiry = DefaultFailureExpiry
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultFailureMaxEntries
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = min(max(o.Expiry/4, time.Second), time.Minute)
	}
	if o.IPv6Prefix <= 0 || o.IPv6Prefix > 128 {
		o.IPv6Prefix = 64
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	// 64 shards for big tables; fewer (at least 16 entries each) for small
	// ones, so that the cap stays close to MaxEntries.
	n := 1 << min(6, bits.Len(uint(max(1, o.MaxEntries/16)))-1)
	t := &FailureTable{
		shards:   make([]failShard, n),
		mask:     uint64(n - 1),
		seed:     rand.Uint64() | 1,
		expiry:   int64(o.Expiry),
		shardCap: (o.MaxEntries + n - 1) / n,
		v6Bits:   o.IPv6Prefix,
		clock:    o.Clock,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	for i := range t.shards {
		t.shards[i].m = make(map[netip.Addr]failEntry)
	}
	go t.sweepLoop(o.SweepInterval)
	return t
}

// Close stops the background sweep. The table stays usable.
func (t *FailureTable) Close() error {
	t.closeOnce.Do(func() {
		close(t.stop)
		<-t.done
	})
	return nil
}

func (t *FailureTable) sweepLoop(every time.Duration) {
	defer close(t.done)
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tk.C:
			t.Sweep(t.clock())
		}
	}
}

// key is the address entries are kept under: IPv4-mapped addresses as
// IPv4, IPv6 masked to the prefix, no zone.
func (t *FailureTable) key(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		a = a.WithZone("")
		if t.v6Bits < 128 {
			if p, err := a.Prefix(t.v6Bits); err == nil {
				a = p.Addr()
			}
		}
	}
	return a
}

func (t *FailureTable) shard(a netip.Addr) *failShard {
	b := a.As16()
	h := binary.LittleEndian.Uint64(b[:8])*0x9e3779b97f4a7c15 ^ binary.LittleEndian.Uint64(b[8:]) ^ t.seed
	// murmur3's fmix64: every input bit reaches the low (index) bits.
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return &t.shards[h&t.mask]
}

func (t *FailureTable) live(e failEntry, now int64) bool { return now-e.last < t.expiry }

// Add records a failure of source a at now and returns the source's
// failure count, this one included. A source whose last failure is older
// than Expiry starts again from 1.
func (t *FailureTable) Add(a netip.Addr, now time.Time) int {
	k := t.key(a)
	sh := t.shard(k)
	ns := now.UnixNano()
	sh.mu.Lock()
	e, ok := sh.m[k]
	if !ok || !t.live(e, ns) {
		if !ok && len(sh.m) >= t.shardCap {
			t.evictOne(sh, ns)
		}
		e = failEntry{first: ns}
	}
	if e.count < 1<<31 {
		e.count++
	}
	e.last = ns
	sh.m[k] = e
	sh.n.Store(int32(len(sh.m)))
	sh.mu.Unlock()
	return int(e.count)
}

// evictOne removes, from a few sampled entries of a full shard, an expired
// one or else the one with the fewest failures (the oldest on a tie). Map
// iteration starts at a random place, so the sample differs every time.
func (t *FailureTable) evictOne(sh *failShard, now int64) {
	const samples = 8
	var victim netip.Addr
	var worst failEntry
	found, i := false, 0
	for k, e := range sh.m {
		if !t.live(e, now) {
			victim, found = k, true
			break
		}
		if !found || e.count < worst.count || e.count == worst.count && e.last < worst.last {
			victim, worst, found = k, e, true
		}
		if i++; i == samples {
			break
		}
	}
	if found {
		delete(sh.m, victim)
		t.evicted.Add(1)
	}
}

// Reset forgets source a (after a successful authentication). It takes no
// lock when a's shard is empty, the common case.
func (t *FailureTable) Reset(a netip.Addr) {
	k := t.key(a)
	sh := t.shard(k)
	if sh.n.Load() == 0 {
		return
	}
	sh.mu.Lock()
	delete(sh.m, k)
	sh.n.Store(int32(len(sh.m)))
	sh.mu.Unlock()
}

// Failures returns the failure count of source a at now (0 when unknown or
// expired).
func (t *FailureTable) Failures(a netip.Addr, now time.Time) int {
	k := t.key(a)
	sh := t.shard(k)
	if sh.n.Load() == 0 {
		return 0
	}
	sh.mu.Lock()
	e, ok := sh.m[k]
	sh.mu.Unlock()
	if !ok || !t.live(e, now.UnixNano()) {
		return 0
	}
	return int(e.count)
}

// Sweep removes the entries expired at now and returns how many. The
// background sweep calls it every SweepInterval; it locks one shard at a
// time.
func (t *FailureTable) Sweep(now time.Time) int {
	ns := now.UnixNano()
	removed := 0
	for i := range t.shards {
		sh := &t.shards[i]
		if sh.n.Load() == 0 {
			continue
		}
		sh.mu.Lock()
		for k, e := range sh.m {
			if !t.live(e, ns) {
				delete(sh.m, k)
				removed++
			}
		}
		sh.n.Store(int32(len(sh.m)))
		sh.mu.Unlock()
	}
	t.expired.Add(uint64(removed))
	return removed
}

// Snapshot appends the live entries at now to dst, in no particular order.
func (t *FailureTable) Snapshot(dst []FailureEntry, now time.Time) []FailureEntry {
	ns := now.UnixNano()
	for i := range t.shards {
		sh := &t.shards[i]
		if sh.n.Load() == 0 {
			continue
		}
		sh.mu.Lock()
		for k, e := range sh.m {
			if t.live(e, ns) {
				dst = append(dst, FailureEntry{Addr: k, Count: int(e.count),
					First: time.Unix(0, e.first), Last: time.Unix(0, e.last)})
			}
		}
		sh.mu.Unlock()
	}
	return dst
}

// Top returns the n live sources with the most failures at now, most
// first (the most recent first on a tie).
func (t *FailureTable) Top(n int, now time.Time) []FailureEntry {
	s := t.Snapshot(nil, now)
	slices.SortFunc(s, func(a, b FailureEntry) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return b.Last.Compare(a.Last)
	})
	if n >= 0 && len(s) > n {
		s = s[:n]
	}
	return s
}

// Stats returns the table's size and counters.
func (t *FailureTable) Stats() FailureStats {
	s := FailureStats{Capacity: t.shardCap * len(t.shards), Evictions: t.evicted.Load(), Expired: t.expired.Load()}
	for i := range t.shards {
		s.Entries += int(t.shards[i].n.Load())
	}
	return s
}
