package transport

import (
	"errors"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UnreachableHandler is implemented by a Handler that wants to hear about
// datagrams the network refused (ICMP port, host or network unreachable).
type UnreachableHandler interface {
	// HandleUnreachable is called from the worker that drained the error:
	// payload is the start of the refused datagram (the kernel keeps the
	// first bytes of the UDP payload, enough for the start line and the
	// first header lines), dst is where it was sent, err the errno
	// (e.g. syscall.ECONNREFUSED). payload is only valid during the call.
	HandleUnreachable(payload []byte, dst netip.AddrPort, err error)
}

// How ICMP errors reach the workers (Linux, IP_RECVERR/IPV6_RECVERR):
//
// The kernel queues every ICMP error about a datagram the socket sent on
// the socket's error queue (with the start of that datagram and where it
// went) and sets the socket's pending error, sk_err. The next receive or
// send on the socket — whichever comes first — fails with that errno and
// clears it; the queued entries stay until they are read with
// MSG_ERRQUEUE.
//
//   - A worker whose recvmmsg (or plain read) fails drains the queue.
//   - A send that fails with such an errno did not send its datagram: the
//     datagram is sent again, and since the failed send may have consumed
//     the error the workers were woken for, the listener is marked
//     errPending. A partial sendmmsg is marked too (the kernel drops the
//     errno of the datagram it stopped at).
//   - A worker drains when it sees errPending after a batch. A send from
//     outside the workers (WriteTo) also wakes one with an empty datagram
//     from the socket to itself, since all of them may be blocked in
//     recvmmsg.

// sendRetries is how often a datagram whose send failed with an ICMP-type
// errno is sent again: the errno was usually an earlier datagram's, already
// consumed; a datagram that still fails is counted as a send error.
const sendRetries = 2

// maybePending reports whether a send or receive error may be a pending
// ICMP error of the socket rather than a failure of this very call.
func maybePending(e syscall.Errno) bool {
	switch e {
	case unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.EHOSTDOWN, unix.ENONET,
		unix.ENOPROTOOPT, unix.EACCES, unix.EMSGSIZE, unix.EPROTO, unix.EOPNOTSUPP:
		return true
	}
	return false
}

// isUnreachable reports whether an ICMP error means the destination
// refused the datagram (what HandleUnreachable hears about). Others
// (fragmentation needed, parameter problem) are drained and ignored.
func isUnreachable(e syscall.Errno) bool {
	switch e {
	case unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.EHOSTDOWN, unix.ENONET,
		unix.ENOPROTOOPT, unix.EACCES:
		return true
	}
	return false
}

// errnoOf unwraps the errno of a net package error without allocating.
func errnoOf(err error) syscall.Errno {
	for err != nil {
		if e, ok := err.(syscall.Errno); ok {
			return e
		}
		err = errors.Unwrap(err)
	}
	return 0
}

// enableRecvErr asks the kernel to queue ICMP errors on the socket. Without
// it an unconnected UDP socket never hears about them; failure is not fatal.
func enableRecvErr(fd, fam int) {
	unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_RECVERR, 1) // IPv4 (and v4-mapped on a dual-stack socket)
	if fam == unix.AF_INET6 {
		unix.SetsockoptInt(fd, unix.SOL_IPV6, unix.IPV6_RECVERR, 1)
	}
}

// errQueue is a worker's space for reading the socket's error queue.
type errQueue struct {
	hdr  unix.Msghdr
	iov  unix.Iovec
	addr unix.RawSockaddrInet6
	ctl  [16]uint64 // control messages (8-byte aligned); one entry needs 64 bytes
}

func (q *errQueue) init() {
	q.hdr.Name = (*byte)(unsafe.Pointer(&q.addr))
	q.hdr.Iov = &q.iov
	q.hdr.SetIovlen(1)
	q.hdr.Control = (*byte)(unsafe.Pointer(&q.ctl[0]))
}

