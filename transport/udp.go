// Package transport receives and sends SIP messages. A UDP listener owns one
// socket served by a static pool of workers (Kamailio's socket_workers):
// every worker reads the same socket, so the kernel hands each datagram to
// whichever worker is free and traffic from one peer spreads over all of
// them. A worker carries each datagram from read to send with no hand-off.
package transport

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MaxDatagram is the largest UDP payload.
const MaxDatagram = 65535

// Handler processes received datagrams. Each worker has its own Handler, so
// a Handler may keep per-worker scratch state without locks.
//
// A Handler that also implements UnreachableHandler hears about datagrams
// the network refused (unreachable.go).
type Handler interface {
	// HandlePacket handles one datagram. data aliases the worker's receive
	// buffer and is valid only during the call (the handler may modify it).
	HandlePacket(data []byte, src netip.AddrPort, out *Out)
}

// UDPConfig configures a UDP listener.
type UDPConfig struct {
	Addr       netip.AddrPort
	Workers    int // receiving workers; 0: 1, or runtime.NumCPU() when Unordered
	RecvBuffer int // SO_RCVBUF bytes; 0: DefaultRecvBuffer; negative: OS default
	SendBuffer int // SO_SNDBUF bytes; 0: OS default
	Batch      int // datagrams per recvmmsg/sendmmsg; 0: DefaultBatch
	// Linger is how long a worker waits after a short batch before reading
	// again, so that the next read returns more datagrams per wake-up.
	// 0: DefaultLinger; negative: never wait.
	Linger time.Duration
	// TurnSlice is how long an ordered worker keeps the turn before passing
	// it on (0: DefaultTurnSlice).
	TurnSlice time.Duration
	// Mode selects the I/O path: ModeBatch (default) or ModePlain.
	Mode string
	// Unordered lets several workers handle batches at the same time.
	// By default they take turns, so that messages leave in arrival order.
	Unordered bool
}

// Defaults chosen by measurement (transport/README.md).
// I/O modes.
const (
	// ModeBatch: recvmmsg/sendmmsg on a non-blocking socket, waiting in
	// the netpoller when it is empty, with a coalescing linger. The
	// default.
	ModeBatch = "batch"
	// ModePlain: one read and one write per datagram through Go's
	// netpoller. Kept for comparison.
	ModePlain = "plain"
)

const (
	DefaultBatch     = 32
	DefaultLinger    = 700 * time.Microsecond
	DefaultTurnSlice = 5 * time.Millisecond
	// DefaultRecvBuffer absorbs bursts (a linger of 0.7 ms at 300,000
	// datagrams/s queues 200 of them).
	DefaultRecvBuffer = 4 << 20
)

// UDPStats are a listener's counters summed over its workers.
type UDPStats struct {
	Received, Sent, SendErrors, RecvErrors, Batches uint64
	// Unreachable counts ICMP unreachable errors drained from the socket's
	// error queue (each reported to an UnreachableHandler).
	Unreachable uint64
	// PerWorker is the number of datagrams each worker received.
	PerWorker []uint64
}

// UDPListener is a bound UDP socket and its workers.
type UDPListener struct {
	fd      int
	local   netip.AddrPort
	cfg     UDPConfig
	workers []*udpWorker
	closed  atomic.Bool
	// errPending: a send may have consumed the socket's pending ICMP error;
	// a worker must drain the error queue (unreachable.go).
	errPending atomic.Bool
	wg         sync.WaitGroup
	sendMu     sync.Mutex            // serialises WriteTo's scratch address
	turn       chan struct{}         // the token of the worker reading, handling and sending
	linger     linger                // of the only worker, or shared by ordered workers (under turn)
	sendSA     unix.RawSockaddrInet6 // WriteTo's destination (under sendMu), and:
	sendSALen  uint32
	sendBuf    []byte
	sendErr    syscall.Errno
	plain      *net.UDPConn // Mode "plain" only
	// A worker that finds the socket empty waits for it in Go's
	// netpoller (parked, no thread held) through readable; a send that
	// finds the send buffer full waits through writable (sockpoll.go).
	readable, writable *sockPoll
	sendToWait         *pollWaiter // WriteTo's, under sendMu
	// wakeAddr is where WriteTo sends the empty datagram that wakes a
	// worker to drain the error queue: the bound address, or loopback
	// for a wildcard bind. The datagram arrives from wakeAddr.
	wakeAddr  netip.AddrPort
	wakeSA    unix.RawSockaddrInet6
	wakeSALen uint32
}

