package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Stream transports (TCP, TLS, WS, WSS). Each connection has one goroutine
// that waits in Go's netpoller for its socket to become readable, holding
// no buffer. When it is, the goroutine borrows a handler worker from the
// fixed pool, reads into the worker's buffer and calls the worker's handler
// for each complete message in place; it keeps only the start of an
// incomplete message. Writes never block: a direct non-blocking write, else
// the connection's queue and a writer goroutine that lives while the queue
// is not empty. See README.md.

// StreamHandler handles the framed SIP messages of stream connections. Each
// worker has its own StreamHandler, so a handler may keep per-worker
// scratch state without locks.
//
// A StreamHandler that also implements UnreachableHandler hears about
// messages that could not be delivered: the connect failed or timed out,
// the connection failed with messages still queued, there is no connection
// for a WS or WSS destination, or a queue overflowed. It is called from a
// pool worker, never during a HandleStream of the same worker; err is a
// bare errno when there is one (syscall.ECONNREFUSED, ETIMEDOUT for a
// timeout, ECONNRESET, …), else ErrNoConnection, ErrQueueFull, ErrIdle,
// ErrConnClosed, ErrTooManyConns or a TLS error.
type StreamHandler interface {
	// HandleStream handles one message received from src. data aliases a
	// transport buffer and is valid only during the call (the handler may
	// modify it).
	HandleStream(data []byte, src netip.AddrPort, out *StreamOut)
}

// Stream errors.
var (
	// ErrNoConnection: a WS or WSS destination without a connection (they
	// cannot be opened from this side).
	ErrNoConnection = errors.New("transport: no connection to the destination")
	// ErrTooManyConns: MaxConns connections are open.
	ErrTooManyConns = errors.New("transport: connection limit reached")
	// ErrQueueFull: the connection's queue passed MaxQueue; it was closed.
	ErrQueueFull = errors.New("transport: connection queue full")
	// ErrIdle: the connection was closed for idleness with messages queued.
	ErrIdle = errors.New("transport: connection idle")
	// ErrConnClosed: the connection closed before the message was sent.
	ErrConnClosed = errors.New("transport: connection closed")
	// ErrNotStream: the transport is not a stream transport.
	ErrNotStream = errors.New("transport: not a stream transport")

	errShutdown   = errors.New("transport: streams closed")
	errWouldBlock = wouldBlock{}
)

// wouldBlock is returned by a connection's non-blocking socket reads under
// crypto/tls; it is a temporary net.Error, which tls.Conn passes on
// without failing the connection.
type wouldBlock struct{}

