package proxy

import (
	"hash/maphash"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/veloxsip/velox/sip"
	"github.com/veloxsip/velox/transport"
)

// Server is the routing core shared by every worker of every listener. Its
// pipeline can be swapped while workers run (configuration reload).
type Server struct {
	pipeline atomic.Pointer[Pipeline]
	self     Identity
	seed     maphash.Seed
	resolver *Resolver
	log      *slog.Logger

	mu      sync.Mutex // guards workers
	workers []*WorkerStats

	tm      *txTable
	failure atomic.Pointer[Pipeline]

	sharedMu    sync.Mutex
	shared      map[string]any
	sharedOrder []string
}

// Options configure a Server.
type Options struct {
	// Logger receives warnings and errors; nil uses slog.Default().
	Logger *slog.Logger
	// Aliases are extra host names (or host:port) the server answers to.
	Aliases []string
	// Stateful configures the transaction layer used by Relay.
	Stateful StatefulOptions
}

// NewServer returns a server running pipeline p.
func NewServer(p Pipeline, opt Options) *Server {
	s := &Server{seed: maphash.MakeSeed(), resolver: NewResolver(), log: opt.Logger}
	s.tm = newTxTable(s, opt.Stateful)
	if s.log == nil {
		s.log = slog.Default()
	}
	for _, a := range opt.Aliases {
		s.self.AddAlias(a)
	}
	s.SetPipeline(p)
	return s
}

// SetPipeline replaces the request pipeline; workers pick it up with the
// next message.
func (s *Server) SetPipeline(p Pipeline) { s.pipeline.Store(&p) }

// SetFailurePipeline sets the steps run when a stateful relay ends without
// a 2xx and without a destination left to try (Kamailio's failure_route).
// Its steps may Relay again to add branches to the same transaction.
func (s *Server) SetFailurePipeline(p Pipeline) { s.failure.Store(&p) }

// AddConn registers how to send from the listener of proto bound to local
// outside a worker's batch (timers, messages that change listener or
// transport). Call it after AddListener and before Start.
func (s *Server) AddConn(proto transport.Proto, local netip.AddrPort, c Conn) {
	if li := s.self.listener(proto, local); li.local == local && li.proto == proto {
		li.conn = c
	}
}

// Start runs the timer workers of the transaction layer.
func (s *Server) Start() { s.tm.start() }

// Close stops the timer workers and closes the shared objects that have
// a Close method (in the reverse order of their creation).
func (s *Server) Close() {
	s.tm.close()
	s.sharedMu.Lock()
	defer s.sharedMu.Unlock()
	for i := len(s.sharedOrder) - 1; i >= 0; i-- {
		if c, ok := s.shared[s.sharedOrder[i]].(interface{ Close() error }); ok {
			if err := c.Close(); err != nil {
				s.log.Error("proxy: closing shared object", "name", s.sharedOrder[i], "err", err)
			}
		}
	}
	s.shared, s.sharedOrder = nil, nil
}

// Shared returns the server-wide object registered under name, made by
// mk the first time. Modules that work on the same data — a registrar and
// a lookup on one location table — share it this way; it outlives
// pipeline reloads and is closed by Close.
//
// mk runs without the lock held, so it may itself ask for other shared
// objects (which are then closed after it).
func (s *Server) Shared(name string, mk func() (any, error)) (any, error) {
	s.sharedMu.Lock()
	v, ok := s.shared[name]
	s.sharedMu.Unlock()
	if ok {
		return v, nil
	}
	v, err := mk()
	if err != nil {
		return nil, err
	}
	s.sharedMu.Lock()
	defer s.sharedMu.Unlock()
	if old, ok := s.shared[name]; ok { // made meanwhile by another caller
		if c, ok := v.(interface{ Close() error }); ok {
			c.Close()
		}
		return old, nil
	}
	if s.shared == nil {
		s.shared = map[string]any{}
	}
	s.shared[name] = v
	s.sharedOrder = append(s.sharedOrder, name)
	return v, nil
}

// Identity returns the addresses the server considers its own.
func (s *Server) Identity() *Identity { return &s.self }

