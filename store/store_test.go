package store

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTemp(t testing.TB) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "velox.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func TestOpenPragmasAndSchema(t *testing.T) {
	db, path := openTemp(t)
	ctx := context.Background()
	var mode string
	if err := db.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	var sync, busy int
	if err := db.w.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil || sync != 1 {
		t.Errorf("synchronous = %d, %v; want 1 (NORMAL)", sync, err)
	}
	if err := db.r.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil || busy != 5000 {
		t.Errorf("busy_timeout = %d, %v; want 5000", busy, err)
	}
	if _, err := db.r.ExecContext(ctx, "DELETE FROM subscriber"); err == nil {
		t.Error("a write through the read-only pool succeeded")
	}
	var v int
	if err := db.r.QueryRowContext(ctx, "SELECT max(version) FROM schema_version").Scan(&v); err != nil || v != SchemaVersion {
		t.Errorf("schema version = %d, %v; want %d", v, err, SchemaVersion)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode = %v, want 0600", fi.Mode().Perm())
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	// Reopening runs no migration again.
	db2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	var n int
	if err := db2.r.QueryRowContext(ctx, "SELECT count(*) FROM schema_version").Scan(&n); err != nil || n != SchemaVersion {
		t.Errorf("schema_version rows = %d, %v; want %d", n, err, SchemaVersion)
	}
}

func TestOpenNewerSchema(t *testing.T) {
	db, path := openTemp(t)
	if _, err := db.w.Exec("INSERT INTO schema_version VALUES (?, 0)", SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer schema: %v", err)
	}
}

func TestOpenOddPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a dir?x=1#frag %41")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "v?.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.AddUser(context.Background(), "a", "b", "c", true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at the given path: %v", err)
	}
	if _, err := Open(""); err == nil {
		t.Error("Open(\"\") succeeded")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing", "x.db")); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
}

func hexSum(h interface {
	Write([]byte) (int, error)
	Sum([]byte) []byte
}, s string) string {
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil))
}

func TestHA1Vectors(t *testing.T) {
	const in = "alice:example.com:secret"
	for _, c := range []struct{ alg, got, indep, literal string }{
		// literals from md5sum, sha256sum and openssl dgst -sha512-256
		{MD5, "", hexSum(md5.New(), in), "b1726872c344b6dc8365b774f8fd6412"},
		{SHA256, "", hexSum(sha256.New(), in), "ed8925b20f9a77b8f8f8d5f8e4467fe32b866f7208ab9e4b20595e9821a0fdee"},
		{SHA512_256, "", hexSum(sha512.New512_256(), in), "9e413627514b03d0753229d450617d94a9b2a2a635222e49bad90404c29e97ad"},
	} {
		got, err := ComputeHA1(strings.ToLower(c.alg), "alice", "example.com", "secret")
		if err != nil || got != c.indep || got != c.literal {
			t.Errorf("%s: HA1 = %s, %v; want %s (%s)", c.alg, got, err, c.indep, c.literal)
		}
	}
	if _, err := ComputeHA1("SHA-1", "a", "b", "c"); err == nil {
		t.Error("unknown algorithm accepted")
	}
}

