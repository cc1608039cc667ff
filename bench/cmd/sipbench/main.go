// Command sipbench compares the CPU cost per call of SIP proxies (velox and
// Kamailio) under the same SIPp load on the same machine.
//
// For every server of a suite, in turn and optionally repeated, it starts
// the server and a SIPp UAS behind it on loopback, runs a bounded SIPp UAC
// through it, and measures the server's CPU time (utime+stime of its whole
// process tree, from /proc, before and after the UAC run), its peak memory
// and the INVITE→200 response time. It prints a Markdown table with the
// median run per server and the CPU ratio of the candidate (velox) to the
// best baseline (Kamailio with 1 or 2 workers).
//
// Usage (from the repository root):
//
//	go run ./bench/cmd/sipbench -rate 3000 -calls 60000 -repeat 3
//	go run ./bench/cmd/sipbench -servers kamailio-c1,kamailio-c2 -rate 2000 -calls 20000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/veloxsip/velox/internal/sipptest"
)

// config holds the command-line settings.
type config struct {
	suite        string
	servers      string
	velox        string
	veloxWorkers int
	rate         int
	calls        int
	limit        int
	repeat       int
	proxyPort    int
	uasPort      int
	timeout      time.Duration
	out          string
	keep         bool
	skipMissing  bool
	maxFailed    int64
	pause        time.Duration
	users        int
	variants     variantFlag
	pair         string
}

// variantFlag collects -variant NAME:VAR=V[,VAR=V]: an extra velox row
// named velox-NAME, run with those environment variables (for comparing
// transport settings side by side in one run). BIN=path runs another
// velox binary instead (e.g. the previous commit's build).
type variantFlag []string

func (v *variantFlag) String() string { return strings.Join(*v, " ") }
func (v *variantFlag) Set(s string) error {
	name, envs, ok := strings.Cut(s, ":")
	if !ok || name == "" || envs == "" {
		return fmt.Errorf("want NAME:VAR=V[,VAR=V], got %q", s)
	}
	*v = append(*v, s)
	return nil
}

// withVariants appends a copy of the velox server per variant.
func withVariants(all []Server, variants variantFlag) []Server {
	for _, spec := range variants {
		name, envs, _ := strings.Cut(spec, ":")
		for _, s := range all {
			if s.Kind != "velox" || s.Name != "velox" {
				continue
			}
			v := s
			v.Name = "velox-" + name
			bin, vars := s.Command, []string{}
			for _, kv := range strings.Split(envs, ",") {
				if b, ok := strings.CutPrefix(kv, "BIN="); ok {
					bin = b // another build, e.g. the previous commit's
				} else {
					vars = append(vars, kv)
				}
			}
			v.Command = "env"
			v.Args = append(vars, append([]string{bin}, s.Args...)...)
			if s.Command == "" {
				v.Command = ""
			}
			all = append(all, v)
		}
	}
	return all
}

// runResult is one measured run of one server.
type runResult struct {
	server   string
	err      error
	uac      sipptest.Result
	uasStats sipptest.Stats
	cpu      time.Duration
	procs    int
	mem      memSample
	wall     time.Duration
	hostBusy time.Duration // CPU time used by everything on the host during the UAC run
	sippCPU  time.Duration // SIPp UAC + UAS CPU time during the UAC run
}

// notDone counts the calls of a run of calls that failed or did not
// finish.
func (r runResult) notDone(calls int) int64 { return int64(calls) - r.uac.Stats.Successful }

func (r runResult) cpuPerCall() float64 {
	if r.err != nil || r.uac.Stats.Successful == 0 {
		return math.NaN()
	}
	return float64(r.cpu.Microseconds()) / float64(r.uac.Stats.Successful)
}

