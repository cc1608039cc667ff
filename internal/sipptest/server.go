package sipptest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ModuleRoot returns the directory holding the main module's go.mod, as
// reported by `go env GOMOD`.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("sipptest: not inside a Go module")
	}
	return filepath.Dir(gomod), nil
}

// RepoPath returns a path relative to the module root, failing the test if
// the root cannot be found.
func RepoPath(t testing.TB, rel string) string {
	t.Helper()
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, rel)
}

// Scenario returns the path of bench/scenarios/name.
func Scenario(t testing.TB, name string) string {
	t.Helper()
	return RepoPath(t, filepath.Join("bench", "scenarios", name))
}

var (
	buildMu   sync.Mutex
	buildDir  string
	buildBins = map[string]string{}
)

// BuildBinary runs `go build -o DIR/name ./pkg` from the module root once per
// test binary and returns the executable path. CleanupBuilds removes it.
func BuildBinary(pkg, name string) (string, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	key := pkg + " " + name
	if p, ok := buildBins[key]; ok {
		return p, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	if buildDir == "" {
		if buildDir, err = os.MkdirTemp("", "sipptest-bin-"); err != nil {
			return "", err
		}
	}
	out := filepath.Join(buildDir, name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	buildBins[key] = out
	return out, nil
}

// CleanupBuilds removes binaries built by BuildBinary; call it from TestMain
// after m.Run.
func CleanupBuilds() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	buildDir, buildBins = "", map[string]string{}
}

// BuildVelox builds ./cmd/velox once per test binary and returns its path,
// failing the test if it does not build. When the environment variable
// VELOX_BIN names an executable, that binary is used instead.
func BuildVelox(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("VELOX_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("VELOX_BIN: %v", err)
		}
		return bin
	}
	p, err := BuildBinary("./cmd/velox", "velox")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ProbeOptions sends one OPTIONS request for sip:addr to addr over UDP and
// returns the status code of the first response received within wait.
func ProbeOptions(addr string, wait time.Duration) (int, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	la := c.LocalAddr().(*net.UDPAddr)
	host := la.IP.String()
	if la.IP.To4() == nil {
		host = "[" + host + "]"
	}
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	msg := "OPTIONS sip:" + addr + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + host + ":" + strconv.Itoa(la.Port) + ";branch=z9hG4bK-probe-" + id + ";rport\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:probe@" + host + ">;tag=probe" + id + "\r\n" +
		"To: <sip:" + addr + ">\r\n" +
		"Call-ID: probe-" + id + "@" + host + "\r\n" +
		"CSeq: 1 OPTIONS\r\n" +
		"Content-Length: 0\r\n\r\n"
	if _, err := c.Write([]byte(msg)); err != nil {
		return 0, err
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(buf[:n], []byte("\r\n"))
	f := strings.Fields(string(line))
	if len(f) < 2 || f[0] != "SIP/2.0" {
		return 0, fmt.Errorf("not a SIP response: %q", line)
	}
	return strconv.Atoi(f[1])
}

// WaitOptions polls addr with OPTIONS until it answers 200, p exits, or ctx
// ends.
func WaitOptions(ctx context.Context, addr string, p *Proc) error {
	var last error
	for {
		code, err := ProbeOptions(addr, 100*time.Millisecond)
		if err == nil && code == 200 {
			return nil
		}
		if err == nil {
			last = fmt.Errorf("OPTIONS answered %d", code)
		} else {
			last = err
		}
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited (code %d) before answering OPTIONS on %s", p.Name, p.ExitCode(), addr)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not answering OPTIONS on %s: %v", nameOf(p), addr, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func nameOf(p *Proc) string {
	if p == nil {
		return "server"
	}
	return p.Name
}

// StartServer starts a server under test listening on UDP addr, waits up to
// 10s until it answers OPTIONS with 200, and returns it. The caller stops it
// with Stop(syscall.SIGTERM, grace).
func StartServer(name, dir, logPath, addr string, argv ...string) (*Proc, error) {
	p, err := StartProc(name, dir, logPath, argv...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := WaitOptions(ctx, addr, p); err != nil {
		p.Stop(syscall.SIGTERM, 2*time.Second)
		log, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("%w\n--- %s log ---\n%s", err, name, tail(log, 4000))
	}
	return p, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// StartServerForTest is StartServer for tests: logs go to the test's
// temporary directory, the log is printed if the test fails, and the server
// is stopped on cleanup.
func StartServerForTest(t testing.TB, name, addr string, argv ...string) *Proc {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "server.log")
	p, err := StartServer(name, dir, logPath, addr, argv...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop(syscall.SIGTERM, 3*time.Second)
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("--- %s log (tail) ---\n%s", name, tail(b, 4000))
		}
	})
	return p
}

// KamailioModulesDir returns the Debian package's module directory (or ""
// to let kamailio use its built-in default).
func KamailioModulesDir() string {
	for _, d := range []string{
		"/usr/lib/x86_64-linux-gnu/kamailio/modules",
		"/usr/lib/aarch64-linux-gnu/kamailio/modules",
		"/usr/lib/kamailio/modules",
		"/usr/local/lib64/kamailio/modules",
	} {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d
		}
	}
	return ""
}

// KamailioArgs returns the kamailio arguments (without the executable) that
// run cfg in the foreground with TLSF allocators, logging to stderr, with
// the given number of UDP workers, listening on udp:listen and forwarding
// to sip:dest. The configs in bench/kamailio read these -A defines.
func KamailioArgs(cfg string, children int, listen, dest string) []string {
	return KamailioArgsMem(cfg, children, listen, dest, 128)
}

// KamailioArgsMem is KamailioArgs with shmMB MiB of shared memory (-m):
// a transaction-stateful Kamailio at thousands of calls per second needs
// far more than the 128 MiB that suffice statelessly, or it answers
// "500 out of memory".
func KamailioArgsMem(cfg string, children int, listen, dest string, shmMB int) []string {
	args := []string{"-f", cfg, "-x", "tlsf", "-X", "tlsf", "-DD", "-E",
		"-m", strconv.Itoa(shmMB), "-M", "16",
		"-A", "CHILDREN=" + strconv.Itoa(children),
		"-A", "LISTEN=udp:" + listen,
		"-A", `DEST="sip:` + dest + `"`,
		"-Y", os.TempDir()}
	if d := KamailioModulesDir(); d != "" {
		args = append(args, "-L", d)
	}
	return args
}
