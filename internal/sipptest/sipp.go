package sipptest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// InCI reports whether the CI environment variable is set to a true value;
// in CI a missing tool fails the test instead of skipping it.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v != "" && v != "0" && v != "false" && v != "no"
}

// RequireTool returns the path of the named executable, or skips the test
// with a clear message (fails it when running in CI).
func RequireTool(t testing.TB, name, debPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found on PATH (install it: apt-get install -y %s)", name, debPackage)
	if InCI() {
		t.Fatalf("CI is set: %s", msg)
	}
	t.Skip(msg)
	return ""
}

// RequireSipp returns the sipp path, skipping (or failing in CI) when absent.
func RequireSipp(t testing.TB) string {
	t.Helper()
	return RequireTool(t, "sipp", "sip-tester")
}

// RequireKamailio returns the kamailio path, skipping (or failing in CI)
// when absent.
func RequireKamailio(t testing.TB) string {
	t.Helper()
	return RequireTool(t, "kamailio", "kamailio")
}

// UASOptions configures a background SIPp answerer.
type UASOptions struct {
	// Sipp is the sipp executable ("sipp" from PATH when empty).
	Sipp string
	// Scenario is the XML scenario file.
	Scenario string
	// Port is the local port on 127.0.0.1 to answer on.
	Port int
	// Transport is SIPp's -t mode: "u1" (UDP, the default) or "t1" (TCP).
	Transport string
	// IP is the local address (-i); "127.0.0.1" when empty, "::1" for IPv6.
	IP string
	// Dir receives logs and statistics; it must exist.
	Dir string
	// ExtraArgs are appended to the command line.
	ExtraArgs []string
}

// UAS is a running SIPp answerer.
type UAS struct {
	*Proc
	// Opts are the options it was started with.
	Opts UASOptions
	// StatPath is its -stf statistics file.
	StatPath string
}