func TestUsersCRUD(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	before := time.Now().Add(-time.Second)
	if err := db.AddUser(ctx, "alice", "Example.COM", "secret", true); err != nil {
		t.Fatal(err)
	}
	if err := db.AddUser(ctx, "bob", "example.com", "hunter2", false); err != nil {
		t.Fatal(err)
	}
	if err := db.AddUser(ctx, "carol", "other.org", "pw", true); err != nil {
		t.Fatal(err)
	}

	u, ok, err := db.GetUser(ctx, "alice", "EXAMPLE.com")
	if err != nil || !ok {
		t.Fatalf("GetUser alice: %v %v", ok, err)
	}
	if u.Username != "alice" || u.Domain != "example.com" || u.Password != "secret" {
		t.Errorf("alice = %+v", u)
	}
	if want := hexSum(md5.New(), "alice:example.com:secret"); u.HA1MD5 != want {
		t.Errorf("alice MD5 HA1 = %s, want %s", u.HA1MD5, want)
	}
	if want := hexSum(sha256.New(), "alice:example.com:secret"); u.HA1SHA256 != want {
		t.Errorf("alice SHA-256 HA1 = %s, want %s", u.HA1SHA256, want)
	}
	if h, ok := u.HA1("sha-512-256"); !ok || h != "9e413627514b03d0753229d450617d94a9b2a2a635222e49bad90404c29e97ad" {
		t.Errorf("alice SHA-512-256 HA1 = %s %v", h, ok)
	}
	if got := strings.Join(u.Algorithms(), ","); got != "MD5,SHA-256,SHA-512-256" {
		t.Errorf("Algorithms = %s", got)
	}
	if u.CreatedAt.Before(before) || u.CreatedAt.After(time.Now()) {
		t.Errorf("CreatedAt = %v", u.CreatedAt)
	}

	b, ok, err := db.GetUser(ctx, "bob", "example.com")
	if err != nil || !ok || b.Password != "" || b.HA1MD5 != hexSum(md5.New(), "bob:example.com:hunter2") {
		t.Errorf("bob (no password) = %+v %v %v", b, ok, err)
	}
	if _, ok, err := db.GetUser(ctx, "Alice", "example.com"); ok || err != nil {
		t.Errorf("usernames are case-sensitive: got %v %v", ok, err)
	}

	// Duplicate.
	err = db.AddUser(ctx, "alice", "example.com", "other", true)
	if !errors.Is(err, ErrExists) || err.Error() != "user alice@example.com already exists" {
		t.Errorf("duplicate AddUser: %v", err)
	}
	if u2, _, _ := db.GetUser(ctx, "alice", "example.com"); u2 != u {
		t.Errorf("duplicate AddUser changed the user: %+v", u2)
	}

	// List.
	all, err := db.ListUsers(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(all); got != "alice@example.com bob@example.com carol@other.org" {
		t.Errorf("ListUsers(\"\") = %s", got)
	}
	some, err := db.ListUsers(ctx, "Example.com")
	if err != nil || names(some) != "alice@example.com bob@example.com" {
		t.Errorf("ListUsers(example.com) = %s %v", names(some), err)
	}
	if none, err := db.ListUsers(ctx, "nowhere"); err != nil || len(none) != 0 {
		t.Errorf("ListUsers(nowhere) = %v %v", none, err)
	}

	// Password change, then drop the plaintext.
	if err := db.SetPassword(ctx, "alice", "example.com", "n3w", true); err != nil {
		t.Fatal(err)
	}
	u, _, _ = db.GetUser(ctx, "alice", "example.com")
	if u.Password != "n3w" || u.HA1MD5 != hexSum(md5.New(), "alice:example.com:n3w") ||
		u.HA1SHA512256 != hexSum(sha512.New512_256(), "alice:example.com:n3w") {
		t.Errorf("after SetPassword: %+v", u)
	}
	if err := db.SetPassword(ctx, "alice", "example.com", "n3w", false); err != nil {
		t.Fatal(err)
	}
	if u, _, _ = db.GetUser(ctx, "alice", "example.com"); u.Password != "" || u.HA1MD5 != hexSum(md5.New(), "alice:example.com:n3w") {
		t.Errorf("after SetPassword without storing: %+v", u)
	}
	if err := db.SetPassword(ctx, "nobody", "example.com", "x", true); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetPassword of a missing user: %v", err)
	}

	// Delete.
	if ok, err := db.DeleteUser(ctx, "bob", "example.com"); !ok || err != nil {
		t.Errorf("DeleteUser bob = %v %v", ok, err)
	}
	if ok, err := db.DeleteUser(ctx, "bob", "example.com"); ok || err != nil {
		t.Errorf("second DeleteUser bob = %v %v", ok, err)
	}
	if _, ok, _ := db.GetUser(ctx, "bob", "example.com"); ok {
		t.Error("bob still there")
	}
}

func TestUserValidation(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	for _, c := range [][3]string{
		{"", "example.com", "pw"},
		{"alice", "", "pw"},
		{"alice", "example.com", ""},
		{"al\nice", "example.com", "pw"},
		{"alice", "exa mple.com", "pw"},
		{"alice", "a@b", "pw"},
	} {
		if err := db.AddUser(ctx, c[0], c[1], c[2], true); err == nil {
			t.Errorf("AddUser(%q, %q, %q) succeeded", c[0], c[1], c[2])
		}
	}
	// Quotes and SQL-looking text are data.
	weird := `o'brien"; DROP TABLE subscriber; --`
	if err := db.AddUser(ctx, weird, "example.com", "pw'", true); err != nil {
		t.Fatal(err)
	}
	if u, ok, err := db.GetUser(ctx, weird, "example.com"); !ok || err != nil || u.Password != "pw'" {
		t.Errorf("GetUser(%q) = %+v %v %v", weird, u, ok, err)
	}
}

