package digestauth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/veloxsip/velox/proxy"
	"github.com/veloxsip/velox/store"
)

// Subscribers is a server's cached view of the subscriber table of one
// database: the auth step reads credentials from it and the lookup step
// asks whether a user exists (404 or 480). Get it with OpenSubscribers;
// every step of a server naming the same file shares one Subscribers (and
// one store.DB, the one the registrar's persistence uses too).
//
// Found and unknown users alike are cached for SubscriberTTL, keyed by
// "user@domain"; a cache hit takes a read lock and allocates nothing. The
// cache holds at most MaxCachedSubscribers entries: when full, expired
// entries are dropped, then arbitrary ones.
type Subscribers struct {
	db  *store.DB
	max int // MaxCachedSubscribers (smaller in tests)

	mu sync.RWMutex
	m  map[string]cachedUser
}

// Subscriber cache settings.
const (
	SubscriberTTL        = 5 * time.Second
	MaxCachedSubscribers = 100_000
)

type cachedUser struct {
	u      store.User
	found  bool
	expiry int64 // Unix ns
}

// maxKey bounds "user@domain" keys built on the stack; longer names are
// looked up in the database every time (no legitimate user has one).
const maxKey = 256

// OpenSubscribers returns the server's Subscribers on the database file
// path, opening the file (shared as "db:"+path) the first time.
func OpenSubscribers(srv *proxy.Server, path string) (*Subscribers, error) {
	if path == "" {
		return nil, errors.New("empty database path")
	}
	v, err := srv.Shared("subscribers:"+path, func() (any, error) {
		db, err := srv.Shared("db:"+path, func() (any, error) { return store.Open(path) })
		if err != nil {
			return nil, err
		}
		return &Subscribers{db: db.(*store.DB), max: MaxCachedSubscribers, m: map[string]cachedUser{}}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*Subscribers), nil
}

// DB returns the database the subscribers are read from.
func (s *Subscribers) DB() *store.DB { return s.db }

// appendKey writes "user@domain" with the domain in lower case (the form
// the database keeps domains in).
func appendKey(dst, user, domain []byte) []byte {
	dst = append(dst, user...)
	dst = append(dst, '@')
	for _, c := range domain {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// Get returns the subscriber user@domain and whether it exists, from the
// cache when it was read less than SubscriberTTL ago. An error (the
// database failed) is not cached.
func (s *Subscribers) Get(user, domain []byte, now time.Time) (store.User, bool, error) {
	if !validName(user, domain) {
		return store.User{}, false, nil // the database could hold no such user
	}
	var kb [maxKey]byte
	if len(user)+1+len(domain) > len(kb) {
		return s.query(nil, user, domain, now)
	}
	k := appendKey(kb[:0], user, domain)
	s.mu.RLock()
	c, ok := s.m[string(k)] // no allocation: map lookup by converted bytes
	s.mu.RUnlock()
	if ok && now.UnixNano() < c.expiry {
		return c.u, c.found, nil
	}
	return s.query(k, user, domain, now)
}

// validName reports whether user and domain pass the store's checks: not
// empty, no control character, no space or '@' in the domain.
func validName(user, domain []byte) bool {
	if len(user) == 0 || len(domain) == 0 {
		return false
	}
	for _, c := range user {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	for _, c := range domain {
		if c <= 0x20 || c == 0x7f || c == '@' {
			return false
		}
	}
	return true
}

// Exists reports whether user@domain is a subscriber.
func (s *Subscribers) Exists(user, domain []byte, now time.Time) (bool, error) {
	_, found, err := s.Get(user, domain, now)
	return found, err
}

// query reads the database and caches the answer under key (nil: do not
// cache).
func (s *Subscribers) query(key, user, domain []byte, now time.Time) (store.User, bool, error) {
	// No deadline: with a cancellable context database/sql starts a
	// goroutine per query (a quarter of the cost of a miss); a read is
	// bounded by SQLite's busy timeout anyway.
	ctx := context.Background()
	us, ds := string(user), string(domain) // (user and domain must not escape: callers pass stack buffers)
	u, found, err := s.db.GetUser(ctx, us, ds)
	if err != nil {
		return u, false, fmt.Errorf("subscriber %s@%s: %w", us, ds, err)
	}
	if key != nil {
		s.mu.Lock()
		if len(s.m) >= s.max {
			s.shrink(now.UnixNano())
		}
		s.m[string(key)] = cachedUser{u: u, found: found, expiry: now.Add(SubscriberTTL).UnixNano()}
		s.mu.Unlock()
	}
	return u, found, nil
}

// shrink drops the expired entries and, when that is not enough to free a
// quarter of the cache, arbitrary ones. s.mu is held.
func (s *Subscribers) shrink(now int64) {
	for k, c := range s.m {
		if c.expiry <= now {
			delete(s.m, k)
		}
	}
	for k := range s.m {
		if len(s.m) <= s.max*3/4 {
			break
		}
		delete(s.m, k)
	}
}

// Forget drops the cached entry of user@domain, so that the next Get reads
// the database (after a password change, for example).
func (s *Subscribers) Forget(user, domain []byte) {
	var kb [maxKey]byte
	if len(user)+1+len(domain) > len(kb) {
		return
	}
	k := appendKey(kb[:0], user, domain)
	s.mu.Lock()
	delete(s.m, string(k))
	s.mu.Unlock()
}

// Cached returns the number of cached entries (found and unknown users).
func (s *Subscribers) Cached() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}
