package store

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
	"time"
)

// Digest algorithm names (RFC 7616 §6.1) for which a subscriber has an HA1.
const (
	MD5        = "MD5"
	SHA256     = "SHA-256"
	SHA512_256 = "SHA-512-256"
)

// User is one subscriber: the credentials digest authentication checks.
type User struct {
	Username string
	Domain   string // lowercase; also the digest realm of the HA1s
	Password string // plaintext; "" when only the HA1s are kept
	// HA1s in lowercase hex: H(username ":" realm ":" password) with
	// realm = Domain, for MD5, SHA-256 and SHA-512/256.
	HA1MD5       string
	HA1SHA256    string
	HA1SHA512256 string
	CreatedAt    time.Time // second precision
}

// HA1 returns the user's HA1 for a digest algorithm (MD5, SHA256 or
// SHA512_256; case-insensitive, without "-sess") and whether there is one.
func (u *User) HA1(algorithm string) (string, bool) {
	var h string
	switch strings.ToUpper(algorithm) {
	case MD5:
		h = u.HA1MD5
	case SHA256:
		h = u.HA1SHA256
	case SHA512_256:
		h = u.HA1SHA512256
	}
	return h, h != ""
}

// Algorithms returns the names of the algorithms the user has an HA1 for.
func (u *User) Algorithms() []string {
	var a []string
	for _, alg := range []string{MD5, SHA256, SHA512_256} {
		if _, ok := u.HA1(alg); ok {
			a = append(a, alg)
		}
	}
	return a
}

// ComputeHA1 returns H(username ":" realm ":" password) in lowercase hex
// for the digest algorithm MD5, SHA256 or SHA512_256 (case-insensitive).
func ComputeHA1(algorithm, username, realm, password string) (string, error) {
	var h hash.Hash
	switch strings.ToUpper(algorithm) {
	case MD5:
		h = md5.New()
	case SHA256:
		h = sha256.New()
	case SHA512_256:
		h = sha512.New512_256()
	default:
		return "", fmt.Errorf("store: unknown digest algorithm %q", algorithm)
	}
	h.Write([]byte(username))
	h.Write([]byte{':'})
	h.Write([]byte(realm))
	h.Write([]byte{':'})
	h.Write([]byte(password))
	return hex.EncodeToString(h.Sum(nil)), nil
}

// credentials computes the stored password and the three HA1s.
func credentials(user, domain, password string, storePassword bool) (pw, md, s256, s512 string) {
	md, _ = ComputeHA1(MD5, user, domain, password)
	s256, _ = ComputeHA1(SHA256, user, domain, password)
	s512, _ = ComputeHA1(SHA512_256, user, domain, password)
	if storePassword {
		pw = password
	}
	return
}

