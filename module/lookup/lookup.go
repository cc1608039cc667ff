// Package lookup routes requests for the users of served domains to their
// registered contacts (Kamailio's registrar lookup()), or redirects the
// caller to them (a redirect server, RFC 3261 §8.3).
package lookup

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/veloxsip/velox/location"
	"github.com/veloxsip/velox/module/digestauth"
	"github.com/veloxsip/velox/module/registrar"
	"github.com/veloxsip/velox/pipeline"
	"github.com/veloxsip/velox/proxy"
	"github.com/veloxsip/velox/sip"
	"github.com/veloxsip/velox/transport"
)

// Options configure a lookup step.
type Options struct {
	// Domains are the domains whose users are looked up (the host of the
	// Request-URI); empty: every domain. Requests for others go on.
	Domains []string `yaml:"domains"`
	// Redirect answers 302 with the contacts instead of setting them as
	// the destinations of the next relay or forward step.
	Redirect bool `yaml:"redirect"`
	// NAT chooses where a request for a binding goes: "auto" (default) —
	// the address the REGISTER came from when the contact names a private
	// address (RFC 1918, RFC 6598, fc00::/7) other than that source, as a
	// phone behind NAT does, else the contact's own address; "received" —
	// always the source of the REGISTER; "contact" — always the contact.
	NAT string `yaml:"nat"`
	// DB is the subscriber database (the auth step's). With it a user
	// without live bindings gets 480 when it is a subscriber and 404 when
	// it is not; without it lookup cannot tell the two apart and answers
	// 404.
	DB string `yaml:"db"`
}

// Lookup is a configured lookup step.
type Lookup struct {
	table    *location.Table
	domains  registrar.Domains
	redirect bool
	nat      natMode
	subs     *digestauth.Subscribers // nil: no subscriber database
}

type natMode uint8

const (
	natAuto natMode = iota
	natReceived
	natContact
)

// New returns a lookup on srv's location table.
func New(o Options, srv *proxy.Server) (*Lookup, error) {
	t, err := registrar.Table(srv, registrar.Options{})
	if err != nil {
		return nil, err
	}
	l := &Lookup{table: t, domains: registrar.NewDomains(o.Domains), redirect: o.Redirect}
	switch o.NAT {
	case "", "auto":
	case "received":
		l.nat = natReceived
	case "contact":
		l.nat = natContact
	default:
		return nil, fmt.Errorf("lookup: nat: %q is not auto, received or contact", o.NAT)
	}
	if o.DB != "" {
		if l.subs, err = digestauth.OpenSubscribers(srv, o.DB); err != nil {
			return nil, fmt.Errorf("lookup: %v", err)
		}
	}
	return l, nil
}

// Handle looks the Request-URI's user up: no live binding gets 404 or 480;
// otherwise each binding becomes a Target (its contact as Request-URI,
// its Path as Route, its q) and the pipeline goes on to relay — or, in
// redirect mode, the caller gets 302 with the contacts.
func (l *Lookup) Handle(c *proxy.Context) proxy.Action {
	m := c.Msg
	if c.Routed || m.Method() == sip.REGISTER || m.Method() == sip.ACK {
		return proxy.Continue
	}
	ru, err := m.RURI()
	if err != nil {
		c.Reply(400, "Malformed Request-URI")
		return proxy.Stop
	}
	if !l.domains.Serves(ru.Host) {
		return proxy.Continue
	}
	var ab [256]byte
	var bsArr [16]location.Binding
	bs := l.table.LookupBytes(location.AppendAOR(ab[:0], ru), l.table.Now(), bsArr[:0])
	if len(bs) == 0 {
		l.noBinding(c, ru)
		return proxy.Stop
	}
	if l.redirect {
		var xb [2048]byte
		x := xb[:0]
		now := l.table.Now()
		for i := range bs {
			x = append(x, "Contact: <"...)
			x = append(x, bs[i].Contact...)
			x = append(x, ">;q="...)
			x = registrar.AppendQ(x, bs[i].Q)
			x = append(x, ";expires="...)
			x = strconv.AppendInt(x, int64(bs[i].ExpiresIn(now)), 10)
			x = append(x, "\r\n"...)
		}
		c.ReplyWith(302, "Moved Temporarily", x)
		return proxy.Stop
	}
	for i := range bs {
		b := &bs[i]
		t := proxy.Target{Q: b.Q}
		t.URI = append(c.TargetText(len(b.Contact)), b.Contact...)
		var u sip.URI
		if err := sip.ParseURI(t.URI, &u); err != nil {
			continue
		}
		if proto, ok := transport.ParseProto(b.Transport); ok && l.useFlow(b, proto, &u) {
			// Over the connection the phone registered on.
			t.Addr, t.Proto = b.Received, proto
		} else if l.useReceived(b, &u) {
			t.Addr = b.Received
		} else {
			d, err := c.Server().URIDest(&u)
			if err != nil {
				continue
			}
			t.Addr, t.Proto = d.Addr, d.Proto
		}
		if len(b.Path) > 0 {
			t.Route = appendRoute(c, b.Path)
		}
		c.AddTarget(t)
	}
	if len(c.Targets) == 0 {
		c.Reply(480, "Temporarily Unavailable")
		return proxy.Stop
	}
	return proxy.Continue
}

