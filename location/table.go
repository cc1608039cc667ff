// Package location is the registrar's in-memory location service (like
// Kamailio's usrloc): for each address-of-record, up to MaxContacts contact
// bindings, updated by REGISTER requests under the rules of RFC 3261 §10.3
// and RFC 5626 §6, looked up on every routed request, and expired by the
// txn timer wheel. See README.md.
package location

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veloxsip/velox/internal/hugepage"
	"github.com/veloxsip/velox/txn"
)

// Options configure a Table. Zero values select the defaults.
type Options struct {
	// Buckets is the number of hash buckets, rounded up to a power of two
	// (default 65536, 8 MiB); each has its own lock and timer. Lookups are
	// fastest with up to 8 AORs per bucket: for large tables, about the
	// expected number of AORs / 4.
	Buckets int
	// MaxContacts is the number of bindings an AOR may have (0: no limit).
	// A REGISTER that would add bindings beyond it fails with
	// ErrTooManyContacts, unless DropOldest is set.
	MaxContacts int
	// DropOldest makes room for new bindings beyond MaxContacts by
	// removing the least recently refreshed bindings the REGISTER does
	// not mention, instead of failing.
	DropOldest bool
	// DefaultExpires applies to a contact with neither an expires
	// parameter nor an Expires header (default 3600 s).
	DefaultExpires time.Duration
	// MinExpires rejects a non-zero expiry shorter than it with
	// ErrIntervalTooBrief (423; 0: no minimum).
	MinExpires time.Duration
	// MaxExpires shortens longer expiries to it (0: no maximum).
	MaxExpires time.Duration
	// DefaultQ is the q-value (0..1000) of a contact without one
	// (0: 1000, i.e. q=1.0).
	DefaultQ int
	// TimerWheels is the number of timer wheels, each driven by its own
	// goroutine after Start (default 1, at most 256). Buckets are spread
	// over them.
	TimerWheels int
	// Clock replaces time.Now (tests with a manual clock, who then call
	// Advance instead of Start). It must be safe for concurrent use.
	Clock func() time.Time
	// OnChange, when set, is called for every insert, update, delete and
	// expiry, with the AOR's bucket locked: events of one AOR arrive in
	// order. It must be quick (hand the event to a queue) and must not
	// call the Table.
	OnChange func(Event)
}