// ListenUDP binds the socket and prepares the workers; Start runs them.
func ListenUDP(cfg UDPConfig, newHandler func(worker int) Handler) (*UDPListener, error) {
	envOverrides(&cfg)
	if cfg.Workers <= 0 {
		// Ordered workers take turns from read to send, so one does the
		// same work as several with none of the hand-offs.
		cfg.Workers = 1
		if cfg.Unordered {
			cfg.Workers = runtime.NumCPU()
		}
	}
	if cfg.RecvBuffer == 0 {
		cfg.RecvBuffer = DefaultRecvBuffer
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Linger == 0 {
		cfg.Linger = DefaultLinger
	}
	fam := unix.AF_INET
	if cfg.Addr.Addr().Is6() && !cfg.Addr.Addr().Is4In6() {
		fam = unix.AF_INET6
	}
	fd, err := unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("transport: socket: %w", err)
	}
	if cfg.TurnSlice <= 0 {
		cfg.TurnSlice = DefaultTurnSlice
	}
	l := &UDPListener{fd: fd, cfg: cfg, turn: make(chan struct{}, 1)}
	l.turn <- struct{}{}
	fail := func(what string, err error) (*UDPListener, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("transport: %s %s: %w", what, cfg.Addr, err)
	}
	if fam == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return fail("IPV6_V6ONLY", err)
		}
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	enableRecvErr(fd, fam)
	if cfg.RecvBuffer > 0 {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, cfg.RecvBuffer) != nil {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, cfg.RecvBuffer); err != nil {
				return fail("SO_RCVBUF", err)
			}
		}
	}
	if cfg.SendBuffer > 0 {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, cfg.SendBuffer) != nil {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, cfg.SendBuffer); err != nil {
				return fail("SO_SNDBUF", err)
			}
		}
	}
	if err := unix.Bind(fd, toSockaddr(cfg.Addr)); err != nil {
		return fail("bind", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	l.local = fromSockaddr(sa)
	wa := l.local.Addr()
	if wa.IsUnspecified() {
		wa = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		if fam == unix.AF_INET6 {
			wa = netip.IPv6Loopback()
		}
	}
	// The descriptor is non-blocking: workers read and write it directly
	// and wait for it through the netpoller, by way of epoll instances of
	// its own that the netpoller watches (sockpoll.go).
	if l.readable, err = newSockPoll(fd, unix.EPOLLIN, false, &l.closed); err != nil {
		return fail("poll", err)
	}
	if l.writable, err = newSockPoll(fd, unix.EPOLLOUT, true, &l.closed); err != nil {
		l.readable.Close()
		return fail("poll", err)
	}
	l.sendToWait = l.writable.newWaiter()
	l.wakeAddr = netip.AddrPortFrom(wa, l.local.Port())
	l.wakeSALen = putSockaddr(&l.wakeSA, l.wakeAddr)
	for i := 0; i < cfg.Workers; i++ {
		l.workers = append(l.workers, newUDPWorker(l, newHandler(i)))
	}
	return l, nil
}

// envOverrides applies the VELOX_UDP_* variables, which compare settings
// side by side in one benchmark run (sipbench -variant); unset, they change
// nothing.
func envOverrides(cfg *UDPConfig) {
	if n, err := strconv.Atoi(os.Getenv("VELOX_UDP_WORKERS")); err == nil && n > 0 {
		cfg.Workers = n
	}
	if v, err := time.ParseDuration(os.Getenv("VELOX_UDP_LINGER")); err == nil {
		cfg.Linger = v
		if v == 0 {
			cfg.Linger = -1 // never wait
		}
	}
	if v, err := time.ParseDuration(os.Getenv("VELOX_UDP_SLICE")); err == nil {
		cfg.TurnSlice = v
	}
	if m := os.Getenv("VELOX_UDP_MODE"); m != "" && cfg.Mode == "" {
		cfg.Mode = m
	}
	cfg.Unordered = cfg.Unordered || os.Getenv("VELOX_UDP_UNORDERED") != ""
}

// LocalAddr returns the bound address (with the port the OS chose for port 0).
func (l *UDPListener) LocalAddr() netip.AddrPort { return l.local }

// Start runs the workers.
func (l *UDPListener) Start() {
	if l.cfg.Mode == ModePlain {
		if err := l.startPlain(); err == nil {
			return
		}
	}
	for _, w := range l.workers {
		l.wg.Add(1)
		go w.run()
	}
}

// Close stops the workers, waits for them and closes the socket.
func (l *UDPListener) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	// shutdown makes the socket readable (recvmmsg then returns 0), which
	// wakes every worker waiting in the netpoller, even on an unconnected
	// UDP socket, where it also reports ENOTCONN.
	unix.Shutdown(l.fd, unix.SHUT_RDWR)
	if l.plain != nil {
		l.plain.Close()
	}
	l.wg.Wait()
	l.readable.Close()
	l.writable.Close()
	return unix.Close(l.fd)
}

