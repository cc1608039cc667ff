// Package looseroute processes the Route header of a request (RFC 3261
// §16.4, §16.6 steps 6–7, §16.12): it removes the Route entry that names
// this proxy, repairs requests that a strict router sent with our
// Record-Route in the Request-URI, and sets the next hop from the Route set.
package looseroute

import (
	"github.com/veloxsip/velox/pipeline"
	"github.com/veloxsip/velox/proxy"
	"github.com/veloxsip/velox/sip"
)

// LooseRoute is the loose-route step. After it, ctx.Routed tells whether a
// Route header decided the next hop (ctx.NextHop); the forward step then
// sends there instead of its own destination.
type LooseRoute struct{}

// New returns the module.
func New() *LooseRoute { return &LooseRoute{} }

// Handle processes the Route header.
func (LooseRoute) Handle(c *proxy.Context) proxy.Action {
	m := c.Msg
	self := c.Server().Identity()
	ru, err := m.RURI()
	if err != nil {
		c.Reply(400, "Malformed Request-URI")
		return proxy.Stop
	}
	it := m.NameAddrs(sip.HdrRoute)
	var top sip.NameAddr
	ok, err := it.Next(&top)
	if err != nil {
		c.Reply(400, "Malformed Route header")
		return proxy.Stop
	}
	if !ok {
		return proxy.Continue
	}
	// §16.4: a strict router put our Record-Route into the Request-URI and
	// the remote target into the last Route value: swap them back.
	if self.IsSelfURI(ru) && (ru.LR() || len(ru.User) == 0) {
		return strictFixup(c, top, it)
	}
	c.Routed = true
	if !self.IsSelfURI(&top.URI) {
		// Pre-loaded route to another hop.
		return nextHop(c, &top, it.Line(), it.Rest(), nil)
	}
	line, rest := it.Line(), it.Rest()
	var next sip.NameAddr
	ok, err = it.Next(&next)
	if err != nil {
		c.Reply(400, "Malformed Route header")
		return proxy.Stop
	}
	if ok && isR2(&top.URI) && self.IsSelfURI(&next.URI) {
		return doubleRoute(c, ru, line, rest, it)
	}
	m.RemoveFirstValue(line, rest)
	if !ok {
		// We were the last Route: the Request-URI is the target.
		c.NextHop = *ru
		return proxy.Continue
	}
	var removed []byte
	if it.Line() == line {
		removed = top.Raw // same line: its first value is gone already
	}
	return nextHop(c, &next, it.Line(), it.Rest(), removed)
}

// isR2 reports a Route entry with r2=on: one of a pair of Record-Routes a
// proxy put in when the request changed transport or interface there.
func isR2(u *sip.URI) bool {
	v, ok := u.Param("r2")
	return ok && string(v) == "on"
}

// doubleRoute removes the two Route entries of this server (RFC 5658
// double Record-Route) — the first on line, the second the iterator's
// current one — and takes the next hop from what follows.
func doubleRoute(c *proxy.Context, ru *sip.URI, line int, rest []byte, it sip.NameAddrIter) proxy.Action {
	m := c.Msg
	line2, rest2 := it.Line(), it.Rest()
	if line2 == line {
		m.RemoveFirstValue(line, rest2) // both values of one line
	} else {
		m.RemoveFirstValue(line, rest)
		m.RemoveFirstValue(line2, rest2)
	}
	var next sip.NameAddr
	ok, err := it.Next(&next)
	if err != nil {
		c.Reply(400, "Malformed Route header")
		return proxy.Stop
	}
	if !ok {
		c.NextHop = *ru
		return proxy.Continue
	}
	if it.Line() == line2 {
		// A strict router right after our pair on the same line is
		// treated as loose: rewriting that line again would overlap.
		c.NextHop = next.URI
		return proxy.Continue
	}
	return nextHop(c, &next, it.Line(), it.Rest(), nil)
}

// nextHop makes the Route value na the next hop. When it names a strict
// router (no ;lr), §16.6 step 6 applies: the Request-URI moves to the end of
// the Route set and na becomes the Request-URI.
func nextHop(c *proxy.Context, na *sip.NameAddr, line int, rest, removedBefore []byte) proxy.Action {
	c.NextHop = na.URI
	if na.URI.LR() {
		return proxy.Continue
	}
	m := c.Msg
	t := append(m.Scratch(), "Route: <"...)
	t = append(t, m.RequestURI()...)
	t = append(t, ">\r\n"...)
	m.AppendHeader(t)
	m.SetRequestURI(na.URI.Raw)
	switch {
	case removedBefore == nil:
		m.RemoveFirstValue(line, rest)
	case len(rest) == 0:
		m.RemoveHeader(line) // both values of this line are gone
	default:
		m.RemoveAfter(removedBefore, na.Raw)
	}
	return proxy.Continue
}

// strictFixup replaces the Request-URI by the last Route value and removes
// that value (§16.4).
func strictFixup(c *proxy.Context, top sip.NameAddr, it sip.NameAddrIter) proxy.Action {
	m := c.Msg
	last, prev := top, sip.NameAddr{}
	lastLine, lastFirst := it.Line(), true
	count := 1
	var na sip.NameAddr
	for {
		ok, err := it.Next(&na)
		if err != nil {
			c.Reply(400, "Malformed Route header")
			return proxy.Stop
		}
		if !ok {
			break
		}
		count++
		prev = last
		last = na
		lastFirst = it.Line() != lastLine
		lastLine = it.Line()
	}
	m.SetRequestURI(last.URI.Raw)
	if lastFirst {
		m.RemoveHeader(lastLine)
	} else {
		m.RemoveAfter(prev.Raw, last.Raw)
	}
	c.Routed = true
	if count == 1 {
		c.NextHop = last.URI
		return proxy.Continue
	}
	// The first Route value is now the next hop.
	c.NextHop = top.URI
	return proxy.Continue
}

func init() {
	pipeline.Register(pipeline.Module{
		Name: "loose-route",
		Doc:  "follow the Route header (in-dialog and pre-routed requests)",
		New: func(d pipeline.Decoder, _ *proxy.Server) (proxy.Handler, error) {
			if err := d.Decode(&struct{}{}); err != nil {
				return nil, err
			}
			return New(), nil
		},
	})
}