func main() {
	var c config
	flag.StringVar(&c.suite, "suite", "stateless", "benchmark suite (stateless, stateful, tcp, register, register-auth)")
	flag.StringVar(&c.servers, "servers", "", "comma-separated servers of the suite to run (default: all)")
	flag.StringVar(&c.velox, "velox", os.Getenv("VELOX_BIN"), "velox binary (default: $VELOX_BIN, else go build ./cmd/velox into a temporary directory)")
	flag.IntVar(&c.veloxWorkers, "workers", 0, "pass --workers N to velox (0: velox default)")
	flag.IntVar(&c.rate, "rate", 3000, "SIPp call rate, calls per second")
	flag.IntVar(&c.calls, "calls", 60000, "calls per run (SIPp -m)")
	flag.IntVar(&c.limit, "limit", 0, "SIPp max simultaneous calls -l (default 4*rate, at least 100)")
	flag.IntVar(&c.repeat, "repeat", 1, "runs per server (servers alternate; the median by CPU/call is reported)")
	flag.IntVar(&c.proxyPort, "proxy-port", 5060, "UDP port of the proxy on 127.0.0.1")
	flag.IntVar(&c.uasPort, "uas-port", 5070, "UDP port of the SIPp UAS on 127.0.0.1")
	flag.DurationVar(&c.timeout, "timeout", 0, "bound on one UAC run (default calls/rate + 30s)")
	flag.StringVar(&c.out, "out", "", "also write the Markdown report to this file")
	flag.BoolVar(&c.keep, "keep", false, "keep the work directory (SIPp logs, statistics, server logs)")
	flag.BoolVar(&c.skipMissing, "skip-missing", false, "skip servers whose binary is missing instead of failing")
	flag.Int64Var(&c.maxFailed, "max-failed", -1, "exit 1 if any run has more failed calls than this (-1: never)")
	flag.DurationVar(&c.pause, "pause", time.Second, "idle time between runs")
	flag.IntVar(&c.users, "users", 0, "subscribers of the register-auth suite, imported into both servers (default: -calls, so that every call of a run is a different user)")
	flag.Var(&c.variants, "variant", "extra velox row velox-NAME run with environment variables, NAME:VAR=V[,VAR=V] (repeatable; BIN=path runs that velox binary)")
	flag.StringVar(&c.pair, "pair", "", "A,B: run servers A and B at the same time, each with its own SIPp load, -repeat times (A/B comparison under the same host noise)")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "sipbench:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	if c.rate <= 0 || c.calls <= 0 || c.repeat <= 0 {
		return errors.New("-rate, -calls and -repeat must be > 0")
	}
	suite, err := findSuite(c.suite)
	if err != nil {
		return err
	}
	root, err := sipptest.ModuleRoot()
	if err != nil {
		return err
	}
	sipp, err := exec.LookPath("sipp")
	if err != nil {
		return errors.New("sipp not found on PATH (apt-get install -y sip-tester)")
	}
	work, err := os.MkdirTemp("", "sipbench-")
	if err != nil {
		return err
	}
	if c.keep {
		fmt.Fprintln(os.Stderr, "work directory:", work)
	} else {
		defer os.RemoveAll(work)
	}

	env := Env{
		Root:         root,
		Listen:       fmt.Sprintf("127.0.0.1:%d", c.proxyPort),
		To:           fmt.Sprintf("127.0.0.1:%d", c.uasPort),
		VeloxWorkers: c.veloxWorkers,
		Work:         work,
		Users:        c.users,
	}
	if env.Users <= 0 {
		env.Users = c.calls
	}
	env.Kamailio, _ = exec.LookPath("kamailio")
	all := withVariants(suite.Servers(Env{Root: root, Listen: env.Listen, To: env.To}), c.variants)
	var selected []string
	if c.pair != "" {
		selected = strings.Split(c.pair, ",")
		if len(selected) != 2 || selected[0] == selected[1] {
			return errors.New("-pair wants two different servers A,B")
		}
	} else if c.servers == "" {
		for _, s := range all {
			selected = append(selected, s.Name)
		}
	} else {
		selected = strings.Split(c.servers, ",")
	}
	wantVelox := false
	for _, name := range selected {
		i := slices.IndexFunc(all, func(s Server) bool { return s.Name == name })
		if i < 0 {
			return fmt.Errorf("suite %s has no server %q", suite.Name, name)
		}
		wantVelox = wantVelox || all[i].Kind == "velox"
	}
	if wantVelox {
		env.Velox = c.velox
		if env.Velox == "" {
			fmt.Fprintln(os.Stderr, "building ./cmd/velox ...")
			if env.Velox, err = sipptest.BuildBinary("./cmd/velox", "velox"); err != nil {
				env.Velox = ""
				fmt.Fprintln(os.Stderr, err)
			}
			defer sipptest.CleanupBuilds()
		}
	}
	var servers []Server
	var notes []string
	for _, s := range withVariants(suite.Servers(env), c.variants) {
		if !slices.Contains(selected, s.Name) {
			continue
		}
		if s.Command == "" {
			msg := fmt.Sprintf("%s: %s binary not available", s.Name, s.Kind)
			if !c.skipMissing {
				return errors.New(msg)
			}
			notes = append(notes, msg+", skipped")
			continue
		}
		servers = append(servers, s)
	}
	if len(servers) == 0 {
		return errors.New("no server to run")
	}
	if suite.Setup != nil {
		kinds := map[string]bool{}
		for _, s := range servers {
			kinds[s.Kind] = true
		}
		fmt.Fprintln(os.Stderr, "preparing the suite's files ...")
		more, err := suite.Setup(env, kinds)
		if err != nil {
			return err
		}
		notes = append(notes, more...)
	}
	var uacArgs []string
	if suite.UACArgs != nil {
		uacArgs = suite.UACArgs(env)
	}

	if c.pair != "" {
		return runPairs(c, sipp, suite, env, servers, root, work, uacArgs, notes)
	}
	load0 := loadAvg()
	results := map[string][]runResult{}
	failedTooMuch := false
	for r := 1; r <= c.repeat; r++ {
		for _, s := range servers {
			dir := filepath.Join(work, fmt.Sprintf("%s-r%d", s.Name, r))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "run %d/%d %s: %d calls at %d cps ... ", r, c.repeat, s.Name, c.calls, c.rate)
			res := runOne(c, sipp, suite, s, root, dir, uacArgs, nil)
			results[s.Name] = append(results[s.Name], res)
			if res.err != nil {
				fmt.Fprintf(os.Stderr, "ERROR: %v\n", res.err)
			} else {
				st := res.uac.Stats
				fmt.Fprintf(os.Stderr, "ok %d failed %d retrans %d cpu %.1f µs/call\n",
					st.Successful, st.Failed, st.Retransmissions, res.cpuPerCall())
			}
			failedTooMuch = failedTooMuch || tooManyFailed(c, res)
			time.Sleep(c.pause)
		}
	}

	notes = append(notes, fmt.Sprintf("load average before / after the runs: %s / %s (other load on the machine inflates CPU per call)", load0, loadAvg()))
	return finish(c, failedTooMuch, func(w io.Writer) { report(w, c, suite, servers, results, notes) })
}

