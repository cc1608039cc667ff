// Package store is Velox's embedded database: the subscribers that digest
// authentication checks (Kamailio's subscriber table) and the persisted
// registrations of the location service (Kamailio's usrloc in a db_mode).
//
// The database is one SQLite file opened with the pure-Go driver
// modernc.org/sqlite, in WAL mode, so that the binary needs no cgo and the
// "velox user" command can change subscribers while the server runs. A DB
// is safe for concurrent use: writes go through a single connection (so
// goroutines of one process never fight over SQLite's write lock), reads
// through a small pool of read-only connections that WAL lets run while a
// write is in progress. Between processes the busy timeout (5 s) applies.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Errors returned (wrapped) by the subscriber and binding functions; test
// them with errors.Is.
var (
	ErrExists   = errors.New("already exists")
	ErrNotFound = errors.New("not found")
	ErrClosed   = errors.New("store: closed")
)

// busyTimeout is how long a statement waits for a lock held by another
// connection (another process, in practice) before failing with SQLITE_BUSY.
const busyTimeout = 5 * time.Second

// DB is an open Velox database. Its methods may be called from any number
// of goroutines.
type DB struct {
	path string
	w    *sql.DB // one connection: every write, in order
	r    *sql.DB // read-only connections

	// Prepared statements, on w (writes) or r (reads).
	addUser, setPassword, delUser  *sql.Stmt
	getUser, listUsers, listDomain *sql.Stmt
	scanUsers                      *sql.Stmt
	upsertBinding, delBinding      *sql.Stmt
	delAOR, delExpired             *sql.Stmt
	loadBindings                   *sql.Stmt

	userWrites atomic.Uint64 // subscriber changes committed through this DB (UserWrites)

	closeOnce sync.Once
	closeErr  error
}

// Open opens the database file at path, creating it (mode 0600: it holds
// passwords) when it does not exist, and brings its schema up to date.
func Open(path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("store: empty database path")
	}
	// Create the file ourselves so that its mode is 0600; SQLite gives its
	// -wal and -shm files the mode of the database file.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("store: %w", err)
	}
	db := &DB{path: path}
	var err error
	db.w, err = sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	db.w.SetMaxOpenConns(1)
	db.w.SetMaxIdleConns(1)
	db.w.SetConnMaxIdleTime(0)
	db.w.SetConnMaxLifetime(0)
	if err := db.migrate(context.Background()); err != nil {
		db.w.Close()
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	db.r, err = sql.Open("sqlite", dsn(path, true))
	if err != nil {
		db.w.Close()
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	db.r.SetMaxOpenConns(n)
	db.r.SetMaxIdleConns(n)
	if err := db.prepare(); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	return db, nil
}

// Path returns the file name given to Open.
func (db *DB) Path() string { return db.path }

// Close closes the statements and connections. Calls after the first
// return the first result.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		for _, s := range []*sql.Stmt{
			db.addUser, db.setPassword, db.delUser, db.getUser, db.listUsers, db.listDomain, db.scanUsers,
			db.upsertBinding, db.delBinding, db.delAOR, db.delExpired, db.loadBindings,
		} {
			if s != nil {
				s.Close()
			}
		}
		var errs []error
		if db.r != nil {
			errs = append(errs, db.r.Close())
		}
		errs = append(errs, db.w.Close())
		db.closeErr = errors.Join(errs...)
	})
	return db.closeErr
}