func (o Options) withDefaults() Options {
	if o.Buckets <= 0 {
		o.Buckets = 1 << 16
	}
	if o.Buckets > 1<<30 {
		o.Buckets = 1 << 30
	}
	if o.DefaultExpires <= 0 {
		o.DefaultExpires = time.Hour
	}
	if o.DefaultQ <= 0 || o.DefaultQ > 1000 {
		o.DefaultQ = 1000
	}
	if o.TimerWheels <= 0 {
		o.TimerWheels = 1
	}
	if o.TimerWheels > 256 {
		o.TimerWheels = 256
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return o
}

// record holds the bindings of one AOR, sorted by q descending then most
// recently modified first. Records live by value in their bucket; the
// first binding is inline. 144 bytes.
type record struct {
	aor  string
	one  entry   // first binding; one.s == "" when there is none
	more []entry // the others
	tag  uint32  // high 32 bits of the AOR's hash
}

func (r *record) len() int {
	if r.one.s == "" {
		return 0
	}
	return 1 + len(r.more)
}

func (r *record) at(i int) *entry {
	if i == 0 {
		return &r.one
	}
	return &r.more[i-1]
}

// push adds an empty binding at the end and returns it.
func (r *record) push() *entry {
	if r.one.s == "" {
		return &r.one
	}
	r.more = append(r.more, entry{})
	return &r.more[len(r.more)-1]
}

// truncate keeps the first n bindings.
func (r *record) truncate(n int) {
	switch {
	case n == 0:
		r.one = entry{}
		r.more = nil
	case n == 1:
		r.more = nil
	default:
		clear(r.more[n-1:])
		r.more = r.more[:n-1]
	}
}

// sort orders the bindings by q descending, then most recently modified
// first (insertion sort: an AOR has a few).
func (r *record) sort() {
	for i := 1; i < r.len(); i++ {
		for j := i; j > 0 && before(r.at(j), r.at(j-1)); j-- {
			a, b := r.at(j), r.at(j-1)
			*a, *b = *b, *a
		}
	}
}

func before(a, b *entry) bool {
	if a.q != b.q {
		return a.q > b.q
	}
	return a.modified > b.modified
}

// bucket is one slot of the table: its records, with the hash tags of
// the first eight kept in the bucket's first cache line beside the lock,
// so that a lookup reads the bucket, the record and the AOR text; and one
// wheel timer armed for the earliest expiry of its bindings. A refresh
// that moves that expiry later leaves the timer as it is and the firing
// re-arms it, so a REGISTER rarely takes the wheel's lock. 128 bytes.
type bucket struct {
	mu    sync.Mutex
	recs  []record
	tags  [inlineTags]uint32 // recs[i].tag for i < inlineTags
	armed int64              // Unix nanoseconds the timer is armed for; 0 when not armed
	timer txn.Timer          // Kind is the index of the bucket's wheel
}

const inlineTags = 8

// Table is the location service: a hash of AORs over power-of-two
// buckets, one mutex per bucket and no global lock. All methods are safe
// for concurrent use.
type Table struct {
	opt     Options
	buckets []bucket
	mask    uint32
	seed    maphash.Seed
	wheels  []*txn.Wheel
	base    time.Time

	socks  atomic.Pointer[[]netip.AddrPort] // local sockets, append-only
	sockMu sync.Mutex

	nbind, naor atomic.Int64

	stop      chan struct{}
	wg        sync.WaitGroup
	startOnce sync.Once
	closeOnce sync.Once
}

// New returns an empty table.
func New(opt Options) *Table {
	opt = opt.withDefaults()
	n := 1
	for n < opt.Buckets {
		n <<= 1
	}
	t := &Table{opt: opt, buckets: make([]bucket, n), mask: uint32(n - 1),
		seed: maphash.MakeSeed(), stop: make(chan struct{})}
	hugepage.Slice(t.buckets) // before the loop below touches them
	t.base = opt.Clock()
	t.socks.Store(new([]netip.AddrPort))
	for range opt.TimerWheels {
		t.wheels = append(t.wheels, txn.NewWheel(t.wheelClock))
	}
	for i := range t.buckets {
		b := &t.buckets[i]
		b.timer.Owner, b.timer.Kind = b, uint8(i%len(t.wheels))
	}
	return t
}

// wheelClock is the table's clock as the wheels read it: nanoseconds since
// New (monotonic with the default clock).
func (t *Table) wheelClock() int64 { return int64(t.opt.Clock().Sub(t.base)) }

// Now reads the table's clock.
func (t *Table) Now() time.Time { return t.opt.Clock() }

// Options returns the options in effect (defaults filled in).
func (t *Table) Options() Options { return t.opt }

// Start runs one timer goroutine per wheel, which expires bindings within
// txn.Tick (25 ms) of their time and sleeps while none is due.
func (t *Table) Start() {
	t.startOnce.Do(func() {
		for _, w := range t.wheels {
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				w.Run(t.stop, t.fire)
			}()
		}
	})
}

// Close stops the timer goroutines and waits for them. The table stays
// usable, but bindings no longer expire except through Advance.
func (t *Table) Close() {
	t.closeOnce.Do(func() { close(t.stop) })
	t.wg.Wait()
}

// Advance expires the due bindings from the calling goroutine (tests with
// a manual clock, instead of Start).
func (t *Table) Advance() {
	for _, w := range t.wheels {
		w.Advance(t.fire)
	}
}

// Len returns the number of bindings in the table (expired ones count until
// their timer has removed them).
func (t *Table) Len() int { return int(t.nbind.Load()) }

// AORs returns the number of AORs with at least one binding.
func (t *Table) AORs() int { return int(t.naor.Load()) }

