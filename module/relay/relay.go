// Package relay is the transaction-stateful forwarding step (Kamailio's
// t_relay): it forwards the request to one or more destinations with a
// server transaction upstream and a client transaction per branch.
package relay

import (
	"fmt"
	"time"

	"github.com/veloxsip/velox/pipeline"
	"github.com/veloxsip/velox/proxy"
)

// Options configure a relay step.
type Options struct {
	// To lists fixed destinations: "host[:port]" (UDP),
	// "tcp:host[:port]" (also udp, tls, ws, wss) or a SIP URI such as
	// "sip:host:port;transport=tcp". Empty: the next hop of loose-route
	// or the Request-URI.
	To []string `yaml:"to"`
	// Fork is "serial" (default: the next destination when a branch ends
	// in a failover code) or "parallel" (all at once).
	Fork string `yaml:"fork"`
	// Timeout is the time a branch waits for any response (fr_timer).
	Timeout time.Duration `yaml:"timeout"`
	// InviteTimeout is the time an INVITE branch rings before it is
	// CANCELled (fr_inv_timer, timer C).
	InviteTimeout time.Duration `yaml:"invite_timeout"`
	// FailoverOn lists the final codes (or classes such as 500 for 5xx
	// when written "5xx") that make a serial relay try the next
	// destination. Default: 408, 480, 486, 5xx.
	FailoverOn []string `yaml:"failover_on"`
}

// Relay is a configured relay step.
type Relay struct {
	to  []proxy.Dest
	opt proxy.RelayOptions
}

// New checks the options and resolves fixed destinations.
func New(o Options) (*Relay, error) {
	r := &Relay{}
	for _, s := range o.To {
		a, err := proxy.ParseDest(s)
		if err != nil {
			return nil, fmt.Errorf("relay: to: %v", err)
		}
		r.to = append(r.to, a)
	}
	if len(r.to) > proxy.MaxBranches {
		return nil, fmt.Errorf("relay: to: at most %d destinations", proxy.MaxBranches)
	}
	switch o.Fork {
	case "", "serial":
	case "parallel":
		r.opt.Parallel = true
	default:
		return nil, fmt.Errorf("relay: fork: %q is neither serial nor parallel", o.Fork)
	}
	if o.Timeout < 0 || o.InviteTimeout < 0 {
		return nil, fmt.Errorf("relay: timeouts must be positive")
	}
	r.opt.FinalTimeout, r.opt.InviteTimeout = o.Timeout, o.InviteTimeout
	if len(o.FailoverOn) > 0 {
		set := new([700]bool)
		for _, s := range o.FailoverOn {
			lo, hi, err := codeRange(s)
			if err != nil {
				return nil, fmt.Errorf("relay: failover_on: %v", err)
			}
			for c := lo; c <= hi; c++ {
				set[c] = true
			}
		}
		r.opt.FailoverOn = func(code int) bool { return code > 0 && code < len(set) && set[code] }
	}
	return r, nil
}

// codeRange parses "486" or "5xx".
func codeRange(s string) (lo, hi int, err error) {
	if len(s) == 3 && s[0] >= '1' && s[0] <= '6' && (s[1] == 'x' || s[1] == 'X') && (s[2] == 'x' || s[2] == 'X') {
		lo = int(s[0]-'0') * 100
		return lo, lo + 99, nil
	}
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || n < 100 || n > 699 || fmt.Sprint(n) != s {
		return 0, 0, fmt.Errorf("%q is not a status code (e.g. 486) or class (e.g. 5xx)", s)
	}
	return n, n, nil
}

// Handle relays the request and ends the pipeline.
func (r *Relay) Handle(c *proxy.Context) proxy.Action {
	if len(c.Targets) > 0 { // set by lookup: fork by q unless told parallel
		o := r.opt
		o.ByQ = !o.Parallel
		c.RelayTargets(c.Targets, o)
		return proxy.Stop
	}
	var one [1]proxy.Dest
	dsts := r.to
	if c.Routed || len(dsts) == 0 {
		d, code, reason := proxy.NextHop(c)
		if code != 0 {
			c.Reply(code, reason)
			return proxy.Stop
		}
		one[0] = d
		dsts = one[:]
	}
	c.Relay(dsts, r.opt)
	return proxy.Stop
}

func init() {
	pipeline.Register(pipeline.Module{
		Name: "relay",
		Doc:  "forward statefully (transactions, retransmissions, CANCEL, serial or parallel forking, failover)",
		New: func(d pipeline.Decoder, _ *proxy.Server) (proxy.Handler, error) {
			var o Options
			if err := d.Decode(&o); err != nil {
				return nil, err
			}
			return New(o)
		},
	})
}
