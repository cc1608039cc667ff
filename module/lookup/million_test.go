package lookup_test

import (
	"bufio"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veloxsip/velox/module/lookup"
	"github.com/veloxsip/velox/module/registrar"
	"github.com/veloxsip/velox/proxy"
	"github.com/veloxsip/velox/transport"
)

// TestMillionBindingsServer fills the registrar of one server with
// 1,000,000 bindings — every one a REGISTER through Worker.Handle: parse,
// registrar step, location.Save, 200 OK — then reports the memory per
// binding (Go heap and process RSS) and the time of INVITEs for random
// registered users through the lookup step (the step alone, and the whole
// Worker.Handle: parse, lookup, answer). Figures: bench/RESULTS.md.
//
//	go test -run MillionBindingsServer -v ./module/lookup
func TestMillionBindingsServer(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("1M bindings: not with -short or -race")
	}
	n := 1_000_000
	if s := os.Getenv("VELOX_BINDINGS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	heap0, _ := memNow()

	srv := proxy.NewServer(nil, proxy.Options{})
	defer srv.Close()
	reg, err := registrar.New(registrar.Options{Domains: []string{"example.com"}, Buckets: n / 4}, srv)
	if err != nil {
		t.Fatal(err)
	}
	lk, err := lookup.New(lookup.Options{Domains: []string{"example.com"}}, srv)
	if err != nil {
		t.Fatal(err)
	}
	var stepTimes []time.Duration
	timedLookup := proxy.HandlerFunc(func(c *proxy.Context) proxy.Action {
		t0 := time.Now()
		a := lk.Handle(c)
		stepTimes = append(stepTimes, time.Since(t0))
		return a
	})
	routed := proxy.HandlerFunc(func(c *proxy.Context) proxy.Action {
		if len(c.Targets) != 1 {
			c.Reply(599, "No Targets")
		} else {
			c.Reply(200, "Routed")
		}
		return proxy.Stop
	})
	srv.SetPipeline(proxy.Pipeline{{Name: "registrar", Handler: reg}, {Name: "lookup", Handler: timedLookup}, {Name: "routed", Handler: routed}})
	srv.AddListener(transport.UDP, self, "")
	r := &rec{buf: make([]byte, 0, 4096)}
	srv.AddConn(transport.UDP, self, r)
	w := srv.NewWorker(0).(*proxy.Worker)
	heap1, rss1 := memNow() // empty table: buckets

	// Fill: one REGISTER per user, as a phone sends it.
	msg := make([]byte, 0, 1024)
	start := time.Now()
	for i := range n {
		msg = appendRegister(msg[:0], i)
		w.Handle(msg, phoneOf(i), r)
		if i == 0 && r.status() != "200" {
			t.Fatalf("REGISTER answer:\n%s", r.last)
		}
	}
	fill := time.Since(start)
	heap2, rss2 := memNow()
	table, _ := registrar.Table(srv, registrar.Options{})
	if table.Len() != n {
		t.Fatalf("%d bindings", table.Len())
	}
	perHeap := float64(heap2-heap1) / float64(n)
	perRSS := float64(rss2-rss1) / float64(n)
	t.Logf("%d bindings through the registrar: %.1f s (%.1f µs per REGISTER, one goroutine)", n, fill.Seconds(), float64(fill.Microseconds())/float64(n))
	t.Logf("memory: Go heap %.0f MiB (%.0f B per binding) + %.1f MiB empty table; process RSS %.0f MiB (%.0f B per binding, GOGC=%s)",
		float64(heap2-heap1)/(1<<20), perHeap, float64(heap1-heap0)/(1<<20), float64(rss2)/(1<<20), perRSS, gogc())

	// Lookups of random registered users.
	const lookups = 200_000
	rng := rand.New(rand.NewPCG(7, 11))
	stepTimes = make([]time.Duration, 0, lookups)
	whole := make([]time.Duration, 0, lookups)
	for k := range lookups {
		msg = appendInvite(msg[:0], rng.IntN(n), k)
		t0 := time.Now()
		w.Handle(msg, caller, r)
		whole = append(whole, time.Since(t0))
		if k == 0 && r.status() != "200" {
			t.Fatalf("INVITE answer:\n%s", r.last)
		}
	}
	if len(stepTimes) != lookups {
		t.Fatalf("%d lookups timed", len(stepTimes))
	}
	t.Logf("lookup step (AOR, table lookup, target): %s", percentiles(stepTimes))
	t.Logf("INVITE through Worker.Handle (parse, lookup, answer): %s", percentiles(whole))
	if perHeap > 1024 {
		t.Errorf("%.0f heap bytes per binding", perHeap)
	}
	runtime.KeepAlive(w)
}

// phoneOf returns user i's source address (behind a NAT).
func phoneOf(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{100, 64 + byte(i>>16&63), byte(i >> 8), byte(i)}), uint16(20000+i%40000))
}

// appendRegister builds user i's REGISTER: a realistic size (≈ 420 bytes)
// with a private contact address, Call-ID and User-Agent.
func appendRegister(b []byte, i int) []byte {
	u := strconv.Itoa(i)
	ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String()
	b = append(b, "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP "+ip+":5060;branch=z9hG4bK-"+u+";rport\r\n"...)
	b = append(b, "Max-Forwards: 70\r\nFrom: <sip:user"+u+"@example.com>;tag=t"+u+"\r\nTo: <sip:user"+u+"@example.com>\r\n"...)
	b = append(b, "Call-ID: "+strconv.FormatUint(uint64(i)*0x9e3779b97f4a7c15, 16)+"@"+ip+"\r\nCSeq: 1 REGISTER\r\n"...)
	b = append(b, "Contact: <sip:user"+u+"@"+ip+":5060;transport=udp>;expires=3600\r\n"...)
	b = append(b, "User-Agent: Velox-Bench/1.0\r\nAllow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\nContent-Length: 0\r\n\r\n"...)
	return b
}

func appendInvite(b []byte, i, k int) []byte {
	u, ks := strconv.Itoa(i), strconv.Itoa(k)
	b = append(b, "INVITE sip:user"+u+"@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5061;branch=z9hG4bK-i"+ks+"\r\n"...)
	b = append(b, "Max-Forwards: 70\r\nFrom: <sip:bob@b.example>;tag=b"+ks+"\r\nTo: <sip:user"+u+"@example.com>\r\n"...)
	return append(b, "Call-ID: call-"+ks+"\r\nCSeq: 1 INVITE\r\nContact: <sip:bob@192.0.2.1:5061>\r\nContent-Length: 0\r\n\r\n"...)
}

// memNow returns the live Go heap after two collections and the process
// resident set size.
func memNow() (heap, rss uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	f, err := os.Open("/proc/self/status")
	if err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				rss = kb << 10
			}
		}
	}
	return ms.HeapAlloc, rss
}

func gogc() string {
	if v := os.Getenv("GOGC"); v != "" {
		return v
	}
	return "100"
}

// percentiles formats p50, p90, p99, p99.9 and the mean.
func percentiles(d []time.Duration) string {
	s := slices.Clone(d)
	slices.Sort(s)
	var sum time.Duration
	for _, v := range s {
		sum += v
	}
	p := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return "p50 " + p(0.50).String() + ", p90 " + p(0.90).String() + ", p99 " + p(0.99).String() +
		", p99.9 " + p(0.999).String() + ", mean " + (sum / time.Duration(len(s))).String() + " (" + strconv.Itoa(len(s)) + " requests)"
}
