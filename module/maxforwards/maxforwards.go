// Package maxforwards checks and limits the Max-Forwards header (RFC 3261
// §16.3 step 3, §16.6 step 3).
package maxforwards

import (
	"fmt"

	"github.com/veloxsip/velox/pipeline"
	"github.com/veloxsip/velox/proxy"
)

// Options configure the module.
type Options struct {
	// Max caps the value forwarded and is the value used when the header
	// is missing (default 70).
	Max int `yaml:"max"`
}

// MaxForwards answers 483 Too Many Hops to a request whose Max-Forwards is
// 0 and 400 to a malformed value. The
// forwarder then decrements it, capped at Max.
type MaxForwards struct{ max int }

// New returns the module.
func New(o Options) (*MaxForwards, error) {
	if o.Max == 0 {
		o.Max = 70
	}
	if o.Max < 1 || o.Max > 255 {
		return nil, fmt.Errorf("max-forwards: max %d is outside 1..255", o.Max)
	}
	return &MaxForwards{max: o.Max}, nil
}

// Handle checks the header.
func (f *MaxForwards) Handle(c *proxy.Context) proxy.Action {
	n, present, err := c.Msg.MaxForwards()
	switch {
	case err != nil:
		c.Reply(400, "Malformed Max-Forwards")
		return proxy.Stop
	case present && n == 0:
		c.Reply(483, "Too Many Hops")
		return proxy.Stop
	}
	c.MaxForwardsLimit = f.max
	return proxy.Continue
}

func init() {
	pipeline.Register(pipeline.Module{
		Name: "max-forwards",
		Doc:  "reject requests whose Max-Forwards reached 0 (483) and cap the value",
		New: func(d pipeline.Decoder, _ *proxy.Server) (proxy.Handler, error) {
			var o Options
			if err := d.Decode(&o); err != nil {
				return nil, err
			}
			return New(o)
		},
	})
}
