package location

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strconv"
	"testing"
	"time"
	"unsafe"
)

// filler builds realistic REGISTERs for user i without allocating per
// call: a 40-byte contact, a 40-byte Call-ID, a 16-byte User-Agent.
type filler struct {
	r                    Register
	aor, uri, callID, ua []byte
	c                    [1]Contact
}

func newFiller() *filler {
	f := &filler{ua: []byte("Velox-Bench/1.0")}
	f.r.Transport = []byte("udp")
	f.r.Socket = netip.MustParseAddrPort("198.51.100.1:5060")
	return f
}

func (f *filler) aorOf(i int) []byte {
	f.aor = strconv.AppendInt(append(f.aor[:0], "user"...), int64(i), 10)
	f.aor = append(f.aor, "@example.com"...)
	return f.aor
}

func (f *filler) register(i int, cseq uint32, expires int) *Register {
	ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	f.uri = append(f.uri[:0], "sip:"...)
	f.uri = strconv.AppendInt(append(f.uri, "user"...), int64(i), 10)
	f.uri = append(f.uri, '@')
	f.uri = ip.AppendTo(f.uri)
	f.uri = append(f.uri, ":5060;transport=udp"...)
	f.callID = strconv.AppendUint(f.callID[:0], uint64(i)*0x9e3779b97f4a7c15, 16)
	f.callID = append(f.callID, "-reg@"...)
	f.callID = ip.AppendTo(f.callID)
	f.c[0] = Contact{URI: f.uri, Expires: expires, Q: NoValue}
	f.r.AOR = f.aorOf(i)
	f.r.CallID, f.r.CSeq, f.r.Expires = f.callID, cseq, NoValue
	f.r.Contacts = f.c[:]
	f.r.Received = netip.AddrPortFrom(ip, 5060)
	f.r.UserAgent = f.ua
	return &f.r
}

func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestMillionBindings fills a table with 1,000,000 AORs of one binding
// each and reports the memory per binding and the time of a Lookup of a
// random AOR.
func TestMillionBindings(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("1M bindings: not with -short or -race")
	}
	const n = 1_000_000
	c := newClock()
	f := newFiller()
	before := heapInUse()
	tb := New(Options{Clock: c.now, Buckets: n / 4})
	empty := heapInUse()
	start := time.Now()
	for i := range n {
		if _, err := tb.Save(f.register(i, 1, 3600+i%600), c.now(), nil); err != nil {
			t.Fatal(err)
		}
	}
	saveTime := time.Since(start)
	after := heapInUse()
	if tb.Len() != n || tb.AORs() != n {
		t.Fatalf("Len %d AORs %d", tb.Len(), tb.AORs())
	}
	total := float64(after - before)
	perBinding := float64(after-empty) / n
	t.Logf("%d bindings: %.0f MiB heap, %.0f bytes per binding + %.1f MiB of buckets; Save %.0f ns each",
		n, total/(1<<20), perBinding, float64(empty-before)/(1<<20), float64(saveTime.Nanoseconds())/n)
	t.Logf("stored parts: record %d B, entry %d B, bucket %d B; text of this binding %d B, AOR %d B",
		unsafe.Sizeof(record{}), unsafe.Sizeof(entry{}), unsafe.Sizeof(bucket{}),
		len(f.r.Contacts[0].URI)+len(f.r.CallID)+len(f.r.UserAgent)+len(f.r.Transport), len(f.r.AOR))
	if perBinding > 512 {
		t.Errorf("%.0f bytes per binding", perBinding)
	}

	// Lookups of random AORs (the keys are built beforehand).
	keys := make([]string, 1<<16)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range keys {
		keys[i] = string(f.aorOf(rng.IntN(n)))
	}
	dst := make([]Binding, 0, 4)
	now := c.now()
	const lookups = 1_000_000
	start = time.Now()
	found := 0
	for i := range lookups {
		dst = tb.Lookup(keys[i&(len(keys)-1)], now, dst[:0])
		found += len(dst)
	}
	el := time.Since(start)
	if found != lookups {
		t.Fatalf("found %d of %d", found, lookups)
	}
	t.Logf("Lookup of a random AOR: %.0f ns", float64(el.Nanoseconds())/lookups)

	// Everything expires through the wheel.
	c.add(2 * time.Hour)
	start = time.Now()
	tb.Advance()
	t.Logf("expiring %d bindings: %v", n, time.Since(start).Round(time.Millisecond))
	if tb.Len() != 0 || tb.AORs() != 0 {
		t.Fatalf("after expiry: Len %d AORs %d", tb.Len(), tb.AORs())
	}
	runtime.KeepAlive(tb)
}

const benchAORs = 100_000

func benchTable(b *testing.B) (*Table, *manualClock, *filler) {
	c := newClock()
	tb := New(Options{Clock: c.now})
	f := newFiller()
	for i := range benchAORs {
		if _, err := tb.Save(f.register(i, 1, 3600), c.now(), nil); err != nil {
			b.Fatal(err)
		}
	}
	return tb, c, f
}

// BenchmarkLookup looks up random AORs of a 100,000-AOR table into a
// reused slice.
func BenchmarkLookup(b *testing.B) {
	tb, c, f := benchTable(b)
	keys := make([]string, 1<<14)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range keys {
		keys[i] = string(f.aorOf(rng.IntN(benchAORs)))
	}
	dst := make([]Binding, 0, 4)
	now := c.now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		dst = tb.Lookup(keys[i&(len(keys)-1)], now, dst[:0])
		i++
	}
	if len(dst) != 1 {
		b.Fatal(len(dst))
	}
}

// BenchmarkLookupParallel is BenchmarkLookup from every CPU at once.
func BenchmarkLookupParallel(b *testing.B) {
	tb, c, f := benchTable(b)
	keys := make([]string, 1<<14)
	for i := range keys {
		keys[i] = string(f.aorOf(i * 7 % benchAORs))
	}
	now := c.now()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]Binding, 0, 4)
		i := 0
		for pb.Next() {
			dst = tb.Lookup(keys[i&(len(keys)-1)], now, dst[:0])
			i++
		}
	})
}

// BenchmarkSave measures a REGISTER refresh (same contact, next CSeq: the
// stored text is kept, so nothing is allocated) and a REGISTER of a new
// AOR, on a 100,000-AOR table.
func BenchmarkSave(b *testing.B) {
	b.Run("refresh", func(b *testing.B) {
		tb, c, f := benchTable(b)
		dst := make([]Binding, 0, 4)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			u := i % benchAORs
			var err error
			dst, err = tb.Save(f.register(u, uint32(i/benchAORs+2), 3600), c.now(), dst[:0])
			if err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("new", func(b *testing.B) {
		tb, c, f := benchTable(b)
		dst := make([]Binding, 0, 4)
		b.ReportAllocs()
		i := benchAORs
		for b.Loop() {
			var err error
			dst, err = tb.Save(f.register(i, 1, 3600), c.now(), dst[:0])
			if err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
