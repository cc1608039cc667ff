package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// report prints the Markdown results: one table row per server (median
// run), the candidate/baseline CPU ratio, and the machine description.
func report(w io.Writer, c config, suite Suite, servers []Server, results map[string][]runResult, notes []string) {
	fmt.Fprintf(w, "### Suite `%s`: %s\n\n", suite.Name, suite.Description)
	fmt.Fprintf(w, "%d calls per run at %d cps (SIPp UAC→proxy 127.0.0.1:%d→SIPp UAS 127.0.0.1:%d), %d run(s) per server, servers alternating; median run by CPU/call shown.\n\n",
		c.calls, c.rate, c.proxyPort, c.uasPort, c.repeat)
	fmt.Fprintln(w, "| server | calls ok | failed | retrans | CPU µs/call | CPU µs/call, all runs | server procs | peak mem MiB | mem measure | INVITE→200 ms mean / p50 / p99 | wall s | host CPU % server / SIPp / other |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---|---:|---:|---|---|---:|---|")
	best := map[string]float64{}
	for _, s := range servers {
		runs := results[s.Name]
		if len(runs) == 0 {
			continue
		}
		m, all := median(runs)
		if m.err != nil {
			fmt.Fprintf(w, "| %s | error: %s | | | | | | | | | | |\n", s.Name, oneLine(m.err.Error()))
			continue
		}
		best[s.Name] = m.cpuPerCall()
		st := m.uac.Stats
		failed := m.notDone(c.calls) // unfinished count as failed
		var allS []string
		for _, v := range all {
			allS = append(allS, fmt.Sprintf("%.1f", v))
		}
		lat := "n/a"
		if l, ok := m.uac.RTT[1]; ok && l.Count > 0 {
			lat = fmt.Sprintf("%.2f / %.0f / %.0f", l.Mean, l.P50, l.P99)
		}
		pct := func(d float64) float64 { return 100 * d / m.wall.Seconds() }
		other := m.hostBusy - m.cpu - m.sippCPU
		fmt.Fprintf(w, "| %s | %d | %d | %d | %.1f | %s | %d | %.1f | %s | %s | %.1f | %.0f / %.0f / %.0f |\n",
			s.Name, st.Successful, failed, st.Retransmissions, m.cpuPerCall(), strings.Join(allS, ", "),
			m.procs, float64(m.mem.kb)/1024, m.mem.measure, lat, m.wall.Seconds(),
			pct(m.cpu.Seconds()), pct(m.sippCPU.Seconds()), pct(max(other, 0).Seconds()))
	}
	fmt.Fprintln(w)
	if cand, ok := best[suite.Candidate]; ok {
		base, baseName := math.Inf(1), ""
		for _, b := range suite.Baselines {
			if v, ok := best[b]; ok && v < base {
				base, baseName = v, b
			}
		}
		if baseName != "" {
			fmt.Fprintf(w, "**CPU per call ratio %s / min(%s) = %.1f / %.1f (%s) = %.3f** (below 1 means %s uses less CPU per call).\n\n",
				suite.Candidate, strings.Join(suite.Baselines, ", "), cand, base, baseName, cand/base, suite.Candidate)
		}
	} else {
		fmt.Fprintf(w, "CPU per call ratio: not available (%s not measured).\n\n", suite.Candidate)
	}
	footer(w, notes)
}

// footer prints a report's notes and the machine description.
func footer(w io.Writer, notes []string) {
	for _, n := range notes {
		fmt.Fprintf(w, "- note: %s\n", n)
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "Machine:")
	fmt.Fprintln(w)
	for _, l := range machine() {
		fmt.Fprintf(w, "- %s\n", l)
	}
	fmt.Fprintln(w)
}

func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.ReplaceAll(s, "|", "/")
}

// machine describes the host: CPUs, CPU model, kernel, tool versions.
func machine() []string {
	model := "unknown"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	first := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil && len(out) == 0 {
			return "not found"
		}
		for _, l := range strings.Split(string(out), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				return l
			}
		}
		return "unknown"
	}
	goVer := first("go", "version")
	return []string{
		fmt.Sprintf("nproc: %d (GOMAXPROCS of harness %d)", runtime.NumCPU(), runtime.GOMAXPROCS(0)),
		"CPU: " + model,
		"kernel: " + strings.TrimSpace(string(kernel)),
		"Go: " + goVer,
		"Kamailio: " + first("kamailio", "-v"),
		"SIPp: " + strings.TrimPrefix(first("sipp", "-v"), "SIPp "),
		cpuSource(),
	}
}

// cpuSource says where the CPU times come from.
func cpuSource() string {
	if schedstat {
		return "CPU time: threads' run time from /proc/PID/task/TID/schedstat (ns)"
	}
	return fmt.Sprintf("CPU time: utime+stime, clock ticks %d/s (resolution 1/%d s per process)", clockTicks, clockTicks)
}
