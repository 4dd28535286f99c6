//go:build linux

package daemon

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// minFreeFDs is how many file descriptors must be free once the daemon has
// set itself up: each check connection takes one, a probe's command a few.
// Fewer, and every check would get "503 too many connections now" from a
// daemon that had reported ready.
const minFreeFDs = 16

// checkFreeFDs fails when fewer than minFreeFDs descriptors are free under
// RLIMIT_NOFILE (Go raises the soft limit to the hard one at start, so this
// is a hard limit set too low: ulimit -Hn, LimitNOFILE=).
func checkFreeFDs() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return nil // cannot tell: the responders say so when they run out
	}
	open := 0
	des, err := os.ReadDir("/proc/self/fd")
	switch {
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		open = int(min(lim.Cur, 1<<30)) // not even one to list them with
	case err != nil:
		return nil
	default:
		open = len(des) - 1 // less the one ReadDir used
	}
	if free := int64(lim.Cur) - int64(open); lim.Cur < 1<<30 && free < minFreeFDs {
		return fmt.Errorf("start: out of file descriptors: %d of %d free once started, fewer than the %d needed to answer checks (raise ulimit -n, or LimitNOFILE= under systemd)", max(free, 0), lim.Cur, minFreeFDs)
	}
	return nil
}

// fdAdvice says what to do about an error that is the process running out
// of file descriptors (EMFILE) or the host out of them (ENFILE); other
// errors are returned as they are.
func fdAdvice(err error) error {
	if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
		return fmt.Errorf("out of file descriptors (raise ulimit -n, or LimitNOFILE= under systemd): %w", err)
	}
	return err
}