// tooManyFailed reports whether run r breaks -max-failed: it failed, or
// more of its calls failed or did not finish than allowed.
func tooManyFailed(c config, r runResult) bool {
	if c.maxFailed < 0 {
		return false
	}
	if r.err != nil {
		return true
	}
	st := r.uac.Stats
	return st.Failed > c.maxFailed || st.Successful+st.Failed < int64(c.calls)
}

// finish writes the Markdown report to stdout and to -out, and turns
// failedTooMuch into the command's error.
func finish(c config, failedTooMuch bool, write func(io.Writer)) error {
	var buf strings.Builder
	write(io.MultiWriter(os.Stdout, &buf))
	if c.out != "" {
		if err := os.WriteFile(c.out, []byte(buf.String()), 0o644); err != nil {
			return err
		}
	}
	if failedTooMuch {
		return fmt.Errorf("some run failed or had more than %d failed calls", c.maxFailed)
	}
	return nil
}

// runOne measures one server: UAS up, server up (answering OPTIONS), CPU
// snapshot, UAC run, CPU snapshot, everything stopped. gate, when set, is
// called once the server is ready, just before the CPU snapshot (a pair's
// two runs start their UACs together).
func runOne(c config, sipp string, suite Suite, s Server, root, dir string, uacArgs []string, gate func()) (res runResult) {
	res.server = s.Name
	for _, p := range []int{c.proxyPort, c.uasPort} {
		if sipptest.UDPBound(p) {
			res.err = fmt.Errorf("UDP port 127.0.0.1:%d is already in use (choose -proxy-port/-uas-port)", p)
			return res
		}
	}
	scen := filepath.Join(root, "bench", "scenarios")
	uas, err := sipptest.StartUAS(sipptest.UASOptions{Sipp: sipp, Scenario: filepath.Join(scen, suite.UAS), Port: c.uasPort,
		Transport: suite.Transport, Dir: dir})
	if err != nil {
		res.err = err
		return res
	}
	defer func() {
		uas.Stop()
		res.uasStats, _ = uas.Stats()
	}()
	argv := append([]string{s.Command}, s.Args...)
	srv, err := sipptest.StartServer(s.Name, dir, filepath.Join(dir, "server.log"), fmt.Sprintf("127.0.0.1:%d", c.proxyPort), argv...)
	if err != nil {
		res.err = err
		return res
	}
	defer srv.Stop(syscall.SIGTERM, 5*time.Second)
	if strings.HasPrefix(suite.Transport, "t") {
		// Ready answers OPTIONS over UDP; the TCP listener may come a
		// moment later (Kamailio's tcp_main).
		for deadline := time.Now().Add(5 * time.Second); !sipptest.TCPListening(c.proxyPort); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				res.err = fmt.Errorf("%s does not listen on TCP port %d", s.Name, c.proxyPort)
				return res
			}
		}
	}

	pid := srv.Pid()
	var (
		mu   sync.Mutex
		peak memSample
	)
	sample := func() {
		m := treeMemory(pid)
		mu.Lock()
		if m.kb > peak.kb {
			peak = m
		}
		mu.Unlock()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				sample()
			}
		}
	})

	if gate != nil {
		gate()
	}
	cpu0, _ := treeCPU(pid)
	uas0, _ := treeCPU(uas.Pid())
	host0 := hostBusy()
	start := time.Now()
	res.uac, err = sipptest.RunUAC(context.Background(), sipptest.UACOptions{
		Sipp: sipp, Scenario: filepath.Join(scen, suite.UAC),
		Target: fmt.Sprintf("127.0.0.1:%d", c.proxyPort), Transport: suite.Transport,
		Calls: c.calls, Rate: c.rate, Limit: c.limit, Timeout: c.timeout,
		RTT: true, Dir: dir, ExtraArgs: uacArgs,
	})
	res.wall = time.Since(start)
	cpu1, procs := treeCPU(pid)
	uas1, _ := treeCPU(uas.Pid())
	res.hostBusy = hostBusy() - host0
	res.sippCPU = uas1 - uas0 + res.uac.CPU
	close(stop)
	wg.Wait()
	sample()
	res.cpu, res.procs, res.mem = cpu1-cpu0, procs, peak
	if err != nil {
		res.err = err
	} else if srv.Exited() {
		res.err = fmt.Errorf("%s exited during the run (code %d)", s.Name, srv.ExitCode())
	}
	return res
}

// loadAvg returns the 1-minute load average from /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// median returns the run with the median CPU per call (lower median for
// an even count), preferring runs without error.
func median(runs []runResult) (runResult, []float64) {
	var ok []runResult
	for _, r := range runs {
		if r.err == nil && !math.IsNaN(r.cpuPerCall()) {
			ok = append(ok, r)
		}
	}
	if len(ok) == 0 {
		return runs[0], nil
	}
	sort.Slice(ok, func(i, j int) bool { return ok[i].cpuPerCall() < ok[j].cpuPerCall() })
	all := make([]float64, len(ok))
	for i, r := range ok {
		all[i] = r.cpuPerCall()
	}
	return ok[(len(ok)-1)/2], all
}
