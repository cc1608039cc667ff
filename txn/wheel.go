// Package txn holds the transaction machinery that does not depend on
// routing: the RFC 3261 timer values and the timer wheel that drives every
// transaction timer from a few timer workers, with no goroutine and no
// runtime timer per transaction.
package txn

import (
	"sync"
	"time"
)

// Timing holds the RFC 3261 §17 timer base values.
type Timing struct {
	T1 time.Duration // RTT estimate, default 500 ms
	T2 time.Duration // maximum retransmit interval of non-INVITE requests and INVITE responses, default 4 s
	T4 time.Duration // maximum time a message stays in the network, default 5 s
}

// DefaultTiming is RFC 3261's T1 = 500 ms, T2 = 4 s, T4 = 5 s.
var DefaultTiming = Timing{T1: 500 * time.Millisecond, T2: 4 * time.Second, T4: 5 * time.Second}

// WithDefaults fills unset values from DefaultTiming.
func (t Timing) WithDefaults() Timing {
	if t.T1 <= 0 {
		t.T1 = DefaultTiming.T1
	}
	if t.T2 <= 0 {
		t.T2 = DefaultTiming.T2
	}
	if t.T4 <= 0 {
		t.T4 = DefaultTiming.T4
	}
	return t
}

// Clock returns monotonic nanoseconds. Tests pass a manual clock.
type Clock func() int64

var clockBase = time.Now()

// SystemClock is the monotonic time since the process started.
func SystemClock() int64 { return int64(time.Since(clockBase)) }

// Tick is the wheel's resolution: 40 wake-ups a second, fine enough for
// T1 = 500 ms and cheap when idle (Kamailio's timer ticks at 62.5 ms).
const Tick = 25 * time.Millisecond

// wheelSlots is the number of slots: one turn of the wheel is
// wheelSlots*Tick (102.4 s); a longer timer stays in its slot and is
// skipped until a later turn reaches its time.
const wheelSlots = 4096

// Timer is an entry of a Wheel, embedded in the object it belongs to. The
// owner arms and stops it while holding the lock that guards the owner;
// Seq tells a firing that raced with a re-arm from a current one.
type Timer struct {
	next, prev *Timer
	when       int64 // nanoseconds on the wheel's clock
	// Seq is incremented by every Start and Stop: a fired entry whose
	// sequence no longer matches was re-armed or stopped meanwhile.
	Seq uint32
	// Owner and Kind identify what fires; the wheel does not interpret them.
	Owner any
	Kind  uint8
	armed bool
}

// Fired is one expired timer handed to the wheel's callback.
type Fired struct {
	Owner any
	Kind  uint8
	Seq   uint32
}

// Wheel is a hashed timing wheel. Start and Stop are O(1); Advance visits
// only the slots whose time has come. One mutex per wheel: a server runs a
// few wheels (one per timer worker) and spreads its transactions over them.
type Wheel struct {
	mu    sync.Mutex
	slots [wheelSlots]Timer // list heads (sentinels)
	now   int64             // time up to which slots were visited
	clock Clock
	fired []Fired
	n     int
}

// NewWheel returns a wheel reading the given clock (nil: SystemClock).
func NewWheel(clock Clock) *Wheel {
	if clock == nil {
		clock = SystemClock
	}
	w := &Wheel{clock: clock}
	for i := range w.slots {
		s := &w.slots[i]
		s.next, s.prev = s, s
	}
	w.now = clock()
	return w
}

// Now reads the wheel's clock.
func (w *Wheel) Now() int64 { return w.clock() }

// Len is the number of armed timers.
func (w *Wheel) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

func slotOf(when int64) int { return int(uint64(when/int64(Tick)) % wheelSlots) }

// Start arms t to fire after d (re-arming it if it was armed). The caller
// holds the lock of t's owner.
func (w *Wheel) Start(t *Timer, d time.Duration) {
	when := w.clock() + int64(d)
	w.mu.Lock()
	if t.armed {
		w.unlink(t)
	}
	t.Seq++
	t.when = when
	if when < w.now {
		when = w.now // already due: the next Advance fires it
	}
	s := &w.slots[slotOf(when)]
	t.prev, t.next = s.prev, s
	s.prev.next = t
	s.prev = t
	t.armed = true
	w.n++
	w.mu.Unlock()
}

// Stop disarms t. The caller holds the lock of t's owner.
func (w *Wheel) Stop(t *Timer) {
	w.mu.Lock()
	t.Seq++
	if t.armed {
		w.unlink(t)
	}
	w.mu.Unlock()
}

func (w *Wheel) unlink(t *Timer) {
	t.prev.next = t.next
	t.next.prev = t.prev
	t.next, t.prev = nil, nil
	t.armed = false
	w.n--
}

// Advance fires every timer due by the clock's current time: it collects
// them under the wheel's lock, then calls fire for each with no wheel lock
// held (fire takes the owner's lock and checks Seq). One goroutine at a
// time advances a wheel.
func (w *Wheel) Advance(fire func(Fired)) {
	now := w.clock()
	w.mu.Lock()
	fired := w.fired[:0]
	from := w.now / int64(Tick)
	to := now / int64(Tick)
	if to-from >= wheelSlots {
		from = to - wheelSlots + 1
	}
	for tick := from; tick <= to; tick++ {
		s := &w.slots[uint64(tick)%wheelSlots]
		for t := s.next; t != s; {
			next := t.next
			if t.when <= now {
				w.unlink(t)
				fired = append(fired, Fired{Owner: t.Owner, Kind: t.Kind, Seq: t.Seq})
			}
			t = next
		}
	}
	w.now = now
	w.fired = fired
	w.mu.Unlock()
	for i := range fired {
		fire(fired[i])
		fired[i].Owner = nil
	}
}

// Run advances the wheel every Tick until stop is closed.
func (w *Wheel) Run(stop <-chan struct{}, fire func(Fired)) {
	tk := time.NewTicker(Tick)
	defer tk.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
			w.Advance(fire)
		}
	}
}
