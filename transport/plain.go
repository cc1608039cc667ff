package transport

import (
	"net"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// The plain mode reads and writes one datagram per system call through
// Go's netpoller (net.UDPConn), as a straightforward Go server does. It is
// kept for comparison (bench/RESULTS.md) and for kernels without
// recvmmsg/sendmmsg.

func (l *UDPListener) startPlain() error {
	// os.File closes its descriptor when closed or garbage-collected, so
	// it gets a dup of the listener's, not l.fd itself (which Close
	// closes; a finalizer closing it again could hit a reused number).
	nfd, err := unix.FcntlInt(uintptr(l.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(nfd), "udp")
	pc, err := net.FilePacketConn(f) // a non-blocking dup of the socket
	f.Close()
	if err != nil {
		return err
	}
	l.plain = pc.(*net.UDPConn)
	for _, w := range l.workers {
		l.wg.Add(1)
		go w.runPlain(l.plain)
	}
	return nil
}

func (w *udpWorker) runPlain(pc *net.UDPConn) {
	defer w.l.wg.Done()
	buf := w.inBufs[0]
	w.out.plain = pc
	for !w.l.closed.Load() {
		n, src, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !w.l.closed.Load() {
				w.recvFailed(errnoOf(err)) // usually a pending ICMP error
			}
			continue
		}
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		if !w.l.isWake(n, src) {
			w.stats.batches.Add(1)
			w.stats.received.Add(1)
			w.h.HandlePacket(buf[:n], src, &w.out)
			w.out.flush()
		}
		w.checkErrors()
	}
}

// flushPlain sends the queued datagrams one write each. A datagram that
// fails with an ICMP errno is sent again, as in flush.
func (o *Out) flushPlain() {
	for i := 0; i < o.n; i++ {
		b := o.bufs[i][:o.iov[i].Len]
		var err error
		for tries := 1; ; tries++ {
			_, err = o.plain.WriteToUDPAddrPort(b, o.dsts[i])
			if err == nil || !o.w.l.sendFailed(errnoOf(err), tries) {
				break
			}
		}
		if err != nil {
			o.w.stats.sendErrors.Add(1)
			continue
		}
		o.w.stats.sent.Add(1)
	}
	o.n = 0
}
