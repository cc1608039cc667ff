// Package digestauth is the `auth` step: SIP digest authentication of
// requests (RFC 3261 §22, RFC 7616, RFC 8760) against the subscribers of
// the embedded database — 401 with WWW-Authenticate for REGISTER, 407 with
// Proxy-Authenticate for other requests.
package digestauth

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/veloxsip/velox/auth"
	"github.com/veloxsip/velox/pipeline"
	"github.com/veloxsip/velox/proxy"
	"github.com/veloxsip/velox/sip"
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
	// FailureExpiry is how long, in seconds, a source's failures are
	// remembered after its last one (default 600), FailureTableSize how
	// many sources are tracked at most (default 65536). The failure table
	// is one per server (FailureTable): the first auth step built sets
	// these.
	FailureExpiry    int `yaml:"failure_expiry"`
	FailureTableSize int `yaml:"failure_table_size"`
}

// Auth is a configured auth step.
type Auth struct {
	a        *auth.Authenticator
	subs     *Subscribers
	failures *auth.FailureTable // per source address, reset on success
	realm    []byte
	identity bool
	maxFail  int
	retrans  *retransTable // accepted requests, whose retransmissions pass (retrans.go)
}

// failuresName is the Server.Shared name of the server's failure table.
const failuresName = "auth:failures"

// FailureTable returns the server's table of authentication failures per
// source address, made with o the first time (later calls share it and
// ignore o). It lives until the server is closed.
func FailureTable(srv *proxy.Server, o auth.FailureOptions) (*auth.FailureTable, error) {
	v, err := srv.Shared(failuresName, func() (any, error) { return auth.NewFailureTable(o), nil })
	if err != nil {
		return nil, err
	}
	return v.(*auth.FailureTable), nil
}

var errNoTable = errors.New("no failure table")

// Failures returns the server's failure table if an auth step made one:
// for management and anti-flood modules (Failures, Top, Snapshot, Stats).
func Failures(srv *proxy.Server) (*auth.FailureTable, bool) {
	v, err := srv.Shared(failuresName, func() (any, error) { return nil, errNoTable })
	if err != nil {
		return nil, false
	}
	return v.(*auth.FailureTable), true
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
	subs, err := OpenSubscribers(srv, o.DB)
	if err != nil {
		return nil, fmt.Errorf("auth: %v", err)
	}
	if o.MaxFailures <= 0 {
		o.MaxFailures = 3
	}
	if o.FailureExpiry < 0 || o.FailureTableSize < 0 {
		return nil, errors.New("auth: failure_expiry and failure_table_size must not be negative")
	}
	ft, err := FailureTable(srv, auth.FailureOptions{
		Expiry: time.Duration(o.FailureExpiry) * time.Second, MaxEntries: o.FailureTableSize})
	if err != nil {
		return nil, fmt.Errorf("auth: %v", err)
	}
	return &Auth{a: a, subs: subs, failures: ft, realm: []byte(strings.ToLower(o.Realm)),
		identity: !o.NoIdentityCheck, maxFail: o.MaxFailures, retrans: newRetransTable()}, nil
}

// Failures returns the failure table the step counts wrong answers in
// (the server's, shared by every auth step).
func (s *Auth) Failures() *auth.FailureTable { return s.failures }

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
	res := auth.BadCredentials
	if u, ok := s.subs.Get(cr.Username, s.realm); ok { // in memory: no database read
		var hb [128]byte
		if ha1, has := u.AppendHA1(hb[:0], cr.Algorithm); has {
			res = s.a.Verify(&cr, m.MethodName(), ha1, c.Src.Addr(), now)
		}
	}
	switch res {
	case auth.OK:
		if s.identity && !s.sameUser(m, cr.Username) {
			c.Reply(403, "Authentication Identity Mismatch")
			return proxy.Stop
		}
		s.failures.Reset(c.Src.Addr()) // no lock when no source of its shard failed
		s.retrans.add(s.retrans.key(&cr, m), now)
		return proxy.Continue
	case auth.Replay:
		if s.retrans.seen(s.retrans.key(&cr, m), now) {
			return proxy.Continue // a retransmission of an accepted request
		}
		s.challenge(c, isProxy, true, now)
	case auth.Stale:
		s.challenge(c, isProxy, true, now)
	case auth.Malformed:
		c.Reply(400, "Malformed Authorization")
	default:
		if s.failures.Add(c.Src.Addr(), now) >= s.maxFail {
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
