package proxy

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veloxsip/velox/internal/hugepage"
	"github.com/veloxsip/velox/sip"
	"github.com/veloxsip/velox/txn"
)

// StatefulOptions configure the transaction layer of a Server.
type StatefulOptions struct {
	// Timing holds T1, T2 and T4 (RFC 3261 defaults when zero).
	Timing txn.Timing
	// Buckets is the size of the transaction hash table, rounded up to a
	// power of two (default 262144, 8 MiB: at 2,000 calls/s about
	// 130,000 transactions wait out their 64*T1 timers, and chains must
	// stay short); each bucket has its own lock.
	Buckets int
	// TimerWorkers is the number of timer goroutines, each driving its own
	// wheel (default 1; timers are light work).
	TimerWorkers int
	// NoTrying turns off the immediate 100 Trying to INVITEs.
	NoTrying bool
	// FinalTimeout is the time a branch waits for any response before it
	// fails with 408 (Kamailio's fr_timer; default 30 s, at most 64*T1
	// over UDP as timers B and F end the client transaction then).
	FinalTimeout time.Duration
	// InviteTimeout is the time an INVITE branch waits for a final
	// response after a provisional one (fr_inv_timer, RFC 3261 timer C;
	// default 120 s); the branch is then CANCELled and fails with 408.
	InviteTimeout time.Duration
	// Clock replaces the system clock (tests).
	Clock txn.Clock
}

func (o StatefulOptions) withDefaults() StatefulOptions {
	o.Timing = o.Timing.WithDefaults()
	if o.Buckets <= 0 {
		o.Buckets = 1 << 18
	}
	if o.TimerWorkers <= 0 {
		o.TimerWorkers = 1
	}
	if o.FinalTimeout <= 0 {
		o.FinalTimeout = 30 * time.Second
	}
	if o.InviteTimeout <= 0 {
		o.InviteTimeout = 120 * time.Second
	}
	return o
}

// Conn sends a datagram from one listening socket outside a worker's batch
// (timers and cross-socket sends). transport.UDPListener implements it.
type Conn interface {
	WriteTo(b []byte, dst netip.AddrPort) error
}

// txBucket is one slot of the transaction table: a chain of cells and the
// lock that guards them.
type txBucket struct {
	mu    sync.Mutex
	head  *cell
	tombs *tomb // transactions that only wait out their timers (tomb.go)
	label uint32
}

// txTable is the transaction table and timer machinery of a Server.
type txTable struct {
	srv     *Server
	opt     StatefulOptions
	t       txn.Timing
	buckets []txBucket // allocated by the first relay (init)
	cells   sync.Pool  // released cells (*cell), reused by alloc
	mask    uint32
	ready   atomic.Bool
	initMu  sync.Once
	wheels  []*txn.Wheel
	seed    maphash.Seed

	stop chan struct{}
	once sync.Once

	timerWorkers []*timerWorker
	failStats    WorkerStats // failure-pipeline contexts
}

// timerWorker owns one wheel and the scratch state its firings use.
type timerWorker struct {
	tt    *txTable
	wheel *txn.Wheel
	sc    scratch
	st    WorkerStats
}

func newTxTable(s *Server, o StatefulOptions) *txTable {
	o = o.withDefaults()
	n := 1
	for n < o.Buckets {
		n <<= 1
	}
	t := &txTable{srv: s, opt: o, t: o.Timing, mask: uint32(n - 1),
		seed: maphash.MakeSeed(), stop: make(chan struct{})}
	for i := 0; i < o.TimerWorkers; i++ {
		tw := &timerWorker{tt: t, wheel: txn.NewWheel(o.Clock), sc: newScratch()}
		t.wheels = append(t.wheels, tw.wheel)
		t.timerWorkers = append(t.timerWorkers, tw)
	}
	return t
}

// init allocates the table on first use, so that a stateless server does
// not carry it.
func (t *txTable) init() {
	if t.ready.Load() {
		return
	}
	t.initMu.Do(func() {
		t.buckets = make([]txBucket, t.mask+1)
		hugepage.Slice(t.buckets)
		t.ready.Store(true)
	})
}

// start runs the timer workers.
func (t *txTable) start() {
	for _, tw := range t.timerWorkers {
		go tw.wheel.Run(t.stop, tw.fire)
	}
}

func (t *txTable) close() { t.once.Do(func() { close(t.stop) }) }

// advance fires due timers on every wheel from the calling goroutine
// (tests with a manual clock).
func (t *txTable) advance() {
	for _, tw := range t.timerWorkers {
		tw.wheel.Advance(tw.fire)
	}
}

func (t *txTable) wheelFor(bucket uint32) (*txn.Wheel, *timerWorker) {
	tw := t.timerWorkers[int(bucket)%len(t.timerWorkers)]
	return tw.wheel, tw
}

// txKey builds the server transaction key of request m into dst: the
// RFC 3261 branch and sent-by, or for RFC 2543 clients the fields that
// identify the transaction (§17.2.3). INVITE, its CANCEL and its non-2xx
// ACK get the same key.
func txKey(dst []byte, m *sip.Message, top *sip.Via) []byte {
	if top.IsRFC3261Branch() {
		dst = append(dst, top.Branch...)
		dst = append(dst, 0)
		dst = append(dst, top.Host...)
		return append(dst, byte(top.Port>>8), byte(top.Port))
	}
	dst = append(dst, "2543\x00"...)
	dst = append(dst, m.RequestURI()...)
	dst = append(dst, 0)
	dst = append(dst, m.CallID()...)
	dst = append(dst, 0)
	if f, err := m.From(); err == nil {
		dst = append(dst, f.Tag()...)
	}
	dst = append(dst, 0)
	n, _, _ := m.CSeq()
	dst = append(dst, byte(n>>24), byte(n>>16), byte(n>>8), byte(n), 0)
	return append(dst, top.Raw...)
}

