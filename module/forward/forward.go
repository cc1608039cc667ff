// Package forward sends a request on statelessly (RFC 3261 §16.11) to the
// next hop a Route header chose, a fixed destination, or the Request-URI.
package forward

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/veloxsip/velox/pipeline"
	"github.com/veloxsip/velox/proxy"
)

// Options configure the module.
type Options struct {
	// To is a fixed destination, "host[:port]" (port 5060 when absent).
	// Empty: the Request-URI decides.
	To string `yaml:"to"`
}

// Forward is the stateless forward step. It always ends the pipeline.
type Forward struct {
	to    netip.AddrPort
	fixed bool
}

// New returns the module; a host name in To is resolved once here.
func New(o Options) (*Forward, error) {
	f := &Forward{}
	if o.To == "" {
		return f, nil
	}
	host, port := o.To, "5060"
	if h, p, err := net.SplitHostPort(o.To); err == nil {
		host, port = h, p
	}
	n, err := strconv.Atoi(port)
	if err != nil || n <= 0 || n > 65535 {
		return nil, fmt.Errorf("forward: bad port in %q", o.To)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		ips, lerr := net.LookupIP(host)
		if lerr != nil || len(ips) == 0 {
			return nil, fmt.Errorf("forward: cannot resolve %q: %v", host, lerr)
		}
		a, _ = netip.AddrFromSlice(ips[0])
	}
	f.to, f.fixed = netip.AddrPortFrom(a.Unmap(), uint16(n)), true
	return f, nil
}

// Handle forwards the request.
func (f *Forward) Handle(c *proxy.Context) proxy.Action {
	var dst netip.AddrPort
	switch {
	case c.Routed:
		d, err := c.Server().URIDest(&c.NextHop)
		if err != nil {
			c.Reply(503, "Next Hop Unresolvable")
			return proxy.Stop
		}
		dst = d
	case f.fixed:
		dst = f.to
	default:
		ru, err := c.Msg.RURI()
		if err != nil {
			c.Reply(400, "Malformed Request-URI")
			return proxy.Stop
		}
		if c.Server().Identity().IsSelfURI(ru) {
			c.Reply(404, "Not Found")
			return proxy.Stop
		}
		d, err := c.Server().URIDest(ru)
		if err != nil {
			c.Reply(503, "Destination Unresolvable")
			return proxy.Stop
		}
		dst = d
	}
	c.Forward(dst)
	return proxy.Stop
}

func init() {
	pipeline.Register(pipeline.Module{
		Name: "forward",
		Doc:  "forward statelessly to the Route next hop, a fixed destination or the Request-URI",
		New: func(d pipeline.Decoder, _ *proxy.Server) (proxy.Handler, error) {
			var o Options
			if err := d.Decode(&o); err != nil {
				return nil, err
			}
			return New(o)
		},
	})
}
