package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veloxsip/velox/store"
)

// user runs "velox user args…" with stdin and returns its output.
func user(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := runUser(args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), err
}

func TestUserCommand(t *testing.T) {
	db := filepath.Join(t.TempDir(), "velox.db")
	mustRun := func(stdin string, args ...string) string {
		t.Helper()
		out, err := user(t, stdin, args...)
		if err != nil {
			t.Fatalf("velox user %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	wantErr := func(want string, args ...string) {
		t.Helper()
		_, err := user(t, "", args...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("velox user %s: error %v, want one containing %q", strings.Join(args, " "), err, want)
		}
	}

	// Commands other than add do not create the database.
	wantErr("no database", "list", "--db", db)
	if _, err := os.Stat(db); err == nil {
		t.Fatal("list created the database")
	}

	if out := mustRun("", "add", "--db", db, "alice@Example.com", "secret"); !strings.Contains(out, "alice@example.com added") {
		t.Errorf("add output %q", out)
	}
	mustRun("hunter2\n", "add", "bob@example.com", "--no-password", "-", "--db", db) // flags after the arguments
	mustRun("", "add", "--db", db, "--", "carol@other.org", "-dash-pw")
	wantErr("user alice@example.com already exists in "+db, "add", "--db", db, "alice@example.com", "x")

	out := mustRun("", "list", "--db", db)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "USER ") {
		t.Fatalf("list output:\n%s", out)
	}
	for i, want := range [][]string{
		{"alice", "example.com", "stored", "MD5,SHA-256,SHA-512-256"},
		{"bob", "example.com", "no", "MD5,SHA-256,SHA-512-256"},
		{"carol", "other.org", "stored"},
	} {
		if f := strings.Fields(lines[i+1]); len(f) < len(want) || strings.Join(f[:len(want)], " ") != strings.Join(want, " ") {
			t.Errorf("list line %d = %q, want %q…", i+1, lines[i+1], want)
		}
	}
	if out := mustRun("", "list", "--db", db, "--domain", "other.org"); strings.Count(out, "\n") != 2 || !strings.Contains(out, "carol") {
		t.Errorf("list --domain output:\n%s", out)
	}

	mustRun("", "passwd", "--db", db, "--no-password", "alice@example.com", "n3w")
	wantErr("user dave@example.com not found in "+db, "passwd", "--db", db, "dave@example.com", "x")
	mustRun("", "del", "--db", db, "bob@example.com")
	wantErr("user bob@example.com not found in "+db, "del", "--db", db, "bob@example.com")

	// What the commands wrote, read through the store.
	s, err := store.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	u, ok, err := s.GetUser(ctx, "alice", "example.com")
	sum := md5.Sum([]byte("alice:example.com:n3w"))
	if !ok || err != nil || u.Password != "" || u.HA1MD5 != hex.EncodeToString(sum[:]) {
		t.Errorf("alice after passwd --no-password: %+v %v %v", u, ok, err)
	}
	if u, ok, _ := s.GetUser(ctx, "carol", "other.org"); !ok || u.Password != "-dash-pw" {
		t.Errorf("carol: %+v %v", u, ok)
	}
	if _, ok, _ := s.GetUser(ctx, "bob", "example.com"); ok {
		t.Error("bob not deleted")
	}

	// Usage errors.
	wantErr("missing sub-command")
	wantErr("unknown sub-command", "frob")
	wantErr("want 2 arguments", "add", "--db", db, "x@y")
	wantErr("not USER@DOMAIN", "add", "--db", db, "nodomain", "pw")
	wantErr("not USER@DOMAIN", "del", "--db", db, "x@")
	wantErr("empty password", "add", "--db", db, "x@y", "-")
	wantErr("flag provided but not defined", "list", "--db", db, "--bogus")
}

func TestUserDefaultDB(t *testing.T) {
	t.Chdir(t.TempDir())
	if _, err := user(t, "", "add", "eve@example.com", "pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(defaultDB); err != nil {
		t.Fatalf("no %s in the working directory: %v", defaultDB, err)
	}
}
