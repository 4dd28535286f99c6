//go:build linux

package evloop

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Raw system calls for the non-blocking socket operations: they never block,
// so they skip the scheduler's syscall bookkeeping.

func accept4(lfd int) (int, unix.Errno) {
	r, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(lfd), 0, 0, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	return int(r), e
}

func read(fd int, p []byte) (int, unix.Errno) {
	if len(p) == 0 {
		return 0, unix.ENOBUFS
	}
	r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

func write(fd int, p []byte) (int, unix.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	r, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

// Write writes p to the non-blocking socket fd once (for an Overload
// answer); it reports how much was taken.
func Write(fd int, p []byte) int {
	n, _ := write(fd, p)
	return n
}

func epollWaitNow(epfd int, events []unix.EpollEvent) (int, unix.Errno) {
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}