// WriteTo sends one datagram from the listener's socket outside a worker
// (timers, management). Safe for concurrent use.
func (l *UDPListener) WriteTo(b []byte, dst netip.AddrPort) error {
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	l.sendSALen = putSockaddr(&l.sendSA, dst)
	l.sendBuf = b
	defer func() { l.sendBuf = nil }()
	var e syscall.Errno
	pending := false
	for tries := 1; ; tries++ {
		for l.sendTo(); l.sendErr == unix.EAGAIN; l.sendTo() {
			// The send buffer is full: wait until it drains.
			if err := l.sendToWait.wait(); err != nil || l.closed.Load() {
				return net.ErrClosed
			}
		}
		if e = l.sendErr; e == 0 {
			break
		}
		pending = pending || maybePending(e)
		if !l.sendFailed(e, tries) {
			break
		}
	}
	if pending {
		// This send may have taken the pending error the workers were
		// woken for: wake one to drain the error queue.
		l.wake()
	}
	if e != 0 {
		return e
	}
	return nil
}

// sendTo sends WriteTo's datagram once, setting sendErr (EAGAIN when the
// socket's send buffer is full). Called with sendMu held.
func (l *UDPListener) sendTo() {
	var p unsafe.Pointer
	if len(l.sendBuf) > 0 {
		p = unsafe.Pointer(&l.sendBuf[0])
	}
	_, _, l.sendErr = unix.RawSyscall6(unix.SYS_SENDTO, uintptr(l.fd), uintptr(p), uintptr(len(l.sendBuf)), 0,
		uintptr(unsafe.Pointer(&l.sendSA)), uintptr(l.sendSALen))
}

// Stats sums the workers' counters.
func (l *UDPListener) Stats() UDPStats {
	var s UDPStats
	for _, w := range l.workers {
		r := w.stats.received.Load()
		s.Received += r
		s.Sent += w.stats.sent.Load()
		s.SendErrors += w.stats.sendErrors.Load()
		s.RecvErrors += w.stats.recvErrors.Load()
		s.Batches += w.stats.batches.Load()
		s.Unreachable += w.stats.unreachable.Load()
		s.PerWorker = append(s.PerWorker, r)
	}
	return s
}

