package transport

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sockPoll lets goroutines wait for one readiness of a socket (readable, or
// writable) in Go's netpoller while the netpoller does not watch the socket
// itself.
//
// Go's netpoller watches every descriptor it knows for reading and writing,
// edge-triggered, all the time. A UDP socket becomes writable again each
// time a datagram it sent is delivered and its buffer freed, so every
// sendmmsg woke the netpoller's idle thread blocked in epoll_wait, which
// preempted the worker on its CPU, found nobody waiting and slept again:
// two context switches for nothing, half of velox's at 2,000 stateful
// calls/s. Here the socket sits in an epoll instance of its own, registered
// for the one event wanted, and that instance is what the netpoller
// watches:
//
//   - readable: registered for EPOLLIN, level-triggered. Write space is
//     filtered out by the instance; a datagram that arrives reaches the
//     netpoller as before. Waiting costs no system call more than reading
//     the socket through the netpoller did.
//   - writable: the socket is added to the instance (one-shot) only while
//     a goroutine waits for room in the send buffer (rare) and removed
//     after, so the rest of the time each datagram freed by the kernel
//     wakes one wait queue entry (readable's), not two: in
//     sock_wfree, on every datagram sent.
type sockPoll struct {
	epfd   int      // the inner epoll instance, holding only the socket
	file   *os.File // epfd, registered with Go's netpoller
	raw    syscall.RawConn
	sock   int
	events uint32 // unix.EPOLLIN or unix.EPOLLOUT
	closed *atomic.Bool
}

// newSockPoll makes a sockPoll for sock's events: level-triggered and
// registered at once (see RawConn.Read on raw), or one-shot, registered
// only for the time of each wait (see pollWaiter); closed is the owner's
// flag, which ends a one-shot wait once set.
func newSockPoll(sock int, events uint32, oneshot bool, closed *atomic.Bool) (*sockPoll, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	fail := func(what string, err error) (*sockPoll, error) {
		unix.Close(epfd)
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !oneshot {
		ev := unix.EpollEvent{Events: events, Fd: int32(sock)}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, sock, &ev); err != nil {
			return fail("epoll_ctl", err)
		}
	}
	// os.NewFile hands a descriptor to the netpoller only if it is
	// non-blocking.
	if err := unix.SetNonblock(epfd, true); err != nil {
		return fail("epoll", err)
	}
	p := &sockPoll{epfd: epfd, sock: sock, events: events, closed: closed}
	p.file = os.NewFile(uintptr(epfd), "sockpoll")
	if p.raw, err = p.file.SyscallConn(); err != nil {
		p.file.Close()
		return nil, fmt.Errorf("netpoller: %w", err)
	}
	return p, nil
}

// Close releases the epoll instance (not the socket).
func (p *sockPoll) Close() error { return p.file.Close() }

// pollWaiter is one goroutine's way to wait on a one-shot sockPoll.
// Waiters of one sockPoll take turns (RawConn.Read holds the descriptor's
// read lock), and each adds the socket to the instance once it has the
// lock and removes it before letting go, so a waiter never sleeps on an
// event another one took, and the socket is out of the instance whenever
// nobody waits.
type pollWaiter struct {
	p     *sockPoll
	armed bool
	ev    [1]unix.EpollEvent
	fn    func(uintptr) bool // check, made once
}

func (p *sockPoll) newWaiter() *pollWaiter {
	wt := &pollWaiter{p: p}
	wt.fn = wt.check
	return wt
}

// wait returns once the socket had the event (or an error or hang-up), or
// the owner closed; it parks the goroutine meanwhile. The caller then
// performs the operation, non-blocking, and waits again if it would block.
func (wt *pollWaiter) wait() error {
	wt.armed = false
	err := wt.p.raw.Read(wt.fn)
	if wt.armed { // Read failed (the instance closed) while armed
		wt.disarm()
	}
	return err
}

// check adds the socket to the instance on its first call in a wait, and
// on later ones takes a pending event, which ends the wait; the socket
// leaves the instance when the wait ends. RawConn.Read calls it before
// parking and after each wake-up.
func (wt *pollWaiter) check(uintptr) bool {
	p := wt.p
	if !wt.armed {
		wt.ev[0] = unix.EpollEvent{Events: p.events | unix.EPOLLONESHOT, Fd: int32(p.sock)}
		_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(p.epfd), unix.EPOLL_CTL_ADD, uintptr(p.sock),
			uintptr(unsafe.Pointer(&wt.ev[0])), 0, 0)
		if e != 0 {
			return true // let the caller's operation report the trouble
		}
		wt.armed = true
		// Added while the socket has the event already, the instance
		// becomes ready and the netpoller hears of it (RawConn.Read
		// cleared what it knew before calling check): the wait that
		// follows returns at once, without a thread switch.
		return wt.endIf(p.closed.Load())
	}
	n, _, _ := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(p.epfd), uintptr(unsafe.Pointer(&wt.ev[0])), 1, 0, 0, 0)
	return wt.endIf(int(n) > 0 || p.closed.Load())
}

// endIf ends the wait when done: the socket leaves the instance.
func (wt *pollWaiter) endIf(done bool) bool {
	if done {
		wt.disarm()
	}
	return done
}

// disarm takes the socket out of the instance.
func (wt *pollWaiter) disarm() {
	p := wt.p
	unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(p.epfd), unix.EPOLL_CTL_DEL, uintptr(p.sock), 0, 0, 0)
	wt.armed = false
}
