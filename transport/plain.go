package transport

import (
	"net"
	"net/netip"
	"os"
)

// The plain mode reads and writes one datagram per system call through
// Go's netpoller (net.UDPConn), as a straightforward Go server does. It is
// kept for comparison (bench/RESULTS.md) and for kernels without
// recvmmsg/sendmmsg.

func (l *UDPListener) startPlain() error {
	f := os.NewFile(uintptr(l.fd), "udp")
	pc, err := net.FilePacketConn(f) // a non-blocking dup of the socket
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
				w.stats.recvErrors.Add(1)
			}
			continue
		}
		w.stats.batches.Add(1)
		w.stats.received.Add(1)
		w.h.HandlePacket(buf[:n], netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), &w.out)
		w.out.flush()
	}
}

// flushPlain sends the queued datagrams one write each.
func (o *Out) flushPlain() {
	for i := 0; i < o.n; i++ {
		b := o.bufs[i][:o.iov[i].Len]
		if _, err := o.plain.WriteToUDPAddrPort(b, o.dsts[i]); err != nil {
			o.w.stats.sendErrors.Add(1)
			continue
		}
		o.w.stats.sent.Add(1)
	}
	o.n = 0
}