func (wouldBlock) Error() string   { return "transport: would block" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

// Stream defaults.
const (
	DefaultMaxConns       = 100000
	DefaultIdleTimeout    = 10 * time.Minute
	DefaultMaxMessage     = 65535
	DefaultConnectTimeout = 5 * time.Second
	DefaultMaxQueue       = 1 << 20
)

// yieldReads is how many reads a connection makes with a borrowed worker
// before giving it back, so that one busy connection cannot keep a worker.
const yieldReads = 16

// StreamsOptions configures a Streams.
type StreamsOptions struct {
	Workers        int           // handler workers (messages handled at once); 0: runtime.NumCPU()
	MaxConns       int           // open connections, all transports; 0: DefaultMaxConns; beyond it new ones are refused
	IdleTimeout    time.Duration // connections that receive nothing for longer are closed; 0: DefaultIdleTimeout
	MaxMessage     int           // largest message; 0: DefaultMaxMessage; a larger one closes the connection
	ConnectTimeout time.Duration // outbound connect and any handshake; 0: DefaultConnectTimeout
	MaxQueue       int           // bytes queued for one connection; 0: DefaultMaxQueue; beyond it the connection is closed
	// TLSClient configures outbound TLS connections. nil: TLS 1.2 or
	// later, the server certificate verified against the system roots for
	// the destination's IP address (a certificate with that IP in its
	// subject alternative names). If its ServerName is empty, the
	// destination IP is used. Set RootCAs, ServerName or Certificates
	// (client certificates) here.
	TLSClient *tls.Config
}

// StreamConfig configures one stream listener.
type StreamConfig struct {
	Proto   Proto // TCP, TLS, WS or WSS
	Addr    netip.AddrPort
	TLS     *TLSFiles // TLS and WSS
	Origins []string  // WS and WSS: allowed Origin values; empty: any
}

// StreamStats are the counters of a Streams.
type StreamStats struct {
	Accepted          uint64 // inbound connections accepted (within MaxConns)
	Connected         uint64 // outbound connections established (TLS: handshake done)
	Refused           uint64 // connections refused at MaxConns (inbound: accepted and closed; outbound: not opened)
	ConnectFailures   uint64 // outbound connects or their TLS handshakes that failed
	HandshakeFailures uint64 // inbound TLS handshakes and WebSocket upgrades that failed or were rejected
	AcceptErrors      uint64 // failed accepts (e.g. out of file descriptors)
	Closed            uint64 // connections closed, for any reason
	IdleClosed        uint64 // of which for idleness
	FramingErrors     uint64 // malformed or oversized messages and WebSocket protocol errors (connection closed)
	QueueOverflows    uint64 // connections closed because their queue passed MaxQueue
	MessagesIn        uint64
	MessagesOut       uint64
	BytesIn           uint64           // message bytes received (without TLS or WebSocket framing)
	BytesOut          uint64           // message bytes sent
	Queued            uint64           // sends that went (at least partly) through a connection's queue
	KeepAlives        uint64           // CRLFCRLF pings answered with a CRLF pong (RFC 5626)
	WSPings           uint64           // WebSocket pings sent to idle connections
	Unreachable       uint64           // messages reported to HandleUnreachable
	ReportsDropped    uint64           // undeliverable messages not reported (report queue full)
	Open              int64            // connections open now, including connecting and handshaking ones
	OpenBy            [numProtos]int64 // Open per transport, indexed by Proto
}

type streamCounters struct {
	accepted, connected, refused, connectFailures, handshakeFailures, acceptErrors atomic.Uint64
	closed, idleClosed, framingErrors, queueOverflows, queued, keepAlives          atomic.Uint64
	wsPings, unreachable, reportsDropped, msgsOut, bytesOut                        atomic.Uint64
}

// Streams is the connection table shared by every stream listener of a
// server, plus the fixed pool of handler workers.
type Streams struct {
	opt     StreamsOptions
	workers chan *streamWorker
	all     []*streamWorker
	table   connTable
	st      streamCounters
	open    atomic.Int64
	openBy  [numProtos]atomic.Int64

	mu        sync.Mutex // listeners, started
	listeners []*StreamListener
	started   bool

	closed  atomic.Bool
	done    chan struct{}
	ctx     context.Context // cancelled by Close: stops dials
	cancel  context.CancelFunc
	reports chan report
	wg      sync.WaitGroup
	frames  sync.Pool // *frameBuf for WebSocket frames sent outside workers
}

// NewStreams makes the connection table and the handler workers;
// newHandler is called once per worker. Listen adds listeners; Start runs
// them.
func NewStreams(opt StreamsOptions, newHandler func(worker int) StreamHandler) *Streams {
	if opt.Workers <= 0 {
		opt.Workers = runtime.NumCPU()
	}
	if opt.MaxConns <= 0 {
		opt.MaxConns = DefaultMaxConns
	}
	if opt.IdleTimeout <= 0 {
		opt.IdleTimeout = DefaultIdleTimeout
	}
	if opt.MaxMessage <= 0 {
		opt.MaxMessage = DefaultMaxMessage
	}
	if opt.ConnectTimeout <= 0 {
		opt.ConnectTimeout = DefaultConnectTimeout
	}
	if opt.MaxQueue <= 0 {
		opt.MaxQueue = DefaultMaxQueue
	}
	s := &Streams{
		opt:     opt,
		workers: make(chan *streamWorker, opt.Workers),
		done:    make(chan struct{}),
		reports: make(chan report, 1024),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.table.init()
	for i := 0; i < opt.Workers; i++ {
		w := newStreamWorker(s, i, newHandler(i))
		s.all = append(s.all, w)
		s.workers <- w
	}
	s.frames.New = func() any { return &frameBuf{b: make([]byte, 0, 512)} }
	return s
}

// Start runs the listeners (and any added later) and the idle reaper.
func (s *Streams) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed.Load() {
		return
	}
	s.started = true
	s.wg.Add(1)
	go s.reaper()
	for _, l := range s.listeners {
		s.wg.Add(1)
		go l.acceptLoop()
	}
}

// Close closes the listeners and every connection and waits for all the
// goroutines of the Streams to end.
func (s *Streams) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.done)
	s.cancel()
	s.mu.Lock()
	for _, l := range s.listeners {
		l.ln.Close()
	}
	s.mu.Unlock()
	// No connection is added from now on (insert checks closed under the
	// shard lock), so this finds every one.
	var conns []*conn
	s.table.each(func(c *conn) { conns = append(conns, c) })
	for _, c := range conns {
		c.close(errShutdown)
	}
	s.wg.Wait()
	return nil
}

// Stats returns the counters.
func (s *Streams) Stats() StreamStats {
	st := StreamStats{
		Accepted:          s.st.accepted.Load(),
		Connected:         s.st.connected.Load(),
		Refused:           s.st.refused.Load(),
		ConnectFailures:   s.st.connectFailures.Load(),
		HandshakeFailures: s.st.handshakeFailures.Load(),
		AcceptErrors:      s.st.acceptErrors.Load(),
		Closed:            s.st.closed.Load(),
		IdleClosed:        s.st.idleClosed.Load(),
		FramingErrors:     s.st.framingErrors.Load(),
		QueueOverflows:    s.st.queueOverflows.Load(),
		MessagesOut:       s.st.msgsOut.Load(),
		BytesOut:          s.st.bytesOut.Load(),
		Queued:            s.st.queued.Load(),
		KeepAlives:        s.st.keepAlives.Load(),
		WSPings:           s.st.wsPings.Load(),
		Unreachable:       s.st.unreachable.Load(),
		ReportsDropped:    s.st.reportsDropped.Load(),
		Open:              s.open.Load(),
	}
	for _, w := range s.all {
		st.MessagesIn += w.msgsIn.Load()
		st.BytesIn += w.bytesIn.Load()
		st.MessagesOut += w.msgsOut.Load()
		st.BytesOut += w.bytesOut.Load()
	}
	for p := range st.OpenBy {
		st.OpenBy[p] = s.openBy[p].Load()
	}
	return st
}

// WriteTo sends b (copied as needed; never blocks the caller) to dst over
// proto: over an existing connection to dst (accepted from dst, opened to
// dst, or registered as an alias of dst); else, for TCP and TLS, over a new
// connection opened in the background (b is queued until it is up; if the
// connect fails, an UnreachableHandler hears about b). For WS and WSS
// without a connection it returns ErrNoConnection. Safe for concurrent use.
func (s *Streams) WriteTo(proto Proto, b []byte, dst netip.AddrPort) error {
	return s.writeTo(proto, b, dst, nil)
}

