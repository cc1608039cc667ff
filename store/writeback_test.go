package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestWriteBackCoalesce(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	now := time.Now()
	wb := NewWriteBack(db, time.Hour) // flushes only when asked
	defer wb.Close()

	r := func(aor, contact string, cseq uint32) BindingRow {
		return BindingRow{AOR: aor, Contact: contact, Expires: now.Add(time.Hour), CSeq: cseq}
	}
	q := func(k OpKind, row BindingRow) {
		t.Helper()
		if err := wb.Queue(Op{Kind: k, Row: row}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range uint32(5) {
		q(OpUpsert, r("a@x", "sip:a1", i)) // five refreshes of one binding
	}
	q(OpUpsert, r("a@x", "sip:a2", 1))
	q(OpDelete, r("a@x", "sip:a2", 0)) // added then removed
	q(OpUpsert, r("b@x", "sip:b1", 1))
	q(OpDeleteAOR, BindingRow{AOR: "b@x"}) // Contact: * …
	q(OpUpsert, r("b@x", "sip:b2", 7))     // … then a new registration
	if n := wb.Pending(); n != 4 {
		t.Errorf("Pending = %d, want 4 (a1, a2 delete, b delete-all, b2)", n)
	}
	if n := countBindings(t, db, now); n != 0 {
		t.Errorf("%d bindings written before the flush", n)
	}
	if err := wb.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	m := loadAll(t, db, now)
	if len(m) != 2 || m[[2]string{"a@x", "sip:a1"}].CSeq != 4 || m[[2]string{"b@x", "sip:b2"}].CSeq != 7 {
		t.Errorf("after flush: %+v", m)
	}
	if wb.Pending() != 0 || wb.Err() != nil {
		t.Errorf("Pending = %d, Err = %v", wb.Pending(), wb.Err())
	}

	// A delete of the whole AOR removes rows already written, and drops
	// the changes queued before it.
	q(OpUpsert, r("a@x", "sip:a3", 1))
	q(OpDeleteAOR, BindingRow{AOR: "a@x"})
	q(OpDeleteAOR, BindingRow{AOR: "a@x"})
	if n := wb.Pending(); n != 1 {
		t.Errorf("Pending = %d, want 1", n)
	}
	if err := wb.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if m := loadAll(t, db, now); len(m) != 1 {
		t.Errorf("after DeleteAOR flush: %+v", m)
	}

	// Invalid operations are refused at Queue.
	for _, op := range []Op{
		{Kind: 0, Row: r("a@x", "sip:a", 1)},
		{Kind: OpUpsert, Row: BindingRow{AOR: "a@x"}},
		{Kind: OpUpsert, Row: BindingRow{AOR: "a@x", Contact: "sip:a", Received: "x"}},
		{Kind: OpDelete, Row: BindingRow{AOR: "a@x"}},
		{Kind: OpDeleteAOR},
	} {
		if err := wb.Queue(op); err == nil {
			t.Errorf("Queue(%+v) accepted", op)
		}
	}
}

func TestWriteBackInterval(t *testing.T) {
	db, _ := openTemp(t)
	now := time.Now()
	wb := NewWriteBack(db, 20*time.Millisecond)
	defer wb.Close()
	if err := wb.Queue(Op{Kind: OpUpsert, Row: BindingRow{AOR: "a@x", Contact: "sip:a", Expires: now.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for countBindings(t, db, now) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the timer did not flush within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWriteBackRestart writes through a WriteBack from several goroutines,
// closes it and the database, reopens the file and finds every binding.
func TestWriteBackRestart(t *testing.T) {
	db, path := openTemp(t)
	now := time.Now()
	wb := NewWriteBack(db, 5*time.Millisecond)
	const goroutines, per = 4, 250
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				row := sampleRow(fmt.Sprintf("u%d@x", g), fmt.Sprintf("sip:c%d", i), now.Add(time.Hour))
				row.CSeq = uint32(i)
				// Queue each binding twice: the second (CSeq+1000) must win.
				for _, cseq := range []uint32{uint32(i), uint32(i) + 1000} {
					row.CSeq = cseq
					if err := wb.Queue(Op{Kind: OpUpsert, Row: row}); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := wb.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := wb.Queue(Op{Kind: OpDelete, Row: BindingRow{AOR: "a", Contact: "b"}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Queue after Close: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	m := loadAll(t, db2, now)
	if len(m) != goroutines*per {
		t.Fatalf("reloaded %d bindings, want %d", len(m), goroutines*per)
	}
	for g := range goroutines {
		for i := range per {
			want := sampleRow(fmt.Sprintf("u%d@x", g), fmt.Sprintf("sip:c%d", i), now.Add(time.Hour))
			want.CSeq = uint32(i) + 1000
			if got := m[[2]string{want.AOR, want.Contact}]; !sameRow(got, want) {
				t.Fatalf("reloaded\n %+v\nwant %+v", got, want)
			}
		}
	}
}

// TestWriteBackRetry makes a flush fail (the write connection is busy in
// another transaction until the context ends) and checks that the batch is
// kept, behind the changes queued since.
func TestWriteBackRetry(t *testing.T) {
	db, _ := openTemp(t)
	now := time.Now()
	wb := NewWriteBack(db, time.Hour)
	defer wb.Close()
	row := func(contact string, cseq uint32) BindingRow {
		return BindingRow{AOR: "a@x", Contact: contact, Expires: now.Add(time.Hour), CSeq: cseq}
	}
	wb.Queue(Op{Kind: OpUpsert, Row: row("sip:1", 1)})
	wb.Queue(Op{Kind: OpUpsert, Row: row("sip:2", 1)})
	wb.Queue(Op{Kind: OpDeleteAOR, Row: BindingRow{AOR: "b@x"}})

	tx, err := db.w.Begin() // holds the only write connection
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error)
	go func() { done <- wb.Flush(ctx) }()
	// While that flush waits, a newer change of sip:2.
	time.Sleep(10 * time.Millisecond)
	wb.Queue(Op{Kind: OpDelete, Row: row("sip:2", 0)})
	if err := <-done; err == nil {
		t.Fatal("flush succeeded while the write connection was taken")
	}
	tx.Rollback()
	if wb.Err() == nil {
		t.Error("Err() = nil after a failed flush")
	}
	if n := wb.Pending(); n != 3 {
		t.Errorf("Pending = %d after the failure, want 3", n)
	}
	if err := wb.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := loadAll(t, db, now)
	if len(m) != 1 || m[[2]string{"a@x", "sip:1"}].CSeq != 1 {
		t.Errorf("after the retry: %+v (sip:2 must stay deleted)", m)
	}
	if wb.Err() != nil {
		t.Errorf("Err() = %v after a good flush", wb.Err())
	}
}