// AddListener records a listening address (and the host:port advertised for
// it, "" for the address itself) as the server's own.
func (s *Server) AddListener(proto transport.Proto, local netip.AddrPort, advertise string) {
	s.self.AddListener(proto, local, advertise)
}

// NewWorker returns the packet handler of one transport worker.
func (s *Server) NewWorker(int) transport.Handler {
	w := &Worker{srv: s, st: new(WorkerStats), sc: newScratch()}
	w.ctx.srv, w.ctx.st, w.ctx.w = s, w.st, w
	s.mu.Lock()
	s.workers = append(s.workers, w.st)
	s.mu.Unlock()
	return w
}

// Stats sums the counters of all workers.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t Stats
	for _, w := range s.workers {
		t.add(w)
	}
	for _, tw := range s.tm.timerWorkers {
		t.add(&tw.st)
	}
	t.add(&s.tm.failStats)
	return t
}

// Worker carries each message of one transport worker from parse to send.
// It holds the reusable message and context, so it handles one packet at a
// time and is never shared.
type Worker struct {
	srv *Server
	msg sip.Message
	sc  scratch // the transaction layer's building space
	ctx Context
	st  *WorkerStats
}

// NewStreamWorker returns a handler worker of the stream transports.
func (s *Server) NewStreamWorker(i int) transport.StreamHandler {
	return s.NewWorker(i).(*Worker)
}

// HandleStream parses and routes one message of a stream connection.
func (w *Worker) HandleStream(data []byte, src netip.AddrPort, out *transport.StreamOut) {
	w.Handle(data, src, out)
}

// HandlePacket parses and routes one datagram.
func (w *Worker) HandlePacket(data []byte, src netip.AddrPort, out *transport.Out) {
	w.Handle(data, src, out)
}

// Handle is HandlePacket for any Sender.
func (w *Worker) Handle(data []byte, src netip.AddrPort, out Sender) {
	defer w.recover(src)
	m := &w.msg
	err := m.Parse(data)
	m.Src = src
	if err != nil {
		w.malformed(err, src, out)
		return
	}
	if p := out.Proto(); p == transport.WS || p == transport.WSS {
		aliasContact(m, src, p)
	}
	if m.IsRequest() {
		w.st.Requests.Add(1)
		w.request(src, out)
		return
	}
	w.st.Responses.Add(1)
	if top, err := m.TopVia(); err == nil && len(top.Branch) == statefulBranchLen &&
		w.srv.self.IsSelf(top.Host, top.Port, false) && w.response(&w.ctx, m, top, out) {
		return
	}
	w.srv.forwardResponse(&w.ctx, m, out)
}

// HandleUnreachable fails the stateful branch a refused datagram was sent
// for (transport.UnreachableHandler).
func (w *Worker) HandleUnreachable(payload []byte, dst netip.AddrPort, err error) {
	defer w.recover(dst)
	// The transports report only failures: an ICMP unreachable error over
	// UDP; over a stream a refused or timed-out connect or handshake, a
	// connection lost or closed with the message queued, no connection to
	// a WebSocket destination.
	if err != nil && w.srv.unreachable(payload, dst, nil, &w.sc, w.st) {
		w.st.Unreachable.Add(1)
	}
}

// recover keeps a bug triggered by one message from taking the server
// down: the message is dropped, counted and logged.
func (w *Worker) recover(src netip.AddrPort) {
	if r := recover(); r != nil {
		w.st.Panics.Add(1)
		w.srv.log.Error("proxy: panic while handling a message; dropped", "src", src.String(), "panic", r)
	}
}

// malformed answers a broken request with the error's status when a
// response can be routed back, and otherwise drops it.
func (w *Worker) malformed(err error, src netip.AddrPort, out Sender) {
	m := &w.msg
	w.st.Malformed.Add(1)
	if !m.IsRequest() || m.Method() == sip.ACK || m.Index(sip.HdrVia, -1) < 0 {
		return
	}
	w.ctx.reset(m, src, out)
	e, ok := err.(*sip.Error)
	if !ok {
		e = sip.ErrHeaderLine
	}
	w.ctx.Reply(e.Code, e.Reason)
}

