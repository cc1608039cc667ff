package store

import (
	"context"
	"fmt"
	"iter"
	"time"
)

// UserRow is one subscriber for ImportUsers.
type UserRow struct {
	Username, Domain, Password string
}

// ImportOptions control ImportUsers.
type ImportOptions struct {
	// Replace gives an existing user the imported password; without it an
	// existing user fails the import (an error wrapping ErrExists).
	Replace bool
	// NoPassword keeps only the HA1s, not the plaintext passwords.
	NoPassword bool
}

// ImportUsers adds the subscribers rows yields, in one transaction: every
// row is written or, on the first error (a bad row, an error yielded by
// rows, an existing user without Replace, ctx done), none. It returns the
// number of rows written. Rows are checked as AddUser checks them; a
// 100,000-row import takes a few seconds, mostly computing the HA1s.
func (db *DB) ImportUsers(ctx context.Context, rows iter.Seq2[UserRow, error], o ImportOptions) (int, error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("store: import users: %w", err)
	}
	defer tx.Rollback()
	const cols = `username, domain, password, ha1_md5, ha1_sha256, ha1_sha512_256, created_at`
	q := `INSERT INTO subscriber (` + cols + `) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (username, domain) DO `
	if o.Replace {
		q += `UPDATE SET password = excluded.password, ha1_md5 = excluded.ha1_md5,
			ha1_sha256 = excluded.ha1_sha256, ha1_sha512_256 = excluded.ha1_sha512_256`
	} else {
		q += `NOTHING`
	}
	st, err := tx.PrepareContext(ctx, q)
	if err != nil {
		return 0, fmt.Errorf("store: import users: %w", err)
	}
	defer st.Close()
	created := time.Now().Unix()
	n := 0
	for r, err := range rows {
		if err != nil {
			return 0, err
		}
		domain, err := checkUser(r.Username, r.Domain)
		if err != nil {
			return 0, err
		}
		if r.Password == "" {
			return 0, fmt.Errorf("store: empty password for %s@%s", r.Username, domain)
		}
		pw, md, s256, s512 := credentials(r.Username, domain, r.Password, !o.NoPassword)
		res, err := st.ExecContext(ctx, r.Username, domain, pw, md, s256, s512, created)
		if err != nil {
			return 0, fmt.Errorf("store: import user %s@%s: %w", r.Username, domain, err)
		}
		if !o.Replace {
			if k, err := res.RowsAffected(); err != nil {
				return 0, fmt.Errorf("store: import user %s@%s: %w", r.Username, domain, err)
			} else if k == 0 {
				return 0, fmt.Errorf("user %s@%s %w", r.Username, domain, ErrExists)
			}
		}
		n++
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("store: import users: %w", err)
	}
	db.userWrites.Add(1)
	return n, nil
}
