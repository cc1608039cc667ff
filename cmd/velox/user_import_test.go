package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veloxsip/velox/store"
)

func TestUserImport(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "velox.db")
	csvFile := filepath.Join(dir, "users.csv")
	os.WriteFile(csvFile, []byte("username,domain,password\n# a comment\nalice,Example.com,secret\n\n\"b,ob\",example.com,\"pa,ss\"\n"), 0o600)
	out, err := user(t, "", "import", "--db", db, csvFile)
	if err != nil || !strings.HasPrefix(out, "2 users imported into "+db) {
		t.Fatalf("import: %q %v", out, err)
	}
	s, err := store.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	u, ok, _ := s.GetUser(context.Background(), "b,ob", "example.com")
	s.Close()
	if !ok || u.Password != "pa,ss" {
		t.Fatalf("quoted fields: %+v", u)
	}
	// From the standard input; an existing user fails the whole import
	// unless --replace.
	if _, err := user(t, "carol,example.com,c\nalice,example.com,x\n", "import", "--db", db); err == nil ||
		!strings.Contains(err.Error(), "standard input:2: user alice@example.com already exists") {
		t.Fatalf("duplicate: %v", err)
	}
	if out, err := user(t, "carol,example.com,c\nalice,example.com,x\n", "import", "--replace", "--db", db, "-"); err != nil || !strings.HasPrefix(out, "2 users") {
		t.Fatalf("--replace: %q %v", out, err)
	}
	for in, want := range map[string]string{
		"dave,example.com\n":                  "standard input:1: wrong number of fields",
		"dave,example.com,d\neve,,e\n":        "standard input:2: empty username",
		"dave,example.com,d\ne\x01,x.org,e\n": "standard input:2: store: control character",
	} {
		if _, err := user(t, in, "import", "--db", db); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", in, err, want)
		}
	}
	out, _ = user(t, "", "list", "--db", db)
	if n := strings.Count(out, "\n"); n != 4 || strings.Contains(out, "dave") {
		t.Fatalf("list after failed imports:\n%s", out)
	}
}

func BenchmarkUserImport(b *testing.B) {
	var sb strings.Builder
	for i := range 100_000 {
		fmt.Fprintf(&sb, "user%d,example.com,pw%d\n", i, i)
	}
	in := sb.String()
	for b.Loop() {
		db := filepath.Join(b.TempDir(), "velox.db")
		if err := runUserImport([]string{"--db", db}, strings.NewReader(in), os.Stderr, os.Stderr); err != nil {
			b.Fatal(err)
		}
	}
}
