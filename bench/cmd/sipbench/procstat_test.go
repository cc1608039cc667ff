package main

import (
	"os"
	"testing"
)

func TestParseProcStat(t *testing.T) {
	line := []byte("1234 (kamailio (w) x) S 1200 1234 1234 0 -1 4194560 100 0 0 0 37 12 0 0 20 0 1 0 5 1000 10 0 0")
	s, err := parseProcStat(1234, line)
	if err != nil {
		t.Fatal(err)
	}
	if s.ppid != 1200 || s.utime != 37 || s.stime != 12 {
		t.Fatalf("got %+v", s)
	}
}

func TestTreeSelf(t *testing.T) {
	pids := processTree(os.Getpid())
	if len(pids) == 0 || pids[0] != os.Getpid() {
		t.Fatalf("tree %v", pids)
	}
	if m := treeMemory(os.Getpid()); m.kb <= 0 {
		t.Fatalf("memory %+v", m)
	}
}

func TestTreeCPUCounts(t *testing.T) {
	before, _ := treeCPU(os.Getpid())
	x := 0
	for i := 0; i < 20_000_000; i++ {
		x += i % 7
	}
	after, _ := treeCPU(os.Getpid())
	if x == 0 || after <= before {
		t.Fatalf("CPU time did not grow: %v -> %v", before, after)
	}
}