// StartUAS starts a SIPp UAS in the background and waits (up to 5s) until
// its port is bound.
func StartUAS(o UASOptions) (*UAS, error) {
	if o.Sipp == "" {
		o.Sipp = "sipp"
	}
	if o.Transport == "" {
		o.Transport = "u1"
	}
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
	bound := UDPBound
	if strings.HasPrefix(o.Transport, "t") {
		bound = TCPListening
	}
	if o.IP == "::1" {
		bound = func(port int) bool { return ipv6Listed(port, strings.HasPrefix(o.Transport, "t")) }
	}
	stat := filepath.Join(o.Dir, "uas_stat.csv")
	argv := []string{o.Sipp, "-sf", o.Scenario, "-i", o.IP, "-p", strconv.Itoa(o.Port),
		"-t", o.Transport, "-nostdin", "-trace_stat", "-stf", stat, "-fd", "1",
		"-trace_err", "-error_file", filepath.Join(o.Dir, "uas_errors.log"),
		"-max_recv_loops", "5000"}
	argv = append(argv, o.ExtraArgs...)
	p, err := StartProc("sipp uas", o.Dir, filepath.Join(o.Dir, "uas_screen.log"), argv...)
	if err != nil {
		return nil, err
	}
	u := &UAS{Proc: p, Opts: o, StatPath: stat}
	deadline := time.Now().Add(5 * time.Second)
	for !bound(o.Port) {
		if p.Exited() || time.Now().After(deadline) {
			u.Stop()
			return nil, fmt.Errorf("sipp uas did not bind 127.0.0.1:%d (see %s)", o.Port, p.LogPath)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return u, nil
}

// Stop asks SIPp to finish its calls (SIGUSR1), waits up to 5s, then kills it.
func (u *UAS) Stop() { u.Proc.Stop(syscall.SIGUSR1, 5*time.Second) }

// Stats stops nothing; it reads the UAS statistics file as last dumped.
func (u *UAS) Stats() (Stats, error) { return ParseStatFile(u.StatPath) }

// UACOptions configures a bounded SIPp caller run.
type UACOptions struct {
	// Sipp is the sipp executable ("sipp" from PATH when empty).
	Sipp string
	// Scenario is the XML scenario file.
	Scenario string
	// Target is the host:port the requests are sent to (the proxy).
	Target string
	// Service is the Request-URI user ([service]); "bench" when empty.
	Service string
	// Transport is SIPp's -t mode: "u1" (UDP, the default) or "t1" (TCP).
	Transport string
	// IP is the local address (-i); "127.0.0.1" when empty.
	IP string
	// Calls is the total number of calls (-m); must be > 0.
	Calls int
	// Rate is calls per second (-r); 10 when 0.
	Rate int
	// Limit is the maximum of simultaneous calls (-l); 4*Rate (≥ 100) when 0.
	Limit int
	// Timeout bounds the whole run (SIPp -timeout, and a kill 10s later);
	// Calls/Rate + 30s when 0.
	Timeout time.Duration
	// RTT enables -trace_rtt so Result.RTT is filled.
	RTT bool
	// Dir receives logs and statistics; it must exist.
	Dir string
	// ExtraArgs are appended to the command line.
	ExtraArgs []string
}

// Result is the outcome of a UAC run.
type Result struct {
	// Stats are the caller's cumulative statistics.
	Stats Stats
	// RTT holds latency per response-time measure (rtd number), if enabled.
	RTT map[int]Latency
	// ExitCode is SIPp's exit status (0: all calls ok, 1: some failed,
	// 99: no call processed, negative: fatal).
	ExitCode int
	// Elapsed is the wall time of the run.
	Elapsed time.Duration
	// CPU is the user+system CPU time SIPp itself used.
	CPU time.Duration
	// Dir holds the run's files (uac_screen.log, uac_errors.log, ...).
	Dir string
}

// ErrorsLog returns the content of SIPp's unexpected-message log (may be "").
func (r Result) ErrorsLog() string {
	b, _ := os.ReadFile(filepath.Join(r.Dir, "uac_errors.log"))
	return string(b)
}

// RunUAC runs a SIPp caller to completion (or until its timeout) and parses
// its statistics. An error means SIPp could not be run or produced no
// statistics; failed calls are reported in the Result, not as an error.
func RunUAC(ctx context.Context, o UACOptions) (Result, error) {
	if o.Sipp == "" {
		o.Sipp = "sipp"
	}
	if o.Calls <= 0 {
		return Result{}, errors.New("sipptest: UACOptions.Calls must be > 0")
	}
	if o.Rate <= 0 {
		o.Rate = 10
	}
	if o.Limit <= 0 {
		o.Limit = max(100, 4*o.Rate)
	}
	if o.Service == "" {
		o.Service = "bench"
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Duration(o.Calls/o.Rate)*time.Second + 30*time.Second
	}
	// Without -p SIPp takes 5060 when free: always give it a free port.
	port, err := FreePort() // free for UDP and TCP (-t t1 binds TCP)
	if err != nil {
		return Result{}, err
	}
	stat := filepath.Join(o.Dir, "uac_stat.csv")
	if o.Transport == "" {
		o.Transport = "u1"
	}
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
	argv := []string{o.Sipp, "-sf", o.Scenario, "-s", o.Service, "-i", o.IP, "-t", o.Transport,
		"-p", strconv.Itoa(port),
		"-m", strconv.Itoa(o.Calls), "-r", strconv.Itoa(o.Rate), "-l", strconv.Itoa(o.Limit),
		"-timeout", fmt.Sprintf("%ds", int(o.Timeout.Seconds()+0.999)),
		"-recv_timeout", "10s", "-nostdin",
		"-trace_stat", "-stf", stat, "-fd", "1",
		"-trace_err", "-error_file", filepath.Join(o.Dir, "uac_errors.log"),
		"-max_recv_loops", "5000", "-max_sched_loops", "5000"}
	if o.RTT {
		argv = append(argv, "-trace_rtt", "-rtt_freq", "1")
	}
	argv = append(argv, o.ExtraArgs...)
	argv = append(argv, o.Target)

	start := time.Now()
	p, err := StartProc("sipp uac", o.Dir, filepath.Join(o.Dir, "uac_screen.log"), argv...)
	if err != nil {
		return Result{}, err
	}
	wctx, cancel := context.WithTimeout(ctx, o.Timeout+10*time.Second)
	defer cancel()
	_ = p.Wait(wctx)
	p.Stop(syscall.SIGKILL, 0) // no-op when already exited
	res := Result{ExitCode: p.ExitCode(), Elapsed: time.Since(start), Dir: o.Dir}
	if ps := p.Cmd.ProcessState; ps != nil {
		res.CPU = ps.UserTime() + ps.SystemTime()
	}
	res.Stats, err = ParseStatFile(stat)
	if err != nil {
		return res, fmt.Errorf("sipp uac exited %d without statistics (%v); see %s",
			res.ExitCode, err, filepath.Join(o.Dir, "uac_screen.log"))
	}
	if o.RTT {
		if m, _ := filepath.Glob(filepath.Join(o.Dir, "*_rtt.csv")); len(m) > 0 {
			res.RTT, _ = ParseRTTFile(m[0])
		}
	}
	return res, nil
}

// StartUASForTest starts a UAS on a free port with scenario, stopping it on
// test cleanup. It returns the UAS; its port is u.Opts.Port.
func StartUASForTest(t testing.TB, scenario string) *UAS {
	t.Helper()
	sipp := RequireSipp(t)
	dir := t.TempDir()
	var lastErr error
	for range 3 { // the kernel may hand the port to someone else meanwhile
		u, err := StartUAS(UASOptions{Sipp: sipp, Scenario: scenario, Port: UDPPort(t), Dir: dir})
		if err == nil {
			t.Cleanup(u.Stop)
			return u
		}
		lastErr = err
	}
	t.Fatal(lastErr)
	return nil
}

// RunUACForTest runs a UAC (o.Sipp and o.Dir default to the test's sipp and
// a fresh temporary directory) and fails the test if SIPp could not run.
func RunUACForTest(t testing.TB, o UACOptions) Result {
	t.Helper()
	if o.Sipp == "" {
		o.Sipp = RequireSipp(t)
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	ctx := context.Background()
	if d, ok := t.(interface{ Context() context.Context }); ok {
		ctx = d.Context()
	}
	res, err := RunUAC(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
