package location

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veloxsip/velox/sip"
)

// manualClock is a goroutine-safe clock the tests move by hand.
type manualClock struct{ ns atomic.Int64 }

func newClock() *manualClock {
	c := &manualClock{}
	c.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *manualClock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *manualClock) add(d time.Duration) { c.ns.Add(int64(d)) }
func newTable(o Options) (*Table, *manualClock) {
	c := newClock()
	o.Clock = c.now
	return New(o), c
}

func ct(uri string, expires int) Contact {
	c := NewContact([]byte(uri))
	c.Expires = expires
	return c
}

func ctq(uri string, expires, q int) Contact {
	c := ct(uri, expires)
	c.Q = q
	return c
}

func ctInst(uri, inst string, regID, expires int) Contact {
	c := ct(uri, expires)
	c.Instance, c.RegID = []byte(inst), regID
	return c
}

func reg(aor, callID string, cseq uint32, cs ...Contact) *Register {
	return &Register{AOR: []byte(aor), CallID: []byte(callID), CSeq: cseq, Expires: NoValue, Contacts: cs,
		Transport: []byte("udp"), Received: netip.MustParseAddrPort("192.0.2.1:5060"),
		Socket: netip.MustParseAddrPort("198.51.100.1:5060"), UserAgent: []byte("test/1")}
}

func save(t *testing.T, tb *Table, c *manualClock, r *Register) []Binding {
	t.Helper()
	got, err := tb.Save(r, c.now(), nil)
	if err != nil {
		t.Fatalf("Save(%s %s %d): %v", r.AOR, r.CallID, r.CSeq, err)
	}
	return got
}

func contacts(bs []Binding) []string {
	var s []string
	for _, b := range bs {
		s = append(s, b.Contact)
	}
	return s
}

func TestAddRefreshRemove(t *testing.T) {
	tb, c := newTable(Options{})
	got := save(t, tb, c, reg("alice@example.com", "c1", 1, ct("sip:alice@PC33.example.com:5060;transport=udp", 600)))
	if len(got) != 1 || got[0].Contact != "sip:alice@PC33.example.com:5060;transport=udp" || got[0].ExpiresIn(c.now()) != 600 {
		t.Fatalf("add: %+v", got)
	}
	b := got[0]
	if b.AOR != "alice@example.com" || b.CallID != "c1" || b.CSeq != 1 || b.Q != 1000 || b.Transport != "udp" ||
		b.UserAgent != "test/1" || b.Received.String() != "192.0.2.1:5060" || b.Socket.String() != "198.51.100.1:5060" ||
		!b.LastModified.Equal(c.now()) {
		t.Fatalf("fields: %+v", b)
	}
	c.add(100 * time.Second)
	// RFC 3261 §19.1.4: host and transport compare without case, a
	// parameter present on one side only is ignored: same binding.
	got = save(t, tb, c, reg("alice@example.com", "c1", 2, ct("sip:alice@pc33.example.com:5060;Transport=UDP;foo=1", NoValue)))
	if tb.Len() != 1 || len(got) != 1 || got[0].CSeq != 2 || got[0].ExpiresIn(c.now()) != 3600 ||
		got[0].Contact != "sip:alice@pc33.example.com:5060;Transport=UDP;foo=1" {
		t.Fatalf("refresh: len %d %+v", tb.Len(), got)
	}
	got = save(t, tb, c, reg("alice@example.com", "c1", 3, ct("sip:alice@pc33.example.com:5060;transport=udp", 0)))
	if len(got) != 0 || tb.Len() != 0 || tb.AORs() != 0 {
		t.Fatalf("remove: %+v len %d aors %d", got, tb.Len(), tb.AORs())
	}
	if l := tb.Lookup("alice@example.com", c.now(), nil); len(l) != 0 {
		t.Fatalf("lookup after remove: %+v", l)
	}
	// expires=0 for an unknown contact changes nothing.
	got = save(t, tb, c, reg("alice@example.com", "c1", 4, ct("sip:alice@192.0.2.9", 0)))
	if len(got) != 0 || tb.AORs() != 0 {
		t.Fatalf("remove unknown: %+v", got)
	}
}