// checkUser validates a username and domain and returns the domain in
// lowercase (the form it is stored and looked up in).
func checkUser(user, domain string) (string, error) {
	if user == "" {
		return "", errors.New("store: empty username")
	}
	if domain == "" {
		return "", errors.New("store: empty domain")
	}
	if strings.ContainsFunc(user, isControl) {
		return "", fmt.Errorf("store: control character in username %q", user)
	}
	if strings.ContainsFunc(domain, func(r rune) bool { return isControl(r) || r == ' ' || r == '@' }) {
		return "", fmt.Errorf("store: invalid domain %q", domain)
	}
	return strings.ToLower(domain), nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// AddUser adds the subscriber user@domain, with the HA1s of password for
// realm = domain. With storePassword false only the HA1s are kept. The
// domain is stored in lowercase. The password must not be empty. The
// error wraps ErrExists when the user already exists.
func (db *DB) AddUser(ctx context.Context, user, domain, password string, storePassword bool) error {
	domain, err := checkUser(user, domain)
	if err != nil {
		return err
	}
	if password == "" {
		return errors.New("store: empty password")
	}
	pw, md, s256, s512 := credentials(user, domain, password, storePassword)
	res, err := db.addUser.ExecContext(ctx, user, domain, pw, md, s256, s512, time.Now().Unix())
	if err != nil {
		return fmt.Errorf("store: add user %s@%s: %w", user, domain, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: add user %s@%s: %w", user, domain, err)
	} else if n == 0 {
		return fmt.Errorf("user %s@%s %w", user, domain, ErrExists)
	}
	db.userWrites.Add(1)
	return nil
}

// SetPassword replaces the password (and HA1s) of user@domain, keeping the
// plaintext only when storePassword is true. The error wraps ErrNotFound
// when there is no such user.
func (db *DB) SetPassword(ctx context.Context, user, domain, password string, storePassword bool) error {
	domain, err := checkUser(user, domain)
	if err != nil {
		return err
	}
	if password == "" {
		return errors.New("store: empty password")
	}
	pw, md, s256, s512 := credentials(user, domain, password, storePassword)
	res, err := db.setPassword.ExecContext(ctx, pw, md, s256, s512, user, domain)
	if err != nil {
		return fmt.Errorf("store: set password of %s@%s: %w", user, domain, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: set password of %s@%s: %w", user, domain, err)
	} else if n == 0 {
		return fmt.Errorf("user %s@%s %w", user, domain, ErrNotFound)
	}
	db.userWrites.Add(1)
	return nil
}

// DeleteUser removes user@domain and reports whether it existed.
func (db *DB) DeleteUser(ctx context.Context, user, domain string) (bool, error) {
	domain, err := checkUser(user, domain)
	if err != nil {
		return false, err
	}
	res, err := db.delUser.ExecContext(ctx, user, domain)
	if err != nil {
		return false, fmt.Errorf("store: delete user %s@%s: %w", user, domain, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: delete user %s@%s: %w", user, domain, err)
	}
	if n > 0 {
		db.userWrites.Add(1)
	}
	return n > 0, nil
}

// GetUser returns user@domain and whether it exists.
func (db *DB) GetUser(ctx context.Context, user, domain string) (User, bool, error) {
	domain, err := checkUser(user, domain)
	if err != nil {
		return User{}, false, err
	}
	u, err := scanUser(db.getUser.QueryRowContext(ctx, user, domain))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, false, nil
	}
	if err != nil {
		return User{}, false, fmt.Errorf("store: get user %s@%s: %w", user, domain, err)
	}
	return u, true, nil
}

// ListUsers returns the subscribers of domain ("" for all domains), sorted
// by domain then username.
func (db *DB) ListUsers(ctx context.Context, domain string) ([]User, error) {
	var rows *sql.Rows
	var err error
	if domain == "" {
		rows, err = db.listUsers.QueryContext(ctx)
	} else {
		rows, err = db.listDomain.QueryContext(ctx, strings.ToLower(domain))
	}
	if err != nil {
		return nil, fmt.Errorf("store: list users: %w", err)
	}
	defer rows.Close()
	var users []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list users: %w", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list users: %w", err)
	}
	return users, nil
}

func scanUser(s interface{ Scan(...any) error }) (User, error) {
	var u User
	var created int64
	err := s.Scan(&u.Username, &u.Domain, &u.Password, &u.HA1MD5, &u.HA1SHA256, &u.HA1SHA512256, &created)
	u.CreatedAt = time.Unix(created, 0)
	return u, err
}

// Credentials are a subscriber's name and HA1s as ScanUsers reads them
// (the HA1s as stored: lowercase hex, "" when missing). The slices are
// only valid during the callback.
type Credentials struct {
	Username, Domain                []byte
	HA1MD5, HA1SHA256, HA1SHA512256 []byte
}

// ScanUsers calls fn for every subscriber, in no particular order, in one
// query (one read transaction: a consistent snapshot of the table). An
// error from fn stops the scan and is returned. It is how an in-memory
// copy of the table is (re)loaded; DataVersion and UserWrites tell when to
// reload it.
func (db *DB) ScanUsers(ctx context.Context, fn func(*Credentials) error) error {
	rows, err := db.scanUsers.QueryContext(ctx)
	if err != nil {
		return fmt.Errorf("store: scan users: %w", err)
	}
	defer rows.Close()
	var u, d, md, s256, s512 sql.RawBytes
	var c Credentials
	for rows.Next() {
		if err := rows.Scan(&u, &d, &md, &s256, &s512); err != nil {
			return fmt.Errorf("store: scan users: %w", err)
		}
		c = Credentials{Username: u, Domain: d, HA1MD5: md, HA1SHA256: s256, HA1SHA512256: s512}
		if err := fn(&c); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: scan users: %w", err)
	}
	return nil
}

// DataVersion returns SQLite's PRAGMA data_version on the DB's write
// connection: it changes when another process (another DB on the same
// file: `velox user add|del|passwd|import`, the sqlite3 shell) has
// committed a change since the last call, not when this DB writes — the
// registrar's binding writes do not move it. Together with UserWrites
// (this DB's own subscriber changes) it tells whether a copy of the
// subscriber table may be out of date, at the cost of one PRAGMA.
func (db *DB) DataVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := db.w.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("store: data_version: %w", err)
	}
	return v, nil
}

// UserWrites returns the number of subscriber changes (AddUser,
// SetPassword, DeleteUser, ImportUsers) committed through this DB. It is
// incremented after the commit, so a reader that sees a new count and then
// reads the table sees the change.
func (db *DB) UserWrites() uint64 { return db.userWrites.Load() }
