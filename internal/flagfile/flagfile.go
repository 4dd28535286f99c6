// Package flagfile reads flag files the one way both the watcher and the
// control command must read them, so that `http_status list` shows what the
// daemon answers.
package flagfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/http-status/http_status/cache"
)

// Read reads the flag file at path. present is false when the daemon does
// not count the file as a flag (it is absent, a symlink, not a regular file,
// or cannot be read): the service is then out of rotation. problem, when not
// nil, says what is odd about the file: why it does not count, or which part
// of its content was ignored (the entry is then still usable, see
// [cache.ParseFlag]).
//
// Symlinks are not followed (O_NOFOLLOW) and FIFOs are not waited on
// (O_NONBLOCK, then fstat): a flag is a regular file in the directory.
// Only the first [cache.MaxFlagSize] bytes are read.
func Read(path string) (e cache.Entry, present bool, problem error) {
	e, present, _, problem = ReadInfo(path)
	return e, present, problem
}

// Info is what [ReadInfo] saw of the file besides its content.
type Info struct {
	// Links is the file's hard-link count. Above 1, the file can be
	// written through a name in another directory, which makes no
	// inotify event in the status directory.
	Links uint64
	// Size is how many bytes of content were read (at most
	// [cache.MaxFlagSize]). Not fstat's size: a truncation between the
	// fstat and the read makes them differ.
	Size int64
	// Changed is the file's status change time (ctime): a truncation or
	// a write sets it.
	Changed time.Time
	// Born is the file's creation time (statx's btime), zero where the
	// filesystem does not keep it.
	Born time.Time
	// Stated is whether the content holds a state word (up or not); see
	// [cache.ParseFlagStated].
	Stated bool
}

// ReadInfo is [Read], also returning what fstat said of a regular file
// (zero when present is false).
func ReadInfo(path string) (e cache.Entry, present bool, info Info, problem error) {
	// lstat first: opening a device node runs its driver's open (a tape
	// rewinds, /dev/watchdog arms), whatever the file is then found to be.
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return missing(), false, Info{}, openProblem(err)
	}
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFREG:
	case syscall.S_IFLNK:
		return missing(), false, Info{}, ErrSymlink
	default:
		return missing(), false, Info{}, ErrNotRegular
	}
	// The file may have been replaced since: O_NOFOLLOW, O_NONBLOCK (a FIFO
	// is not waited on) and the fstat below hold whatever comes.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return missing(), false, Info{}, openProblem(err)
	}
	defer f.Close()
	// statx rather than fstat: the same call, and it has the birth time.
	var stx unix.Statx_t
	rc, err := f.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) {
			err = unix.Statx(int(fd), "", unix.AT_EMPTY_PATH, unix.STATX_BASIC_STATS|unix.STATX_BTIME, &stx)
		})
		if err == nil {
			err = cerr
		}
	}
	if err != nil {
		return missing(), false, Info{}, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	if stx.Mode&unix.S_IFMT != unix.S_IFREG {
		return missing(), false, Info{}, ErrNotRegular
	}
	// One byte more than is parsed tells ParseFlag the file goes on.
	buf := make([]byte, cache.MaxFlagSize+1)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		// Fail closed: content that could not be read might have said
		// drain.
		return missing(), false, Info{}, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	info.Links = uint64(stx.Nlink)
	info.Changed = time.Unix(stx.Ctime.Sec, int64(stx.Ctime.Nsec))
	if stx.Mask&unix.STATX_BTIME != 0 {
		info.Born = time.Unix(stx.Btime.Sec, int64(stx.Btime.Nsec))
	}
	info.Size = int64(n)
	e, info.Stated, err = cache.ParseFlagStated(buf[:n])
	if err != nil {
		return e, true, info, fmt.Errorf("content not understood, counted as %s: %w", e.State, err)
	}
	return e, true, info, nil
}

// openProblem is why a flag could not be looked at or opened (nil: it is
// absent, which is no problem).
func openProblem(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case errors.Is(err, syscall.ELOOP):
		return ErrSymlink
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w (mode or owner keeps the daemon from reading it): %w", ErrUnreadable, err)
	}
	return fmt.Errorf("%w: %w", ErrUnreadable, err)
}

// Why a file does not count as a flag.
var (
	ErrSymlink    = errors.New("a symlink: ignored by the daemon (use a regular file)")
	ErrNotRegular = errors.New("not a regular file: ignored by the daemon")
	ErrUnreadable = errors.New("cannot be read: counted as absent (out of rotation)")
)

func missing() cache.Entry { return cache.Entry{State: cache.Missing, Weight: cache.NoWeight} }
