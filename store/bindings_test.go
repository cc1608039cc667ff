package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// sampleRow returns a binding with every field set.
func sampleRow(aor, contact string, expires time.Time) BindingRow {
	return BindingRow{
		AOR:       aor,
		Contact:   contact,
		Expires:   expires,
		Q:         500,
		CallID:    "c1@host",
		CSeq:      4000000001,
		Path:      []string{"<sip:p1.example.net;lr>", "<sip:p2.example.net;lr;ob>"},
		Received:  "[2001:db8::1%eth0]:5062",
		Socket:    "192.0.2.10:5060",
		Transport: "udp",
		Instance:  "urn:uuid:00000000-0000-1000-8000-000A95A0E128",
		RegID:     1,
		UserAgent: "Phone/1.0",
		Modified:  expires.Add(-time.Hour),
	}
}

// loadAll returns the live bindings keyed by AOR and Contact.
func loadAll(t testing.TB, db *DB, now time.Time) map[[2]string]BindingRow {
	t.Helper()
	m := map[[2]string]BindingRow{}
	err := db.LoadBindings(context.Background(), now, func(r BindingRow) error {
		m[[2]string{r.AOR, r.Contact}] = r
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func countBindings(t testing.TB, db *DB, now time.Time) int { return len(loadAll(t, db, now)) }

// sameRow compares two rows, times with Equal.
func sameRow(a, b BindingRow) bool {
	if !a.Expires.Equal(b.Expires) || !a.Modified.Equal(b.Modified) {
		return false
	}
	a.Expires, b.Expires, a.Modified, b.Modified = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

func TestBindings(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 123456789)

	full := sampleRow("alice@example.com", "sip:alice@192.0.2.1:5060", now.Add(time.Hour))
	bare := BindingRow{AOR: "alice@example.com", Contact: "sip:alice@198.51.100.7", Expires: now.Add(time.Minute)}
	old := BindingRow{AOR: "bob@example.com", Contact: "sip:bob@192.0.2.2", Expires: now.Add(-time.Second)}
	edge := BindingRow{AOR: "bob@example.com", Contact: "sip:bob@192.0.2.3", Expires: now} // expires at now: not live
	if err := db.UpsertBindings(ctx, []BindingRow{full, bare, old, edge}); err != nil {
		t.Fatal(err)
	}
	if err := db.UpsertBindings(ctx, nil); err != nil {
		t.Fatal(err)
	}

	m := loadAll(t, db, now)
	if len(m) != 2 {
		t.Fatalf("loaded %d bindings, want 2: %v", len(m), m)
	}
	if got := m[[2]string{full.AOR, full.Contact}]; !sameRow(got, full) {
		t.Errorf("full row:\n got %+v\nwant %+v", got, full)
	}
	if got := m[[2]string{bare.AOR, bare.Contact}]; !sameRow(got, bare) || got.Path != nil || !got.Modified.IsZero() {
		t.Errorf("bare row:\n got %+v\nwant %+v", got, bare)
	}

	// Order: by AOR, then Contact.
	var order []string
	db.LoadBindings(ctx, now.Add(-time.Hour), func(r BindingRow) error {
		order = append(order, r.AOR+" "+r.Contact)
		return nil
	})
	want := []string{
		"alice@example.com sip:alice@192.0.2.1:5060", "alice@example.com sip:alice@198.51.100.7",
		"bob@example.com sip:bob@192.0.2.2", "bob@example.com sip:bob@192.0.2.3",
	}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("order = %q", order)
	}

	// Upsert replaces by (AOR, Contact).
	refreshed := full
	refreshed.Expires, refreshed.CSeq, refreshed.Path, refreshed.Q = now.Add(2*time.Hour), 4000000002, nil, 1000
	if err := db.UpsertBindings(ctx, []BindingRow{refreshed}); err != nil {
		t.Fatal(err)
	}
	m = loadAll(t, db, now)
	if got := m[[2]string{full.AOR, full.Contact}]; len(m) != 2 || !sameRow(got, refreshed) {
		t.Errorf("after refresh: %d rows, %+v", len(m), got)
	}

	// fn's error stops the load; fn may write.
	stop := errors.New("stop")
	calls := 0
	err := db.LoadBindings(ctx, now, func(r BindingRow) error {
		calls++
		if err := db.DeleteBinding(ctx, r.AOR, r.Contact); err != nil {
			return err
		}
		return stop
	})
	if err != stop || calls != 1 {
		t.Errorf("LoadBindings = %v after %d calls", err, calls)
	}
	if n := countBindings(t, db, now); n != 1 {
		t.Errorf("%d live bindings after a delete in fn, want 1", n)
	}

	// Expiry.
	n, err := db.DeleteExpired(ctx, now)
	if err != nil || n != 2 {
		t.Errorf("DeleteExpired = %d %v; want 2", n, err)
	}
	if n, _ := db.DeleteExpired(ctx, now); n != 0 {
		t.Errorf("second DeleteExpired = %d", n)
	}

	// DeleteBinding of a missing binding is not an error; DeleteAOR.
	if err := db.DeleteBinding(ctx, "nobody@example.com", "sip:x"); err != nil {
		t.Error(err)
	}
	if err := db.UpsertBindings(ctx, []BindingRow{
		{AOR: "carol@example.com", Contact: "sip:c1", Expires: now.Add(time.Hour)},
		{AOR: "carol@example.com", Contact: "sip:c2", Expires: now.Add(time.Hour)},
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteAOR(ctx, "carol@example.com"); err != nil {
		t.Fatal(err)
	}
	if m := loadAll(t, db, now); len(m) != 1 {
		t.Errorf("after DeleteAOR: %v", m)
	}
}

func TestUpsertBindingsAtomic(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	now := time.Now()
	good := BindingRow{AOR: "a@x", Contact: "sip:a", Expires: now.Add(time.Hour)}
	for _, bad := range []BindingRow{
		{AOR: "", Contact: "sip:b", Expires: now.Add(time.Hour)},
		{AOR: "b@x", Contact: "", Expires: now.Add(time.Hour)},
		{AOR: "b@x", Contact: "sip:b", Received: "192.0.2.1", Expires: now.Add(time.Hour)},
		{AOR: "b@x", Contact: "sip:b", Socket: "nonsense", Expires: now.Add(time.Hour)},
	} {
		if err := db.UpsertBindings(ctx, []BindingRow{good, bad}); err == nil {
			t.Errorf("UpsertBindings accepted %+v", bad)
		}
	}
	if n := countBindings(t, db, now); n != 0 {
		t.Errorf("a failed batch left %d rows", n)
	}
}

func TestUpsertBindingsContext(t *testing.T) {
	db, _ := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rows := []BindingRow{{AOR: "a@x", Contact: "sip:a", Expires: time.Now().Add(time.Hour)}}
	if err := db.UpsertBindings(ctx, rows); err == nil {
		t.Error("UpsertBindings with a cancelled context succeeded")
	}
	if n := countBindings(t, db, time.Now()); n != 0 {
		t.Errorf("%d rows", n)
	}
}

func BenchmarkUpsertBindings(b *testing.B) {
	for _, batch := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			db, _ := openTemp(b)
			ctx := context.Background()
			exp := time.Now().Add(time.Hour)
			const aors = 10000 // rows cycle over this many bindings: inserts then updates
			rows := make([]BindingRow, batch)
			b.ResetTimer()
			n := 0
			for b.Loop() {
				for i := range rows {
					k := n % aors
					rows[i] = sampleRow(fmt.Sprintf("user%d@example.com", k), fmt.Sprintf("sip:user%d@192.0.2.1:5060", k), exp)
					n++
				}
				if err := db.UpsertBindings(ctx, rows); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
