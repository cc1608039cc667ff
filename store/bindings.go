package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// BindingRow is one registered contact as stored in the location table:
// a plain copy of what the in-memory location table holds.
//
// Persistence modes (Kamailio's usrloc db_mode):
//   - write-through: the registrar calls UpsertBindings, DeleteBinding or
//     DeleteAOR before it answers the REGISTER;
//   - write-back: it queues the change on a WriteBack, which writes the
//     coalesced changes every interval and on Close;
//
// and in both modes LoadBindings fills the table at start-up and
// DeleteExpired prunes the file now and then.
type BindingRow struct {
	AOR       string    // normalised address-of-record, e.g. "alice@example.com"
	Contact   string    // Contact URI as registered
	Expires   time.Time // absolute expiry
	Q         int       // q-value in thousandths (q=0.5 → 500)
	CallID    string    // Call-ID of the REGISTER that last changed it
	CSeq      uint32    // its CSeq number
	Path      []string  // Path URIs (RFC 3327), top first
	Received  string    // netip.AddrPort text of the REGISTER's source, "" when unknown
	Socket    string    // netip.AddrPort text of the local address it arrived on, "" when unknown
	Transport string    // "udp", "tcp" …
	Instance  string    // +sip.instance without <>, "" when absent
	RegID     int       // reg-id, 0 when absent
	UserAgent string    // User-Agent header
	Modified  time.Time // time of the last add or refresh
}

// check validates the fields that the database cannot.
func (r *BindingRow) check() error {
	if r.AOR == "" || r.Contact == "" {
		return fmt.Errorf("store: binding %q → %q: empty AOR or Contact", r.AOR, r.Contact)
	}
	for _, a := range [...]string{r.Received, r.Socket} {
		if a == "" {
			continue
		}
		if _, err := netip.ParseAddrPort(a); err != nil {
			return fmt.Errorf("store: binding %s → %s: %w", r.AOR, r.Contact, err)
		}
	}
	return nil
}

// encodePath stores no Path as "" and a Path as a JSON array.
func encodePath(p []string) (string, error) {
	if len(p) == 0 {
		return "", nil
	}
	b, err := json.Marshal(p)
	return string(b), err
}

func decodePath(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var p []string
	err := json.Unmarshal([]byte(s), &p)
	return p, err
}

// upsert writes r with the upsert statement st (bound to a transaction).
func upsert(ctx context.Context, st *sql.Stmt, r *BindingRow) error {
	if err := r.check(); err != nil {
		return err
	}
	path, err := encodePath(r.Path)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(ctx, r.AOR, r.Contact, unixNano(r.Expires), r.Q, r.CallID, int64(r.CSeq),
		path, r.Received, r.Socket, r.Transport, r.Instance, r.RegID, r.UserAgent, unixNano(r.Modified))
	if err != nil {
		return fmt.Errorf("store: upsert binding %s → %s: %w", r.AOR, r.Contact, err)
	}
	return nil
}

// UpsertBindings inserts the rows, or replaces those with the same (AOR,
// Contact), in one transaction: all of them are written or none.
func (db *DB) UpsertBindings(ctx context.Context, rows []BindingRow) error {
	if len(rows) == 0 {
		return nil
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: upsert bindings: %w", err)
	}
	defer tx.Rollback()
	st := tx.StmtContext(ctx, db.upsertBinding)
	for i := range rows {
		if err := upsert(ctx, st, &rows[i]); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: upsert bindings: %w", err)
	}
	return nil
}

// DeleteBinding removes the binding of contact to aor, if there is one.
func (db *DB) DeleteBinding(ctx context.Context, aor, contact string) error {
	if _, err := db.delBinding.ExecContext(ctx, aor, contact); err != nil {
		return fmt.Errorf("store: delete binding %s → %s: %w", aor, contact, err)
	}
	return nil
}

// DeleteAOR removes every binding of aor.
func (db *DB) DeleteAOR(ctx context.Context, aor string) error {
	if _, err := db.delAOR.ExecContext(ctx, aor); err != nil {
		return fmt.Errorf("store: delete bindings of %s: %w", aor, err)
	}
	return nil
}

// DeleteExpired removes the bindings whose expiry is not after now and
// returns how many it removed.
func (db *DB) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	res, err := db.delExpired.ExecContext(ctx, now.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("store: delete expired bindings: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: delete expired bindings: %w", err)
	}
	return int(n), nil
}

// LoadBindings calls fn for every binding that expires after now, sorted
// by AOR then Contact, and stops at the first error fn returns, which it
// returns. The rows are read from a snapshot taken when LoadBindings
// starts; fn may call the other methods of db, writes included.
func (db *DB) LoadBindings(ctx context.Context, now time.Time, fn func(BindingRow) error) error {
	rows, err := db.loadBindings.QueryContext(ctx, now.UnixNano())
	if err != nil {
		return fmt.Errorf("store: load bindings: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r BindingRow
		var expires, modified, cseq int64
		var path string
		if err := rows.Scan(&r.AOR, &r.Contact, &expires, &r.Q, &r.CallID, &cseq, &path, &r.Received,
			&r.Socket, &r.Transport, &r.Instance, &r.RegID, &r.UserAgent, &modified); err != nil {
			return fmt.Errorf("store: load bindings: %w", err)
		}
		r.Expires, r.Modified, r.CSeq = fromUnixNano(expires), fromUnixNano(modified), uint32(cseq)
		if r.Path, err = decodePath(path); err != nil {
			return fmt.Errorf("store: load bindings: path of %s → %s: %w", r.AOR, r.Contact, err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: load bindings: %w", err)
	}
	return nil
}

// errKind is returned for an Op with an unknown Kind.
var errKind = errors.New("store: unknown operation kind")
