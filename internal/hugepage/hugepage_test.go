package hugepage

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"unsafe"
)

// TestSliceAdvised checks that the interior of a large table is marked
// for huge pages: the mapping holding it carries the "hg" VmFlag.
func TestSliceAdvised(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("linux only")
	}
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(mode), "[never]") {
		t.Skip("transparent huge pages unavailable")
	}
	table := make([]uint64, 8<<20/8)
	Slice(table)
	start := (uintptr(unsafe.Pointer(&table[0])) + Size - 1) &^ (Size - 1)
	flags := vmFlags(t, start)
	if !strings.Contains(" "+flags+" ", " hg ") {
		t.Fatalf("mapping of %#x has VmFlags %q, want hg", start, flags)
	}
	runtime.KeepAlive(table)
}

// TestAdviseSmall leaves a range without a whole huge page alone.
func TestAdviseSmall(t *testing.T) {
	b := make([]byte, Size-1)
	Slice(b) // must not fail or touch anything
	Slice([]byte(nil))
}

// vmFlags returns the VmFlags line of the mapping of /proc/self/smaps
// that holds addr.
func vmFlags(t *testing.T, addr uintptr) string {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x", &lo, &hi); n == 2 { // a mapping's first line
			in = addr >= lo && addr < hi
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmFlags:"))
		}
	}
	t.Fatalf("no mapping holds %#x", addr)
	return ""
}