// writeTo sends b from worker w (nil: from outside the workers).
func (s *Streams) writeTo(proto Proto, b []byte, dst netip.AddrPort, w *streamWorker) error {
	if !proto.Reliable() {
		return ErrNotStream
	}
	if len(b) == 0 {
		return nil
	}
	dst = unmapAddrPort(dst)
	for try := 0; ; try++ {
		c, queued, err := s.connFor(proto, dst, b)
		if err != nil {
			return err
		}
		if queued {
			s.countOut(w, len(b))
			return nil
		}
		err = c.send(b, w)
		if err == ErrConnClosed && try == 0 {
			continue // it closed meanwhile: look again (TCP and TLS open a new one)
		}
		if err == nil {
			s.countOut(w, len(b))
		}
		return err
	}
}

func (s *Streams) countOut(w *streamWorker, n int) {
	if w != nil {
		w.msgsOut.Add(1)
		w.bytesOut.Add(uint64(n))
		return
	}
	s.st.msgsOut.Add(1)
	s.st.bytesOut.Add(uint64(n))
}

// connFor returns the connection for dst. If there is none, it opens one
// (TCP, TLS) with b queued on it (queued: b needs no sending) before the
// dial starts, so that even a dial failing at once reports b.
func (s *Streams) connFor(proto Proto, dst netip.AddrPort, b []byte) (c *conn, queued bool, err error) {
	k := connKey{proto, dst}
	sh := s.table.shardOf(k)
	sh.mu.Lock()
	c = sh.m[k]
	if c != nil && c.state.Load() != stClosed {
		sh.mu.Unlock()
		return c, false, nil
	}
	switch {
	case proto.isWS():
		err = ErrNoConnection
	case s.closed.Load():
		err = errShutdown
	case len(b) > s.opt.MaxQueue:
		err = ErrQueueFull
	case !s.reserve(proto):
		err = ErrTooManyConns
	}
	if err != nil {
		sh.mu.Unlock()
		return nil, false, err
	}
	c = s.newConn(proto, dst, s.localFor(proto, dst), nil)
	c.pend.add(b, 0, true)
	sh.link(c)
	s.wg.Add(1)
	sh.mu.Unlock()
	go c.dialAndServe()
	return c, true, nil
}

// reserve counts a new connection against MaxConns.
func (s *Streams) reserve(proto Proto) bool {
	if s.open.Add(1) > int64(s.opt.MaxConns) {
		s.open.Add(-1)
		s.st.refused.Add(1)
		return false
	}
	s.openBy[proto].Add(1)
	return true
}

// localFor returns the address of a listener of proto in dst's family, the
// local address of connections opened to dst (none: the socket's own).
func (s *Streams) localFor(proto Proto, dst netip.AddrPort) netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listeners {
		if l.cfg.Proto == proto && l.local.Addr().Is4() == dst.Addr().Is4() {
			return l.local
		}
	}
	return netip.AddrPort{}
}

// Alias makes the connection whose remote address is conn also reachable
// as alias (RFC 5923 Via ;alias: the proxy calls it with the Via sent-by).
// An alias does not replace a live connection to alias itself; it goes
// away with its connection.
func (s *Streams) Alias(proto Proto, conn, alias netip.AddrPort) {
	conn, alias = unmapAddrPort(conn), unmapAddrPort(alias)
	if conn == alias {
		return
	}
	c := s.table.get(connKey{proto, conn})
	if c == nil {
		return
	}
	k := connKey{proto, alias}
	sh := s.table.shardOf(k)
	sh.mu.Lock()
	old := sh.m[k]
	if old == c || old != nil && old.key == alias && old.state.Load() != stClosed {
		sh.mu.Unlock()
		return
	}
	sh.m[k] = c
	sh.mu.Unlock()
	c.wmu.Lock()
	closed := c.state.Load() == stClosed
	if !closed {
		c.aliases = append(c.aliases, alias)
	}
	c.wmu.Unlock()
	if closed {
		s.table.deleteIf(k, c)
	}
}

// report is a batch of undeliverable messages for the UnreachableHandler.
type report struct {
	q   msgQueue // the messages (from: the first to report)
	dst netip.AddrPort
	err error
}

// report passes undeliverable messages to the reaper, which hands them to
// a worker's UnreachableHandler. It never blocks.
func (s *Streams) report(q msgQueue, dst netip.AddrPort, err error) {
	if len(q.marks) == 0 {
		return
	}
	select {
	case s.reports <- report{q, dst, err}:
	default:
		s.st.reportsDropped.Add(uint64(len(q.marks)))
	}
}

// reportOne reports one message (copied).
func (s *Streams) reportOne(b []byte, dst netip.AddrPort, err error) {
	var q msgQueue
	q.add(b, 0, true)
	s.report(q, dst, err)
}

// deliverReport calls a worker's UnreachableHandler for each message.
func (s *Streams) deliverReport(r report) {
	if s.all[0].uh == nil {
		return
	}
	var w *streamWorker
	select {
	case w = <-s.workers:
	case <-s.done:
		return
	}
	err := reportError(r.err)
	r.q.each(func(payload []byte) {
		s.st.unreachable.Add(1)
		w.uh.HandleUnreachable(payload, r.dst, err)
	})
	s.workers <- w
}

// reportError is the error HandleUnreachable hears: like the UDP
// listener's, the bare errno of a socket error (syscall.ECONNREFUSED,
// EHOSTUNREACH, ECONNRESET, …), syscall.ETIMEDOUT for a connect or
// handshake that timed out, else the error itself (ErrNoConnection,
// ErrQueueFull, a certificate error, …).
func reportError(err error) error {
	if e := errnoOf(err); e != 0 {
		return e
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return syscall.ETIMEDOUT
	}
	return err
}

