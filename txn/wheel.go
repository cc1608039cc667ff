// Package txn holds the transaction machinery that does not depend on
// routing: the RFC 3261 timer values and the timer wheel that drives every
// transaction timer from a few timer workers, with no goroutine and no
// runtime timer per transaction.
package txn

import (
	"math"
	"math/bits"
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

// Clock returns monotonic, non-negative nanoseconds. Tests pass a manual
// clock.
type Clock func() int64

var clockBase = time.Now()

// SystemClock is the monotonic time since the process started.
func SystemClock() int64 { return int64(time.Since(clockBase)) }

// Tick is the wheel's resolution: a timer fires within one Tick after it
// is due. Fine enough for T1 = 500 ms (Kamailio's timer ticks at 62.5 ms).
const Tick = 25 * time.Millisecond

// wheelSlots is the number of near slots, one per Tick of the current turn
// of the wheel (wheelSlots*Tick = 102.4 s). A timer due in a later turn
// waits in a far slot, one per turn (hashed over farSlots turns), and moves
// to its near slot when its turn begins.
const wheelSlots = 4096

// farSlots is the number of far slots: a timer more than farSlots turns
// ahead (1.8 h) stays in its far slot and is passed over until its turn.
const farSlots = 64

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
	far   bool   // in w.far, else in w.near
	slot  uint16 // index in w.near or w.far
}

// Fired is one expired timer handed to the wheel's callback.
type Fired struct {
	Owner any
	Kind  uint8
	Seq   uint32
}

// Wheel is a hashed timing wheel of two levels. Start and Stop are O(1);
// Advance visits only the near slots whose time has come, and a far slot
// once per turn. One mutex per wheel: a server runs a few wheels (one per
// timer worker) and spreads its timers over them.
//
// Run does not tick while nothing is due: it sleeps until the next
// non-empty near slot (a bitmap finds it) or the next turn when timers wait
// in far slots, and Start wakes it for a timer due earlier. An idle server,
// or a registrar whose bindings expire in an hour, does not wake 40 times
// a second per wheel.
type Wheel struct {
	mu       sync.Mutex
	near     [wheelSlots]Timer // list heads (sentinels)
	far      [farSlots]Timer
	nonEmpty [wheelSlots / 64]uint64 // bit per non-empty near slot
	nFar     int
	now      int64 // time up to which slots were visited
	clock    Clock
	fired    []Fired
	n        int
	// wakeAt is when Run's goroutine next advances the wheel (0: it is
	// advancing, or not running); Start signals wake for an earlier need.
	wakeAt   int64
	wake     chan struct{}
	advances int // Advance calls (read by tests)
}

