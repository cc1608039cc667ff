package transport

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The memory tests hold 10,000 idle connections and report the server's
// memory per connection. The client ends live in a child process (this
// test binary re-run as TestHelperClients), since one process may not have
// 20,000 descriptors.

const helperEnv = "VELOX_STREAM_HELPER" // "proto addr n" for the child

func memConns() int {
	if v, err := strconv.Atoi(os.Getenv("VELOX_MEM_CONNS")); err == nil && v > 0 {
		return v
	}
	return 10000
}

func TestTCPMemoryPerConn(t *testing.T) { memoryPerConn(t, TCP) }
func TestTLSMemoryPerConn(t *testing.T) { memoryPerConn(t, TLS) }

func memoryPerConn(t *testing.T, proto Proto) {
	if testing.Short() || raceEnabled {
		t.Skip("long; not under -short or -race")
	}
	n := memConns()
	h := newTestHandler()
	s := startStreams(t, StreamsOptions{Workers: 2, MaxConns: 2*n + 100}, h)
	var l *StreamListener
	if proto == TLS {
		l = listenTLS(t, s, newTestCA(t), "127.0.0.1:0", nil)
	} else {
		l = listenTCP(t, s, "127.0.0.1:0")
	}
	before := memInUse()

	start := time.Now()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperClients$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %d", helperEnv, proto, l.LocalAddr(), n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "READY") || strings.HasPrefix(sc.Text(), "FAIL") {
				ready <- sc.Text()
			}
		}
		close(ready)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case r := <-ready:
		if !strings.HasPrefix(r, "READY") {
			t.Fatalf("client process: %q", r)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("client process not ready")
	}
	waitFor(t, "connections", func() bool { st := s.Stats(); return st.Open == int64(n) && st.MessagesIn == uint64(n) })
	setup := time.Since(start)
	after := memInUse()
	heap := int64(after.HeapInuse) - int64(before.HeapInuse)
	stack := int64(after.StackInuse) - int64(before.StackInuse)
	per := (heap + stack) / int64(n)
	line := fmt.Sprintf("%s: %d bytes/conn (heap %d + stack %d) over %d idle connections (set up in %v)",
		proto, per, heap/int64(n), stack/int64(n), n, setup.Round(time.Millisecond))
	t.Log(line)
	fmt.Println(line)

	stdin.Close() // the clients hang up
	waitFor(t, "connections closed", func() bool { return s.Stats().Open == 0 })
	if err := cmd.Wait(); err != nil {
		t.Fatalf("client process: %v", err)
	}
	if per > 64<<10 {
		t.Errorf("%d bytes per idle connection", per)
	}
}

// memInUse collects garbage (twice, so that stacks shrink) and reads the
// memory statistics.
func memInUse() runtime.MemStats {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms
}

// TestHelperClients is the client process of the memory tests: it opens n
// connections, sends one message on each and reads the answer, prints
// READY and holds them until its stdin closes.
func TestHelperClients(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("client process of the memory tests")
	}
	var protoName, addr string
	var n int
	if _, err := fmt.Sscan(spec, &protoName, &addr, &n); err != nil {
		fmt.Println("FAIL", err)
		return
	}
	proto, _ := ParseProto(protoName)
	ap := netip.MustParseAddrPort(addr)
	conns := make([]net.Conn, n)
	msg := []byte(sipMsg("mem", ""))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	next := make(chan int)
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, len(msg))
			for i := range next {
				c, err := dialHelper(proto, ap)
				if err == nil {
					c.SetDeadline(time.Now().Add(30 * time.Second))
					if _, err = c.Write(msg); err == nil {
						_, err = io.ReadFull(c, buf)
					}
					c.SetDeadline(time.Time{})
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("connection %d: %w", i, err)
					}
					mu.Unlock()
					continue
				}
				conns[i] = c
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		fmt.Println("FAIL", firstErr)
		return
	}
	fmt.Println("READY")
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
}

func dialHelper(proto Proto, ap netip.AddrPort) (net.Conn, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if proto == TLS {
		return tls.DialWithDialer(d, "tcp", ap.String(), &tls.Config{InsecureSkipVerify: true})
	}
	return d.Dial("tcp", ap.String())
}
