// Package reply answers a request with a fixed status code and reason.
package reply

import (
	"fmt"

	"github.com/veloxsip/velox/pipeline"
	"github.com/veloxsip/velox/proxy"
	"github.com/veloxsip/velox/sip"
)

// Options configure a reply step.
type Options struct {
	Code   int    `yaml:"code"`
	Reason string `yaml:"reason"`
}

// Reply answers every request it sees with a fixed response.
type Reply struct {
	code   int
	reason string
}

// New returns a reply step; an empty reason takes the standard phrase.
func New(o Options) (*Reply, error) {
	if o.Code < 200 || o.Code > 699 {
		return nil, fmt.Errorf("reply: code %d is not a final status (200-699)", o.Code)
	}
	if o.Reason == "" {
		o.Reason = sip.StatusText(o.Code)
	}
	return &Reply{code: o.Code, reason: o.Reason}, nil
}

// Handle sends the response and ends the pipeline.
func (r *Reply) Handle(c *proxy.Context) proxy.Action {
	c.Reply(r.code, r.reason)
	return proxy.Stop
}

func init() {
	pipeline.Register(pipeline.Module{
		Name: "reply",
		Doc:  "answer with a fixed status code and reason",
		New: func(d pipeline.Decoder, _ *proxy.Server) (proxy.Handler, error) {
			var o Options
			if err := d.Decode(&o); err != nil {
				return nil, err
			}
			return New(o)
		},
	})
}