func (t *txTable) hashKey(key []byte) uint64 { return maphash.Bytes(t.seed, key) }

// find returns the cell of bucket b matching key and method class, with
// the bucket locked by the caller.
func (b *txBucket) find(h uint64, key []byte, invite bool, method sip.Method, methodName []byte) *cell {
	for c := b.head; c != nil; c = c.next {
		if c.hash != h || c.invite != invite || string(c.key) != string(key) {
			continue
		}
		if !invite && (c.method != method || (method == sip.MethodOther && string(c.methodName) != string(methodName))) {
			continue
		}
		return c
	}
	return nil
}

func (b *txBucket) findLabel(label uint32) *cell {
	for c := b.head; c != nil; c = c.next {
		if c.label == label {
			return c
		}
	}
	return nil
}

// alloc returns a cell for bucket bi, recycled when possible, linked in.
//
// Released cells go to a pool shared by all buckets (per-bucket free lists
// were almost always empty: a new transaction rarely lands in the bucket
// a recent one left), so a recycled cell may change bucket. A timer that
// fires for it afterwards finds that out under the lock it took (fire).
func (t *txTable) alloc(b *txBucket, bi uint32) *cell {
	c, _ := t.cells.Get().(*cell)
	if c == nil {
		c = &cell{}
		c.tRetr.Owner, c.tWait.Owner = c, c
		c.tRetr.Kind, c.tWait.Kind = kSrvRetr, kSrvWait
	}
	c.bucket.Store(bi)
	b.label++
	c.label = b.label
	c.next = b.head
	b.head = c
	c.wheel, c.tw = t.wheelFor(bi)
	return c
}

// release unlinks c from its bucket, stops its timers and recycles it;
// st is the releasing goroutine's counters.
func (t *txTable) release(b *txBucket, c *cell, st *WorkerStats) {
	st.Released.Add(1)
	t.recycle(b, c)
}

// recycle unlinks c from its bucket, stops its timers and puts it back in
// the pool.
func (t *txTable) recycle(b *txBucket, c *cell) {
	for p := &b.head; *p != nil; p = &(*p).next {
		if *p == c {
			*p = c.next
			break
		}
	}
	c.stopTimers()
	c.clear()
	c.next = nil
	t.cells.Put(c)
}

// msgBuf is a pooled byte buffer for stored messages.
type msgBuf struct{ b []byte }

// Buffers come in size classes so a stored 300-byte response does not
// hold a 4 KiB buffer for the 32 s a transaction lingers.
var bufClasses = [...]int{256, 384, 512, 1024, 2048, 4096, 8192, 16384, 65536}

var bufPools [len(bufClasses)]sync.Pool

func classOf(n int) int {
	for i, c := range bufClasses {
		if n <= c {
			return i
		}
	}
	return -1
}

// getBuf returns an empty buffer with room for n bytes.
func getBuf(n int) *msgBuf {
	ci := classOf(n)
	if ci < 0 {
		return &msgBuf{b: make([]byte, 0, n)}
	}
	if p, ok := bufPools[ci].Get().(*msgBuf); ok {
		return p
	}
	return &msgBuf{b: make([]byte, 0, bufClasses[ci])}
}

func putBuf(p *msgBuf) {
	if p == nil {
		return
	}
	ci := classOf(cap(p.b))
	if ci < 0 || bufClasses[ci] != cap(p.b) {
		return
	}
	p.b = p.b[:0]
	bufPools[ci].Put(p)
}

// setBuf makes *p hold a copy of b, changing buffers when b does not fit.
func setBuf(p **msgBuf, b []byte) []byte {
	if *p != nil && cap((*p).b) < len(b) {
		dropBuf(p)
	}
	if *p == nil {
		*p = getBuf(len(b))
	}
	(*p).b = append((*p).b[:0], b...)
	return (*p).b
}

// appendBuf writes a message of at most max bytes with fill into *p: a
// buffer of the max class is taken, and the result moved to a right-sized
// one when it is much smaller.
func appendBuf(p **msgBuf, max int, fill func([]byte) ([]byte, error)) error {
	dropBuf(p)
	tmp := getBuf(max)
	b, err := fill(tmp.b[:0])
	if err != nil {
		putBuf(tmp)
		return err
	}
	tmp.b = b
	if classOf(len(b)) < classOf(cap(b)) {
		setBuf(p, b)
		putBuf(tmp)
		return nil
	}
	*p = tmp
	return nil
}

func dropBuf(p **msgBuf) {
	putBuf(*p)
	*p = nil
}

// TxStats are transaction table counters.
type TxStats struct {
	Live      int64  // transactions in the table
	Lingering int64  // of which only wait out their timers, as tombs
	Created   uint64 // transactions created since start
}

// TxStats returns the transaction table counters.
func (s *Server) TxStats() TxStats {
	st := s.Stats()
	return TxStats{Live: int64(st.Transactions) - int64(st.Released),
		Lingering: int64(st.Entombed) - int64(st.Buried), Created: st.Transactions}
}

// AdvanceTimers fires the due transaction timers from the calling
// goroutine. Tests with a manual clock (StatefulOptions.Clock) call it
// instead of Start.
func (s *Server) AdvanceTimers() { s.tm.advance() }
