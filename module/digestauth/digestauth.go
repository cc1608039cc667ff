// Package digestauth is the `auth` step: SIP digest authentication of
// requests (RFC 3261 §22, RFC 7616, RFC 8760) against the subscribers of
// the embedded database — 401 with WWW-Authenticate for REGISTER, 407 with
// Proxy-Authenticate for other requests.
package digestauth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veloxsip/velox/auth"
	"github.com/veloxsip/velox/pipeline"
	"github.com/veloxsip/velox/proxy"
	"github.com/veloxsip/velox/sip"
	"github.com/veloxsip/velox/store"
)

// Options configure an auth step.
type Options struct {
	// Realm is the digest realm and the subscribers' domain.
	Realm string `yaml:"realm"`
	// DB is the subscriber database (velox user add --db FILE …).
	DB string `yaml:"db"`
	// Algorithms offered, strongest first (default SHA-256, MD5).
	Algorithms []string `yaml:"algorithms"`
	// NoIdentityCheck lets one credential act for any From (REGISTER: To)
	// user — for trunks registering many numbers with one account.
	NoIdentityCheck bool `yaml:"no_identity_check"`
	// MaxFailures is the number of wrong answers from one source address
	// after which it gets 403 instead of a new challenge (default 3).
	MaxFailures int `yaml:"max_failures"`
}

// Auth is a configured auth step.
type Auth struct {
	a        *auth.Authenticator
	db       *store.DB
	realm    string
	identity bool
	maxFail  int

	mu       sync.Mutex
	failures map[netip.Addr]int // per source IP, reset on success
	nfail    atomic.Int32       // len(failures): success skips the lock when 0

	cacheMu sync.RWMutex
	cache   map[string]cachedUser // user → subscriber, for a few seconds
}

type cachedUser struct {
	u      store.User
	found  bool
	expiry time.Time
}

// New opens the database (shared by the server's auth steps).
func New(o Options, srv *proxy.Server) (*Auth, error) {
	if o.Realm == "" {
		return nil, errors.New("auth: realm is required")
	}
	if o.DB == "" {
		return nil, errors.New("auth: db is required (create it with `velox user add --db FILE user@domain password`)")
	}
	algs := []auth.Algorithm{auth.SHA256, auth.MD5}
	if len(o.Algorithms) > 0 {
		algs = algs[:0]
		for _, s := range o.Algorithms {
			a, ok := auth.ParseAlgorithm([]byte(s))
			if !ok {
				return nil, fmt.Errorf("auth: algorithms: unknown %q (MD5, SHA-256, SHA-512-256)", s)
			}
			algs = append(algs, a)
		}
	}
	a, err := auth.New(auth.Config{Realm: strings.ToLower(o.Realm), Algorithms: algs})
	if err != nil {
		return nil, fmt.Errorf("auth: %v", err)
	}
	v, err := srv.Shared("db:"+o.DB, func() (any, error) { return store.Open(o.DB) })
	if err != nil {
		return nil, fmt.Errorf("auth: %v", err)
	}
	if o.MaxFailures <= 0 {
		o.MaxFailures = 3
	}
	return &Auth{a: a, db: v.(*store.DB), realm: strings.ToLower(o.Realm), identity: !o.NoIdentityCheck,
		maxFail: o.MaxFailures, failures: map[netip.Addr]int{}, cache: map[string]cachedUser{}}, nil
}

// user returns the subscriber, cached for a few seconds. The lookup by
// []byte does not allocate.
func (s *Auth) user(name []byte, now time.Time) (store.User, bool) {
	s.cacheMu.RLock()
	c, ok := s.cache[string(name)]
	s.cacheMu.RUnlock()
	if ok && now.Before(c.expiry) {
		return c.u, c.found
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	u, found, err := s.db.GetUser(ctx, string(name), s.realm)
	if err != nil {
		return u, false
	}
	s.cacheMu.Lock()
	s.cache[string(name)] = cachedUser{u: u, found: found, expiry: now.Add(5 * time.Second)}
	s.cacheMu.Unlock()
	return u, found
}

// Handle lets an authenticated request go on and answers the others with
// a challenge (or 403). ACK and CANCEL are never challenged (§22.1).
func (s *Auth) Handle(c *proxy.Context) proxy.Action {
	m := c.Msg
	if m.Method() == sip.ACK || m.Method() == sip.CANCEL {
		return proxy.Continue
	}
	isProxy := m.Method() != sip.REGISTER
	now := time.Now()
	var cr auth.Credentials
	found, err := s.a.FindCredentials(m, isProxy, &cr)
	if err != nil {
		c.Reply(400, "Malformed Authorization")
		return proxy.Stop
	}
	if !found {
		s.challenge(c, isProxy, false, now)
		return proxy.Stop
	}
	u, ok := s.user(cr.Username, now)
	res := auth.BadCredentials
	if ok {
		if ha1, has := u.HA1(cr.Algorithm.Base().String()); has {
			res = s.a.Verify(&cr, m.MethodName(), []byte(ha1), c.Src.Addr(), now)
		}
	}
	switch res {
	case auth.OK:
		if s.identity && !s.sameUser(m, cr.Username) {
			c.Reply(403, "Authentication Identity Mismatch")
			return proxy.Stop
		}
		if s.nfail.Load() > 0 {
			s.mu.Lock()
			delete(s.failures, c.Src.Addr())
			s.nfail.Store(int32(len(s.failures)))
			s.mu.Unlock()
		}
		return proxy.Continue
	case auth.Stale, auth.Replay:
		s.challenge(c, isProxy, true, now)
	case auth.Malformed:
		c.Reply(400, "Malformed Authorization")
	default:
		key := c.Src.Addr()
		s.mu.Lock()
		s.failures[key]++
		n := s.failures[key]
		s.nfail.Store(int32(len(s.failures)))
		s.mu.Unlock()
		if n >= s.maxFail {
			c.Reply(403, "Forbidden")
			return proxy.Stop
		}
		s.challenge(c, isProxy, false, now)
	}
	return proxy.Stop
}

// sameUser checks the authentication user against the From user (the To
// user for REGISTER, which may register on behalf of another From).
func (s *Auth) sameUser(m *sip.Message, user []byte) bool {
	na, err := m.From()
	if m.Method() == sip.REGISTER {
		na, err = m.To()
	}
	return err == nil && string(na.URI.User) == string(user)
}

func (s *Auth) challenge(c *proxy.Context, isProxy, stale bool, now time.Time) {
	var b [1024]byte
	x := s.a.AppendChallenges(b[:0], isProxy, stale, c.Src.Addr(), now)
	if isProxy {
		c.ReplyWith(407, "Proxy Authentication Required", x)
		return
	}
	c.ReplyWith(401, "Unauthorized", x)
}

func init() {
	pipeline.Register(pipeline.Module{
		Name: "auth",
		Doc:  "digest authentication against the subscriber database (401 for REGISTER, 407 otherwise)",
		New: func(d pipeline.Decoder, srv *proxy.Server) (proxy.Handler, error) {
			var o Options
			if err := d.Decode(&o); err != nil {
				return nil, err
			}
			return New(o, srv)
		},
	})
}
