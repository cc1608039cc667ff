// Package proxy carries a SIP message through the routing pipeline: the
// per-request Context that modules act on, the worker that receives,
// routes and sends, and the stateless forwarding rules of RFC 3261 §16.11.
package proxy

import (
	"net/netip"

	"github.com/veloxsip/velox/sip"
	"github.com/veloxsip/velox/transport"
)

// Sender is where a worker queues outgoing datagrams: transport.Out, or a
// recorder in tests.
type Sender interface {
	// Buffer returns an empty slice with room for one datagram.
	Buffer() []byte
	// Send queues b, normally built in Buffer, for dst.
	Send(b []byte, dst netip.AddrPort)
	// Local is the address of the listener the worker serves.
	Local() netip.AddrPort
	// Proto is that listener's transport.
	Proto() transport.Proto
}

// Action tells the pipeline what to do after a step.
type Action uint8

const (
	// Continue runs the next step.
	Continue Action = iota
	// Stop ends the pipeline: the step has replied, forwarded or dropped
	// the request.
	Stop
)

// Handler is one routing step (a module instance). Handle must not block
// and should not allocate.
type Handler interface {
	Handle(ctx *Context) Action
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx *Context) Action

// Handle calls f(ctx).
func (f HandlerFunc) Handle(ctx *Context) Action { return f(ctx) }

// Condition decides whether a step runs for a request.
type Condition interface {
	Eval(ctx *Context) bool
}

// Step is a pipeline entry: a handler and the condition that guards it.
type Step struct {
	Name    string    // module name, for logs and metrics
	If      Condition // nil: always
	Handler Handler
}

// Pipeline is the ordered request route, built once at load.
type Pipeline []Step

// Context is the request being routed and what the steps decided so far.
// One Context per worker is reused for every message.
type Context struct {
	Msg   *sip.Message
	Src   netip.AddrPort  // where the request came from
	Local netip.AddrPort  // the listener it arrived on
	Proto transport.Proto // that listener's transport

	srv *Server
	out Sender
	st  *WorkerStats
	li  *listenerInfo // the listener it arrived on

	// Routed is set by loose routing when a Route header decided the next
	// hop (an in-dialog or pre-routed request); NextHop is then that hop.
	Routed  bool
	NextHop sip.URI

	// MaxForwardsLimit, when > 0, caps Max-Forwards and is the value set
	// when the header is missing (default 70).
	MaxForwardsLimit int

	// RecordRoute asks the forwarder to add a Record-Route for this proxy.
	RecordRoute bool

	// Done is set once the request was replied to, forwarded or dropped.
	Done bool

	// FailureCode is, in the failure pipeline, the best final status the
	// branches ended with (408 when none answered).
	FailureCode int

	w    *Worker  // nil in timer and failure contexts
	cell *cell    // the transaction, in the failure pipeline
	sc   *scratch // building space when w is nil

	keyBuf  [256]byte // the server transaction key, see txKey
	keyLen  int
	keyHash uint64

	// Targets, when a step set them (lookup), are where relay and forward
	// send the request instead of their own destinations.
	Targets   []Target
	targetArr [maxDests]Target
	textBuf   [4096]byte
	textUsed  int
}

// AddTarget appends a destination to Targets; false when full.
func (c *Context) AddTarget(t Target) bool {
	if len(c.Targets) == len(c.targetArr) {
		return false
	}
	if c.Targets == nil {
		c.Targets = c.targetArr[:0]
	}
	c.Targets = append(c.Targets, t)
	return true
}

// TargetText returns an empty slice with room for n bytes that stays
// valid until the request is done: where a step builds the URI or Route
// text of a Target. nil when the request's space is used up.
func (c *Context) TargetText(n int) []byte {
	if c.textUsed+n > len(c.textBuf) {
		return nil
	}
	b := c.textBuf[c.textUsed : c.textUsed : c.textUsed+n]
	c.textUsed += n
	return b
}

func (c *Context) reset(m *sip.Message, src netip.AddrPort, out Sender) {
	c.Msg, c.Src, c.out = m, src, out
	c.Local, c.Proto = out.Local(), out.Proto()
	c.li = c.srv.self.listener(c.Proto, c.Local)
	c.Routed, c.RecordRoute, c.Done = false, false, false
	c.MaxForwardsLimit, c.FailureCode = 0, 0
	c.NextHop = sip.URI{}
	c.cell = nil
	c.keyLen = 0
	c.Targets, c.textUsed = nil, 0
}

// Server returns the server the request is routed by.
func (c *Context) Server() *Server { return c.srv }
