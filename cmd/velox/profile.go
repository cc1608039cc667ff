package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
)

// startProfile writes a CPU profile to the file named by VELOX_CPUPROFILE
// (for benchmarking), sampled VELOX_CPUPROFILE_HZ times a second (default
// 100); the returned function stops it.
func startProfile() func() {
	path := os.Getenv("VELOX_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if hz, _ := strconv.Atoi(os.Getenv("VELOX_CPUPROFILE_HZ")); hz > 0 && err == nil {
		// Set before StartCPUProfile, which keeps it (and says so on
		// stderr): the package offers no other way to raise the rate.
		runtime.SetCPUProfileRate(hz)
	}
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "velox: VELOX_CPUPROFILE:", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