func (t *Table) hash(aor string) (bi uint32, tag uint32) {
	h := maphash.String(t.seed, aor)
	return uint32(h) & t.mask, uint32(h >> 32)
}

// find returns the index of aor's record in b, or -1; b is locked.
func (b *bucket) find(tag uint32, aor string) int {
	n := len(b.recs)
	for i := range min(n, inlineTags) {
		if b.tags[i] == tag && b.recs[i].aor == aor {
			return i
		}
	}
	for i := inlineTags; i < n; i++ {
		if r := &b.recs[i]; r.tag == tag && r.aor == aor {
			return i
		}
	}
	return -1
}

// add appends a record for aor to b (locked) and returns it; pointers to
// b's other records are invalid afterwards.
func (t *Table) add(b *bucket, tag uint32, aor string) *record {
	i := len(b.recs)
	if i == cap(b.recs) { // grow by an eighth, not double: records are large
		nr := make([]record, i, i+1+i/8)
		copy(nr, b.recs)
		b.recs = nr
	}
	b.recs = append(b.recs, record{aor: aor, tag: tag})
	if i < inlineTags {
		b.tags[i] = tag
	}
	t.naor.Add(1)
	return &b.recs[i]
}

// remove drops record i from b (locked); its bindings are gone or were
// already accounted for.
func (t *Table) remove(b *bucket, i int) {
	last := len(b.recs) - 1
	b.recs[i] = b.recs[last]
	if i < inlineTags {
		b.tags[i] = b.recs[i].tag
	}
	b.recs[last] = record{}
	b.recs = b.recs[:last]
	if c := cap(b.recs); c > 8 && len(b.recs) < c/4 { // give back the room of a bucket that emptied
		b.recs = append([]record(nil), b.recs...)
	}
	t.naor.Add(-1)
}

// arm makes sure b's timer fires by exp, a binding's new expiry.
func (t *Table) arm(b *bucket, exp int64) {
	if b.armed != 0 && b.armed <= exp {
		return // fires earlier; that firing re-arms
	}
	b.armed = exp
	t.wheels[b.timer.Kind].Start(&b.timer, time.Duration(exp-t.opt.Clock().UnixNano()))
}

// fire handles a firing of bucket b's timer: it removes the expired
// bindings and re-arms the timer for the next expiry.
func (t *Table) fire(f txn.Fired) {
	b := f.Owner.(*bucket)
	b.mu.Lock()
	if f.Seq == b.timer.Seq {
		b.armed = 0
		now := t.opt.Clock().UnixNano()
		next := int64(0)
		for i := len(b.recs) - 1; i >= 0; i-- {
			r := &b.recs[i]
			t.purge(r, now)
			if r.len() == 0 {
				t.remove(b, i)
				continue
			}
			for j := range r.len() {
				if e := r.at(j).expires; next == 0 || e < next {
					next = e
				}
			}
		}
		if next != 0 {
			t.arm(b, next)
		}
	}
	b.mu.Unlock()
}

// purge removes r's bindings expired at now, reporting EventExpire; the
// caller removes r when it is left empty.
func (t *Table) purge(r *record, now int64) {
	n, k := r.len(), 0
	for i := range n {
		e := r.at(i)
		if e.expires > now {
			if k != i {
				*r.at(k) = *e
			}
			k++
			continue
		}
		if t.opt.OnChange != nil {
			t.opt.OnChange(Event{Kind: EventExpire, Binding: t.view(r, e, *t.socks.Load())})
		}
	}
	if k != n {
		r.truncate(k)
		t.nbind.Add(int64(k - n))
	}
}

// view builds the Binding of stored entry e; it shares e's strings.
func (t *Table) view(r *record, e *entry, socks []netip.AddrPort) Binding {
	var sock netip.AddrPort
	if e.sock > 0 {
		sock = socks[e.sock-1]
	}
	return Binding{
		AOR:          r.aor,
		Contact:      e.contact(),
		Expires:      time.Unix(0, e.expires),
		Q:            int(e.q),
		CallID:       e.callID(),
		CSeq:         e.cseq,
		Path:         e.paths(),
		Received:     e.received,
		Transport:    e.transport(),
		Socket:       sock,
		Instance:     e.instance(),
		RegID:        int(e.regID),
		UserAgent:    e.userAgent(),
		LastModified: time.Unix(0, e.modified),
	}
}

