package main

import (
	"errors"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// threadPolicies counts the threads of the process by scheduling policy.
func threadPolicies(t *testing.T) map[uint32]int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Skip("no /proc/self/task")
	}
	n := map[uint32]int{}
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		if attr, err := unix.SchedGetAttr(tid, 0); err == nil {
			n[attr.Policy]++
		}
	}
	return n
}

// TestSetSchedulingAllThreads sets SCHED_BATCH and checks every thread
// has it, including threads the runtime starts afterwards, then sets the
// normal policy back.
func TestSetSchedulingAllThreads(t *testing.T) {
	t.Setenv("VELOX_SCHED", "")
	if err := setScheduling(schedBatch); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := setScheduling(schedNormal); err != nil {
			t.Error(err)
		}
		if n := threadPolicies(t); n[unix.SCHED_BATCH] != 0 {
			t.Errorf("after setting normal back: %v threads by policy", n)
		}
	}()
	// Goroutines locked to their threads while they block make the runtime
	// start new threads, cloned from batch ones.
	var ready, release sync.WaitGroup
	ready.Add(4)
	release.Add(1)
	for range 4 {
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			ready.Done()
			release.Wait()
		}()
	}
	ready.Wait()
	n := threadPolicies(t)
	release.Done()
	if n[unix.SCHED_BATCH] < 5 || len(n) != 1 {
		t.Fatalf("threads by policy: %v, want all SCHED_BATCH (%d)", n, unix.SCHED_BATCH)
	}
}

func TestSetSchedulingRejectsUnknown(t *testing.T) {
	t.Setenv("VELOX_SCHED", "")
	if err := setScheduling("fifo"); !errors.Is(err, errBadPolicy) {
		t.Fatalf("scheduling fifo: %v, want errBadPolicy", err)
	}
}
