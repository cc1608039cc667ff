package registrar

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/veloxsip/velox/location"
	"github.com/veloxsip/velox/proxy"
	"github.com/veloxsip/velox/store"
)

// Persistence modes of the location table (Kamailio usrloc db_mode).
const (
	Memory       = "memory"        // nothing written; a restart forgets every binding
	WriteThrough = "write-through" // every change written at once, under the AOR's lock
	WriteBack    = "write-back"    // changes queued and written in batches every second, and at stop
)

// persistence connects a location table to the database: it restores the
// live bindings at start and hands every change to the database.
type persistence struct {
	db *store.DB
	wb *store.WriteBack // write-back mode only
}

// openPersistence opens the database (shared with the auth step) and, for
// write-back, the batching writer, as server-wide objects: they are closed
// after the location table (created later), so the last changes are
// flushed.
func openPersistence(srv *proxy.Server, o Options) (*persistence, error) {
	switch o.Persistence {
	case "", Memory:
		return nil, nil
	case WriteThrough, WriteBack:
	default:
		return nil, fmt.Errorf("registrar: persistence: %q is not memory, write-through or write-back", o.Persistence)
	}
	if o.DB == "" {
		return nil, fmt.Errorf("registrar: persistence %s needs db: FILE", o.Persistence)
	}
	v, err := srv.Shared("db:"+o.DB, func() (any, error) { return store.Open(o.DB) })
	if err != nil {
		return nil, fmt.Errorf("registrar: %v", err)
	}
	p := &persistence{db: v.(*store.DB)}
	if o.Persistence == WriteBack {
		w, err := srv.Shared("writeback:"+o.DB, func() (any, error) { return store.NewWriteBack(p.db, time.Second), nil })
		if err != nil {
			return nil, err
		}
		p.wb = w.(*store.WriteBack)
	}
	return p, nil
}

// onChange writes one change of the table.
func (p *persistence) onChange(ev location.Event) {
	row := toRow(&ev.Binding)
	del := ev.Kind == location.EventDelete || ev.Kind == location.EventExpire
	if p.wb != nil {
		op := store.Op{Kind: store.OpUpsert, Row: row}
		if del {
			op.Kind = store.OpDelete
		}
		_ = p.wb.Queue(op)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if del {
		_ = p.db.DeleteBinding(ctx, row.AOR, row.Contact)
	} else {
		_ = p.db.UpsertBindings(ctx, []store.BindingRow{row})
	}
}

// restore loads the live bindings into t.
func (p *persistence) restore(t *location.Table) (int, error) {
	n := 0
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := p.db.LoadBindings(ctx, t.Now(), func(r store.BindingRow) error {
		if t.Restore(fromRow(&r)) == nil {
			n++
		}
		return nil
	})
	return n, err
}

func toRow(b *location.Binding) store.BindingRow {
	r := store.BindingRow{AOR: b.AOR, Contact: b.Contact, Expires: b.Expires, Q: b.Q, CallID: b.CallID, CSeq: b.CSeq,
		Path: b.Path, Transport: b.Transport, Instance: b.Instance, RegID: b.RegID, UserAgent: b.UserAgent, Modified: b.LastModified}
	if b.Received.IsValid() {
		r.Received = b.Received.String()
	}
	if b.Socket.IsValid() {
		r.Socket = b.Socket.String()
	}
	return r
}

func fromRow(r *store.BindingRow) location.Binding {
	b := location.Binding{AOR: r.AOR, Contact: r.Contact, Expires: r.Expires, Q: r.Q, CallID: r.CallID, CSeq: r.CSeq,
		Path: r.Path, Transport: r.Transport, Instance: r.Instance, RegID: r.RegID, UserAgent: r.UserAgent, LastModified: r.Modified}
	b.Received, _ = netip.ParseAddrPort(r.Received)
	b.Socket, _ = netip.ParseAddrPort(r.Socket)
	return b
}
