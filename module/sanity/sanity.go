// Package sanity rejects requests a proxy must not route (RFC 3261 §16.3,
// §8.2): missing or malformed mandatory headers, a CSeq method that differs
// from the request method, an unsupported URI scheme, and Proxy-Require
// extensions this proxy does not support.
package sanity

import (
	"github.com/veloxsip/velox/pipeline"
	"github.com/veloxsip/velox/proxy"
	"github.com/veloxsip/velox/sip"
)

// Sanity is the check step.
type Sanity struct{}

// New returns the module.
func New() *Sanity { return &Sanity{} }

// Handle checks the request and answers 400, 416 or 420 when it fails.
func (Sanity) Handle(c *proxy.Context) proxy.Action {
	m := c.Msg
	if err := Check(m); err != nil {
		c.Reply(err.Code, err.Reason)
		return proxy.Stop
	}
	// §16.3 step 5: we support no extension a proxy must understand.
	if i := m.Index(sip.HdrProxyRequire, -1); i >= 0 {
		_, _, v := m.HeaderAt(i)
		t := append(m.Scratch(), "Unsupported: "...)
		t = append(t, v...)
		t = append(t, "\r\n"...)
		c.ReplyWith(420, "Bad Extension", t)
		return proxy.Stop
	}
	return proxy.Continue
}

// Check validates the headers every request must carry. It returns the
// error whose Code and Reason make the response.
func Check(m *sip.Message) *sip.Error {
	if _, err := m.TopVia(); err != nil {
		return asError(err)
	}
	if _, err := m.From(); err != nil {
		return asError(err)
	}
	if _, err := m.To(); err != nil {
		return asError(err)
	}
	if len(m.CallID()) == 0 {
		return sip.ErrCallID
	}
	_, meth, err := m.CSeq()
	if err != nil {
		return asError(err)
	}
	if string(meth) != string(m.MethodName()) {
		return sip.ErrCSeqMethod
	}
	if _, _, err := m.MaxForwards(); err != nil {
		return asError(err)
	}
	ru, err := m.RURI()
	if err != nil {
		return sip.ErrRequestURI
	}
	switch ru.Scheme {
	case sip.SchemeSIP, sip.SchemeSIPS, sip.SchemeTel:
	default:
		return sip.ErrUnsupportedScheme
	}
	if ru.Headers != nil {
		return errRURIHeaders // RFC 3261 §19.1.1: not allowed in a Request-URI
	}
	for _, id := range [...]sip.HeaderID{sip.HdrFrom, sip.HdrTo, sip.HdrCallID, sip.HdrCSeq, sip.HdrMaxForwards, sip.HdrContentLength} {
		if m.Count(id) > 1 {
			return sip.ErrDuplicateHeader
		}
	}
	return nil
}

var errRURIHeaders = &sip.Error{Code: 400, Reason: "Headers in Request-URI"}

func asError(err error) *sip.Error {
	if e, ok := err.(*sip.Error); ok {
		return e
	}
	return sip.ErrHeaderLine
}

func init() {
	pipeline.Register(pipeline.Module{
		Name: "sanity",
		Doc:  "reject malformed requests (400/416/420) before routing",
		New: func(d pipeline.Decoder, _ *proxy.Server) (proxy.Handler, error) {
			if err := d.Decode(&struct{}{}); err != nil {
				return nil, err
			}
			return New(), nil
		},
	})
}
