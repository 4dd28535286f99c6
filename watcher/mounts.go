//go:build linux

package watcher

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/http-status/http_status/cache"
)

// mountinfo is the kernel's mount table as this process sees it (a variable
// for tests).
var mountinfo = "/proc/self/mountinfo"

// mounts keeps the names of flags that something is mounted over.
//
// Why: a file bind-mounted over a flag (a container given its flag from the
// host: `docker run -v /srv/state:/run/http_status/squid.80`) changes the
// flag without any inotify event in the status directory, three ways: the
// mount itself, the unmount, and every write through the mount's source
// (inotify reports a write to the directory the file was opened through).
// So the watcher asks the kernel each tick whether the mount table changed
// (a poll of /proc/self/mountinfo: no read unless it did), re-reads a name
// that became or stopped being a mount point, and re-reads the names that
// are mount points every tick, as it does for hard-linked flags.
type mounts struct {
	fd    int                 // /proc/self/mountinfo, polled; -1 when unavailable
	names map[string]struct{} // flag names in the status directory with a mount over them
	dirty bool                // read the table at the next tick whatever the poll says
}

func newMounts() (*mounts, error) {
	m := &mounts{fd: -1, names: map[string]struct{}{}, dirty: true}
	fd, err := unix.Open(mountinfo, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return m, err
	}
	m.fd = fd
	return m, nil
}

func (m *mounts) close() {
	if m.fd >= 0 {
		unix.Close(m.fd)
		m.fd = -1
	}
}

// changed reports whether the mount table may have changed since it was
// last asked: the kernel marks the file with POLLPRI after each change, and
// clears the mark when the poll reports it.
func (m *mounts) changed() bool {
	if m.fd < 0 {
		return false
	}
	if m.dirty {
		m.dirty = false
		m.poll() // clear a mark older than the read that follows
		return true
	}
	return m.poll()
}

func (m *mounts) poll() bool {
	fds := []unix.PollFd{{Fd: int32(m.fd), Events: unix.POLLPRI}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&(unix.POLLPRI|unix.POLLERR) != 0
}

// update reads the mount table and records which flags in dir have a mount
// over them. It returns the names that became or stopped being mount points
// (to be re-read now), and reports false when the table could not be read.
func (m *mounts) update(dir string) (changed []string, ok bool) {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		real = dir // the directory is gone or unreachable: nothing is mounted in it
	}
	table, err := os.ReadFile(mountinfo)
	if err != nil {
		return nil, false
	}
	now := mountedIn(table, real)
	for name := range now {
		if _, was := m.names[name]; !was {
			changed = append(changed, name)
		}
	}
	for name := range m.names {
		if _, is := now[name]; !is {
			changed = append(changed, name)
		}
	}
	m.names = now
	return changed, true
}

// mountedIn returns the names of the entries directly in dir that are
// mount points in table (the content of a mountinfo file).
func mountedIn(table []byte, dir string) map[string]struct{} {
	out := map[string]struct{}{}
	for line := range bytes.SplitSeq(table, []byte{'\n'}) {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ...
		f := bytes.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountPath(string(f[4]))
		if filepath.Dir(mp) != dir {
			continue
		}
		if name := filepath.Base(mp); cache.ValidName(name) {
			out[name] = struct{}{}
		}
	}
	return out
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space,
// \011, \012, \134).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
