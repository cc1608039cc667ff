package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is the kernel's USER_HZ (units of utime/stime in /proc).
var clockTicks = func() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && v > 0 {
			return v
		}
	}
	return 100
}()

// procStat is the part of /proc/PID/stat the harness needs.
type procStat struct {
	pid, ppid    int
	utime, stime int64 // clock ticks, all threads of the process
}

// readProcStat parses /proc/PID/stat. The command name may contain spaces
// and parentheses, so fields are counted from the last ')'.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(pid, b)
}

func parseProcStat(pid int, b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("bad stat for %d", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is state (field 3); ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("short stat for %d", pid)
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return procStat{pid: pid, ppid: ppid, utime: ut, stime: st}, nil
}

// processTree returns root and all of its live descendants.
func processTree(root int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return []int{root}
	}
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, err := readProcStat(pid); err == nil {
			children[s.ppid] = append(children[s.ppid], pid)
		}
	}
	tree := []int{root}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree
}

// treeCPU returns the CPU time of root and all live descendants (every
// thread included): the sum of the threads' run time in nanoseconds from
// schedstat where the kernel has it, else utime+stime in clock ticks.
func treeCPU(root int) (time.Duration, int) {
	var cpu time.Duration
	pids := processTree(root)
	for _, pid := range pids {
		if schedstat {
			cpu += threadsRunTime(pid)
		} else if s, err := readProcStat(pid); err == nil {
			cpu += time.Duration(s.utime+s.stime) * time.Second / time.Duration(clockTicks)
		}
	}
	return cpu, len(pids)
}

// schedstat reports whether /proc/PID/task/TID/schedstat exists: its first
// field is the thread's run time in nanoseconds (sum_exec_runtime), far
// finer than utime+stime (1/100 s), which is too coarse to compare two
// builds whose runs take a few hundred milliseconds of CPU.
var schedstat = func() bool {
	_, err := os.Stat(fmt.Sprintf("/proc/self/task/%d/schedstat", os.Getpid()))
	return err == nil
}()

// threadsRunTime sums the run time of pid's live threads. A thread that
// exits takes its time with it: servers keep theirs for the whole run.
func threadsRunTime(pid int) time.Duration {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "task")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var ns int64
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat"))
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			v, _ := strconv.ParseInt(f[0], 10, 64)
			ns += v
		}
	}
	return time.Duration(ns)
}

// statusKB returns a "Name:   123 kB" field of /proc/PID/status or
// /proc/PID/smaps_rollup, in kB.
func statusKB(path, name string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+":") {
			v, _ := strconv.ParseInt(strings.Fields(line[len(name)+1:])[0], 10, 64)
			return v
		}
	}
	return 0
}

// memSample is one memory observation of a server's process tree.
type memSample struct {
	kb      int64
	measure string
}

// treeMemory measures a server's memory: VmHWM (peak RSS, kernel-tracked)
// for a single process; for a multi-process tree (Kamailio's forked
// workers sharing memory) the sum of Pss from smaps_rollup, which counts
// shared pages once overall. The latter is a current value: the harness
// samples it during the run and keeps the maximum.
func treeMemory(root int) memSample {
	pids := processTree(root)
	if len(pids) == 1 {
		return memSample{kb: statusKB(fmt.Sprintf("/proc/%d/status", root), "VmHWM"), measure: "VmHWM"}
	}
	var sum int64
	for _, pid := range pids {
		sum += statusKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss")
	}
	return memSample{kb: sum, measure: fmt.Sprintf("peak ΣPSS of %d procs", len(pids))}
}

// hostBusy returns the CPU time all CPUs of the host spent not idle since
// boot (the "cpu" line of /proc/stat minus idle and iowait).
func hostBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest times are already in user
			continue
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / time.Duration(clockTicks)
}