// NewWheel returns a wheel reading the given clock (nil: SystemClock).
func NewWheel(clock Clock) *Wheel {
	if clock == nil {
		clock = SystemClock
	}
	w := &Wheel{clock: clock, wake: make(chan struct{}, 1)}
	for i := range w.near {
		s := &w.near[i]
		s.next, s.prev = s, s
	}
	for i := range w.far {
		s := &w.far[i]
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

// Start arms t to fire after d (re-arming it if it was armed). The caller
// holds the lock of t's owner.
func (w *Wheel) Start(t *Timer, d time.Duration) {
	when := w.clock() + int64(d)
	w.mu.Lock()
	if t.armed {
		w.unlink(t)
		w.n--
	}
	t.Seq++
	t.when = when
	need := w.link(t, w.now/int64(Tick))
	w.n++
	if need < w.wakeAt {
		// Run sleeps past this timer's time: wake it to plan again.
		w.wakeAt = need
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	w.mu.Unlock()
}

// Latest returns when the last armed timer of ts fires on the wheel's
// clock (0 when none is armed). The caller holds the lock of their owner.
func (w *Wheel) Latest(ts []*Timer) int64 {
	var end int64
	w.mu.Lock()
	for _, t := range ts {
		if t.armed && t.when > end {
			end = t.when
		}
	}
	w.mu.Unlock()
	return end
}

// Stop disarms t. The caller holds the lock of t's owner.
func (w *Wheel) Stop(t *Timer) {
	w.mu.Lock()
	t.Seq++
	if t.armed {
		w.unlink(t)
		w.n--
	}
	w.mu.Unlock()
}

// link puts t in the near slot of its tick (not before minTick, the tick
// being visited) when that tick is in minTick's turn, else in the far slot
// of its turn. It returns when the wheel must next be advanced for t: the
// end of its tick, or the start of the next turn for a far timer.
func (w *Wheel) link(t *Timer, minTick int64) int64 {
	tick := max(t.when/int64(Tick), minTick)
	var s *Timer
	var need int64
	if turn := minTick / wheelSlots; tick/wheelSlots == turn {
		i := tick % wheelSlots
		s, t.far, t.slot = &w.near[i], false, uint16(i)
		w.nonEmpty[i/64] |= 1 << (i % 64)
		need = (tick + 1) * int64(Tick)
	} else {
		i := (tick / wheelSlots) % farSlots
		s, t.far, t.slot = &w.far[i], true, uint16(i)
		w.nFar++
		need = (turn + 1) * wheelSlots * int64(Tick)
	}
	t.prev, t.next = s.prev, s
	s.prev.next = t
	s.prev = t
	t.armed = true
	return need
}

// unlink takes t out of its slot (w.n is the caller's).
func (w *Wheel) unlink(t *Timer) {
	t.prev.next = t.next
	t.next.prev = t.prev
	t.next, t.prev = nil, nil
	t.armed = false
	if t.far {
		w.nFar--
	} else if s := &w.near[t.slot]; s.next == s {
		w.nonEmpty[t.slot/64] &^= 1 << (t.slot % 64)
	}
}

// Advance fires every timer due by the clock's current time: it collects
// them under the wheel's lock, then calls fire for each with no wheel lock
// held (fire takes the owner's lock and checks Seq). One goroutine at a
// time advances a wheel.
func (w *Wheel) Advance(fire func(Fired)) {
	now := w.clock()
	w.mu.Lock()
	w.advances++
	w.wakeAt = 0 // advancing: Start need not signal until Run plans again
	fired := w.fired[:0]
	from := w.now / int64(Tick)
	to := now / int64(Tick)
	if to-from >= wheelSlots {
		// The worker stalled for a turn or more: sort every timer again.
		fired = w.rehome(now, fired)
	} else {
		for tick := from; tick <= to; tick++ {
			if tick%wheelSlots == 0 && tick != from {
				w.cascade(tick)
			}
			i := tick % wheelSlots
			if w.nonEmpty[i/64]&(1<<(i%64)) == 0 {
				continue
			}
			s := &w.near[i]
			for t := s.next; t != s; {
				next := t.next
				if t.when <= now {
					w.unlink(t)
					w.n--
					fired = append(fired, Fired{Owner: t.Owner, Kind: t.Kind, Seq: t.Seq})
				}
				t = next
			}
		}
	}
	w.now = max(w.now, now)
	w.fired = fired
	w.mu.Unlock()
	for i := range fired {
		fire(fired[i])
		fired[i].Owner = nil
	}
}

// cascade moves the timers of the turn that begins at tick from their far
// slot to their near slots.
func (w *Wheel) cascade(tick int64) {
	s := &w.far[(tick/wheelSlots)%farSlots]
	for t := s.next; t != s; {
		next := t.next
		if t.when/int64(Tick) < tick+wheelSlots {
			w.unlink(t)
			w.link(t, tick)
		}
		t = next
	}
}

// rehome collects the due timers of every slot into fired and links the
// others again from now.
func (w *Wheel) rehome(now int64, fired []Fired) []Fired {
	var all []*Timer
	for _, heads := range [][]Timer{w.near[:], w.far[:]} {
		for i := range heads {
			s := &heads[i]
			for t := s.next; t != s; t = t.next {
				all = append(all, t)
			}
		}
	}
	for _, t := range all {
		w.unlink(t)
		if t.when <= now {
			w.n--
			fired = append(fired, Fired{Owner: t.Owner, Kind: t.Kind, Seq: t.Seq})
		} else {
			w.link(t, now/int64(Tick))
		}
	}
	return fired
}

// nextWake is when the wheel must next be advanced: the end of the tick of
// its first non-empty near slot, else the next turn if timers wait in far
// slots, else never (math.MaxInt64).
func (w *Wheel) nextWake() int64 {
	cur := w.now / int64(Tick)
	turn := cur / wheelSlots
	i := int(cur % wheelSlots)
	for word := i / 64; word < len(w.nonEmpty); word++ {
		b := w.nonEmpty[word]
		if word == i/64 {
			b &^= 1<<(i%64) - 1
		}
		if b != 0 {
			slot := int64(word*64 + bits.TrailingZeros64(b))
			return (turn*wheelSlots + slot + 1) * int64(Tick)
		}
	}
	if w.nFar > 0 {
		return (turn + 1) * wheelSlots * int64(Tick)
	}
	return math.MaxInt64
}

// Run advances the wheel until stop is closed: whenever timers are due, and
// not while none is.
func (w *Wheel) Run(stop <-chan struct{}, fire func(Fired)) {
	tm := time.NewTimer(time.Hour)
	defer tm.Stop()
	for {
		w.Advance(fire)
		w.mu.Lock()
		next := w.nextWake()
		w.wakeAt = next
		w.mu.Unlock()
		d := time.Hour // nothing armed: Start wakes the worker
		if next != math.MaxInt64 {
			d = time.Duration(next - w.clock())
		}
		tm.Reset(d)
		select {
		case <-stop:
			return
		case <-tm.C:
		case <-w.wake:
		}
	}
}