// reaper closes idle connections, pings idle WebSocket connections and
// delivers unreachable reports.
func (s *Streams) reaper() {
	defer s.wg.Done()
	every := s.opt.IdleTimeout / 4
	every = min(max(every, 10*time.Millisecond), 5*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	var idle, ping []*conn
	for {
		select {
		case <-s.done:
			return
		case r := <-s.reports:
			s.deliverReport(r)
		case <-t.C:
			idle, ping = s.scanIdle(idle[:0], ping[:0])
			for _, c := range idle {
				if c.close(ErrIdle) {
					s.st.idleClosed.Add(1)
				}
			}
			for _, c := range ping {
				if c.writeWire(wsPingFrame) == nil {
					s.st.wsPings.Add(1)
				}
			}
			clear(idle)
			clear(ping)
		}
	}
}

// scanIdle finds the open connections that received nothing for
// IdleTimeout (to close) and the WebSocket ones silent for half of it (to
// ping once).
func (s *Streams) scanIdle(idle, ping []*conn) ([]*conn, []*conn) {
	now := nanotime()
	limit := int64(s.opt.IdleTimeout)
	s.table.each(func(c *conn) {
		if c.state.Load() != stOpen {
			return
		}
		age := now - c.lastRead.Load()
		switch {
		case age > limit:
			idle = append(idle, c)
		case c.proto.isWS() && age > limit/2 && !c.pinged.Load():
			c.pinged.Store(true)
			ping = append(ping, c)
		}
	})
	return idle, ping
}

// streamWorker is one of the fixed pool of handler workers: its handler
// and buffers. A connection's goroutine borrows it to read and handle.
type streamWorker struct {
	s     *Streams
	h     StreamHandler
	uh    UnreachableHandler // h, if it implements it
	rbuf  []byte             // read buffer: the start of an incomplete message, then what was read
	out   StreamOut
	frame frameBuf     // WebSocket frames sent by this worker
	hdr   bytes.Reader // WebSocket frame headers are read from it

	msgsIn, bytesIn, msgsOut, bytesOut atomic.Uint64
	_                                  [64]byte
}

func newStreamWorker(s *Streams, id int, h StreamHandler) *streamWorker {
	w := &streamWorker{s: s, h: h,
		rbuf: make([]byte, 2*s.opt.MaxMessage+64),
	}
	w.uh, _ = h.(UnreachableHandler)
	w.out.w = w
	w.out.buf = make([]byte, 0, s.opt.MaxMessage)
	w.frame.b = make([]byte, 0, s.opt.MaxMessage+16)
	return w
}

// StreamOut is a handler worker's sender, valid during HandleStream.
type StreamOut struct {
	w     *streamWorker
	c     *conn // the connection of the message being handled
	src   netip.AddrPort
	local netip.AddrPort
	proto Proto
	buf   []byte
}

// Buffer returns an empty slice with room for one message, the worker's
// scratch: append a message to it and pass it to Send. Every call returns
// the same memory; Send copies, so build and send one message at a time.
func (o *StreamOut) Buffer() []byte { return o.buf[:0] }

// Send sends b to dst: to src of the message being handled over that same
// connection, else like WriteTo(o.Proto(), b, dst). It never blocks; a
// message that cannot be sent is reported to HandleUnreachable later, from
// a pool worker.
func (o *StreamOut) Send(b []byte, dst netip.AddrPort) {
	if len(b) == 0 {
		return
	}
	s := o.w.s
	var err error
	if o.c != nil && (dst == o.src || unmapAddrPort(dst) == o.src) {
		if err = o.c.send(b, o.w); err == nil {
			s.countOut(o.w, len(b))
		}
	} else {
		err = s.writeTo(o.proto, b, dst, o.w)
	}
	if err != nil {
		s.reportOne(b, dst, err)
	}
}

// Local returns the address of the listener the message arrived on (for a
// connection this side opened: a listener of the same transport and
// family, if any, else the connection's own local address).
func (o *StreamOut) Local() netip.AddrPort { return o.local }

// Proto returns the transport of the message being handled.
func (o *StreamOut) Proto() Proto { return o.proto }

// Connection states.
const (
	stConnecting int32 = iota // dialing or handshaking: sends are queued in pend
	stOpen
	stClosed
)

// conn is one stream connection.
type conn struct {
	s      *Streams
	proto  Proto
	key    netip.AddrPort // remote address
	local  netip.AddrPort // see StreamOut.Local
	ln     *StreamListener
	tcp    *net.TCPConn
	tls    *tls.Conn
	rc     syscall.RawConn
	readFn func(uintptr) bool // readReady, bound once
	peekFn func(uintptr) bool // peekReady
	nbFn   func(uintptr) bool // readNow
	wrFn   func(uintptr) bool // writeNow

	state    atomic.Int32
	lastRead atomic.Int64 // nanotime of the last read
	pinged   atomic.Bool  // a WebSocket ping was sent since the last read

	// table (under the shard lock)
	prev, next *conn
	linked     bool

	// reader goroutine only
	rw      *streamWorker // borrowed worker
	have    int           // bytes in rw.rbuf
	rest    []byte        // start of an incomplete message while no worker is held
	scan    int           // frameSIP's search hint
	reads   int           // reads since the worker was borrowed
	rn      int
	rerr    error
	rp      []byte // tls.Conn's buffer for readNow
	nbRead  bool   // tls.Conn reads through readNow (after the handshake)
	tlsWait bool   // tls.Conn needs more from the socket: wait until it is readable
	frag    []byte // WebSocket: fragments of a message
	fragOp  byte
	peek    [1]byte

	// write side, under wmu
	wmu        sync.Mutex
	writing    bool     // a writer goroutine owns the socket's write side
	q          msgQueue // bytes waiting for the writer
	qlen       int      // bytes in q and in the writer's hands
	pend       msgQueue // messages sent while connecting
	aliases    []netip.AddrPort
	drainClose bool  // close when the queue is written (after a WebSocket close)
	closeErr   error // why it closed
	wb         []byte
	wn         int
	werr       error
}

func (s *Streams) newConn(proto Proto, key, local netip.AddrPort, l *StreamListener) *conn {
	c := &conn{s: s, proto: proto, key: key, local: local, ln: l}
	c.lastRead.Store(nanotime())
	return c
}

// setSocket attaches the connected socket.
func (c *conn) setSocket(tc *net.TCPConn) error {
	rc, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	c.tcp, c.rc = tc, rc
	c.wrFn = c.writeNow
	if c.proto.Secure() {
		c.peekFn = c.peekReady
		c.nbFn = c.readNow
	} else {
		c.readFn = c.readReady
	}
	if !c.local.IsValid() {
		if a, ok := tc.LocalAddr().(*net.TCPAddr); ok {
			c.local = unmapAddrPort(a.AddrPort())
		}
	}
	return nil
}

// close closes the connection once, removes it from the table and reports
// the messages still queued unless the Streams is closing. It reports
// whether this call closed it.
func (c *conn) close(reason error) bool {
	c.wmu.Lock()
	if c.state.Load() == stClosed {
		c.wmu.Unlock()
		return false
	}
	c.state.Store(stClosed)
	c.closeErr = reason
	q, pend, aliases, tc := c.q, c.pend, c.aliases, c.tcp
	c.q, c.pend, c.aliases, c.qlen = msgQueue{}, msgQueue{}, nil, 0
	c.wmu.Unlock()

	s := c.s
	k := connKey{c.proto, c.key}
	sh := s.table.shardOf(k)
	sh.mu.Lock()
	sh.unlink(c)
	sh.mu.Unlock()
	for _, a := range aliases {
		s.table.deleteIf(connKey{c.proto, a}, c)
	}
	if tc != nil {
		tc.Close()
	}
	s.open.Add(-1)
	s.openBy[c.proto].Add(-1)
	s.st.closed.Add(1)
	if reason != errShutdown {
		if reason == nil {
			reason = ErrConnClosed
		}
		s.report(pend, c.key, reason)
		s.report(q, c.key, reason)
	}
	return true
}

// send sends one message on the connection (queued while connecting).
func (c *conn) send(b []byte, w *streamWorker) error {
	if c.state.Load() == stConnecting {
		c.wmu.Lock()
		switch c.state.Load() {
		case stConnecting:
			if len(c.pend.b)+len(b) > c.s.opt.MaxQueue {
				c.wmu.Unlock()
				c.overflow()
				return ErrQueueFull
			}
			c.pend.add(b, 0, true)
			c.wmu.Unlock()
			return nil
		case stClosed:
			c.wmu.Unlock()
			return ErrConnClosed
		}
		c.wmu.Unlock()
	}
	return c.sendOpen(b, w)
}

// sendOpen frames b for the transport and writes it.
func (c *conn) sendOpen(b []byte, w *streamWorker) error {
	switch c.proto {
	case TCP:
		return c.rawWrite(b, 0, true)
	case TLS:
		return c.tlsWrite(b)
	}
	// WS, WSS: one text frame.
	var fb *frameBuf
	if w != nil {
		fb = &w.frame
	} else {
		fb = c.s.frames.Get().(*frameBuf)
		defer c.s.frames.Put(fb)
	}
	hl := fb.text(b)
	if c.proto == WS {
		return c.rawWrite(fb.b, hl, true)
	}
	return c.tlsWrite(fb.b)
}

// writeWire writes bytes already framed for the transport (a pong, a
// WebSocket control frame, a handshake response).
func (c *conn) writeWire(b []byte) error {
	if c.tls != nil {
		return c.tlsWrite(b)
	}
	return c.rawWrite(b, 0, false)
}

func (c *conn) tlsWrite(b []byte) error {
	_, err := c.tls.Write(b)
	if err != nil && c.state.Load() == stClosed {
		return ErrConnClosed
	}
	return err
}

// rawWrite writes b on the socket without blocking: directly if nothing is
// queued, else (or for what the socket did not take) through the queue
// and the writer goroutine. whole marks b as one message (with its payload
// at b[payload:]) that can be reported if the connection fails before it
// leaves.
func (c *conn) rawWrite(b []byte, payload int, whole bool) error {
	c.wmu.Lock()
	if c.state.Load() == stClosed || c.drainClose {
		c.wmu.Unlock()
		return ErrConnClosed
	}
	if !c.writing {
		c.wb, c.wn, c.werr = b, 0, nil
		if err := c.rc.Write(c.wrFn); err != nil {
			c.werr = err
		}
		n, err := c.wn, c.werr
		c.wb = nil
		if err != nil {
			c.wmu.Unlock()
			c.close(err)
			return err
		}
		if n == len(b) {
			c.wmu.Unlock()
			return nil
		}
		if n > 0 {
			b, whole = b[n:], false
		}
	}
	if c.qlen+len(b) > c.s.opt.MaxQueue {
		c.wmu.Unlock()
		c.overflow()
		return ErrQueueFull
	}
	c.q.add(b, payload, whole)
	c.qlen += len(b)
	if !c.writing {
		c.writing = true
		c.s.wg.Add(1)
		go c.writeLoop()
	}
	c.wmu.Unlock()
	c.s.st.queued.Add(1)
	return nil
}

func (c *conn) overflow() {
	if c.close(ErrQueueFull) {
		c.s.st.queueOverflows.Add(1)
	}
}

// writeNow is the direct write, run by rc.Write under wmu: it writes what
// the socket takes and never waits.
func (c *conn) writeNow(fd uintptr) bool {
	for c.wn < len(c.wb) {
		n, err := rawWrite(fd, c.wb[c.wn:])
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			c.werr = err
			break
		}
		c.wn += n
	}
	return true
}

