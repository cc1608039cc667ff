package digestauth

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veloxsip/velox/auth"
	"github.com/veloxsip/velox/proxy"
	"github.com/veloxsip/velox/store"
)

// Subscribers is a server's in-memory copy of the subscriber table of one
// database: the auth step reads credentials from it and the lookup step
// asks whether a user exists (404 or 480). Get it with OpenSubscribers;
// every step of a server naming the same file shares one Subscribers (and
// one store.DB, the one the registrar's persistence uses too).
//
// The whole table is read when the Subscribers is made and kept as an
// immutable snapshot behind an atomic pointer: a lookup reads no database,
// takes no lock and allocates nothing. One goroutine per Subscribers polls
// the database every PollInterval — store.DB.DataVersion (another process
// committed, e.g. `velox user add` while the server runs) and
// store.DB.UserWrites (a subscriber change made through the server's own
// DB) — and when either moved reads the table again and swaps the new
// snapshot in, so a change is seen within about a second. The registrar's
// binding writes move neither and cost no reload. A failed reload keeps
// the previous snapshot and is retried at the next poll (Stats().Err).
type Subscribers struct {
	db   *store.DB
	snap atomic.Pointer[snapshot]

	mu      sync.Mutex // serialises polls and reloads; lookups never take it
	writes  uint64     // db.UserWrites before the last load
	version int64      // db.DataVersion before the last load
	dirty   bool       // the last load failed: load at the next poll

	reloads  atomic.Uint64
	loadTime atomic.Int64 // ns the last load took
	errMu    sync.Mutex
	err      error // of the last poll

	cancel    context.CancelFunc
	done      chan struct{} // closed when the polling goroutine has returned
	closeOnce sync.Once
}

// PollInterval is how often a Subscribers checks the database for changes.
const PollInterval = time.Second

// maxKey is the size of the stack buffer "user@domain" keys are built in;
// a longer name (no legitimate user has one) costs an allocation.
const maxKey = 256

// Record layout: a flags byte, then the binary HA1s (MD5, SHA-256,
// SHA-512/256) — 81 bytes instead of 160 hex characters in three strings.
const (
	offMD5    = 1
	offSHA256 = offMD5 + md5.Size
	offSHA512 = offSHA256 + sha256.Size
	recSize   = offSHA512 + sha512.Size256
)

// Record flags.
const (
	hasMD5 = 1 << iota
	hasSHA256
	hasSHA512_256
	oddHA1 // an HA1 is not lowercase hex of the right length: kept verbatim in snapshot.odd
)

// snapshot is one immutable copy of the subscriber table.
type snapshot struct {
	idx    map[string]uint32     // "user@domain" (substrings of one string) → record number
	recs   []byte                // recSize bytes per record
	odd    map[uint32]*[3]string // verbatim HA1s of the records flagged oddHA1
	loaded time.Time
}

// Subscriber is one subscriber found by Get: its HA1s. It stays valid (the
// values of the snapshot it came from) after a reload.
type Subscriber struct {
	rec *[recSize]byte
	odd *[3]string
}

// AppendHA1 appends the subscriber's HA1 for algorithm a (its base
// algorithm for a "-sess" one) in the form stored — lowercase hex — and
// reports whether there is one.
func (u Subscriber) AppendHA1(dst []byte, a auth.Algorithm) ([]byte, bool) {
	var bit byte
	var i, off, n int
	switch a.Base() {
	case auth.MD5:
		bit, i, off, n = hasMD5, 0, offMD5, md5.Size
	case auth.SHA256:
		bit, i, off, n = hasSHA256, 1, offSHA256, sha256.Size
	case auth.SHA512_256:
		bit, i, off, n = hasSHA512_256, 2, offSHA512, sha512.Size256
	default:
		return dst, false
	}
	if u.rec == nil || u.rec[0]&bit == 0 {
		return dst, false
	}
	if u.rec[0]&oddHA1 != 0 {
		return append(dst, u.odd[i]...), true
	}
	return hex.AppendEncode(dst, u.rec[off:off+n]), true
}

