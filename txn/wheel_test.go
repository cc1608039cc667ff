package txn

import (
	"testing"
	"time"
)

type manualClock struct{ now int64 }

func (c *manualClock) read() int64         { return c.now }
func (c *manualClock) add(d time.Duration) { c.now += int64(d) }
func collect(w *Wheel) (got []Fired) {
	w.Advance(func(f Fired) { got = append(got, f) })
	return got
}

func TestWheelFiresInTime(t *testing.T) {
	c := &manualClock{now: int64(time.Hour)}
	w := NewWheel(c.read)
	var a, b, long Timer
	a.Kind, b.Kind, long.Kind = 1, 2, 3
	w.Start(&a, 500*time.Millisecond)
	w.Start(&b, time.Second)
	w.Start(&long, 2*time.Minute) // more than one turn of the wheel
	c.add(490 * time.Millisecond)
	if got := collect(w); len(got) != 0 {
		t.Fatalf("fired early: %+v", got)
	}
	c.add(20 * time.Millisecond)
	if got := collect(w); len(got) != 1 || got[0].Kind != 1 || got[0].Seq != a.Seq {
		t.Fatalf("at 510ms got %+v", got)
	}
	c.add(time.Second)
	if got := collect(w); len(got) != 1 || got[0].Kind != 2 {
		t.Fatalf("at 1.5s got %+v", got)
	}
	for i := 0; i < 11; i++ { // 110 s in 10 s steps: the long timer is passed over twice
		c.add(10 * time.Second)
		if got := collect(w); len(got) != 0 {
			t.Fatalf("long timer fired at step %d", i)
		}
	}
	c.add(10 * time.Second)
	if got := collect(w); len(got) != 1 || got[0].Kind != 3 {
		t.Fatalf("long timer: got %+v", got)
	}
	if w.Len() != 0 {
		t.Fatalf("Len = %d", w.Len())
	}
}

func TestWheelStopAndRestart(t *testing.T) {
	c := &manualClock{}
	w := NewWheel(c.read)
	var a Timer
	w.Start(&a, time.Second)
	w.Stop(&a)
	c.add(2 * time.Second)
	if got := collect(w); len(got) != 0 {
		t.Fatalf("stopped timer fired: %+v", got)
	}
	w.Start(&a, time.Second)
	w.Start(&a, 3*time.Second) // re-arm moves it
	c.add(2 * time.Second)
	if got := collect(w); len(got) != 0 {
		t.Fatalf("re-armed timer fired at its old time")
	}
	c.add(2 * time.Second)
	got := collect(w)
	if len(got) != 1 || got[0].Seq != a.Seq {
		t.Fatalf("got %+v (seq %d)", got, a.Seq)
	}
}

func TestWheelLongGap(t *testing.T) {
	c := &manualClock{}
	w := NewWheel(c.read)
	var ts [100]Timer
	for i := range ts {
		w.Start(&ts[i], time.Duration(i)*100*time.Millisecond)
	}
	c.add(10 * time.Minute) // the timer worker stalled: everything fires once
	if got := collect(w); len(got) != len(ts) {
		t.Fatalf("fired %d of %d", len(got), len(ts))
	}
}

func BenchmarkWheelStartStop(b *testing.B) {
	w := NewWheel(nil)
	var t Timer
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		w.Start(&t, 500*time.Millisecond)
		w.Stop(&t)
	}
}

func TestWheelReArmKeepsCount(t *testing.T) {
	c := &manualClock{}
	w := NewWheel(c.read)
	var a, b Timer
	w.Start(&a, time.Second)
	w.Start(&a, 2*time.Second)
	w.Start(&b, time.Hour) // a far slot
	w.Start(&b, 3*time.Hour)
	if w.Len() != 2 {
		t.Fatalf("Len = %d after re-arming, want 2", w.Len())
	}
	w.Stop(&a)
	w.Stop(&a)
	if w.Len() != 1 {
		t.Fatalf("Len = %d after stopping one twice, want 1", w.Len())
	}
}

// TestWheelFarTimers walks a manual clock over several turns in steps
// smaller than a turn: timers hours ahead move from their far slot to a
// near one when their turn begins and fire once, in time.
func TestWheelFarTimers(t *testing.T) {
	c := &manualClock{now: int64(7 * time.Second)}
	w := NewWheel(c.read)
	due := []time.Duration{150 * time.Second, 205 * time.Second, time.Hour, 2*time.Hour + 3*time.Second}
	ts := make([]Timer, len(due))
	for i := range ts {
		ts[i].Kind = uint8(i)
		w.Start(&ts[i], due[i])
	}
	start := c.now
	firedAt := map[uint8]time.Duration{}
	for c.now-start < int64(3*time.Hour) {
		c.add(40 * time.Second)
		for _, f := range collect(w) {
			if _, dup := firedAt[f.Kind]; dup {
				t.Fatalf("timer %d fired twice", f.Kind)
			}
			firedAt[f.Kind] = time.Duration(c.now - start)
		}
	}
	for i, d := range due {
		got, ok := firedAt[uint8(i)]
		if !ok || got < d || got >= d+40*time.Second {
			t.Errorf("timer due at %v fired at %v (fired: %v)", d, got, ok)
		}
	}
	if w.Len() != 0 {
		t.Fatalf("Len = %d", w.Len())
	}
}

// TestWheelRunSleepsWhileIdle runs the worker on the real clock: with
// nothing armed it does not tick, a timer armed while it sleeps wakes it
// in time, and a timer an hour ahead does not make it tick either.
func TestWheelRunSleepsWhileIdle(t *testing.T) {
	w := NewWheel(nil)
	stop := make(chan struct{})
	defer close(stop)
	fired := make(chan Fired, 4)
	go w.Run(stop, func(f Fired) { fired <- f })
	var far, soon Timer
	far.Kind, soon.Kind = 1, 2
	w.Start(&far, time.Hour)
	time.Sleep(150 * time.Millisecond) // six ticks of an always-ticking wheel
	w.mu.Lock()
	idleAdvances := w.advances
	w.mu.Unlock()
	if idleAdvances > 2 {
		t.Errorf("%d advances in 150 ms with nothing due", idleAdvances)
	}
	armed := time.Now()
	w.Start(&soon, 60*time.Millisecond)
	select {
	case f := <-fired:
		if el := time.Since(armed); f.Kind != 2 || el < 60*time.Millisecond || el > 60*time.Millisecond+Tick+50*time.Millisecond {
			t.Fatalf("fired %+v after %v", f, el)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the timer armed while the worker slept did not fire")
	}
}