// extErr returns the sock_extended_err of the last message read, or nil.
func (q *errQueue) extErr() *unix.SockExtendedErr {
	ctl := unsafe.Slice((*byte)(unsafe.Pointer(&q.ctl[0])), len(q.ctl)*8)
	n := int(q.hdr.Controllen)
	if n > len(ctl) {
		n = len(ctl)
	}
	hdrLen := cmsgAlign(unix.SizeofCmsghdr)
	for off := 0; off+unix.SizeofCmsghdr <= n; {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&ctl[off]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || off+l > n {
			return nil
		}
		if l-hdrLen >= int(unsafe.Sizeof(unix.SockExtendedErr{})) &&
			(h.Level == unix.SOL_IP && h.Type == unix.IP_RECVERR ||
				h.Level == unix.SOL_IPV6 && h.Type == unix.IPV6_RECVERR) {
			return (*unix.SockExtendedErr)(unsafe.Pointer(&ctl[off+hdrLen]))
		}
		off += cmsgAlign(l)
	}
	return nil
}

func cmsgAlign(n int) int {
	const a = int(unsafe.Sizeof(uintptr(0)))
	return (n + a - 1) &^ (a - 1)
}

// drainErrors reads the socket's error queue until it is empty (or a
// batch's worth of entries, so that a flood of them cannot hold the worker:
// the kernel re-arms the pending error while entries remain), counting the
// unreachable ones and passing them to the handler. The payload is read
// into the worker's first receive buffer, which is free between batches.
func (w *udpWorker) drainErrors() {
	q := &w.errq
	buf := w.inBufs[0]
	for i := 0; i < len(w.in); i++ {
		q.iov.Base = &buf[0]
		q.iov.SetLen(len(buf))
		q.addr = unix.RawSockaddrInet6{}
		q.hdr.Namelen = uint32(unsafe.Sizeof(q.addr))
		q.hdr.SetControllen(len(q.ctl) * 8)
		q.hdr.Flags = 0
		r, _, e := unix.Syscall(unix.SYS_RECVMSG, uintptr(w.l.fd), uintptr(unsafe.Pointer(&q.hdr)),
			unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return // EAGAIN: empty
		}
		ee := q.extErr()
		if ee == nil || ee.Origin != unix.SO_EE_ORIGIN_ICMP && ee.Origin != unix.SO_EE_ORIGIN_ICMP6 ||
			!isUnreachable(syscall.Errno(ee.Errno)) {
			continue
		}
		w.stats.unreachable.Add(1)
		if w.uh != nil {
			w.uh.HandleUnreachable(buf[:r], rawToAddrPort(&q.addr), syscall.Errno(ee.Errno))
		}
	}
}

// checkErrors drains the error queue if a send marked the listener.
func (w *udpWorker) checkErrors() {
	if w.l.errPending.Load() && w.l.errPending.Swap(false) {
		w.drainErrors()
	}
}

// recvFailed handles a failed receive: a pending ICMP error is drained,
// anything else counted.
func (w *udpWorker) recvFailed(e syscall.Errno) {
	if !maybePending(e) {
		w.stats.recvErrors.Add(1)
	}
	w.l.errPending.Store(false)
	w.drainErrors()
}

// sendFailed is called when a send failed with e after tries attempts. It
// reports whether to send the same datagram again.
func (l *UDPListener) sendFailed(e syscall.Errno, tries int) bool {
	if !maybePending(e) {
		return false
	}
	l.errPending.Store(true)
	return tries <= sendRetries
}

// isWake reports whether a received datagram is the listener's wake-up.
func (l *UDPListener) isWake(n int, src netip.AddrPort) bool {
	return n == 0 && src == l.wakeAddr
}

// wake sends the empty wake-up datagram to the listener's own socket, so
// that a worker blocked in recvmmsg returns and drains the error queue.
// Called with sendMu held.
func (l *UDPListener) wake() {
	for i := 0; i <= sendRetries; i++ {
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(l.fd), 0, 0, 0,
			uintptr(unsafe.Pointer(&l.wakeSA)), uintptr(l.wakeSALen))
		if !maybePending(e) {
			return
		}
	}
}