func TestDifferentURIsAreDifferentBindings(t *testing.T) {
	tb, c := newTable(Options{})
	r := reg("bob@example.com", "c1", 1,
		ct("sip:bob@192.0.2.1:5060", NoValue),
		ct("sip:bob@192.0.2.1:5062", NoValue),
		ct("sip:BOB@192.0.2.1:5060", NoValue), // user part is case-sensitive
		ct("sip:bob@192.0.2.1:5060;transport=tcp", NoValue))
	if got := save(t, tb, c, r); len(got) != 4 {
		t.Fatalf("got %v", contacts(got))
	}
	// The same contact twice in one request: one binding, the last value wins.
	r = reg("carol@example.com", "c1", 1, ct("sip:carol@192.0.2.1", 60), ct("sip:carol@192.0.2.1", 120))
	if got := save(t, tb, c, r); len(got) != 1 || got[0].ExpiresIn(c.now()) != 120 {
		t.Fatalf("duplicate: %+v", got)
	}
}

func TestExpiresSources(t *testing.T) {
	tb, c := newTable(Options{DefaultExpires: 900 * time.Second, MinExpires: 60 * time.Second, MaxExpires: 7200 * time.Second})
	r := reg("a@x", "c1", 1, ct("sip:a@h1", 300), ct("sip:a@h2", NoValue))
	r.Expires = 1800
	got := save(t, tb, c, r)
	exp := map[string]int{}
	for _, b := range got {
		exp[b.Contact] = b.ExpiresIn(c.now())
	}
	if exp["sip:a@h1"] != 300 || exp["sip:a@h2"] != 1800 {
		t.Fatalf("param/header: %v", exp)
	}
	got = save(t, tb, c, reg("b@x", "c1", 1, ct("sip:b@h", NoValue)))
	if got[0].ExpiresIn(c.now()) != 900 {
		t.Fatalf("default: %d", got[0].ExpiresIn(c.now()))
	}
	got = save(t, tb, c, reg("b@x", "c1", 2, ct("sip:b@h", 100000)))
	if got[0].ExpiresIn(c.now()) != 7200 {
		t.Fatalf("max: %d", got[0].ExpiresIn(c.now()))
	}
	if _, err := tb.Save(reg("b@x", "c1", 3, ct("sip:b@h", 30), ct("sip:b@new", 600)), c.now(), nil); err != ErrIntervalTooBrief {
		t.Fatalf("min: %v", err)
	}
	if l := tb.Lookup("b@x", c.now(), nil); len(l) != 1 || l[0].CSeq != 2 {
		t.Fatalf("423 changed the AOR: %+v", l)
	}
}

func TestCSeqOrdering(t *testing.T) {
	tb, c := newTable(Options{})
	save(t, tb, c, reg("a@x", "call-1", 10, ct("sip:a@h1", 600)))
	for _, cseq := range []uint32{9, 10} { // out of order, retransmitted
		_, err := tb.Save(reg("a@x", "call-1", cseq, ct("sip:a@h1", 1200)), c.now(), nil)
		if err != ErrCSeqOrder || !errors.Is(err, ErrCSeqOrder) {
			t.Fatalf("cseq %d: %v", cseq, err)
		}
		var le *Error
		if !errors.As(err, &le) || le.Code != 500 {
			t.Fatalf("typed error: %v", err)
		}
	}
	// All or nothing: a new contact beside an out-of-order refresh is not added.
	if _, err := tb.Save(reg("a@x", "call-1", 5, ct("sip:a@h2", 600), ct("sip:a@h1", 600)), c.now(), nil); err != ErrCSeqOrder {
		t.Fatalf("mixed: %v", err)
	}
	// An out-of-order removal removes nothing.
	if _, err := tb.Save(reg("a@x", "call-1", 3, ct("sip:a@h1", 0)), c.now(), nil); err != ErrCSeqOrder {
		t.Fatalf("remove: %v", err)
	}
	if l := tb.Lookup("a@x", c.now(), nil); len(l) != 1 || l[0].CSeq != 10 || l[0].ExpiresIn(c.now()) != 600 {
		t.Fatalf("changed: %+v", l)
	}
	// Another Call-ID (a restarted UA) may have any CSeq.
	got := save(t, tb, c, reg("a@x", "call-2", 1, ct("sip:a@h1", 1200)))
	if len(got) != 1 || got[0].CallID != "call-2" || got[0].CSeq != 1 || got[0].ExpiresIn(c.now()) != 1200 {
		t.Fatalf("new call-id: %+v", got)
	}
	// Higher CSeq under the stored Call-ID.
	got = save(t, tb, c, reg("a@x", "call-2", 2, ct("sip:a@h1", 300)))
	if got[0].CSeq != 2 || got[0].ExpiresIn(c.now()) != 300 {
		t.Fatalf("in order: %+v", got)
	}
}

