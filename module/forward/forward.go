// Package forward sends a request on statelessly (RFC 3261 §16.11) to the
// next hop a Route header chose, a fixed destination, or the Request-URI.
package forward

import (
	"fmt"

	"github.com/veloxsip/velox/pipeline"
	"github.com/veloxsip/velox/proxy"
)

// Options configure the module.
type Options struct {
	// To is a fixed destination: "host[:port]" (UDP, port 5060 when
	// absent), "tcp:host[:port]" (also udp, tls, ws, wss) or a SIP URI.
	// Empty: the Request-URI decides.
	To string `yaml:"to"`
}

// Forward is the stateless forward step. It always ends the pipeline.
type Forward struct {
	to    proxy.Dest
	fixed bool
}

// New returns the module; a host name in To is resolved once here.
func New(o Options) (*Forward, error) {
	f := &Forward{}
	if o.To == "" {
		return f, nil
	}
	to, err := proxy.ParseDest(o.To)
	if err != nil {
		return nil, fmt.Errorf("forward: %v", err)
	}
	f.to, f.fixed = to, true
	return f, nil
}

// Handle forwards the request.
func (f *Forward) Handle(c *proxy.Context) proxy.Action {
	if len(c.Targets) > 0 { // set by lookup: statelessly, only the first
		t := &c.Targets[0]
		if len(t.URI) > 0 {
			c.Msg.SetRequestURI(t.URI)
		}
		if len(t.Route) > 0 {
			c.Msg.InsertHeaderFirst(t.Route)
		}
		c.Forward(proxy.Dest{Addr: t.Addr, Proto: t.Proto})
		return proxy.Stop
	}
	dst := f.to
	if !f.fixed || c.Routed {
		d, code, reason := proxy.NextHop(c)
		if code != 0 {
			c.Reply(code, reason)
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