// OpenSubscribers returns the server's Subscribers on the database file
// path, opening the file (shared as "db:"+path) and reading the subscriber
// table the first time.
func OpenSubscribers(srv *proxy.Server, path string) (*Subscribers, error) {
	if path == "" {
		return nil, errors.New("empty database path")
	}
	v, err := srv.Shared("subscribers:"+path, func() (any, error) {
		db, err := srv.Shared("db:"+path, func() (any, error) { return store.Open(path) })
		if err != nil {
			return nil, err
		}
		return newSubscribers(db.(*store.DB))
	})
	if err != nil {
		return nil, err
	}
	return v.(*Subscribers), nil
}

// newSubscribers reads the subscribers of db and starts the polling
// goroutine.
func newSubscribers(db *store.DB) (*Subscribers, error) {
	s := &Subscribers{db: db, done: make(chan struct{})}
	if _, err := s.poll(context.Background(), true); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.run(ctx)
	return s, nil
}

// Close stops the polling goroutine (and waits for it). It does not close
// the database. Lookups keep answering from the last snapshot.
func (s *Subscribers) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		<-s.done
	})
	return nil
}

func (s *Subscribers) run(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.poll(ctx, false)
	}
}

// poll reloads the table when force is set or it may have changed since
// the last load, and reports whether it did.
func (s *Subscribers) poll(ctx context.Context, force bool) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Both read before the table: a change committed later moves one of
	// them again and is loaded at the next poll.
	w := s.db.UserWrites()
	v, err := s.db.DataVersion(ctx)
	if err == nil && (force || s.dirty || w != s.writes || v != s.version) {
		if err = s.load(ctx); err == nil {
			s.writes, s.version, s.dirty = w, v, false
			s.setErr(nil)
			return true, nil
		}
		s.dirty = true
	}
	if err != nil && ctx.Err() == nil {
		err = fmt.Errorf("subscribers: %w", err)
	}
	s.setErr(err)
	return false, err
}

// load reads the whole table and swaps the new snapshot in. s.mu is held.
func (s *Subscribers) load(ctx context.Context) error {
	start := time.Now()
	var b builder
	if prev := s.snap.Load(); prev != nil {
		b.grow(len(prev.idx))
	}
	if err := s.db.ScanUsers(ctx, b.add); err != nil {
		return err
	}
	s.snap.Store(b.finish(start))
	s.reloads.Add(1)
	s.loadTime.Store(int64(time.Since(start)))
	return nil
}

func (s *Subscribers) setErr(err error) {
	s.errMu.Lock()
	s.err = err
	s.errMu.Unlock()
}