func TestStar(t *testing.T) {
	tb, c := newTable(Options{})
	save(t, tb, c, reg("a@x", "c1", 5, ct("sip:a@h1", 600), ct("sip:a@h2", 600)))
	save(t, tb, c, reg("a@x", "c2", 1, ct("sip:a@h3", 600)))
	star := func(callID string, cseq uint32, expires int, cs ...Contact) error {
		r := reg("a@x", callID, cseq, cs...)
		r.Star, r.Expires = true, expires
		got, err := tb.Save(r, c.now(), nil)
		if err == nil && len(got) != 0 {
			t.Fatalf("star returned %+v", got)
		}
		return err
	}
	if err := star("c9", 1, 3600); err != ErrInvalidStar {
		t.Fatalf("star with expires: %v", err)
	}
	if err := star("c9", 1, NoValue); err != ErrInvalidStar {
		t.Fatalf("star without expires: %v", err)
	}
	if err := star("c9", 1, 0, ct("sip:a@h1", 0)); err != ErrInvalidStar {
		t.Fatalf("star with a contact: %v", err)
	}
	if err := star("c1", 5, 0); err != ErrCSeqOrder {
		t.Fatalf("star out of order: %v", err)
	}
	if tb.Len() != 3 {
		t.Fatalf("a failed * removed bindings: %d", tb.Len())
	}
	if err := star("c1", 6, 0); err != nil {
		t.Fatal(err)
	}
	if tb.Len() != 0 || tb.AORs() != 0 {
		t.Fatalf("after *: %d bindings", tb.Len())
	}
	if err := star("c1", 7, 0); err != nil { // nothing to remove
		t.Fatal(err)
	}
}

func TestMaxContacts(t *testing.T) {
	tb, c := newTable(Options{MaxContacts: 2})
	save(t, tb, c, reg("a@x", "c1", 1, ct("sip:a@h1", 600)))
	c.add(time.Second)
	save(t, tb, c, reg("a@x", "c2", 1, ct("sip:a@h2", 600)))
	if _, err := tb.Save(reg("a@x", "c3", 1, ct("sip:a@h3", 600)), c.now(), nil); err != ErrTooManyContacts {
		t.Fatalf("third: %v", err)
	}
	// At the limit, refreshes and a replace-in-one-request still pass.
	save(t, tb, c, reg("a@x", "c1", 2, ct("sip:a@h1", 600)))
	save(t, tb, c, reg("a@x", "c2", 2, ct("sip:a@h2", 0), ct("sip:a@h3", 600)))
	if got := tb.Lookup("a@x", c.now(), nil); len(got) != 2 {
		t.Fatalf("got %v", contacts(got))
	}
	if _, err := tb.Save(reg("b@x", "c1", 1, ct("sip:b@1", 60), ct("sip:b@2", 60), ct("sip:b@3", 60)), c.now(), nil); err != ErrTooManyContacts {
		t.Fatalf("three at once: %v", err)
	}

	var evs []Event
	td, c := newTable(Options{MaxContacts: 2, DropOldest: true, OnChange: func(e Event) { evs = append(evs, e) }})
	save(t, td, c, reg("a@x", "c1", 1, ct("sip:a@old", 600)))
	c.add(time.Second)
	save(t, td, c, reg("a@x", "c2", 1, ct("sip:a@mid", 600)))
	c.add(time.Second)
	save(t, td, c, reg("a@x", "c1", 2, ct("sip:a@old", 600))) // now a@mid is the oldest
	c.add(time.Second)
	evs = nil
	got := save(t, td, c, reg("a@x", "c3", 1, ct("sip:a@new", 600)))
	if !slices.Equal(contacts(got), []string{"sip:a@new", "sip:a@old"}) {
		t.Fatalf("drop oldest: %v", contacts(got))
	}
	if len(evs) != 2 || evs[0].Kind != EventDelete || evs[0].Binding.Contact != "sip:a@mid" || evs[1].Kind != EventInsert {
		t.Fatalf("events: %+v", evs)
	}
	if _, err := td.Save(reg("a@x", "c4", 1, ct("sip:a@1", 60), ct("sip:a@2", 60), ct("sip:a@3", 60)), c.now(), nil); err != ErrTooManyContacts {
		t.Fatalf("more than the limit in one request: %v", err)
	}
	if td.Len() != 2 {
		t.Fatalf("len %d", td.Len())
	}
}

