package hugepage

import "golang.org/x/sys/unix"

func advise(addr, n uintptr) {
	unix.Syscall(unix.SYS_MADVISE, addr, n, unix.MADV_HUGEPAGE)
}
