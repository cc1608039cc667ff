package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// pairPortOffset separates the ports of a pair's second slot (server and
// SIPp UAS) from the first's.
const pairPortOffset = 100

// pairRun is one repetition of -pair: both servers measured at once.
type pairRun struct {
	a, b  runResult
	aSlot int // 0: A had the first slot's ports, 1: the second's
}

// ratio is B's CPU per call over A's (NaN when either failed).
func (p pairRun) ratio() float64 { return p.b.cpuPerCall() / p.a.cpuPerCall() }

// runPairs runs servers A and B of -pair at the same time, each with its
// own SIPp UAS and UAC at the full rate, -repeat times; the two swap ports
// every repetition. Both see the same host noise, which alternating solo
// runs do not share: on a shared machine their CPU per call moves by 15 %
// from one run to the next, a pair's ratio by 2 to 4 %.
func runPairs(c config, sipp string, suite Suite, env Env, servers []Server, root, work string, uacArgs []string, notes []string) error {
	names := strings.Split(c.pair, ",")
	slot0 := map[string]Server{}
	for _, s := range servers {
		slot0[s.Name] = s
	}
	c1 := c
	c1.proxyPort += pairPortOffset
	c1.uasPort += pairPortOffset
	env1 := env
	env1.Listen = fmt.Sprintf("127.0.0.1:%d", c1.proxyPort)
	env1.To = fmt.Sprintf("127.0.0.1:%d", c1.uasPort)
	slot1 := map[string]Server{}
	for _, s := range withVariants(suite.Servers(env1), c.variants) {
		slot1[s.Name] = s
	}
	for _, n := range names {
		if _, ok := slot0[n]; !ok {
			return fmt.Errorf("-pair: server %s is not available", n)
		}
	}
	load0 := loadAvg()
	var runs []pairRun
	failedTooMuch := false
	for r := 1; r <= c.repeat; r++ {
		var res [2]runResult
		aSlot := (r + 1) % 2 // A takes the first slot in odd repetitions
		var ready, done sync.WaitGroup
		ready.Add(2)
		for i, name := range names {
			cs, s := c, slot0[name]
			if (i+aSlot)%2 == 1 {
				cs, s = c1, slot1[name]
			}
			dir := filepath.Join(work, fmt.Sprintf("%s-r%d", name, r))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			var once sync.Once
			arrive := func() { once.Do(ready.Done) }
			done.Go(func() {
				defer arrive() // a run that fails early must not hold the other back
				res[i] = runOne(cs, sipp, suite, s, root, dir, uacArgs, func() { arrive(); ready.Wait() })
			})
		}
		fmt.Fprintf(os.Stderr, "pair run %d/%d %s + %s: %d calls at %d cps each ... ", r, c.repeat, names[0], names[1], c.calls, c.rate)
		done.Wait()
		p := pairRun{a: res[0], b: res[1], aSlot: aSlot}
		runs = append(runs, p)
		failedTooMuch = failedTooMuch || tooManyFailed(c, res[0]) || tooManyFailed(c, res[1])
		fmt.Fprintf(os.Stderr, "%s %.1f, %s %.1f µs/call, B/A %.3f\n", names[0], p.a.cpuPerCall(), names[1], p.b.cpuPerCall(), p.ratio())
		time.Sleep(c.pause)
	}
	notes = append(notes, fmt.Sprintf("load average before / after the runs: %s / %s", load0, loadAvg()))
	return finish(c, failedTooMuch, func(w io.Writer) { reportPairs(w, c, suite, names, runs, notes) })
}

// reportPairs prints the Markdown table of -pair: one row per repetition
// and the median ratio B/A.
func reportPairs(w io.Writer, c config, suite Suite, names []string, runs []pairRun, notes []string) {
	a, b := names[0], names[1]
	fmt.Fprintf(w, "### Suite `%s`, paired: %s (A) and %s (B) at the same time\n\n", suite.Name, a, b)
	fmt.Fprintf(w, "%d run(s); in each, A and B run together, each under its own SIPp load of %d calls at %d cps "+
		"(servers on 127.0.0.1:%d and 127.0.0.1:%d, swapped every run). The two loads share the machine, so CPU per call "+
		"is not comparable with solo runs: the ratio is the result.\n\n",
		len(runs), c.calls, c.rate, c.proxyPort, c.proxyPort+pairPortOffset)
	fmt.Fprintf(w, "| run | A port | %s µs/call | %s µs/call | B/A | failed A / B |\n|---:|---:|---:|---:|---:|---|\n", a, b)
	var ratios []float64
	for i, p := range runs {
		port := c.proxyPort + p.aSlot*pairPortOffset
		ra := "n/a"
		if !math.IsNaN(p.ratio()) {
			ra = fmt.Sprintf("%.3f", p.ratio())
			ratios = append(ratios, p.ratio())
		}
		fmt.Fprintf(w, "| %d | %d | %s | %s | %s | %s / %s |\n", i+1, port, cell(p.a), cell(p.b), ra, failedCalls(c, p.a), failedCalls(c, p.b))
	}
	fmt.Fprintln(w)
	if len(ratios) > 0 {
		sort.Float64s(ratios)
		var all []string
		for _, r := range ratios {
			all = append(all, fmt.Sprintf("%.3f", r))
		}
		fmt.Fprintf(w, "**CPU per call %s / %s: median %.3f** (runs, sorted: %s; below 1 means B uses less CPU per call).\n\n",
			b, a, ratios[(len(ratios)-1)/2], strings.Join(all, ", "))
	} else {
		fmt.Fprintln(w, "CPU per call ratio: not available (no run of the pair succeeded).")
		fmt.Fprintln(w)
	}
	footer(w, notes)
}

// cell is a run's CPU per call, or its error.
func cell(r runResult) string {
	if r.err != nil {
		return "error: " + oneLine(r.err.Error())
	}
	return fmt.Sprintf("%.2f", r.cpuPerCall())
}

// failedCalls counts a run's failed and unfinished calls.
func failedCalls(c config, r runResult) string {
	if r.err != nil {
		return "-"
	}
	return fmt.Sprint(r.notDone(c.calls))
}