type workerStats struct {
	received, sent, sendErrors, recvErrors, batches, unreachable atomic.Uint64
	_                                                            [64]byte // no false sharing between workers
}

// mmsghdr is struct mmsghdr of recvmmsg(2)/sendmmsg(2).
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

type udpWorker struct {
	l      *UDPListener
	h      Handler
	uh     UnreachableHandler // h, if it implements it
	stats  workerStats
	in     []mmsghdr
	inIov  []unix.Iovec
	inAddr []unix.RawSockaddrInet6
	inBufs [][]byte
	out    Out
	errq   errQueue
	// linger is the coalescing state of an unordered worker (one of several).
	linger          linger
	recvN           int
	recvErr         syscall.Errno
	recvCalls       int                // recv calls in this wait
	recvFn          func(uintptr) bool // w.recv for RawConn.Read, made once
	sendWait        *pollWaiter        // for room in the send buffer
	lastSched       int64              // when the worker last went through the scheduler
	sendFrom, sendN int
	sendErr         syscall.Errno
}

func newUDPWorker(l *UDPListener, h Handler) *udpWorker {
	n := l.cfg.Batch
	w := &udpWorker{l: l, h: h,
		in:     make([]mmsghdr, n),
		inIov:  make([]unix.Iovec, n),
		inAddr: make([]unix.RawSockaddrInet6, n),
		inBufs: make([][]byte, n),
	}
	for i := range w.in {
		w.inBufs[i] = make([]byte, MaxDatagram)
		w.inIov[i].Base = &w.inBufs[i][0]
		w.inIov[i].SetLen(MaxDatagram)
		w.in[i].hdr.Iov = &w.inIov[i]
		w.in[i].hdr.SetIovlen(1)
		w.in[i].hdr.Name = (*byte)(unsafe.Pointer(&w.inAddr[i]))
	}
	w.uh, _ = h.(UnreachableHandler)
	w.recvFn = func(uintptr) bool { return w.recv() }
	w.sendWait = l.writable.newWaiter()
	w.errq.init()
	w.out.init(w, n)
	return w
}

func (w *udpWorker) run() {
	defer w.l.wg.Done()
	l := w.l
	// With several workers, one at a time reads, handles and sends a
	// batch (holding l.turn), so messages leave in the order they came in
	// (a 180 never overtakes its 200) while the batches spread over all
	// workers. After a short batch the reader lingers so that the next
	// read finds more datagrams (lg: the listener's state, or the
	// worker's own when unordered workers read in parallel).
	ordered := len(l.workers) > 1 && !l.cfg.Unordered
	lg := &l.linger
	if len(l.workers) > 1 && l.cfg.Unordered {
		lg = &w.linger
	}
	held := false
	var heldSince int64
	w.lastSched = nanotime()
	for !l.closed.Load() {
		if nanotime()-w.lastSched >= int64(l.cfg.TurnSlice) {
			// A goroutine the scheduler has not seen for 10 ms makes the
			// runtime's monitor preempt it, and then poll every 20 µs
			// for a millisecond: that cost a third of the CPU at 3,000
			// requests/s. A worker that waits for the socket goes
			// through the scheduler anyway; a busy one yields.
			runtime.Gosched()
			w.lastSched = nanotime()
		}
		if ordered && !held {
			select {
			case <-l.turn:
			default:
				<-l.turn
				w.lastSched = nanotime()
			}
			held, heldSince = true, nanotime()
		}
		n := w.readBatch(lg)
		if n > 0 {
			relayed := false
			for i := 0; i < n; i++ {
				src := rawToAddrPort(&w.inAddr[i])
				if l.isWake(int(w.in[i].n), src) {
					w.stats.received.Add(^uint64(0)) // not traffic
					continue
				}
				from := w.out.n
				w.h.HandlePacket(w.inBufs[i][:w.in[i].n], src, &w.out)
				relayed = relayed || w.out.sentElsewhere(from, src)
				if i == 0 && n > 1 && w.out.answersOnly(src) {
					// The first answer of a batch leaves at once when
					// the batch's first datagram was answered, not
					// relayed: its sender, which usually sent the rest
					// of the batch too, is woken now and reads all its
					// answers in one go when the worker is done; woken
					// by the batch's sendmmsg instead, it read one
					// answer per wake-up. Relayed datagrams wait for
					// the batch: their destinations wait for nothing
					// else in it.
					w.out.flush()
				}
			}
			w.out.flush()
			w.checkErrors()
			lg.next = 0
			// Only a batch that was answered, not relayed, lingers.
			// Answered traffic (registrations, OPTIONS) comes in bursts
			// from each sender, whose tail a linger collects. Relayed
			// traffic is a ping-pong: what follows a relayed request is
			// the next hop's answer, which a linger would delay, and
			// every linger costs a sleep and a wake-up of its own. Same
			// run (bench/RESULTS.md, 2026-12-02 evening): stateful
			// relay 75.5 µs per call with the linger, 68.5 without;
			// registrations 10.7 µs with it, 12.3 without.
			if l.cfg.Linger > 0 && n < len(w.in)/2 && !relayed && lg.allowed() {
				lg.next = nanotime() + int64(l.cfg.Linger)
			}
		}
		// Keep the turn for a time slice: passing it costs two thread
		// wake-ups, so it is passed about every TurnSlice (5 ms), not
		// every batch. The slice must stay well under the runtime's 10 ms
		// preemption limit (see lastSched above).
		if held && (n == 0 || nanotime()-heldSince >= int64(l.cfg.TurnSlice)) {
			held = false
			l.turn <- struct{}{} // a waiting worker receives it first (FIFO)
		}
	}
	if held {
		l.turn <- struct{}{}
	}
}

