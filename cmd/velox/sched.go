package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Scheduling policies for the server's threads (config process.scheduling,
// flag --scheduling).
const (
	// schedBatch is Linux's SCHED_BATCH: a thread woken up does not preempt
	// the one running, which keeps its CPU until it sleeps or its time slice
	// ends. The default: without it, a SIPp (or any peer on the same host)
	// woken by a datagram velox sent preempted velox inside sendmmsg, and a
	// velox thread woken on a CPU preempted whatever ran there.
	schedBatch = "batch"
	// schedNormal is SCHED_OTHER, what processes get by default.
	schedNormal = "normal"
)

// errBadPolicy is returned for a policy name setScheduling does not know;
// other errors (a kernel or sandbox that refuses the change) leave the
// server running under the policy it has.
var errBadPolicy = errors.New("unknown scheduling policy")

// setScheduling gives every thread of the process the scheduling policy
// named, keeping each thread's nice value. Threads the Go runtime starts
// later inherit it from the thread that creates them. VELOX_SCHED, when
// set, overrides policy (to compare both in one benchmark run).
func setScheduling(policy string) error {
	if v := os.Getenv("VELOX_SCHED"); v != "" {
		policy = v
	}
	var p uint32
	switch policy {
	case "", schedBatch:
		p = unix.SCHED_BATCH
	case schedNormal:
		p = unix.SCHED_NORMAL
	default:
		return fmt.Errorf("%w %q: want %s or %s", errBadPolicy, policy, schedBatch, schedNormal)
	}
	// A thread cloned while the list is walked, by one not changed yet,
	// keeps the old policy: walk again until a pass changes nothing.
	for range 10 {
		changed, err := setThreadsPolicy(p)
		if err != nil || changed == 0 {
			return err
		}
	}
	return nil
}

// setThreadsPolicy sets policy p on every thread of the process that has
// another one and returns how many it changed.
func setThreadsPolicy(p uint32) (int, error) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0, fmt.Errorf("scheduling: %w", err)
	}
	changed := 0
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		attr, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			continue // the thread exited
		}
		if attr.Policy == p {
			continue
		}
		attr.Policy, attr.Priority, attr.Flags = p, 0, 0
		if err := unix.SchedSetAttr(tid, attr, 0); err != nil {
			if errors.Is(err, unix.ESRCH) {
				continue
			}
			return changed, fmt.Errorf("scheduling: thread %d: %w", tid, err)
		}
		changed++
	}
	return changed, nil
}
