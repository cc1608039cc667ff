package auth

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

var ft0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

func TestFailureTableCounts(t *testing.T) {
	ft := NewFailureTable(FailureOptions{Expiry: time.Minute})
	defer ft.Close()
	a := netip.MustParseAddr("192.0.2.7")
	b := netip.MustParseAddr("198.51.100.1")
	for i := 1; i <= 3; i++ {
		if n := ft.Add(a, ft0.Add(time.Duration(i)*time.Second)); n != i {
			t.Fatalf("Add #%d = %d", i, n)
		}
	}
	ft.Add(b, ft0)
	if n := ft.Failures(a, ft0.Add(10*time.Second)); n != 3 {
		t.Fatalf("Failures(a) = %d", n)
	}
	// IPv4-mapped IPv6 is the same source.
	if n := ft.Failures(netip.MustParseAddr("::ffff:192.0.2.7"), ft0.Add(10*time.Second)); n != 3 {
		t.Fatalf("Failures(mapped a) = %d", n)
	}
	ft.Reset(a)
	if n := ft.Failures(a, ft0.Add(10*time.Second)); n != 0 {
		t.Fatalf("after Reset: %d", n)
	}
	if n := ft.Failures(b, ft0.Add(10*time.Second)); n != 1 {
		t.Fatalf("Failures(b) = %d", n)
	}
	// Expiry counts from the last failure; an expired source starts again.
	if n := ft.Failures(b, ft0.Add(time.Minute)); n != 0 {
		t.Fatalf("expired b = %d", n)
	}
	if n := ft.Add(b, ft0.Add(2*time.Minute)); n != 1 {
		t.Fatalf("Add after expiry = %d", n)
	}
}

func TestFailureTableIPv6Prefix(t *testing.T) {
	ft := NewFailureTable(FailureOptions{})
	defer ft.Close()
	ft.Add(netip.MustParseAddr("2001:db8:1:2::1"), ft0)
	ft.Add(netip.MustParseAddr("2001:db8:1:2:ffff::9"), ft0)
	ft.Add(netip.MustParseAddr("fe80::1%eth0"), ft0)
	if n := ft.Failures(netip.MustParseAddr("2001:db8:1:2::77"), ft0); n != 2 {
		t.Fatalf("same /64: %d", n)
	}
	if n := ft.Failures(netip.MustParseAddr("2001:db8:1:3::1"), ft0); n != 0 {
		t.Fatalf("other /64: %d", n)
	}
	s := ft.Snapshot(nil, ft0)
	if len(s) != 2 {
		t.Fatalf("snapshot %v", s)
	}
	for _, e := range s {
		if e.Addr != netip.MustParseAddr("2001:db8:1:2::") && e.Addr != netip.MustParseAddr("fe80::") {
			t.Fatalf("snapshot address %v", e.Addr)
		}
	}

	per := NewFailureTable(FailureOptions{IPv6Prefix: 128})
	defer per.Close()
	per.Add(netip.MustParseAddr("2001:db8::1"), ft0)
	if n := per.Failures(netip.MustParseAddr("2001:db8::2"), ft0); n != 0 {
		t.Fatalf("IPv6Prefix 128: %d", n)
	}
}

func TestFailureTableTopAndSnapshot(t *testing.T) {
	ft := NewFailureTable(FailureOptions{Expiry: time.Minute})
	defer ft.Close()
	for i := 1; i <= 10; i++ {
		a := netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
		for range i {
			ft.Add(a, ft0)
		}
	}
	ft.Add(netip.MustParseAddr("10.0.1.1"), ft0.Add(-2*time.Minute)) // already expired
	top := ft.Top(3, ft0.Add(time.Second))
	if len(top) != 3 || top[0].Count != 10 || top[0].Addr != netip.MustParseAddr("10.0.0.10") ||
		top[1].Count != 9 || top[2].Count != 8 || !top[0].First.Equal(ft0) || !top[0].Last.Equal(ft0) {
		t.Fatalf("Top(3) = %+v", top)
	}
	if all := ft.Top(-1, ft0.Add(time.Second)); len(all) != 10 {
		t.Fatalf("Top(-1): %d entries", len(all))
	}
	if st := ft.Stats(); st.Entries != 11 {
		t.Fatalf("Stats %+v", st)
	}
	if n := ft.Sweep(ft0.Add(time.Second)); n != 1 {
		t.Fatalf("Sweep removed %d", n)
	}
	if n := ft.Sweep(ft0.Add(2 * time.Minute)); n != 10 {
		t.Fatalf("second Sweep removed %d", n)
	}
	if st := ft.Stats(); st.Entries != 0 || st.Expired != 11 {
		t.Fatalf("Stats after sweeps %+v", st)
	}
}

