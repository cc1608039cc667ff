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
