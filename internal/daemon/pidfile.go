//go:build linux

package daemon

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/rs/zerolog"
)

// pidFile is --pidfile. The zero path means no pidfile; every method is then
// a no-op.
type pidFile struct {
	path string
	pid  int
}

// ErrAlreadyRunning is returned when the pidfile names a live http_status.
var ErrAlreadyRunning = errors.New("already running")

// claimPidFile checks --pidfile before anything starts: it refuses to start
// when the file names another live http_status, and accepts a stale one (a
// dead PID, or a PID reused by some other program), which [pidFile.write]
// replaces once we are ready.
func claimPidFile(path string) (*pidFile, error) {
	p := &pidFile{path: path, pid: os.Getpid()}
	if path == "" {
		return p, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read --pidfile: %w", err)
	}
	other, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil || other <= 0 || other == p.pid {
		return p, nil // garbage or our own: stale
	}
	if sameProgramAlive(other) {
		return nil, fmt.Errorf("--pidfile %s: http_status %w as pid %d", path, ErrAlreadyRunning, other)
	}
	return p, nil
}

// sameProgramAlive reports whether pid is a live process running the same
// program as us (same /proc/PID/comm), so a PID reused after a crash by an
// unrelated process does not block the start.
func sameProgramAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	theirs, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) // no /proc: trust kill(0)
	}
	ours, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		return true
	}
	return bytes.Equal(theirs, ours)
}

// write writes our PID atomically (a temporary file renamed over the path),
// mode 0644.
func (p *pidFile) write() error {
	if p.path == "" {
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(p.path), "."+filepath.Base(p.path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write --pidfile: %w", err)
	}
	tmp := f.Name()
	bw := bufio.NewWriter(f)
	fmt.Fprintf(bw, "%d\n", p.pid)
	err = errors.Join(bw.Flush(), f.Chmod(0o644), f.Close())
	if err == nil {
		err = os.Rename(tmp, p.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write --pidfile: %w", err)
	}
	return nil
}

// remove deletes the pidfile if it still holds our PID (a successor may
// already have replaced it).
func (p *pidFile) remove(log zerolog.Logger) {
	if p == nil || p.path == "" {
		return
	}
	b, err := os.ReadFile(p.path)
	if err != nil {
		return
	}
	if strings.TrimSpace(string(b)) != strconv.Itoa(p.pid) {
		return
	}
	if err := os.Remove(p.path); err != nil {
		log.Warn().Err(err).Str("pidfile", p.path).Msg("remove pidfile")
	}
}