func TestLookupOrder(t *testing.T) {
	tb, c := newTable(Options{})
	save(t, tb, c, reg("a@x", "c1", 1, ctq("sip:a@q5-old", 600, 500)))
	c.add(time.Second)
	save(t, tb, c, reg("a@x", "c2", 1, ctq("sip:a@q1", 600, 100), ct("sip:a@qdefault", 600)))
	c.add(time.Second)
	save(t, tb, c, reg("a@x", "c3", 1, ctq("sip:a@q5-new", 600, 500), ctq("sip:a@q0", 600, 0)))
	want := []string{"sip:a@qdefault", "sip:a@q5-new", "sip:a@q5-old", "sip:a@q1", "sip:a@q0"}
	dst := make([]Binding, 0, 8)
	got := tb.Lookup("a@x", c.now(), dst)
	if !slices.Equal(contacts(got), want) {
		t.Fatalf("order %v", contacts(got))
	}
	// Refreshing the old one makes it the most recent of its q.
	c.add(time.Second)
	save(t, tb, c, reg("a@x", "c1", 2, ctq("sip:a@q5-old", 600, 500)))
	got = tb.LookupBytes([]byte("a@x"), c.now(), dst[:0])
	if contacts(got)[1] != "sip:a@q5-old" {
		t.Fatalf("after refresh %v", contacts(got))
	}
	now := c.now()
	if n := testing.AllocsPerRun(100, func() { dst = tb.Lookup("a@x", now, dst[:0]) }); n != 0 {
		t.Fatalf("Lookup allocates %v", n)
	}
	// Expired but not yet collected bindings are not returned.
	save(t, tb, c, reg("a@x", "c9", 1, ct("sip:a@short", 10)))
	if got := tb.Lookup("a@x", c.now().Add(11*time.Second), nil); len(got) != 5 {
		t.Fatalf("expired returned: %v", contacts(got))
	}
}

func TestExpiry(t *testing.T) {
	var mu sync.Mutex
	var evs []Event
	tb, c := newTable(Options{OnChange: func(e Event) { mu.Lock(); evs = append(evs, e); mu.Unlock() }})
	save(t, tb, c, reg("a@x", "c1", 1, ct("sip:a@h1", 60), ct("sip:a@h2", 120)))
	save(t, tb, c, reg("b@x", "c1", 1, ct("sip:b@h1", 60)))
	evs = nil
	c.add(59 * time.Second)
	tb.Advance()
	if tb.Len() != 3 {
		t.Fatalf("expired early: %d", tb.Len())
	}
	// A refresh that pushes the earliest expiry later leaves the timer in
	// place: the firing at 60 s re-arms it.
	save(t, tb, c, reg("b@x", "c1", 2, ct("sip:b@h1", 60)))
	c.add(time.Second + 30*time.Millisecond)
	tb.Advance()
	if tb.Len() != 2 || tb.AORs() != 2 {
		t.Fatalf("at 60 s: len %d aors %d", tb.Len(), tb.AORs())
	}
	if len(evs) != 2 || evs[1].Kind != EventExpire || evs[1].Binding.Contact != "sip:a@h1" {
		t.Fatalf("events %+v", evs)
	}
	// A shorter binding re-arms the AOR's timer earlier.
	save(t, tb, c, reg("a@x", "c1", 2, ct("sip:a@h3", 5)))
	c.add(5*time.Second + 30*time.Millisecond)
	tb.Advance()
	if got := contacts(tb.Lookup("a@x", c.now(), nil)); !slices.Equal(got, []string{"sip:a@h2"}) {
		t.Fatalf("after short: %v", got)
	}
	c.add(time.Hour)
	tb.Advance()
	if tb.Len() != 0 || tb.AORs() != 0 {
		t.Fatalf("all expired: len %d aors %d", tb.Len(), tb.AORs())
	}
	n := 0
	for _, e := range evs {
		if e.Kind == EventExpire {
			n++
		}
	}
	if n != 4 {
		t.Fatalf("%d expire events: %+v", n, evs)
	}
	for _, w := range tb.wheels {
		if w.Len() != 0 {
			t.Fatalf("wheel keeps %d timers", w.Len())
		}
	}
}