func names(us []User) string {
	var s []string
	for _, u := range us {
		s = append(s, u.Username+"@"+u.Domain)
	}
	return strings.Join(s, " ")
}

// TestConcurrent mixes user and binding reads and writes from several
// goroutines (run it with -race) and checks that nothing was lost.
func TestConcurrent(t *testing.T) {
	db, _ := openTemp(t)
	ctx := context.Background()
	now := time.Now()
	const goroutines, per = 8, 25
	var wg sync.WaitGroup
	errc := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				user := fmt.Sprintf("u%d-%d", g, i)
				if err := db.AddUser(ctx, user, "example.com", "pw", true); err != nil {
					errc <- err
					return
				}
				if _, ok, err := db.GetUser(ctx, user, "example.com"); !ok || err != nil {
					errc <- fmt.Errorf("GetUser %s right after AddUser: %v %v", user, ok, err)
					return
				}
				row := BindingRow{AOR: user + "@example.com", Contact: "sip:" + user + "@192.0.2.1", Expires: now.Add(time.Hour)}
				if err := db.UpsertBindings(ctx, []BindingRow{row}); err != nil {
					errc <- err
					return
				}
				if _, err := db.ListUsers(ctx, "example.com"); err != nil {
					errc <- err
					return
				}
				if err := db.LoadBindings(ctx, now, func(BindingRow) error { return nil }); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	users, err := db.ListUsers(ctx, "")
	if err != nil || len(users) != goroutines*per {
		t.Errorf("%d users, %v; want %d", len(users), err, goroutines*per)
	}
	if n := countBindings(t, db, now); n != goroutines*per {
		t.Errorf("%d bindings, want %d", n, goroutines*per)
	}
}

// TestTwoHandles opens the same file twice, as the server and the "velox
// user" command do, and writes through both.
func TestTwoHandles(t *testing.T) {
	a, path := openTemp(t)
	b, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	for i, db := range []*DB{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				if err := db.AddUser(ctx, fmt.Sprintf("h%d-%d", i, j), "example.com", "pw", false); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if users, err := a.ListUsers(ctx, ""); err != nil || len(users) != 40 {
		t.Errorf("%d users, %v; want 40", len(users), err)
	}
}

// DataVersion moves on another DB's commits, not on this DB's own;
// UserWrites counts this DB's subscriber changes; ScanUsers reads them all.
func TestChangeDetection(t *testing.T) {
	db, path := openTemp(t)
	ctx := context.Background()
	dv := func(d *DB) int64 {
		v, err := d.DataVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	v0, w0 := dv(db), db.UserWrites()
	if err := db.AddUser(ctx, "alice", "Example.com", "pw", false); err != nil {
		t.Fatal(err)
	}
	if err := db.UpsertBindings(ctx, []BindingRow{{AOR: "alice@example.com", Contact: "sip:a@h", Expires: time.Now().Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if v := dv(db); v != v0 {
		t.Fatalf("data_version moved on own writes: %d → %d", v0, v)
	}
	if w := db.UserWrites(); w != w0+1 {
		t.Fatalf("UserWrites %d → %d after one AddUser", w0, w)
	}
	db.AddUser(ctx, "alice", "example.com", "pw", false) // exists: no change
	db.DeleteUser(ctx, "nobody", "example.com")          // missing: no change
	if w := db.UserWrites(); w != w0+1 {
		t.Fatalf("UserWrites %d → %d after changes that changed nothing", w0, w)
	}
	other, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.AddUser(ctx, "bob", "example.com", "pw", false); err != nil {
		t.Fatal(err)
	}
	if v := dv(db); v == v0 {
		t.Fatal("data_version did not move on another DB's commit")
	}
	var got []string
	err = db.ScanUsers(ctx, func(c *Credentials) error {
		want, _ := ComputeHA1(SHA512_256, string(c.Username), string(c.Domain), "pw")
		if string(c.HA1SHA512256) != want || len(c.HA1MD5) != 32 || len(c.HA1SHA256) != 64 {
			t.Errorf("%s: wrong HA1s", c.Username)
		}
		got = append(got, string(c.Username)+"@"+string(c.Domain))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if strings.Join(got, " ") != "alice@example.com bob@example.com" {
		t.Fatalf("ScanUsers: %v", got)
	}
	stop := errors.New("stop")
	if err := db.ScanUsers(ctx, func(*Credentials) error { return stop }); err != stop {
		t.Fatalf("callback error: %v", err)
	}
}
