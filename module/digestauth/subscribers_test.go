package digestauth_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veloxsip/velox/module/digestauth"
	"github.com/veloxsip/velox/proxy"
	"github.com/veloxsip/velox/store"
)

func TestSubscribersCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.db")
	srv := proxy.NewServer(nil, proxy.Options{})
	t.Cleanup(srv.Close)
	s, err := digestauth.OpenSubscribers(srv, path)
	if err != nil {
		t.Fatal(err)
	}
	if s2, _ := digestauth.OpenSubscribers(srv, path); s2 != s {
		t.Fatal("one Subscribers per file and server")
	}
	ctx := context.Background()
	db := s.DB()
	if err := db.AddUser(ctx, "alice", "example.com", "secret", true); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	u, found, err := s.Get([]byte("alice"), []byte("EXAMPLE.com"), now)
	if err != nil || !found || u.Password != "secret" {
		t.Fatalf("Get alice: %+v %v %v", u, found, err)
	}
	if ok, _ := s.Exists([]byte("bob"), []byte("example.com"), now); ok {
		t.Fatal("bob exists")
	}
	// Both answers are cached: bob added now is unknown until the entry
	// expires or is forgotten.
	if err := db.AddUser(ctx, "bob", "example.com", "pw", false); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Exists([]byte("bob"), []byte("example.com"), now.Add(time.Second)); ok {
		t.Fatal("cached answer not used")
	}
	if ok, _ := s.Exists([]byte("bob"), []byte("example.com"), now.Add(digestauth.SubscriberTTL)); !ok {
		t.Fatal("expired entry not read again")
	}
	db.DeleteUser(ctx, "alice", "example.com")
	s.Forget([]byte("alice"), []byte("example.com"))
	if ok, _ := s.Exists([]byte("alice"), []byte("example.com"), now); ok {
		t.Fatal("forgotten entry still used")
	}
	// Names the database cannot hold are unknown, without an error.
	for _, n := range [][2]string{{"", "example.com"}, {"a", ""}, {"a\x00", "example.com"}, {"a", "b c"}, {"a", "b@c"}} {
		if ok, err := s.Exists([]byte(n[0]), []byte(n[1]), now); ok || err != nil {
			t.Errorf("%q: %v %v", n, ok, err)
		}
	}
	// A name too long for the cache key is still looked up.
	long := strings.Repeat("x", 300)
	if err := db.AddUser(ctx, long, "example.com", "pw", false); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Exists([]byte(long), []byte("example.com"), now); !ok || err != nil {
		t.Fatalf("long name: %v %v", ok, err)
	}
}

func TestSubscribersCacheCap(t *testing.T) {
	srv := proxy.NewServer(nil, proxy.Options{})
	t.Cleanup(srv.Close)
	s, err := digestauth.OpenSubscribers(srv, filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	digestauth.SetCacheCap(s, 100)
	now := time.Now()
	for i := range 1000 {
		s.Exists([]byte("u"+strconv.Itoa(i)), []byte("example.com"), now)
		if s.Cached() > 100 {
			t.Fatalf("%d entries cached", s.Cached())
		}
	}
	// Expired entries go first.
	for i := range 10 {
		s.Exists([]byte("v"+strconv.Itoa(i)), []byte("example.com"), now.Add(time.Hour))
	}
	if n := s.Cached(); n != 10 {
		t.Fatalf("%d entries after the expired ones were dropped", n)
	}
}

func TestSubscribersClosedDB(t *testing.T) {
	srv := proxy.NewServer(nil, proxy.Options{})
	s, err := digestauth.OpenSubscribers(srv, filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if _, err := s.Exists([]byte("a"), []byte("example.com"), time.Now()); err == nil {
		t.Fatal("no error from a closed database")
	}
}

// BenchmarkSubscribers: Hit is a cached user, Miss a database read (every
// iteration another of 100,000 users, as under registration load).
func BenchmarkSubscribers(b *testing.B) {
	srv := proxy.NewServer(nil, proxy.Options{})
	b.Cleanup(srv.Close)
	s, err := digestauth.OpenSubscribers(srv, filepath.Join(b.TempDir(), "v.db"))
	if err != nil {
		b.Fatal(err)
	}
	const n = 100_000
	names := make([][]byte, n)
	for i := range names {
		names[i] = []byte("user" + strconv.Itoa(i))
	}
	_, err = s.DB().ImportUsers(context.Background(), func(yield func(store.UserRow, error) bool) {
		for i := range n {
			if !yield(store.UserRow{Username: string(names[i]), Domain: "example.com", Password: "pw"}, nil) {
				return
			}
		}
	}, store.ImportOptions{})
	if err != nil {
		b.Fatal(err)
	}
	dom := []byte("example.com")
	b.Run("Hit", func(b *testing.B) {
		now := time.Now()
		s.Get(names[0], dom, now)
		b.ReportAllocs()
		for b.Loop() {
			if _, ok, _ := s.Get(names[0], dom, now); !ok {
				b.Fatal("not found")
			}
		}
	})
	b.Run("Miss", func(b *testing.B) {
		now := time.Now()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			now = now.Add(digestauth.SubscriberTTL) // every entry expired
			if _, ok, _ := s.Get(names[i%n], dom, now); !ok {
				b.Fatal("not found")
			}
			i++
		}
	})
}