// readBatch waits for the coalescing deadline, then receives up to a batch
// of datagrams, waiting in the netpoller for the first. It returns 0 on
// errors and close.
func (w *udpWorker) readBatch(lg *linger) int {
	for i := range w.in {
		w.in[i].hdr.Namelen = uint32(unsafe.Sizeof(w.inAddr[i]))
	}
	if d := lg.next - nanotime(); d > 0 {
		// Linger only when the socket is empty: what is queued already
		// needs no waiting, and a linger that then finds datagrams has
		// saved a wake-up.
		if !w.recv() {
			lingerSleep(d)
			if !w.waitRecv() {
				return 0 // closed
			}
			lg.result(w.recvCalls == 1)
		}
	} else if !w.waitRecv() {
		return 0 // closed
	}
	r, e := w.recvN, w.recvErr
	if e != 0 {
		if e != unix.EINTR && e != unix.EAGAIN && !w.l.closed.Load() {
			// Usually the socket's pending ICMP error: drain the error
			// queue, then go on receiving.
			w.recvFailed(e)
		}
		return 0
	}
	if r > 0 {
		w.stats.batches.Add(1)
		if r == len(w.in) {
			lg.skip = 0 // a full batch: the socket is busy, linger again
		}
		w.stats.received.Add(uint64(r))
	}
	return r
}

// linger is the coalescing state of a reader: the listener's for a single
// worker or ordered ones (used under the turn), each worker's own when
// unordered workers read in parallel.
type linger struct {
	next int64 // the next read waits until then (nanotime)
	// skip batches are read without lingering after a linger found the
	// socket empty (allowed); skipped counts them.
	skip, skipped int
}

// allowed reports whether the next read may linger. A linger that ends on
// an empty socket costs a wake-up instead of saving one: traffic that comes
// in bursts (a peer that sends every few milliseconds what it has) is
// already batched by its sender. After such a miss the reader reads
// without lingering for 1, 3, 7 … up to 63 batches, then tries again.
func (lg *linger) allowed() bool {
	if lg.skip > lg.skipped {
		lg.skipped++
		return false
	}
	return true
}