// sockIndex interns a local socket address: there are a handful, so a
// binding stores a 2-byte index instead of a 32-byte netip.AddrPort.
func (t *Table) sockIndex(a netip.AddrPort) (uint16, error) {
	if a == (netip.AddrPort{}) {
		return 0, nil
	}
	for i, s := range *t.socks.Load() {
		if s == a {
			return uint16(i + 1), nil
		}
	}
	t.sockMu.Lock()
	defer t.sockMu.Unlock()
	old := *t.socks.Load()
	for i, s := range old {
		if s == a {
			return uint16(i + 1), nil
		}
	}
	if len(old) >= 1<<16-1 {
		return 0, ErrTooManySockets
	}
	l := append(old[:len(old):len(old)], a) // copy: readers hold the old slice
	t.socks.Store(&l)
	return uint16(len(l)), nil
}

// Lookup appends the live bindings of aor (not expired at now) to dst,
// highest q first and, within a q, most recently refreshed first. It does
// not allocate when dst has room.
func (t *Table) Lookup(aor string, now time.Time, dst []Binding) []Binding {
	bi, tag := t.hash(aor)
	b := &t.buckets[bi]
	ns := now.UnixNano()
	b.mu.Lock()
	if i := b.find(tag, aor); i >= 0 {
		r := &b.recs[i]
		socks := *t.socks.Load()
		for j := range r.len() {
			if e := r.at(j); e.expires > ns {
				dst = append(dst, t.view(r, e, socks))
			}
		}
	}
	b.mu.Unlock()
	return dst
}

// LookupBytes is Lookup with the AOR as bytes (e.g. built in a worker's
// scratch buffer); aor is not retained.
func (t *Table) LookupBytes(aor []byte, now time.Time, dst []Binding) []Binding {
	return t.Lookup(str(aor), now, dst)
}

// Delete removes every binding of aor, reporting EventDelete for each, and
// returns how many there were.
func (t *Table) Delete(aor string) int {
	bi, tag := t.hash(aor)
	b := &t.buckets[bi]
	b.mu.Lock()
	defer b.mu.Unlock()
	i := b.find(tag, aor)
	if i < 0 {
		return 0
	}
	n := t.deleteAll(b, i)
	return n
}

// deleteAll removes record i of b (locked) with its bindings, reporting
// EventDelete for each, and returns how many there were.
func (t *Table) deleteAll(b *bucket, i int) int {
	r := &b.recs[i]
	n := r.len()
	if t.opt.OnChange != nil {
		socks := *t.socks.Load()
		for j := range n {
			t.opt.OnChange(Event{Kind: EventDelete, Binding: t.view(r, r.at(j), socks)})
		}
	}
	t.nbind.Add(int64(-n))
	t.remove(b, i)
	return n
}

// Range calls fn for every live binding until fn returns false (for
// persistence and the management API). Each bucket is copied under its
// lock and fn runs with no lock held, so fn may call the Table; it is not
// a snapshot of the whole table.
func (t *Table) Range(fn func(Binding) bool) {
	var buf []Binding
	for bi := range t.buckets {
		b := &t.buckets[bi]
		b.mu.Lock()
		if len(b.recs) == 0 {
			b.mu.Unlock()
			continue
		}
		ns := t.opt.Clock().UnixNano()
		socks := *t.socks.Load()
		buf = buf[:0]
		for i := range b.recs {
			r := &b.recs[i]
			for j := range r.len() {
				if e := r.at(j); e.expires > ns {
					buf = append(buf, t.view(r, e, socks))
				}
			}
		}
		b.mu.Unlock()
		for i := range buf {
			if !fn(buf[i]) {
				return
			}
		}
		clear(buf)
	}
}
