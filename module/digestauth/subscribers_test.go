package digestauth_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veloxsip/velox/auth"
	"github.com/veloxsip/velox/module/digestauth"
	"github.com/veloxsip/velox/proxy"
	"github.com/veloxsip/velox/store"
)

// openSubs returns the Subscribers of a new database file (closed with
// the test's server).
func openSubs(t testing.TB) (*digestauth.Subscribers, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "v.db")
	srv := proxy.NewServer(nil, proxy.Options{})
	t.Cleanup(srv.Close)
	s, err := digestauth.OpenSubscribers(srv, path)
	if err != nil {
		t.Fatal(err)
	}
	return s, path
}

// ha1 returns the HA1 s has for user@domain and algorithm a ("" when the
// user or the HA1 is missing).
func ha1(s *digestauth.Subscribers, user, domain string, a auth.Algorithm) string {
	u, ok := s.Get([]byte(user), []byte(domain))
	if !ok {
		return ""
	}
	h, _ := u.AppendHA1(nil, a)
	return string(h)
}

// waitFor polls cond until it holds or a few poll intervals have passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * digestauth.PollInterval)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", 5*digestauth.PollInterval, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSubscribers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.db")
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	long := strings.Repeat("x", 300) // longer than the stack key buffer
	for _, u := range []string{"alice", "Alice", long} {
		if err := db.AddUser(ctx, u, "Example.COM", "secret-"+u, u != "alice"); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	srv := proxy.NewServer(nil, proxy.Options{})
	t.Cleanup(srv.Close)
	s, err := digestauth.OpenSubscribers(srv, path)
	if err != nil {
		t.Fatal(err)
	}
	if s2, _ := digestauth.OpenSubscribers(srv, path); s2 != s {
		t.Fatal("one Subscribers per file and server")
	}
	if n := s.Stats().Users; n != 3 {
		t.Fatalf("%d users loaded", n)
	}
	for _, u := range []string{"alice", "Alice", long} {
		for _, a := range []auth.Algorithm{auth.MD5, auth.MD5Sess, auth.SHA256, auth.SHA256Sess, auth.SHA512_256, auth.SHA512_256Sess} {
			want, _ := store.ComputeHA1(a.Base().String(), u, "example.com", "secret-"+u)
			if got := ha1(s, u, "EXAMPLE.com", a); got != want {
				t.Errorf("%.10s %v: HA1 %q, want %q", u, a, got, want)
			}
		}
		if _, ok := (digestauth.Subscriber{}).AppendHA1(nil, auth.MD5); ok {
			t.Error("zero Subscriber has an HA1")
		}
		if u, _ := s.Get([]byte(u), []byte("example.com")); func() bool { _, ok := u.AppendHA1(nil, 0); return ok }() {
			t.Error("HA1 for no algorithm")
		}
	}
	// Unknown users, other domains, usernames are case-sensitive.
	for _, n := range [][2]string{{"bob", "example.com"}, {"alice", "example.org"}, {"ALICE", "example.com"}, {"alice@example.com", "x"}} {
		if s.Exists([]byte(n[0]), []byte(n[1])) {
			t.Errorf("%q exists", n)
		}
	}
	// Names the database cannot hold are unknown.
	for _, n := range [][2]string{{"", "example.com"}, {"a", ""}, {"a\x00", "example.com"}, {"a", "b c"}, {"a", "b@c"}} {
		if s.Exists([]byte(n[0]), []byte(n[1])) {
			t.Errorf("%q exists", n)
		}
	}
}