// result records whether the socket had datagrams when a linger ended.
func (lg *linger) result(found bool) {
	lg.skipped = 0
	if found {
		lg.skip = 0
	} else if lg.skip < maxLingerSkip {
		lg.skip = 2*lg.skip + 1
	}
}

// maxLingerSkip bounds how many batches are read without lingering after a
// linger that found nothing.
const maxLingerSkip = 63

// waitRecv receives, waiting in the netpoller first if the socket is empty;
// it reports false when the listener closed.
func (w *udpWorker) waitRecv() bool {
	w.recvCalls = 0
	if w.l.readable.raw.Read(w.recvFn) != nil {
		return false
	}
	if w.recvCalls > 1 {
		w.lastSched = nanotime() // it parked: through the scheduler
	}
	return true
}

// recv is one non-blocking recvmmsg into the worker's batch; it reports
// false when the socket is empty. The call never blocks, so it does not
// tell the scheduler (RawSyscall): the worker keeps its P.
func (w *udpWorker) recv() bool {
	w.recvCalls++
	r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(w.l.fd), uintptr(unsafe.Pointer(&w.in[0])),
		uintptr(len(w.in)), 0, 0, 0)
	w.recvN, w.recvErr = int(r), e
	// A shut-down socket reads EAGAIN when non-blocking: Close sets
	// closed before shutdown, whose wake-up brings the worker back here.
	return e != unix.EAGAIN || w.l.closed.Load()
}

var clockBase = time.Now()

// nanotime is a monotonic clock in nanoseconds.
func nanotime() int64 { return int64(time.Since(clockBase)) }

// Out queues the datagrams a worker's handler sends; they leave in one
// sendmmsg when the worker has handled its receive batch.
type Out struct {
	w     *udpWorker
	msgs  []mmsghdr
	iov   []unix.Iovec
	addr  []unix.RawSockaddrInet6
	bufs  [][]byte
	dsts  []netip.AddrPort
	n     int
	local netip.AddrPort
	plain *net.UDPConn // Mode "plain": send with one write per datagram
}

func (o *Out) init(w *udpWorker, n int) {
	o.w, o.local = w, w.l.local
	o.msgs = make([]mmsghdr, n)
	o.iov = make([]unix.Iovec, n)
	o.addr = make([]unix.RawSockaddrInet6, n)
	o.bufs = make([][]byte, n)
	o.dsts = make([]netip.AddrPort, n)
	for i := range o.msgs {
		o.bufs[i] = make([]byte, 0, MaxDatagram)
		o.msgs[i].hdr.Iov = &o.iov[i]
		o.msgs[i].hdr.SetIovlen(1)
		o.msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&o.addr[i]))
	}
}

// Buffer returns an empty slice with room for one datagram, owned by the
// next free output slot. Append the datagram to it and pass it to Send.
func (o *Out) Buffer() []byte {
	if o.n == len(o.msgs) {
		o.flush()
	}
	return o.bufs[o.n][:0]
}

// Send queues b for dst. b should come from Buffer; any other slice must
// stay unchanged until the batch is flushed.
func (o *Out) Send(b []byte, dst netip.AddrPort) {
	if len(b) == 0 {
		return
	}
	if o.n == len(o.msgs) {
		o.flush()
	}
	i := o.n
	o.iov[i].Base = &b[0]
	o.iov[i].SetLen(len(b))
	o.msgs[i].hdr.Namelen = putSockaddr(&o.addr[i], dst)
	o.dsts[i] = dst
	o.bufs[i] = b[:0] // keep a grown buffer for reuse
	o.n++
}

// send is one non-blocking sendmmsg of the batch from w.sendFrom, setting
// sendN and sendErr (EAGAIN when the socket's send buffer is full).
func (w *udpWorker) send() {
	o := &w.out
	r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(w.l.fd), uintptr(unsafe.Pointer(&o.msgs[w.sendFrom])),
		uintptr(o.n-w.sendFrom), 0, 0, 0)
	w.sendN, w.sendErr = int(r), e
}