// writeLoop writes the queue until it is empty, waiting for the socket in
// the netpoller.
func (c *conn) writeLoop() {
	defer c.s.wg.Done()
	var spare []byte
	for {
		c.wmu.Lock()
		if c.state.Load() == stClosed || len(c.q.b) == 0 {
			c.writing = false
			drain := c.drainClose && c.state.Load() != stClosed
			c.q = msgQueue{} // an idle connection keeps no write buffer
			c.wmu.Unlock()
			if drain {
				c.close(nil)
			}
			return
		}
		batch := c.q
		c.q = msgQueue{b: spare}
		c.wmu.Unlock()
		n, err := c.tcp.Write(batch.b)
		c.wmu.Lock()
		c.qlen -= len(batch.b)
		c.wmu.Unlock()
		if err != nil {
			// Failed, or closed meanwhile (for whatever reason): the
			// messages that did not leave are reported with the reason.
			c.close(err)
			c.wmu.Lock()
			c.writing = false
			reason := c.closeErr
			c.wmu.Unlock()
			if reason != errShutdown {
				if reason == nil {
					reason = ErrConnClosed
				}
				batch.from = n
				c.s.report(batch, c.key, reason)
			}
			return
		}
		spare = batch.b[:0]
	}
}

// closeWhenWritten closes the connection once its queue is written;
// nothing more is sent on it.
func (c *conn) closeWhenWritten() {
	c.wmu.Lock()
	if c.writing {
		c.drainClose = true
		c.wmu.Unlock()
		return
	}
	c.wmu.Unlock()
	c.close(nil)
}

