package sipptest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
)

var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

// FreeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago:
// the kernel picks it (so parallel test packages do not collide) and this
// process never hands the same port out twice.
func FreeUDPPort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 50 {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		if !portsUsed[port] {
			portsUsed[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("sipptest: no free UDP port found")
}

// UDPPort is FreeUDPPort for tests: it fails the test on error.
func UDPPort(t testing.TB) int {
	t.Helper()
	return mustPort(t, FreeUDPPort)
}

func mustPort(t testing.TB, free func() (int, error)) int {
	t.Helper()
	p, err := free()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ipv6Listed reports whether a socket is bound to [::1]:port or [::]:port
// (listening, for TCP), as listed in /proc/net/udp6 or /proc/net/tcp6.
func ipv6Listed(port int, tcp bool) bool {
	file, state := "/proc/net/udp6", ""
	if tcp {
		file, state = "/proc/net/tcp6", "0A"
	}
	return procListed(file, []string{"00000000000000000000000001000000", "00000000000000000000000000000000"}, port, state)
}

// UDPBound reports whether some socket is bound to UDP 127.0.0.1:port (or the
// wildcard address), as listed in /proc/net/udp. It does not touch the port.
func UDPBound(port int) bool { return procListed("/proc/net/udp", ipv4Local, port, "") }

// TCPListening reports whether a socket listens on TCP 127.0.0.1:port (or
// the wildcard address), as listed in /proc/net/tcp.
func TCPListening(port int) bool { return procListed("/proc/net/tcp", ipv4Local, port, "0A") }

// ipv4Local are 127.0.0.1 and 0.0.0.0 as /proc/net/{udp,tcp} write them.
var ipv4Local = []string{"0100007F", "00000000"}

// procListed reports whether the socket table file lists a socket on one
// of the addresses (hex, as the file writes them) and port, in state (hex,
// "" for any).
func procListed(file string, addrs []string, port int, state string) bool {
	f, err := os.Open(file)
	if err != nil {
		return false
	}
	defer f.Close()
	want := map[string]bool{}
	for _, a := range addrs {
		want[fmt.Sprintf("%s:%04X", a, port)] = true
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 3 && want[fields[1]] && (state == "" || fields[3] == state) {
			return true
		}
	}
	return false
}

// FreePort returns a port on 127.0.0.1 free for both UDP and TCP a moment
// ago (a SIP server listens on both with the same number).
func FreePort() (int, error) {
	for range 50 {
		p, err := FreeUDPPort()
		if err != nil {
			return 0, err
		}
		if tcpBindable(p) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("sipptest: no port free for UDP and TCP found")
}

// Port is FreePort for tests: it fails the test on error.
func Port(t testing.TB) int {
	t.Helper()
	return mustPort(t, FreePort)
}

// tcpBindable reports whether a TCP socket without SO_REUSEADDR can bind
// 127.0.0.1:port, as SIPp's does: unlike net.Listen, this also fails while
// connections of an earlier run linger in TIME_WAIT on the port.
func tcpBindable(port int) bool {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer syscall.Close(fd)
	return syscall.Bind(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}) == nil
}
