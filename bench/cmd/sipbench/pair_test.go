package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/veloxsip/velox/internal/sipptest"
)

// measured is a runResult of calls successful calls that took cpu in all.
func measured(calls int64, cpu time.Duration) runResult {
	return runResult{cpu: cpu, uac: sipptest.Result{Stats: sipptest.Stats{Successful: calls}}}
}

// TestReportPairs checks the paired report: a row per run with the
// ratio B/A, the port A had, failures, and the median of the ratios that
// exist (a failed run has none).
func TestReportPairs(t *testing.T) {
	c := config{calls: 1000, rate: 100, proxyPort: 5060}
	runs := []pairRun{
		{a: measured(1000, 10*time.Millisecond), b: measured(1000, 9*time.Millisecond), aSlot: 0},   // 0.900
		{a: measured(1000, 10*time.Millisecond), b: measured(1000, 11*time.Millisecond), aSlot: 1},  // 1.100
		{a: measured(1000, 10*time.Millisecond), b: measured(990, 9900*time.Microsecond), aSlot: 0}, // 1.000, 10 unfinished
		{a: runResult{err: errors.New("velox exited")}, b: measured(1000, time.Millisecond), aSlot: 1},
	}
	var out strings.Builder
	reportPairs(&out, c, Suite{Name: "register"}, []string{"velox", "velox-new"}, runs, nil)
	s := out.String()
	for _, want := range []string{
		"| 1 | 5060 | 10.00 | 9.00 | 0.900 | 0 / 0 |",
		"| 2 | 5160 | 10.00 | 11.00 | 1.100 | 0 / 0 |",
		"| 3 | 5060 | 10.00 | 10.00 | 1.000 | 0 / 10 |",
		"| 4 | 5160 | error: velox exited | 1.00 | n/a | - / 0 |",
		"median 1.000** (runs, sorted: 0.900, 1.000, 1.100;",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
}