// Reload reads the subscriber table now (an operator who cannot wait for
// the next poll; tests).
func (s *Subscribers) Reload(ctx context.Context) error {
	_, err := s.poll(ctx, true)
	return err
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

// Get returns the subscriber user@domain (domain case-insensitive) and
// whether it exists, from the in-memory table: no database read, no lock,
// no allocation.
func (s *Subscribers) Get(user, domain []byte) (Subscriber, bool) {
	if !validName(user, domain) {
		return Subscriber{}, false // the database could hold no such user
	}
	var kb [maxKey]byte
	k := appendKey(kb[:0], user, domain)
	sn := s.snap.Load()
	i, ok := sn.idx[string(k)] // no allocation: map index by converted bytes
	if !ok {
		return Subscriber{}, false
	}
	u := Subscriber{rec: (*[recSize]byte)(sn.recs[int(i)*recSize:])}
	if u.rec[0]&oddHA1 != 0 {
		u.odd = sn.odd[i]
	}
	return u, true
}

// Exists reports whether user@domain is a subscriber.
func (s *Subscribers) Exists(user, domain []byte) bool {
	_, ok := s.Get(user, domain)
	return ok
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

// SubscriberStats describe a Subscribers.
type SubscriberStats struct {
	Users    int           // subscribers in the current snapshot
	Loaded   time.Time     // when the current snapshot started to be read
	Reloads  uint64        // loads so far, the first included
	LoadTime time.Duration // how long the last load took
	Err      error         // of the last poll (the snapshot is kept); nil when it went well
}

// Stats returns the size and age of the table and the last poll's error.
func (s *Subscribers) Stats() SubscriberStats {
	sn := s.snap.Load()
	s.errMu.Lock()
	err := s.err
	s.errMu.Unlock()
	return SubscriberStats{Users: len(sn.idx), Loaded: sn.loaded, Reloads: s.reloads.Load(),
		LoadTime: time.Duration(s.loadTime.Load()), Err: err}
}

// builder makes a snapshot from the rows of store.DB.ScanUsers.
type builder struct {
	keys []byte   // every "user@domain", one after the other
	ends []uint32 // where each key ends in keys
	recs []byte
	odd  map[uint32]*[3]string
}

// grow makes room for about n subscribers (the previous snapshot's size).
func (b *builder) grow(n int) {
	n += n / 16
	b.keys = make([]byte, 0, n*24)
	b.ends = make([]uint32, 0, n)
	b.recs = make([]byte, 0, n*recSize)
}

func (b *builder) add(c *store.Credentials) error {
	b.keys = append(b.keys, c.Username...)
	b.keys = append(b.keys, '@')
	b.keys = append(b.keys, c.Domain...)
	if uint64(len(b.keys)) > 1<<32-1 {
		return errors.New("subscribers: names too long in total")
	}
	b.ends = append(b.ends, uint32(len(b.keys)))
	i := len(b.recs) / recSize
	b.recs = append(b.recs, make([]byte, recSize)...)
	r := b.recs[i*recSize : (i+1)*recSize]
	var flags byte
	ha1s := [3][]byte{c.HA1MD5, c.HA1SHA256, c.HA1SHA512256}
	dsts := [3][]byte{r[offMD5:offSHA256], r[offSHA256:offSHA512], r[offSHA512:]}
	for j, h := range ha1s {
		if len(h) == 0 {
			continue
		}
		flags |= 1 << j
		if !decodeLowerHex(dsts[j], h) {
			flags |= oddHA1
		}
	}
	r[0] = flags
	if flags&oddHA1 != 0 {
		if b.odd == nil {
			b.odd = map[uint32]*[3]string{}
		}
		b.odd[uint32(i)] = &[3]string{string(c.HA1MD5), string(c.HA1SHA256), string(c.HA1SHA512256)}
	}
	return nil
}

// unhex maps a lowercase hex digit to its value, anything else to 0xff.
var unhex = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c - 'a' + 10)
	}
	return t
}()

// decodeLowerHex decodes h into dst and reports whether h was the
// lowercase hex form of len(dst) bytes (what store.ComputeHA1 writes;
// anything else is kept verbatim). No branch per character: hex digits
// are random, a branch on each would mostly be mispredicted.
func decodeLowerHex(dst, h []byte) bool {
	if len(h) != 2*len(dst) {
		return false
	}
	var bad byte
	for i := range dst {
		hi, lo := unhex[h[2*i]], unhex[h[2*i+1]]
		bad |= hi | lo
		dst[i] = hi<<4 | lo
	}
	return bad < 0x10
}

func (b *builder) finish(loaded time.Time) *snapshot {
	all := string(b.keys) // one allocation for every key
	sn := &snapshot{idx: make(map[string]uint32, len(b.ends)), odd: b.odd, loaded: loaded}
	start := uint32(0)
	for i, end := range b.ends {
		sn.idx[all[start:end]] = uint32(i)
		start = end
	}
	sn.recs = make([]byte, len(b.recs)) // exact size
	copy(sn.recs, b.recs)
	return sn
}