// Changes made by another process (here another DB on the file, as `velox
// user add|passwd|del|import` while the server runs) and through the
// server's own DB reach the table within a poll interval or so.
func TestSubscribersSeeChanges(t *testing.T) {
	s, path := openSubs(t)
	other, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx := context.Background()
	md5Of := func(user, pw string) string {
		h, _ := store.ComputeHA1(store.MD5, user, "example.com", pw)
		return h
	}
	if s.Exists([]byte("alice"), []byte("example.com")) {
		t.Fatal("alice before she was added")
	}
	if err := other.AddUser(ctx, "alice", "example.com", "one", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice added by another process", func() bool { return ha1(s, "alice", "example.com", auth.MD5) == md5Of("alice", "one") })
	if err := other.SetPassword(ctx, "alice", "example.com", "two", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice's new password", func() bool { return ha1(s, "alice", "example.com", auth.MD5) == md5Of("alice", "two") })
	if _, err := other.DeleteUser(ctx, "alice", "example.com"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice deleted", func() bool { return !s.Exists([]byte("alice"), []byte("example.com")) })
	_, err = other.ImportUsers(ctx, func(yield func(store.UserRow, error) bool) {
		for i := range 100 {
			if !yield(store.UserRow{Username: "u" + strconv.Itoa(i), Domain: "example.com", Password: "pw"}, nil) {
				return
			}
		}
	}, store.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "100 users imported", func() bool { return s.Stats().Users == 100 })

	// Through the server's own DB (the same connection DataVersion runs
	// on: UserWrites tells).
	if err := s.DB().AddUser(ctx, "bob", "example.com", "pw", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob added through the server's DB", func() bool { return s.Exists([]byte("bob"), []byte("example.com")) })
	if _, err := s.DB().DeleteUser(ctx, "bob", "example.com"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob deleted through the server's DB", func() bool { return !s.Exists([]byte("bob"), []byte("example.com")) })
	if err := s.Stats().Err; err != nil {
		t.Fatal(err)
	}
}

// Only subscriber changes cost a reload: the registrar's binding writes
// through the server's DB do not.
func TestSubscribersReloadOnlyOnChange(t *testing.T) {
	s, path := openSubs(t)
	ctx := context.Background()
	if _, err := digestauth.Poll(s); err != nil { // whatever happened before
		t.Fatal(err)
	}
	n := s.Stats().Reloads
	for i := range 3 {
		row := store.BindingRow{AOR: "alice@example.com", Contact: "sip:alice@10.0.0." + strconv.Itoa(i), Expires: time.Now().Add(time.Hour)}
		if err := s.DB().UpsertBindings(ctx, []store.BindingRow{row}); err != nil {
			t.Fatal(err)
		}
		if reloaded, err := digestauth.Poll(s); reloaded || err != nil {
			t.Fatalf("poll after a binding write: reloaded %v, %v", reloaded, err)
		}
	}
	if got := s.Stats().Reloads; got != n {
		t.Fatalf("%d reloads after binding writes", got-n)
	}
	other, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.AddUser(ctx, "alice", "example.com", "pw", false); err != nil {
		t.Fatal(err)
	}
	digestauth.Poll(s) // reloads, unless the goroutine's poll just did
	if got := s.Stats().Reloads; got != n+1 || !s.Exists([]byte("alice"), []byte("example.com")) {
		t.Fatalf("%d reloads after a subscriber added by another process", got-n)
	}
	if reloaded, _ := digestauth.Poll(s); reloaded {
		t.Fatal("reloaded without a change")
	}
}

// HA1s not in the form store writes (another tool wrote the row) are
// given verbatim.
func TestSubscribersOddHA1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.db")
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_, err = raw.Exec(`INSERT INTO subscriber (username, domain, ha1_md5, ha1_sha256, created_at) VALUES
		('odd', 'example.com', 'ABCDEF0123456789ABCDEF0123456789', '', 0),
		('short', 'example.com', 'abc', 'ab', 0),
		('none', 'example.com', '', '', 0)`)
	if err != nil {
		t.Fatal(err)
	}
	srv := proxy.NewServer(nil, proxy.Options{})
	t.Cleanup(srv.Close)
	s, err := digestauth.OpenSubscribers(srv, path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		user string
		alg  auth.Algorithm
		want string
	}{
		{"odd", auth.MD5, "ABCDEF0123456789ABCDEF0123456789"},
		{"odd", auth.SHA256, ""},
		{"short", auth.MD5, "abc"},
		{"short", auth.SHA256, "ab"},
		{"short", auth.SHA512_256, ""},
		{"none", auth.MD5, ""},
	} {
		if got := ha1(s, c.user, "example.com", c.alg); got != c.want {
			t.Errorf("%s %v: %q, want %q", c.user, c.alg, got, c.want)
		}
	}
	if !s.Exists([]byte("none"), []byte("example.com")) {
		t.Error("a subscriber without HA1s exists all the same")
	}
}

// A lookup allocates nothing, found or not.
func TestSubscribersNoAlloc(t *testing.T) {
	s, _ := openSubs(t)
	if err := s.DB().AddUser(context.Background(), "alice", "example.com", "pw", false); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	alice, bob, dom := []byte("alice"), []byte("bob"), []byte("Example.com")
	var buf [128]byte
	n := testing.AllocsPerRun(1000, func() {
		u, ok := s.Get(alice, dom)
		if !ok {
			t.Fatal("alice not found")
		}
		if h, ok := u.AppendHA1(buf[:0], auth.SHA256); !ok || len(h) != 64 {
			t.Fatal("no SHA-256 HA1")
		}
		if s.Exists(bob, dom) {
			t.Fatal("bob found")
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per lookup", n)
	}
}

// Lookups run while the table is reloaded (go test -race).
func TestSubscribersConcurrentReload(t *testing.T) {
	s, _ := openSubs(t)
	ctx := context.Background()
	if err := s.DB().AddUser(ctx, "alice", "example.com", "pw", false); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			var buf [128]byte
			for {
				select {
				case <-stop:
					return
				default:
				}
				u, ok := s.Get([]byte("alice"), []byte("example.com"))
				if !ok {
					t.Error("alice lost during a reload")
					return
				}
				u.AppendHA1(buf[:0], auth.MD5)
				s.Stats()
			}
		})
	}
	for i := range 20 {
		if err := s.DB().AddUser(ctx, "u"+strconv.Itoa(i), "example.com", "pw", false); err != nil {
			t.Fatal(err)
		}
		if err := s.Reload(ctx); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if n := s.Stats().Users; n != 21 {
		t.Fatalf("%d users", n)
	}
}

// Closing the server stops the polling goroutine; the last table still
// answers, and a poll on the closed database reports its error.
func TestSubscribersClose(t *testing.T) {
	srv := proxy.NewServer(nil, proxy.Options{})
	s, err := digestauth.OpenSubscribers(srv, filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DB().AddUser(context.Background(), "alice", "example.com", "pw", false); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if digestauth.Stopped(s) {
		t.Fatal("stopped before Close")
	}
	srv.Close()
	if !digestauth.Stopped(s) {
		t.Fatal("polling goroutine still running after Close")
	}
	if err := s.Close(); err != nil { // again: no-op
		t.Fatal(err)
	}
	if !s.Exists([]byte("alice"), []byte("example.com")) {
		t.Fatal("table lost at Close")
	}
	if _, err := digestauth.Poll(s); err == nil || s.Stats().Err == nil {
		t.Fatal("no error from a closed database")
	}
}

func TestSubscribersOpenError(t *testing.T) {
	srv := proxy.NewServer(nil, proxy.Options{})
	defer srv.Close()
	if _, err := digestauth.OpenSubscribers(srv, ""); err == nil {
		t.Fatal("empty path accepted")
	}
	if _, err := digestauth.OpenSubscribers(srv, filepath.Join(t.TempDir(), "missing", "v.db")); err == nil {
		t.Fatal("a file that cannot be opened accepted")
	}
}

// BenchmarkSubscribers: Get of one of 100,000 subscribers (every iteration
// another, as under registration load) and of an unknown user; Reload, a
// full read of the table.
func BenchmarkSubscribers(b *testing.B) {
	s, _ := openSubs(b)
	const n = 100_000
	names := make([][]byte, n)
	for i := range names {
		names[i] = []byte("user" + strconv.Itoa(i))
	}
	ctx := context.Background()
	_, err := s.DB().ImportUsers(ctx, func(yield func(store.UserRow, error) bool) {
		for i := range n {
			if !yield(store.UserRow{Username: string(names[i]), Domain: "example.com", Password: "pw"}, nil) {
				return
			}
		}
	}, store.ImportOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Reload(ctx); err != nil {
		b.Fatal(err)
	}
	dom := []byte("example.com")
	b.Run("Get", func(b *testing.B) {
		b.ReportAllocs()
		var buf [128]byte
		i := 0
		for b.Loop() {
			u, ok := s.Get(names[i%n], dom)
			if !ok {
				b.Fatal("not found")
			}
			u.AppendHA1(buf[:0], auth.MD5)
			i++
		}
	})
	b.Run("Unknown", func(b *testing.B) {
		b.ReportAllocs()
		nobody := []byte("nobody")
		for b.Loop() {
			if s.Exists(nobody, dom) {
				b.Fatal("found")
			}
		}
	})
	b.Run("Reload", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Reload(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/subscriber")
	})
}
