package store

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"path/filepath"
	"testing"
	"time"
)

func rowsOf(rs ...UserRow) iter.Seq2[UserRow, error] {
	return func(yield func(UserRow, error) bool) {
		for _, r := range rs {
			if !yield(r, nil) {
				return
			}
		}
	}
}

func TestImportUsers(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	n, err := db.ImportUsers(ctx, rowsOf(UserRow{"alice", "Example.com", "a"}, UserRow{"bob", "example.com", "b"}), ImportOptions{})
	if err != nil || n != 2 {
		t.Fatalf("import: %d %v", n, err)
	}
	u, ok, err := db.GetUser(ctx, "alice", "example.com")
	if err != nil || !ok || u.Password != "a" || u.Domain != "example.com" {
		t.Fatalf("alice: %+v %v %v", u, ok, err)
	}
	if want, _ := ComputeHA1(MD5, "alice", "example.com", "a"); u.HA1MD5 != want {
		t.Fatalf("HA1 %s, want %s", u.HA1MD5, want)
	}
	// All or nothing: an existing user fails the whole import.
	_, err = db.ImportUsers(ctx, rowsOf(UserRow{"carol", "example.com", "c"}, UserRow{"bob", "example.com", "x"}), ImportOptions{})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, ok, _ := db.GetUser(ctx, "carol", "example.com"); ok {
		t.Fatal("carol written by a failed import")
	}
	// Bad rows and errors from the iterator fail it too.
	for _, rows := range []iter.Seq2[UserRow, error]{
		rowsOf(UserRow{"dave", "example.com", "d"}, UserRow{"", "example.com", "x"}),
		rowsOf(UserRow{"dave", "example.com", "d"}, UserRow{"eve", "example.com", ""}),
		func(yield func(UserRow, error) bool) {
			yield(UserRow{"dave", "example.com", "d"}, nil)
			yield(UserRow{}, errors.New("line 2: bad"))
		},
	} {
		if _, err := db.ImportUsers(ctx, rows, ImportOptions{}); err == nil {
			t.Fatal("bad import accepted")
		}
	}
	if _, ok, _ := db.GetUser(ctx, "dave", "example.com"); ok {
		t.Fatal("dave written by a failed import")
	}
	// Replace updates the password; NoPassword keeps only the HA1s.
	n, err = db.ImportUsers(ctx, rowsOf(UserRow{"bob", "example.com", "new"}, UserRow{"frank", "example.com", "f"}), ImportOptions{Replace: true, NoPassword: true})
	if err != nil || n != 2 {
		t.Fatalf("replace: %d %v", n, err)
	}
	u, _, _ = db.GetUser(ctx, "bob", "example.com")
	if want, _ := ComputeHA1(SHA256, "bob", "example.com", "new"); u.HA1SHA256 != want || u.Password != "" {
		t.Fatalf("bob after replace: %+v", u)
	}
	// A cancelled context writes nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := db.ImportUsers(cctx, rowsOf(UserRow{"gina", "example.com", "g"}), ImportOptions{}); err == nil {
		t.Fatal("cancelled import succeeded")
	}
}

func TestImportUsersMany(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("100,000 rows: not with -short or -race")
	}
	db, err := Open(filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n = 100_000
	start := time.Now()
	got, err := db.ImportUsers(context.Background(), func(yield func(UserRow, error) bool) {
		for i := range n {
			if !yield(UserRow{fmt.Sprintf("user%d", i), "example.com", fmt.Sprintf("pw%d", i)}, nil) {
				return
			}
		}
	}, ImportOptions{})
	if err != nil || got != n {
		t.Fatalf("%d %v", got, err)
	}
	t.Logf("%d users imported in %v", n, time.Since(start).Round(time.Millisecond))
	users, err := db.ListUsers(context.Background(), "example.com")
	if err != nil || len(users) != n {
		t.Fatalf("%d users listed, %v", len(users), err)
	}
}
