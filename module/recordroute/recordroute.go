// Package recordroute keeps this proxy on the path of the dialog a request
// creates by adding a Record-Route header (RFC 3261 §16.6 step 4).
package recordroute

import (
	"github.com/veloxsip/velox/pipeline"
	"github.com/veloxsip/velox/proxy"
	"github.com/veloxsip/velox/sip"
)

// Options configure the module.
type Options struct {
	// All adds Record-Route to every request, not only to those that can
	// create a dialog.
	All bool `yaml:"all"`
}

// RecordRoute asks the forwarder to add "Record-Route: <sip:us;lr>".
type RecordRoute struct{ all bool }

// New returns the module.
func New(o Options) *RecordRoute { return &RecordRoute{all: o.All} }

// Handle marks the request. By default only requests outside a dialog that
// can create one (INVITE, SUBSCRIBE, REFER, NOTIFY) are record-routed.
func (r *RecordRoute) Handle(c *proxy.Context) proxy.Action {
	if r.all {
		c.RecordRoute = true
		return proxy.Continue
	}
	switch c.Msg.Method() {
	case sip.INVITE, sip.SUBSCRIBE, sip.REFER, sip.NOTIFY:
		if !c.Msg.InDialog() {
			c.RecordRoute = true
		}
	}
	return proxy.Continue
}

func init() {
	pipeline.Register(pipeline.Module{
		Name: "record-route",
		Doc:  "add Record-Route so in-dialog requests come through this proxy",
		New: func(d pipeline.Decoder, _ *proxy.Server) (proxy.Handler, error) {
			var o Options
			if err := d.Decode(&o); err != nil {
				return nil, err
			}
			return New(o), nil
		},
	})
}