// flushPending opens the connection for direct sends after sending what
// was queued while connecting.
func (c *conn) flushPending() error {
	for {
		c.wmu.Lock()
		switch {
		case c.state.Load() == stClosed:
			c.wmu.Unlock()
			return ErrConnClosed
		case len(c.pend.marks) == 0:
			c.pend = msgQueue{}
			c.state.Store(stOpen)
			c.wmu.Unlock()
			return nil
		}
		p := c.pend
		c.pend = msgQueue{}
		c.wmu.Unlock()
		for i := range p.marks {
			if err := c.sendOpen(p.msg(i), nil); err != nil {
				p.from = int(p.marks[i].start)
				c.s.report(p, c.key, err)
				return err
			}
		}
	}
}

// dialAndServe opens an outbound connection, then serves it.
func (c *conn) dialAndServe() {
	defer c.s.wg.Done()
	err := c.dial()
	if err != nil {
		c.s.st.connectFailures.Add(1)
		c.close(err)
		return
	}
	c.s.st.connected.Add(1)
	c.run()
}

func (c *conn) dial() error {
	s := c.s
	var laddr netip.AddrPort
	if a := c.local.Addr(); a.IsValid() && !a.IsUnspecified() && a.Is4() == c.key.Addr().Is4() {
		laddr = netip.AddrPortFrom(a, 0)
	}
	d := net.Dialer{Timeout: s.opt.ConnectTimeout}
	tc, err := d.DialTCP(s.ctx, "tcp", laddr, c.key)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	if c.state.Load() == stClosed {
		c.wmu.Unlock()
		tc.Close()
		return ErrConnClosed
	}
	err = c.setSocket(tc)
	c.wmu.Unlock()
	if err != nil {
		tc.Close()
		return err
	}
	if c.proto == TLS {
		return c.handshakeTLS(tls.Client((*netSock)(c), s.clientTLS(c.key)))
	}
	return nil
}

// serveAccepted runs an accepted connection: handshakes, then reads.
func (c *conn) serveAccepted() {
	defer c.s.wg.Done()
	var err error
	if c.proto.Secure() {
		err = c.handshakeTLS(tls.Server((*netSock)(c), c.ln.tlsConfig()))
	}
	if err == nil && c.proto.isWS() {
		err = c.upgradeWS()
	}
	if err != nil {
		c.s.st.handshakeFailures.Add(1)
		c.closeWhenWritten()
		return
	}
	c.run()
}

// run sends what was queued while connecting and reads until the
// connection fails or closes.
func (c *conn) run() {
	err := c.flushPending()
	if err == nil {
		err = c.readLoop()
	}
	c.release()
	c.frag = nil
	if err == errDrainClose {
		c.closeWhenWritten()
		return
	}
	if err == io.EOF {
		err = nil
	}
	c.close(err)
}

// errDrainClose ends the read loop of a connection to be closed once its
// queue is written (a WebSocket close).
var errDrainClose = errors.New("transport: closing")

// handshakeTLS runs the TLS handshake with the ConnectTimeout deadline.
func (c *conn) handshakeTLS(tc *tls.Conn) error {
	c.tcp.SetReadDeadline(time.Now().Add(c.s.opt.ConnectTimeout))
	err := tc.Handshake()
	c.tcp.SetReadDeadline(time.Time{})
	c.tls = tc // before state is stOpen, so senders see it
	return err
}

// readLoop reads and handles messages until an error or EOF.
func (c *conn) readLoop() error {
	c.nbRead = c.tls != nil
	if len(c.rest) > 0 {
		// Bytes that came with the WebSocket upgrade request.
		c.acquire()
		if err := c.process(); err != nil {
			return err
		}
	}
	for {
		n, err := c.read()
		if n > 0 {
			c.lastRead.Store(nanotime())
			c.pinged.Store(false)
			c.have += n
			if perr := c.process(); perr != nil {
				return perr
			}
			if c.reads++; c.reads >= yieldReads {
				c.release()
			}
		}
		if err != nil {
			return err
		}
	}
}