// noBinding answers a request for a user without a live binding (RFC 3261
// §21.4.5 and §21.4.18): with a subscriber database 404 when the
// Request-URI names no subscriber and 480 when it names one (from the
// in-memory table: no database read); without one always 404. Only sip
// and sips URIs with a user part can name a subscriber.
func (l *Lookup) noBinding(c *proxy.Context, ru *sip.URI) {
	if l.subs == nil || (ru.Scheme != sip.SchemeSIP && ru.Scheme != sip.SchemeSIPS) {
		c.Reply(404, "Not Found")
		return
	}
	var ub [128]byte
	if l.subs.Exists(sip.AppendUnescaped(ub[:0], ru.User), ru.Host) {
		c.Reply(480, "Temporarily Unavailable")
		return
	}
	c.Reply(404, "Not Found")
}

// useFlow decides whether a request for binding b, registered over a
// connection of transport proto, goes back over that connection: always
// for WebSocket (the contact's host is a made-up .invalid name, RFC 7118
// §5.2), for an RFC 5626 outbound registration (instance and reg-id), and
// when the NAT rule says to use the source address.
func (l *Lookup) useFlow(b *location.Binding, proto transport.Proto, u *sip.URI) bool {
	ws := proto == transport.WS || proto == transport.WSS
	switch {
	case !proto.Reliable() || !b.Received.IsValid():
		return false
	case ws:
		return true
	case l.nat == natContact:
		return false
	case b.Instance != "" && b.RegID > 0:
		return true
	}
	return l.useReceived(b, u)
}

// useReceived decides whether a request for binding b goes to the source
// address of its REGISTER rather than to contact u.
func (l *Lookup) useReceived(b *location.Binding, u *sip.URI) bool {
	if !b.Received.IsValid() || l.nat == natContact {
		return false
	}
	if l.nat == natReceived {
		return true
	}
	a, ok := proxy.ParseIP(u.Host)
	return ok && isPrivate(a) && a != b.Received.Addr()
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// isPrivate reports an address a phone behind NAT would advertise.
func isPrivate(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsPrivate() || cgnat.Contains(a)
}

// appendRoute builds "Route: <p1>, <p2>\r\n" from a Path (RFC 3327 §5.4).
func appendRoute(c *proxy.Context, path []string) []byte {
	n := len("Route: \r\n")
	for _, p := range path {
		n += len(p) + 4
	}
	r := c.TargetText(n)
	if r == nil {
		return nil
	}
	r = append(r, "Route: "...)
	for i, p := range path {
		if i > 0 {
			r = append(r, ", "...)
		}
		r = append(r, '<')
		r = append(r, p...)
		r = append(r, '>')
	}
	return append(r, "\r\n"...)
}

func init() {
	pipeline.Register(pipeline.Module{
		Name: "lookup",
		Doc:  "route requests for registered users to their contacts (forking by q), or redirect (302)",
		New: func(d pipeline.Decoder, srv *proxy.Server) (proxy.Handler, error) {
			var o Options
			if err := d.Decode(&o); err != nil {
				return nil, err
			}
			return New(o, srv)
		},
	})
}
