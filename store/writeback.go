package store

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// OpKind says what an Op does.
type OpKind uint8

// Operation kinds.
const (
	OpUpsert    OpKind = iota + 1 // write Row (insert or replace by AOR and Contact)
	OpDelete                      // delete the binding Row.AOR → Row.Contact
	OpDeleteAOR                   // delete every binding of Row.AOR
)

// Op is one change queued on a WriteBack.
type Op struct {
	Kind OpKind
	Row  BindingRow // the whole row for OpUpsert; AOR and Contact for OpDelete; AOR for OpDeleteAOR
}

// aorOps are the pending changes of one AOR: when all is set, every
// binding of the AOR is deleted first, then ops (one per Contact, the
// last one queued) are applied.
type aorOps struct {
	all bool
	ops map[string]Op
}

// WriteBack is the writer of the write-back persistence mode: changes are
// queued in memory, coalesced by (AOR, Contact) — only the last change of
// a binding is written — and written every interval in one transaction.
// Close writes what is left. A failed write is retried at the next
// interval (unless a newer change of the same binding replaced it); Err
// reports it meanwhile.
//
// In write-through mode there is no WriteBack: the registrar calls
// DB.UpsertBindings, DB.DeleteBinding and DB.DeleteAOR itself.
type WriteBack struct {
	db       *DB
	interval time.Duration

	mu      sync.Mutex
	pending map[string]*aorOps
	n       int // pending operations
	closed  bool
	lastErr error

	flushMu sync.Mutex // one flush at a time, so that batches are written in order
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	err     error // result of Close
}

// NewWriteBack starts a WriteBack that writes to db every interval (one
// second when interval <= 0).
func NewWriteBack(db *DB, interval time.Duration) *WriteBack {
	if interval <= 0 {
		interval = time.Second
	}
	wb := &WriteBack{
		db:       db,
		interval: interval,
		pending:  make(map[string]*aorOps),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go wb.loop()
	return wb
}

func (wb *WriteBack) loop() {
	defer close(wb.done)
	t := time.NewTicker(wb.interval)
	defer t.Stop()
	for {
		select {
		case <-wb.stop:
			return
		case <-t.C:
			wb.Flush(context.Background())
		}
	}
}

// Queue records op to be written at the next flush, replacing any pending
// change of the same binding (OpDeleteAOR replaces every pending change of
// the AOR). The row is kept as given: its Path must not be modified
// afterwards. Queue fails with ErrClosed after Close, and for a row that
// UpsertBindings would refuse (empty AOR or Contact, an unparsable
// Received or Socket).
func (wb *WriteBack) Queue(op Op) error {
	switch {
	case op.Kind < OpUpsert || op.Kind > OpDeleteAOR:
		return errKind
	case op.Kind == OpUpsert:
		// Checked now: a row the database would refuse must not block the
		// batch it would be part of.
		if err := op.Row.check(); err != nil {
			return err
		}
	case op.Row.AOR == "" || op.Kind == OpDelete && op.Row.Contact == "":
		return fmt.Errorf("store: write-back: delete with an empty AOR or Contact")
	}
	wb.mu.Lock()
	defer wb.mu.Unlock()
	if wb.closed {
		return ErrClosed
	}
	a := wb.pending[op.Row.AOR]
	if a == nil {
		a = &aorOps{ops: make(map[string]Op)}
		wb.pending[op.Row.AOR] = a
	}
	if op.Kind == OpDeleteAOR {
		wb.n -= len(a.ops)
		clear(a.ops)
		if !a.all {
			a.all = true
			wb.n++
		}
		return nil
	}
	if _, ok := a.ops[op.Row.Contact]; !ok {
		wb.n++
	}
	a.ops[op.Row.Contact] = op
	return nil
}

// Pending returns the number of changes waiting to be written (after
// coalescing).
func (wb *WriteBack) Pending() int {
	wb.mu.Lock()
	defer wb.mu.Unlock()
	return wb.n
}

// Err returns the error of the last flush, nil once a flush succeeded.
func (wb *WriteBack) Err() error {
	wb.mu.Lock()
	defer wb.mu.Unlock()
	return wb.lastErr
}

// Flush writes the pending changes now, in one transaction. On failure
// they stay queued, behind any change queued since.
func (wb *WriteBack) Flush(ctx context.Context) error {
	wb.flushMu.Lock()
	defer wb.flushMu.Unlock()
	wb.mu.Lock()
	batch, n := wb.pending, wb.n
	if n == 0 {
		wb.mu.Unlock()
		return nil
	}
	wb.pending, wb.n = make(map[string]*aorOps, len(batch)), 0
	wb.mu.Unlock()

	err := wb.db.apply(ctx, batch)

	wb.mu.Lock()
	defer wb.mu.Unlock()
	wb.lastErr = err
	if err != nil {
		wb.requeue(batch)
	}
	return err
}

// requeue puts back the changes of a failed batch that no change queued
// since has replaced. wb.mu is held.
func (wb *WriteBack) requeue(batch map[string]*aorOps) {
	for aor, old := range batch {
		cur := wb.pending[aor]
		if cur == nil {
			wb.pending[aor] = old
			wb.n += len(old.ops)
			if old.all {
				wb.n++
			}
			continue
		}
		if cur.all {
			continue // a newer delete of the whole AOR replaces all of old
		}
		if old.all {
			cur.all = true // runs before cur's (newer) changes: order kept
			wb.n++
		}
		for c, op := range old.ops {
			if _, ok := cur.ops[c]; !ok {
				cur.ops[c] = op
				wb.n++
			}
		}
	}
}

// Close stops the timer, writes the pending changes and returns the error
// of that last write. Later calls return the same result. Close the
// WriteBack before its DB.
func (wb *WriteBack) Close() error {
	wb.once.Do(func() {
		wb.mu.Lock()
		wb.closed = true
		wb.mu.Unlock()
		close(wb.stop)
		<-wb.done
		if err := wb.Flush(context.Background()); err != nil {
			wb.err = fmt.Errorf("store: write-back: %d changes not written: %w", wb.Pending(), err)
		}
	})
	return wb.err
}

// apply writes a write-back batch in one transaction.
func (db *DB) apply(ctx context.Context, batch map[string]*aorOps) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: write-back: %w", err)
	}
	defer tx.Rollback()
	up := tx.StmtContext(ctx, db.upsertBinding)
	del := tx.StmtContext(ctx, db.delBinding)
	delAOR := tx.StmtContext(ctx, db.delAOR)
	for aor, a := range batch {
		if a.all {
			if _, err := delAOR.ExecContext(ctx, aor); err != nil {
				return fmt.Errorf("store: write-back: delete bindings of %s: %w", aor, err)
			}
		}
		for _, op := range a.ops {
			switch op.Kind {
			case OpUpsert:
				err = upsert(ctx, up, &op.Row)
			case OpDelete:
				if _, err = del.ExecContext(ctx, aor, op.Row.Contact); err != nil {
					err = fmt.Errorf("store: write-back: delete binding %s → %s: %w", aor, op.Row.Contact, err)
				}
			}
			if err != nil {
				return err
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: write-back: %w", err)
	}
	return nil
}