// dsn returns the modernc.org/sqlite data source name of path: a file: URI
// (so that '?' or '#' in the name are not taken for its query) with the
// connection pragmas. Writers begin their transactions IMMEDIATE, so that a
// transaction never has to upgrade a read lock; readers are query-only.
func dsn(path string, readOnly bool) string {
	var b strings.Builder
	b.WriteString("file:")
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(path); i++ {
		c := path[i]
		if c == '%' || c == '?' || c == '#' || c < 0x21 || c >= 0x7f {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	fmt.Fprintf(&b, "?_pragma=busy_timeout(%d)", busyTimeout.Milliseconds())
	if readOnly {
		b.WriteString("&_query_only=1")
	} else {
		b.WriteString("&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate")
	}
	return b.String()
}

// migrations[i] brings the schema from version i to i+1.
var migrations = [...]string{
	// 1: subscribers and registrations.
	`CREATE TABLE subscriber (
		username       TEXT    NOT NULL,
		domain         TEXT    NOT NULL,
		password       TEXT    NOT NULL DEFAULT '',
		ha1_md5        TEXT    NOT NULL DEFAULT '',
		ha1_sha256     TEXT    NOT NULL DEFAULT '',
		ha1_sha512_256 TEXT    NOT NULL DEFAULT '',
		created_at     INTEGER NOT NULL,
		PRIMARY KEY (username, domain)
	) STRICT, WITHOUT ROWID;
	CREATE INDEX subscriber_domain ON subscriber (domain);
	CREATE TABLE location (
		aor         TEXT    NOT NULL,
		contact     TEXT    NOT NULL,
		expires_ns  INTEGER NOT NULL,
		q           INTEGER NOT NULL DEFAULT 0,
		call_id     TEXT    NOT NULL DEFAULT '',
		cseq        INTEGER NOT NULL DEFAULT 0,
		path        TEXT    NOT NULL DEFAULT '',
		received    TEXT    NOT NULL DEFAULT '',
		socket      TEXT    NOT NULL DEFAULT '',
		transport   TEXT    NOT NULL DEFAULT '',
		instance    TEXT    NOT NULL DEFAULT '',
		reg_id      INTEGER NOT NULL DEFAULT 0,
		user_agent  TEXT    NOT NULL DEFAULT '',
		modified_ns INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (aor, contact)
	) STRICT;
	CREATE INDEX location_expires ON location (expires_ns);`,
}

// SchemaVersion is the schema version this package creates and expects.
const SchemaVersion = len(migrations)

// migrate applies the missing migrations, all in one transaction.
func (db *DB) migrate(ctx context.Context) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return err
	}
	var v int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this program knows (%d)", v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migration to schema version %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, applied_at) VALUES (?, ?)`,
			v+1, time.Now().Unix()); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (db *DB) prepare() error {
	const bindingCols = `aor, contact, expires_ns, q, call_id, cseq, path, received, socket,
		transport, instance, reg_id, user_agent, modified_ns`
	const userCols = `username, domain, password, ha1_md5, ha1_sha256, ha1_sha512_256, created_at`
	stmts := []struct {
		p   **sql.Stmt
		db  *sql.DB
		sql string
	}{
		{&db.addUser, db.w, `INSERT INTO subscriber (` + userCols + `) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (username, domain) DO NOTHING`},
		{&db.setPassword, db.w, `UPDATE subscriber SET password = ?, ha1_md5 = ?, ha1_sha256 = ?, ha1_sha512_256 = ?
			WHERE username = ? AND domain = ?`},
		{&db.delUser, db.w, `DELETE FROM subscriber WHERE username = ? AND domain = ?`},
		{&db.getUser, db.r, `SELECT ` + userCols + ` FROM subscriber WHERE username = ? AND domain = ?`},
		{&db.listUsers, db.r, `SELECT ` + userCols + ` FROM subscriber ORDER BY domain, username`},
		{&db.listDomain, db.r, `SELECT ` + userCols + ` FROM subscriber WHERE domain = ? ORDER BY username`},
		{&db.scanUsers, db.r, `SELECT username, domain, ha1_md5, ha1_sha256, ha1_sha512_256 FROM subscriber`},
		{&db.upsertBinding, db.w, `INSERT INTO location (` + bindingCols + `)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (aor, contact) DO UPDATE SET
				expires_ns = excluded.expires_ns, q = excluded.q, call_id = excluded.call_id,
				cseq = excluded.cseq, path = excluded.path, received = excluded.received,
				socket = excluded.socket, transport = excluded.transport, instance = excluded.instance,
				reg_id = excluded.reg_id, user_agent = excluded.user_agent, modified_ns = excluded.modified_ns`},
		{&db.delBinding, db.w, `DELETE FROM location WHERE aor = ? AND contact = ?`},
		{&db.delAOR, db.w, `DELETE FROM location WHERE aor = ?`},
		{&db.delExpired, db.w, `DELETE FROM location WHERE expires_ns <= ?`},
		{&db.loadBindings, db.r, `SELECT ` + bindingCols + ` FROM location WHERE expires_ns > ? ORDER BY aor, contact`},
	}
	for _, s := range stmts {
		st, err := s.db.Prepare(s.sql)
		if err != nil {
			return err
		}
		*s.p = st
	}
	return nil
}

// unixNano and fromUnixNano convert times for the INTEGER columns; the zero
// time is stored as 0.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