// sentElsewhere reports whether a datagram queued from index from on goes
// somewhere other than src (the handler relayed rather than answered). A
// flush inside the handler (a full output batch) restarts the queue.
func (o *Out) sentElsewhere(from int, src netip.AddrPort) bool {
	if from > o.n {
		from = 0
	}
	for _, d := range o.dsts[from:o.n] {
		if d != src {
			return true
		}
	}
	return false
}

// answersOnly reports whether the datagrams queued all go back to src, and
// there is at least one.
func (o *Out) answersOnly(src netip.AddrPort) bool {
	for _, d := range o.dsts[:o.n] {
		if d != src {
			return false
		}
	}
	return o.n > 0
}

// Local returns the address of the listener the worker serves.
func (o *Out) Local() netip.AddrPort { return o.local }

// Proto returns UDP: the transport of the listener the worker serves.
func (o *Out) Proto() Proto { return UDP }

func (o *Out) flush() {
	if o.plain != nil {
		o.flushPlain()
		return
	}
	w := o.w
	l := w.l
	sent, tries := 0, 1
	for sent < o.n {
		w.sendFrom = sent
		for w.send(); w.sendErr == unix.EAGAIN && !l.closed.Load(); w.send() {
			// The send buffer is full: wait until it drains.
			if err := w.sendWait.wait(); err != nil {
				break
			}
		}
		r, e := w.sendN, w.sendErr
		if e != 0 {
			if e == unix.EINTR {
				continue
			}
			// The datagram at the head failed. With an ICMP errno the
			// error was usually an earlier datagram's, pending on the
			// socket and now consumed, and this one was not sent: send
			// it again. Otherwise (e.g. no route), or if it keeps
			// failing, count it and go on with the rest.
			if l.sendFailed(e, tries) {
				tries++
				continue
			}
			w.stats.sendErrors.Add(1)
			sent, tries = sent+1, 1
			continue
		}
		if int(r) < o.n-sent {
			// sendmmsg stopped at a failing datagram and dropped its
			// errno, which may have been the socket's pending ICMP
			// error: the worker drains the error queue after the batch.
			l.errPending.Store(true)
		}
		if r > 0 {
			tries = 1
		}
		sent += r
		w.stats.sent.Add(uint64(r))
	}
	o.n = 0
}

func toSockaddr(ap netip.AddrPort) unix.Sockaddr {
	if a := ap.Addr(); a.Is4() || a.Is4In6() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.Unmap().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

func fromSockaddr(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port))
	}
	return netip.AddrPort{}
}

// rawToAddrPort decodes a sockaddr filled in by the kernel.
func rawToAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	port := uint16(sa.Port>>8) | uint16(sa.Port<<8)
	if sa.Family == unix.AF_INET {
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), port)
	}
	return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port)
}

// putSockaddr encodes dst for the kernel and returns its length.
func putSockaddr(sa *unix.RawSockaddrInet6, dst netip.AddrPort) uint32 {
	port := dst.Port()
	if a := dst.Addr(); a.Is4() {
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		s4.Family = unix.AF_INET
		s4.Port = port>>8 | port<<8
		s4.Addr = a.As4()
		return unix.SizeofSockaddrInet4
	}
	sa.Family = unix.AF_INET6
	sa.Port = port>>8 | port<<8
	sa.Flowinfo = 0
	sa.Addr = dst.Addr().As16()
	sa.Scope_id = 0
	return unix.SizeofSockaddrInet6
}

// lingerSleep sleeps d nanoseconds (at most a few milliseconds) in the
// kernel without telling the Go scheduler: the thread keeps its P, so
// waking up costs one kernel wake-up instead of a timer firing on another
// thread that then wakes this one. A garbage-collection stop waits at most
// d for this thread, and a preemption signal only cuts the sleep short.
func lingerSleep(d int64) {
	ts := unix.NsecToTimespec(d)
	unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
}