func (w *Worker) request(src netip.AddrPort, out Sender) {
	c := &w.ctx
	c.reset(&w.msg, src, out)
	top, err := c.Msg.TopVia()
	if err != nil {
		w.st.Malformed.Add(1)
		if c.Msg.Method() != sip.ACK {
			c.Reply(400, "Malformed Via header") // goes to the source address
		}
		return
	}
	if c.Proto == transport.TCP {
		c.connAlias(top)
	}
	if w.absorb(c) {
		return
	}
	p := *w.srv.pipeline.Load()
	for i := range p {
		st := &p[i]
		if st.If != nil && !st.If.Eval(c) {
			continue
		}
		if st.Handler.Handle(c) == Stop || c.Done {
			return
		}
	}
	w.st.Unrouted.Add(1)
}

// Aliaser is a Conn whose connections can be reached under another
// address (RFC 5923).
type Aliaser interface {
	Alias(conn, alias netip.AddrPort)
}

// connAlias honours ";alias" on the Via of a request that came over TCP
// (RFC 5923): requests to its sent-by address reuse this connection. Over
// TLS the sender's certificate would have to be checked against the
// sent-by host first, so TLS connections are not aliased.
func (c *Context) connAlias(top *sip.Via) {
	if _, ok := sip.ParamValue(top.Params, "alias"); !ok {
		return
	}
	a, isIP := ParseIP(top.Host)
	if !isIP || a.Unmap() != c.Src.Addr().Unmap() {
		return // only an address of the sender itself
	}
	port := top.Port
	if port == 0 {
		port = 5060
	}
	if al, ok := c.li.conn.(Aliaser); ok {
		al.Alias(c.Src, netip.AddrPortFrom(a, port))
	}
}

// WorkerStats are one worker's counters.
type WorkerStats struct {
	Requests, Responses atomic.Uint64
	Forwarded           atomic.Uint64
	ResponsesForwarded  atomic.Uint64
	Replied             atomic.Uint64
	Malformed           atomic.Uint64
	Dropped             atomic.Uint64
	Unrouted            atomic.Uint64
	SendErrors          atomic.Uint64
	Panics              atomic.Uint64
	Transactions        atomic.Uint64 // stateful transactions created
	Released            atomic.Uint64 // stateful transactions ended
	Entombed            atomic.Uint64 // cells that became tombs (tomb.go)
	Buried              atomic.Uint64 // tombs ended
	Retransmissions     atomic.Uint64 // request retransmissions absorbed
	Retransmitted       atomic.Uint64 // requests we retransmitted (timers A, E)
	Timeouts            atomic.Uint64 // branches that timed out
	Unreachable         atomic.Uint64 // branches failed by an ICMP error
	_                   [64]byte      // keep workers' counters off each other's cache lines
}

// Stats are counters summed over all workers.
type Stats struct {
	Requests, Responses, Forwarded, ResponsesForwarded, Replied, Malformed, Dropped, Unrouted, SendErrors, Panics uint64
	Transactions, Released, Entombed, Buried, Retransmissions, Retransmitted, Timeouts, Unreachable               uint64
}

func (t *Stats) add(w *WorkerStats) {
	t.Requests += w.Requests.Load()
	t.Responses += w.Responses.Load()
	t.Forwarded += w.Forwarded.Load()
	t.ResponsesForwarded += w.ResponsesForwarded.Load()
	t.Replied += w.Replied.Load()
	t.Malformed += w.Malformed.Load()
	t.Dropped += w.Dropped.Load()
	t.Unrouted += w.Unrouted.Load()
	t.SendErrors += w.SendErrors.Load()
	t.Panics += w.Panics.Load()
	t.Transactions += w.Transactions.Load()
	t.Released += w.Released.Load()
	t.Entombed += w.Entombed.Load()
	t.Buried += w.Buried.Load()
	t.Retransmissions += w.Retransmissions.Load()
	t.Retransmitted += w.Retransmitted.Load()
	t.Timeouts += w.Timeouts.Load()
	t.Unreachable += w.Unreachable.Load()
}

// Server returns the server the worker belongs to.
func (w *Worker) Server() *Server { return w.srv }