// process handles what the worker's buffer holds.
func (c *conn) process() error {
	if c.proto.isWS() {
		return c.processWS()
	}
	return c.processSIP()
}

// read waits until the socket is readable, borrows a worker if it holds
// none, and reads into its buffer after c.have bytes.
func (c *conn) read() (int, error) {
	if c.tls == nil {
		c.rn, c.rerr = 0, nil
		if err := c.rc.Read(c.readFn); err != nil {
			return 0, err
		}
		return c.rn, c.rerr
	}
	// tls.Conn may hold complete records it read from the socket (with
	// the end of the handshake, or before a yield): wait for the socket
	// only after it said it needs more.
	for {
		if c.tlsWait {
			if err := c.rc.Read(c.peekFn); err != nil {
				return 0, err
			}
			c.tlsWait = false
		}
		if c.rw == nil {
			c.acquire()
		}
		if c.have == len(c.rw.rbuf) {
			return 0, errTooLarge
		}
		n, err := c.tls.Read(c.rw.rbuf[c.have:])
		if err == errWouldBlock {
			c.release()
			c.tlsWait = true
			continue
		}
		return n, err
	}
}

// readReady is the read of a plain connection, run by rc.Read whenever
// the socket may be readable: it borrows a worker, reads, and gives the
// worker back (returning false: wait) if there was nothing to read.
func (c *conn) readReady(fd uintptr) bool {
	if c.rw == nil {
		c.acquire()
	}
	buf := c.rw.rbuf[c.have:]
	if len(buf) == 0 {
		c.rerr = errTooLarge
		return true
	}
	for {
		n, err := rawRead(fd, buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			c.release()
			return false
		case err != nil:
			c.rerr = err
		case n == 0:
			c.rerr = io.EOF
		default:
			c.rn = n
		}
		return true
	}
}

// peekReady reports whether a TLS connection's socket is readable (data,
// EOF or an error), without reading.
func (c *conn) peekReady(fd uintptr) bool {
	for {
		_, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&c.peek[0])), 1,
			unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EINTR {
			continue
		}
		return e != unix.EAGAIN
	}
}

// readNow is tls.Conn's socket read after the handshake: it never waits.
func (c *conn) readNow(fd uintptr) bool {
	for {
		n, err := rawRead(fd, c.rp)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			c.rerr = errWouldBlock
		case err != nil:
			c.rerr = err
		case n == 0:
			c.rerr = io.EOF
		default:
			c.rn = n
		}
		return true
	}
}

// acquire borrows a worker and moves the kept start of an incomplete
// message into its buffer.
func (c *conn) acquire() {
	w := <-c.s.workers
	c.rw = w
	c.have = copy(w.rbuf, c.rest)
	c.rest = c.rest[:0]
	c.reads = 0
}

// release gives the worker back, keeping the start of an incomplete
// message (an idle connection between messages keeps no buffer).
func (c *conn) release() {
	w := c.rw
	if w == nil {
		return
	}
	if c.have > 0 {
		c.rest = append(c.rest[:0], w.rbuf[:c.have]...)
	} else {
		c.rest = nil
	}
	c.have = 0
	c.rw = nil
	c.s.workers <- w
}

var crlf = []byte("\r\n")

// processSIP handles the complete messages and pings in the worker's
// buffer and moves what is left to its start.
func (c *conn) processSIP() error {
	w := c.rw
	buf := w.rbuf[:c.have]
	max := c.s.opt.MaxMessage
	off := 0
	defer func() {
		if off > 0 {
			c.have = copy(w.rbuf, buf[off:])
		}
	}()
	for {
		kind, n, err := frameSIP(buf[off:], max, &c.scan)
		switch kind {
		case frameMore:
			return nil
		case frameSkip:
			off += n
		case framePing:
			off += n
			c.s.st.keepAlives.Add(1)
			c.writeWire(crlf)
		case frameMessage:
			c.deliver(w, buf[off:off+n])
			off += n
		default:
			c.s.st.framingErrors.Add(1)
			return err
		}
		if c.state.Load() == stClosed {
			return ErrConnClosed
		}
	}
}

// deliver calls the worker's handler for one message.
func (c *conn) deliver(w *streamWorker, msg []byte) {
	w.msgsIn.Add(1)
	w.bytesIn.Add(uint64(len(msg)))
	o := &w.out
	o.c, o.src, o.local, o.proto = c, c.key, c.local, c.proto
	w.h.HandleStream(msg, c.key, o)
	o.c = nil
}

// netSock is a connection seen as the net.Conn under its tls.Conn: writes
// never block (they go through rawWrite), and reads after the handshake
// return errWouldBlock instead of waiting.
type netSock conn

func (n *netSock) Read(p []byte) (int, error) {
	c := (*conn)(n)
	if !c.nbRead {
		return c.tcp.Read(p)
	}
	c.rp, c.rn, c.rerr = p, 0, nil
	err := c.rc.Read(c.nbFn)
	c.rp = nil
	if err != nil {
		return 0, err
	}
	return c.rn, c.rerr
}