func TestTimerGoroutine(t *testing.T) {
	tb := New(Options{Buckets: 16, TimerWheels: 2})
	tb.Start()
	defer tb.Close()
	now := time.Now()
	for i := range 10 {
		r := reg(fmt.Sprintf("u%d@x", i), "c", 1, ct("sip:u@h", 1))
		if _, err := tb.Save(r, now, nil); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for tb.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if tb.Len() != 0 || tb.AORs() != 0 {
		t.Fatalf("not expired: %d", tb.Len())
	}
}

func TestInstanceRegID(t *testing.T) {
	tb, c := newTable(Options{})
	const inst = "urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF"
	save(t, tb, c, reg("a@x", "boot1", 1, ctInst("sip:a@192.0.2.1:5060;ob", inst, 1, 600)))
	save(t, tb, c, reg("a@x", "boot1", 2, ctInst("sip:a@192.0.2.1:5070;ob", inst, 2, 600))) // a second flow
	if tb.Len() != 2 {
		t.Fatalf("two flows: %d", tb.Len())
	}
	// The device reboots: new Call-ID, new address, same instance and
	// reg-id; the flow is replaced, not added. The instance compares
	// without case.
	r := reg("a@x", "boot2", 1, ctInst("sip:a@203.0.113.7:40000;ob", "urn:uuid:00000000-0000-1000-8000-aabbccddeeff", 1, 600))
	got := save(t, tb, c, r)
	if !slices.Equal(contacts(got), []string{"sip:a@203.0.113.7:40000;ob", "sip:a@192.0.2.1:5070;ob"}) {
		t.Fatalf("replace: %v", contacts(got))
	}
	if got[0].RegID != 1 || got[0].CallID != "boot2" || got[0].Instance == "" {
		t.Fatalf("fields %+v", got[0])
	}
	// Same Call-ID and instance/reg-id with an old CSeq: out of order.
	if _, err := tb.Save(reg("a@x", "boot2", 1, ctInst("sip:a@203.0.113.9;ob", inst, 1, 600)), c.now(), nil); err != ErrCSeqOrder {
		t.Fatalf("old cseq: %v", err)
	}
	// Removing by instance/reg-id with any URI.
	got = save(t, tb, c, reg("a@x", "boot2", 2, ctInst("sip:a@whatever", inst, 2, 0)))
	if !slices.Equal(contacts(got), []string{"sip:a@203.0.113.7:40000;ob"}) {
		t.Fatalf("remove flow: %v", contacts(got))
	}
	// Another instance with the same URI is another flow: never merged.
	got = save(t, tb, c, reg("a@x", "other", 1, ctInst("sip:a@203.0.113.7:40000;ob", "urn:uuid:other", 1, 300)))
	if len(got) != 2 {
		t.Fatalf("flows merged: %+v", got)
	}
	if got = save(t, tb, c, reg("a@x", "other", 2, ctInst("sip:x@y", "urn:uuid:other", 1, 0))); len(got) != 1 {
		t.Fatalf("remove other: %+v", got)
	}
	// A contact without an instance still matches by URI.
	got = save(t, tb, c, reg("a@x", "boot2", 3, ct("sip:a@203.0.113.7:40000;ob", 300)))
	if len(got) != 1 || got[0].ExpiresIn(c.now()) != 300 {
		t.Fatalf("uri match: %+v", got)
	}
	// reg-id without +sip.instance is ignored (RFC 3261 rules apply).
	got = save(t, tb, c, reg("b@x", "c", 1, ctInst("sip:b@h", "", 3, 300)))
	if got[0].RegID != 0 {
		t.Fatalf("reg-id kept: %+v", got[0])
	}
}

func TestEventsAndQuery(t *testing.T) {
	var evs []string
	tb, c := newTable(Options{OnChange: func(e Event) { evs = append(evs, e.Kind.String()+" "+e.Binding.Contact) }})
	save(t, tb, c, reg("a@x", "c1", 1, ct("sip:a@h1", 600), ct("sip:a@h2", 600)))
	save(t, tb, c, reg("a@x", "c1", 2, ct("sip:a@h1", 0), ct("sip:a@h2", 600)))
	// A REGISTER without contacts is a query: it changes nothing.
	if got := save(t, tb, c, reg("a@x", "c1", 3)); !slices.Equal(contacts(got), []string{"sip:a@h2"}) {
		t.Fatalf("query: %v", contacts(got))
	}
	if got := save(t, tb, c, reg("nobody@x", "c1", 1)); len(got) != 0 || tb.AORs() != 1 {
		t.Fatalf("query of an unknown AOR: %v", got)
	}
	if n := tb.Delete("a@x"); n != 1 {
		t.Fatalf("Delete = %d", n)
	}
	want := []string{"insert sip:a@h1", "insert sip:a@h2", "delete sip:a@h1", "update sip:a@h2", "delete sip:a@h2"}
	if !slices.Equal(evs, want) {
		t.Fatalf("events\n%q\nwant\n%q", evs, want)
	}
}

func TestRangeRestoreAndPath(t *testing.T) {
	tb, c := newTable(Options{Buckets: 4})
	for i := range 50 {
		r := reg(fmt.Sprintf("u%d@x", i), "c", 1, ct(fmt.Sprintf("sip:u%d@h", i), 600), ct(fmt.Sprintf("sip:u%d@h2", i), 600))
		r.Path = [][]byte{[]byte("sip:edge1.example.com;lr"), []byte("sip:edge2.example.com;lr")}
		save(t, tb, c, r)
	}
	var all []Binding
	tb.Range(func(b Binding) bool { all = append(all, b); return true })
	if len(all) != 100 || tb.Len() != 100 || tb.AORs() != 50 {
		t.Fatalf("Range %d Len %d AORs %d", len(all), tb.Len(), tb.AORs())
	}
	if !slices.Equal(all[0].Path, []string{"sip:edge1.example.com;lr", "sip:edge2.example.com;lr"}) {
		t.Fatalf("path %q", all[0].Path)
	}
	n := 0
	tb.Range(func(Binding) bool { n++; return n < 7 })
	if n != 7 {
		t.Fatalf("Range did not stop: %d", n)
	}
	// Persist and restore into a new table.
	t2 := New(Options{Clock: c.now})
	for _, b := range all {
		if err := t2.Restore(b); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range all[:3] { // restoring again replaces
		if err := t2.Restore(b); err != nil {
			t.Fatal(err)
		}
	}
	if t2.Len() != 100 || t2.AORs() != 50 {
		t.Fatalf("restored %d/%d", t2.Len(), t2.AORs())
	}
	a := tb.Lookup("u7@x", c.now(), nil)
	b := t2.Lookup("u7@x", c.now(), nil)
	if len(a) != 2 || len(b) != 2 {
		t.Fatalf("lookups %d %d", len(a), len(b))
	}
	for i := range a {
		if a[i].Contact != b[i].Contact || !a[i].Expires.Equal(b[i].Expires) || !a[i].LastModified.Equal(b[i].LastModified) ||
			!slices.Equal(a[i].Path, b[i].Path) || a[i].Socket != b[i].Socket || a[i].Received != b[i].Received ||
			a[i].CallID != b[i].CallID || a[i].CSeq != b[i].CSeq || a[i].Q != b[i].Q || a[i].UserAgent != b[i].UserAgent {
			t.Fatalf("restored\n%+v\n%+v", b[i], a[i])
		}
	}
	// Restored bindings expire like the others.
	c.add(601 * time.Second)
	t2.Advance()
	if t2.Len() != 0 {
		t.Fatalf("restored bindings did not expire: %d", t2.Len())
	}
}

func TestParseRegister(t *testing.T) {
	msg := "REGISTER sip:example.com SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n" +
		"Max-Forwards: 70\r\n" +
		"To: Alice <sip:%61lice@Example.COM>\r\n" +
		"From: Alice <sip:alice@example.com>;tag=1928301774\r\n" +
		"Call-ID: a84b4c76e66710@pc33.example.com\r\n" +
		"CSeq: 314159 REGISTER\r\n" +
		"Path: <sip:edge.example.com;lr>\r\n" +
		"Contact: <sip:alice@192.0.2.1:5060;ob>;expires=300;q=0.7;+sip.instance=\"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>\";reg-id=1, sip:alice@192.0.2.1:5062\r\n" +
		"Expires: 1800\r\n" +
		"User-Agent: Phone/1.0\r\n" +
		"Content-Length: 0\r\n\r\n"
	var m sip.Message
	if err := m.Parse([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	var r Register
	if err := ParseRegister(&m, &r); err != nil {
		t.Fatal(err)
	}
	if string(r.AOR) != "alice@example.com" || r.CSeq != 314159 || r.Expires != 1800 || len(r.Contacts) != 2 ||
		len(r.Path) != 1 || string(r.Path[0]) != "sip:edge.example.com;lr" || string(r.UserAgent) != "Phone/1.0" {
		t.Fatalf("%+v", r)
	}
	c0 := r.Contacts[0]
	if string(c0.URI) != "sip:alice@192.0.2.1:5060;ob" || c0.Expires != 300 || c0.Q != 700 || c0.RegID != 1 ||
		string(c0.Instance) != "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6" {
		t.Fatalf("contact 0 %+v", c0)
	}
	if c1 := r.Contacts[1]; c1.Expires != NoValue || c1.Q != NoValue {
		t.Fatalf("contact 1 %+v", c1)
	}
	tb, c := newTable(Options{})
	got := save(t, tb, c, &r)
	if len(got) != 2 || got[0].Contact != "sip:alice@192.0.2.1:5062" || got[1].ExpiresIn(c.now()) != 300 {
		t.Fatalf("saved %+v", got)
	}
	if n := testing.AllocsPerRun(50, func() { _ = ParseRegister(&m, &r) }); n != 0 {
		t.Fatalf("ParseRegister allocates %v", n)
	}

	star := "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:alice@example.com>\r\n" +
		"From: <sip:alice@example.com>;tag=1\r\nCall-ID: x\r\nCSeq: 2 REGISTER\r\nContact: *\r\nExpires: 0\r\nContent-Length: 0\r\n\r\n"
	if err := m.Parse([]byte(star)); err != nil {
		t.Fatal(err)
	}
	if err := ParseRegister(&m, &r); err != nil || !r.Star || r.Expires != 0 {
		t.Fatalf("star: %v %+v", err, r)
	}
	save(t, tb, c, &r)
	if tb.Len() != 0 {
		t.Fatalf("star left %d", tb.Len())
	}
}

func TestAppendAOR(t *testing.T) {
	for in, want := range map[string]string{
		"sip:Alice@Example.COM:5060;transport=tcp?x=y": "Alice@example.com",
		"sips:bob%40home@example.com":                  "bob@home@example.com",
		"sip:example.com":                              "example.com",
		"tel:+1-201-555-0123;phone-context=x":          "+1-201-555-0123",
	} {
		var u sip.URI
		if err := sip.ParseURI([]byte(in), &u); err != nil {
			t.Fatal(in, err)
		}
		if got := string(AppendAOR(nil, &u)); got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
}

func TestBadInput(t *testing.T) {
	tb, c := newTable(Options{})
	cases := []struct {
		r   *Register
		err error
	}{
		{reg("", "c", 1, ct("sip:a@h", 60)), ErrNoAOR},
		{reg("a@x", "c", 1, ct("not a uri", 60)), ErrBadContact},
		{reg("a@x", "c", 1, ctq("sip:a@h", 60, 1001)), ErrBadContact},
		{reg("a@x", "c", 1, ct("sip:a@h;x="+string(make([]byte, 70000)), 60)), ErrBadContact},
	}
	long := reg("a@x", "c", 1, ct("sip:a@h", 60))
	long.UserAgent = make([]byte, 70000)
	for i := range long.UserAgent {
		long.UserAgent[i] = 'x'
	}
	cases = append(cases, struct {
		r   *Register
		err error
	}{long, ErrTooLong})
	for i, tc := range cases {
		if _, err := tb.Save(tc.r, c.now(), nil); err != tc.err {
			t.Errorf("case %d: %v, want %v", i, err, tc.err)
		}
	}
	if tb.Len() != 0 || tb.AORs() != 0 {
		t.Fatalf("bad input stored something")
	}
}

// TestConcurrent runs writers, readers, deleters and the timer on a few
// shared AORs; -race checks the locking, the counters must agree with
// the table at the end.
func TestConcurrent(t *testing.T) {
	var events atomic.Int64
	tb, c := newTable(Options{Buckets: 8, MaxContacts: 4, DropOldest: true, TimerWheels: 2,
		OnChange: func(Event) { events.Add(1) }})
	const workers, iters, aors = 4, 2000, 32
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var timer sync.WaitGroup
	timer.Add(1)
	go func() { // the timer worker, with the clock moving
		defer timer.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c.add(200 * time.Millisecond)
			tb.Advance()
			time.Sleep(50 * time.Microsecond)
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := make([]Binding, 0, 8)
			var buf []byte
			for i := range iters {
				aor := fmt.Sprintf("u%d@x", (i*7+w)%aors)
				switch i % 5 {
				case 0, 1:
					buf = fmt.Appendf(buf[:0], "sip:u@h%d", i%6)
					r := reg(aor, fmt.Sprintf("w%d", w), uint32(i+1), ct(string(buf), 1+i%5))
					r.Path = [][]byte{[]byte("sip:p;lr")}
					if _, err := tb.Save(r, c.now(), dst[:0]); err != nil && err != ErrCSeqOrder {
						t.Error(err)
						return
					}
				case 2, 3:
					for _, b := range tb.Lookup(aor, c.now(), dst[:0]) {
						if b.AOR != aor || len(b.Path) != 1 {
							t.Errorf("lookup %s got %+v", aor, b)
						}
					}
				case 4:
					if i%20 == 4 {
						tb.Delete(aor)
					} else {
						tb.Range(func(Binding) bool { return true })
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	timer.Wait()
	tb.Advance()
	n := 0
	tb.Range(func(Binding) bool { n++; return true })
	if n != tb.Len() {
		t.Fatalf("Range sees %d, Len %d", n, tb.Len())
	}
	c.add(time.Hour)
	tb.Advance()
	if tb.Len() != 0 || tb.AORs() != 0 {
		t.Fatalf("left: %d bindings %d AORs", tb.Len(), tb.AORs())
	}
	if events.Load() == 0 {
		t.Fatal("no events")
	}
}

// TestRandomInvariants drives a table with few buckets (so records
// overflow the inline tags) through random REGISTERs, deletes and clock
// moves, and checks its internal invariants after each step.
func TestRandomInvariants(t *testing.T) {
	tb, c := newTable(Options{Buckets: 2, MaxContacts: 3, DropOldest: true})
	rng := rand.New(rand.NewPCG(7, 7))
	cseq := map[string]uint32{}
	for step := range 5000 {
		aor := fmt.Sprintf("u%d@x", rng.IntN(40))
		switch op := rng.IntN(10); {
		case op < 6:
			var cs []Contact
			for range 1 + rng.IntN(2) {
				exp := []int{0, 5, 30, NoValue}[rng.IntN(4)]
				cc := ctq(fmt.Sprintf("sip:%s@h%d", aor[:2], rng.IntN(5)), exp, rng.IntN(3)*500)
				if rng.IntN(4) == 0 {
					cc.Instance, cc.RegID = []byte(fmt.Sprintf("urn:uuid:%d", rng.IntN(2))), 1+rng.IntN(2)
				}
				cs = append(cs, cc)
			}
			callID := fmt.Sprintf("c%d", rng.IntN(2))
			cseq[aor+callID]++
			if _, err := tb.Save(reg(aor, callID, cseq[aor+callID], cs...), c.now(), nil); err != nil && err != ErrTooManyContacts {
				t.Fatalf("step %d: %v", step, err)
			}
		case op < 7:
			tb.Delete(aor)
		case op < 8:
			r := reg(aor, "c0", cseq[aor+"c0"]+1)
			cseq[aor+"c0"]++
			r.Star, r.Expires = true, 0
			if _, err := tb.Save(r, c.now(), nil); err != nil {
				t.Fatalf("step %d star: %v", step, err)
			}
		default:
			c.add(time.Duration(rng.IntN(8)) * time.Second)
			tb.Advance()
		}
		checkInvariants(t, tb)
	}
}

func checkInvariants(t *testing.T, tb *Table) {
	t.Helper()
	nb, na := 0, 0
	for bi := range tb.buckets {
		b := &tb.buckets[bi]
		b.mu.Lock()
		for i := range b.recs {
			r := &b.recs[i]
			if bx, tag := tb.hash(r.aor); bx != uint32(bi) || tag != r.tag || (i < inlineTags && b.tags[i] != tag) {
				t.Fatalf("record %s: bucket %d/%d tag %x/%x", r.aor, bx, bi, tag, r.tag)
			}
			n := r.len()
			if n == 0 || n > tb.opt.MaxContacts {
				t.Fatalf("record %s has %d bindings", r.aor, n)
			}
			for j := range n {
				e := r.at(j)
				if j > 0 && before(e, r.at(j-1)) {
					t.Fatalf("record %s not sorted", r.aor)
				}
				if b.armed == 0 || b.armed > e.expires {
					t.Fatalf("bucket %d armed %d after expiry %d", bi, b.armed, e.expires)
				}
			}
			nb += n
			na++
		}
		b.mu.Unlock()
	}
	if nb != tb.Len() || na != tb.AORs() {
		t.Fatalf("counted %d/%d, Len %d AORs %d", nb, na, tb.Len(), tb.AORs())
	}
}