// A full table keeps the sources that failed most: a flood of new
// addresses with one failure each evicts among themselves.
func TestFailureTableCap(t *testing.T) {
	ft := NewFailureTable(FailureOptions{MaxEntries: 1024, Expiry: time.Hour})
	defer ft.Close()
	heavy := netip.MustParseAddr("203.0.113.66")
	for range 5 {
		ft.Add(heavy, ft0)
	}
	for i := range 100_000 {
		ft.Add(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), ft0.Add(time.Duration(i)))
	}
	st := ft.Stats()
	if st.Entries > st.Capacity || st.Capacity < 1024 || st.Capacity > 1024+64 || st.Evictions < 100_000-uint64(st.Capacity) {
		t.Fatalf("Stats %+v", st)
	}
	if n := ft.Failures(heavy, ft0.Add(time.Second)); n != 5 {
		t.Fatalf("heavy source evicted by the flood: %d", n)
	}
	// A small table has a small cap.
	small := NewFailureTable(FailureOptions{MaxEntries: 4})
	defer small.Close()
	for i := range 10 {
		small.Add(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), ft0)
	}
	if st := small.Stats(); st.Entries != 4 || st.Capacity != 4 {
		t.Fatalf("small table %+v", st)
	}
}

func TestFailureTableBackgroundSweep(t *testing.T) {
	var mu sync.Mutex
	now := ft0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	ft := NewFailureTable(FailureOptions{Expiry: time.Minute, SweepInterval: 5 * time.Millisecond, Clock: clock})
	defer ft.Close()
	ft.Add(netip.MustParseAddr("192.0.2.1"), ft0)
	mu.Lock()
	now = ft0.Add(2 * time.Minute)
	mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for ft.Stats().Entries != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not swept: %+v", ft.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	if err := ft.Close(); err != nil {
		t.Fatal(err)
	}
	ft.Close() // twice is fine
}

func TestFailureTableConcurrent(t *testing.T) {
	ft := NewFailureTable(FailureOptions{MaxEntries: 256})
	defer ft.Close()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				a := netip.AddrFrom4([4]byte{10, byte(g), byte(i >> 8), byte(i)})
				ft.Add(a, ft0)
				ft.Failures(a, ft0)
				if i%3 == 0 {
					ft.Reset(a)
				}
				if i%500 == 0 {
					ft.Top(5, ft0)
					ft.Sweep(ft0)
				}
			}
		})
	}
	wg.Wait()
	if st := ft.Stats(); st.Entries > st.Capacity {
		t.Fatalf("over capacity: %+v", st)
	}
}

func TestFailureTableNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations differ under -race")
	}
	ft := NewFailureTable(FailureOptions{})
	defer ft.Close()
	a := netip.MustParseAddr("192.0.2.9")
	other := netip.MustParseAddr("2001:db8::5")
	ft.Add(a, ft0)
	if n := testing.AllocsPerRun(1000, func() {
		ft.Add(a, ft0)
		ft.Failures(a, ft0)
		ft.Reset(other)
		ft.Failures(other, ft0)
	}); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

func BenchmarkFailureTable(b *testing.B) {
	ft := NewFailureTable(FailureOptions{})
	defer ft.Close()
	addrs := make([]netip.Addr, 4096)
	for i := range addrs {
		addrs[i] = netip.MustParseAddr(fmt.Sprintf("10.1.%d.%d", i>>8, i&255))
	}
	b.Run("Add", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			ft.Add(addrs[i&4095], ft0)
		}
	})
	b.Run("ResetEmpty", func(b *testing.B) {
		empty := NewFailureTable(FailureOptions{})
		defer empty.Close()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			empty.Reset(addrs[i&4095])
		}
	})
}

// Consecutive addresses spread over the shards: 4096 of them fit a table
// of 8192 without evictions.
func TestFailureTableSpread(t *testing.T) {
	ft := NewFailureTable(FailureOptions{MaxEntries: 8192})
	defer ft.Close()
	for i := range 4096 {
		ft.Add(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), ft0)
	}
	if st := ft.Stats(); st.Entries != 4096 || st.Evictions != 0 {
		t.Fatalf("%+v", st)
	}
}
