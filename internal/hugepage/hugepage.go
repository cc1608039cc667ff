// Package hugepage asks the kernel to back large, long-lived tables with
// transparent huge pages.
//
// The hash tables of transactions and locations are megabytes of buckets
// read at random, one bucket per message: with 4 KiB pages nearly every
// access misses the TLB, and under a hypervisor a TLB miss walks two page
// tables. Where transparent huge pages are enabled for advised memory
// (the usual "madvise" setting), Advise makes the table's interior use
// 2 MiB pages. The Go heap itself is left as the runtime sets it.
package hugepage

import (
	"unsafe"
)

// Size is the huge page size Advise rounds to (x86-64 and arm64 with 4 KiB
// base pages).
const Size = 2 << 20

// Advise marks the whole 2 MiB pages inside the n bytes at p as wanting
// huge pages, before they are first touched. It does nothing for a range
// that holds no whole huge page, on systems without the call, or when the
// kernel refuses; it never fails.
func Advise(p unsafe.Pointer, n uintptr) {
	start := (uintptr(p) + Size - 1) &^ (Size - 1)
	end := (uintptr(p) + n) &^ (Size - 1)
	if end <= start {
		return
	}
	advise(start, end-start)
}

// Slice is Advise for the backing array of s.
func Slice[T any](s []T) {
	if cap(s) == 0 {
		return
	}
	var z T
	Advise(unsafe.Pointer(unsafe.SliceData(s)), uintptr(cap(s))*unsafe.Sizeof(z))
}
