package transport

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// epollEntries lists every epoll registration of the process whose target
// is the file with inode ino: the epoll descriptor and the event mask
// (/proc/self/fdinfo).
func epollEntries(t *testing.T, ino uint64) map[int]uint32 {
	t.Helper()
	paths, err := filepath.Glob("/proc/self/fdinfo/*")
	if err != nil || len(paths) == 0 {
		t.Skip("no /proc/self/fdinfo")
	}
	found := map[int]uint32{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		epfd, _ := strconv.Atoi(filepath.Base(p))
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "tfd:" {
				continue
			}
			var events uint32
			var target uint64
			for i := 0; i+1 < len(f); i++ {
				switch f[i] {
				case "events:":
					v, _ := strconv.ParseUint(f[i+1], 16, 32)
					events = uint32(v)
				}
				if strings.HasPrefix(f[i], "ino:") {
					target, _ = strconv.ParseUint(strings.TrimPrefix(f[i], "ino:"), 16, 64)
				}
			}
			if target == ino {
				found[epfd] = events
			}
		}
	}
	return found
}

// TestSocketOutOfNetpoller checks how a listener's socket is watched. Go's
// netpoller watches what it knows for reading and writing, edge-triggered,
// and a UDP socket becomes writable again each time a datagram it sent is
// delivered: with the socket itself in the netpoller, every sendmmsg woke
// the netpoller's idle thread (at 2,000 stateful calls/s, half of velox's
// context switches). The socket must be watched only by its own epoll
// instance for reading, without write space; the one for writing holds it
// only while a sender waits.
func TestSocketOutOfNetpoller(t *testing.T) {
	l, _ := listenLoopback(t, echo{})
	roundTrip(t, l, "udp4", "warm up")
	var st unix.Stat_t
	if err := unix.Fstat(l.fd, &st); err != nil {
		t.Fatal(err)
	}
	entries := epollEntries(t, st.Ino)
	if len(entries) != 1 {
		t.Fatalf("the socket is in %d epoll instances (%v), want only its readable one", len(entries), entries)
	}
	for epfd, ev := range entries {
		switch epfd {
		case l.readable.epfd:
			if ev&unix.EPOLLOUT != 0 || ev&unix.EPOLLIN == 0 {
				t.Errorf("readable instance watches events %#x, want EPOLLIN without EPOLLOUT", ev)
			}
		default:
			t.Errorf("the socket is in epoll instance %d (events %#x), not one of its own", epfd, ev)
		}
	}
}

// TestSockPollWritable waits for room in the send buffer through a one-shot
// sockPoll, which must not hold the socket while nobody waits, before or
// after a wait.
func TestSockPollWritable(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var closed atomic.Bool
	p, err := newSockPoll(fd, unix.EPOLLOUT, true, &closed)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ready := func() int {
		var ev [1]unix.EpollEvent
		n, _ := unix.EpollWait(p.epfd, ev[:], 0)
		return n
	}
	if n := ready(); n != 0 {
		t.Fatalf("a new one-shot sockPoll reports %d events while nobody waits", n)
	}
	wt := p.newWaiter()
	// wait waits for the (empty, so writable) socket, bounded in time.
	wait := func(what string) {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- wt.wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal(what + " did not return")
		}
	}
	wait("waiting for a writable socket")
	if n := ready(); n != 0 {
		t.Fatalf("after a wait the sockPoll reports %d events", n)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	if e := epollEntries(t, st.Ino); len(e) != 0 {
		t.Fatalf("after a wait the socket is still in epoll instances %v", e)
	}
	// A second wait works the same (the socket is added again).
	wait("a second wait for a writable socket")
}