func (n *netSock) Write(p []byte) (int, error) {
	if err := (*conn)(n).rawWrite(p, 0, false); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (n *netSock) Close() error {
	(*conn)(n).close(net.ErrClosed)
	return nil
}

func (n *netSock) LocalAddr() net.Addr                { return n.tcp.LocalAddr() }
func (n *netSock) RemoteAddr() net.Addr               { return n.tcp.RemoteAddr() }
func (n *netSock) SetDeadline(t time.Time) error      { return n.tcp.SetReadDeadline(t) }
func (n *netSock) SetReadDeadline(t time.Time) error  { return n.tcp.SetReadDeadline(t) }
func (n *netSock) SetWriteDeadline(t time.Time) error { return nil }

// msgQueue is bytes to write with the positions of the whole messages in
// them, so that the messages can be reported if they never leave.
type msgQueue struct {
	b     []byte
	marks []qmark
	from  int // report only messages starting at or after from
}

type qmark struct {
	start, payload int32 // frame start, message start
}

// add appends b; whole marks it as a message with its payload at
// b[payload:].
func (q *msgQueue) add(b []byte, payload int, whole bool) {
	if whole {
		q.marks = append(q.marks, qmark{int32(len(q.b)), int32(len(q.b) + payload)})
	}
	q.b = append(q.b, b...)
}

// msg returns the i-th marked message with its framing.
func (q *msgQueue) msg(i int) []byte {
	end := len(q.b)
	if i+1 < len(q.marks) {
		end = int(q.marks[i+1].start)
	}
	return q.b[q.marks[i].start:end]
}

// each calls f with the payload of every marked message from q.from.
func (q *msgQueue) each(f func([]byte)) {
	for i, m := range q.marks {
		if int(m.start) < q.from {
			continue
		}
		end := len(q.b)
		if i+1 < len(q.marks) {
			end = int(q.marks[i+1].start)
		}
		f(q.b[m.payload:end])
	}
}

// unmapAddrPort turns an IPv4-mapped IPv6 address into IPv4.
func unmapAddrPort(ap netip.AddrPort) netip.AddrPort {
	if ap.Addr().Is4In6() {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return ap
}

// StreamListener is a bound stream listening socket.
type StreamListener struct {
	s       *Streams
	cfg     StreamConfig
	ln      *net.TCPListener
	local   netip.AddrPort
	tlsCfg  atomic.Pointer[tls.Config]
	origins []string
}

// Listen binds a listener; it accepts connections once the Streams is
// started.
func (s *Streams) Listen(cfg StreamConfig) (*StreamListener, error) {
	if !cfg.Proto.Reliable() {
		return nil, fmt.Errorf("transport: listen %s: %w", cfg.Proto, ErrNotStream)
	}
	l := &StreamListener{s: s, cfg: cfg, origins: cfg.Origins}
	if cfg.Proto.Secure() {
		if cfg.TLS == nil {
			return nil, fmt.Errorf("transport: listen %s %s: no TLS certificate", cfg.Proto, cfg.Addr)
		}
		if err := l.ReloadTLS(); err != nil {
			return nil, err
		}
	}
	addr := unmapAddrPort(cfg.Addr)
	network := "tcp4"
	if addr.Addr().Is6() {
		network = "tcp6" // IPv6 only, like the UDP listener
	}
	ln, err := net.ListenTCP(network, net.TCPAddrFromAddrPort(addr))
	if err != nil {
		return nil, fmt.Errorf("transport: listen %s %s: %w", cfg.Proto, cfg.Addr, err)
	}
	l.ln = ln
	l.local = unmapAddrPort(ln.Addr().(*net.TCPAddr).AddrPort())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		ln.Close()
		return nil, errShutdown
	}
	s.listeners = append(s.listeners, l)
	if s.started {
		s.wg.Add(1)
		go l.acceptLoop()
	}
	return l, nil
}

// LocalAddr returns the bound address (with the port the OS chose for port 0).
func (l *StreamListener) LocalAddr() netip.AddrPort { return l.local }

// Proto returns the listener's transport.
func (l *StreamListener) Proto() Proto { return l.cfg.Proto }

func (l *StreamListener) acceptLoop() {
	s := l.s
	defer s.wg.Done()
	var delay time.Duration
	for {
		tc, err := l.ln.AcceptTCP()
		if err != nil {
			if s.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or memory: wait a little.
			s.st.acceptErrors.Add(1)
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(delay):
			case <-s.done:
				return
			}
			continue
		}
		delay = 0
		l.accept(tc)
	}
}

// accept registers and starts an accepted connection.
func (l *StreamListener) accept(tc *net.TCPConn) {
	s := l.s
	ra, ok := tc.RemoteAddr().(*net.TCPAddr)
	if !ok || !s.reserve(l.cfg.Proto) {
		tc.Close()
		return
	}
	c := s.newConn(l.cfg.Proto, unmapAddrPort(ra.AddrPort()), l.local, l)
	if err := c.setSocket(tc); err != nil {
		tc.Close()
		s.open.Add(-1)
		s.openBy[c.proto].Add(-1)
		return
	}
	sh := s.table.shardOf(connKey{c.proto, c.key})
	sh.mu.Lock()
	if s.closed.Load() {
		sh.mu.Unlock()
		tc.Close()
		s.open.Add(-1)
		s.openBy[c.proto].Add(-1)
		return
	}
	sh.link(c)
	s.wg.Add(1)
	sh.mu.Unlock()
	s.st.accepted.Add(1)
	go c.serveAccepted()
}

// rawRead and rawWrite are read(2) and write(2) on a non-blocking socket
// made without telling the scheduler (RawSyscall): they never wait, so the
// goroutine keeps its P. Through Syscall, the runtime's monitor may take
// the P from a write that delivers to a loopback peer and then polls every
// 20 µs for a millisecond, which cost a fifth of the CPU of a TCP relay.
func rawRead(fd uintptr, p []byte) (int, error) { return rawIO(unix.SYS_READ, fd, p) }

func rawWrite(fd uintptr, p []byte) (int, error) { return rawIO(unix.SYS_WRITE, fd, p) }

func rawIO(trap, fd uintptr, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
