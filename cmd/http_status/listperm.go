//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// list reads the flags as its caller; the daemon reads them as its own
// user (the shipped unit's is http_status). Where the two may differ (root
// reads a mode 0600 flag the daemon cannot, an operator cannot read one the
// daemon can), list says what the daemon makes of it when it can tell (a
// running daemon watching the same directory: its user, groups and
// capabilities, from /proc), and marks the state as not known otherwise.

// reader is who a daemon reads the status directory as.
type reader struct {
	pid     int
	uid     uint32 // the filesystem uid and gid: what access checks use
	gid     uint32
	groups  []uint32
	readAll bool // CAP_DAC_OVERRIDE or CAP_DAC_READ_SEARCH
}

func (r *reader) String() string {
	who := "uid " + strconv.Itoa(int(r.uid))
	if u, err := user.LookupId(strconv.Itoa(int(r.uid))); err == nil {
		who = "user " + u.Username
	}
	return fmt.Sprintf("the daemon (pid %d, %s)", r.pid, who)
}

// access is whether a reader may do something: yes, no, or not known.
type access int

const (
	accessYes access = iota
	accessUnknown
	accessNo
)

// worse is the less certain of a and b (no over unknown over yes).
func worse(a, b access) access { return max(a, b) }

// may says whether r may do want (4 read, 1 search, or both) on a file with
// st's mode and owner; r nil is any reader: yes only when owner, group and
// others all may. A file with an ACL is not known, unless r reads all.
func (r *reader) may(st *syscall.Stat_t, want uint32, acl bool) access {
	if r != nil && r.readAll {
		return accessYes
	}
	if acl {
		return accessUnknown
	}
	mode := st.Mode & 0o777
	if r == nil {
		if mode&(want<<6|want<<3|want) == want<<6|want<<3|want {
			return accessYes
		}
		return accessUnknown
	}
	bits := mode & 0o7
	switch {
	case r.uid == st.Uid:
		bits = mode >> 6 & 0o7
	case r.gid == st.Gid || containsID(r.groups, st.Gid):
		bits = mode >> 3 & 0o7
	}
	if bits&want == want {
		return accessYes
	}
	return accessNo
}

func containsID(ids []uint32, id uint32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func hasACL(path string) bool {
	n, err := unix.Lgetxattr(path, "system.posix_acl_access", nil)
	return err == nil && n > 0
}

// dirAccess is whether r may list dir and open what is in it (read and
// search on dir, search on each directory above it), and why not.
func (r *reader) dirAccess(dir string) (access, string) {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return accessUnknown, err.Error()
	}
	real, _ = filepath.Abs(real)
	worst, why := accessYes, ""
	p := real
	for {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			return accessUnknown, err.Error()
		}
		want := uint32(1)
		if p == real {
			want = 5
		}
		if a := r.may(&st, want, hasACL(p)); a > worst {
			worst, why = a, fmt.Sprintf("%s: mode %04o, owner %d, group %d", p, st.Mode&0o7777, st.Uid, st.Gid)
		}
		if p == "/" {
			return worst, why
		}
		p = filepath.Dir(p)
	}
}

// findDaemon is who the running daemons watching dir read it as: nil when
// none is found (not running, or not visible to this user), or when they
// differ.
func findDaemon(dir string) *reader {
	var want syscall.Stat_t
	if err := syscall.Stat(dir, &want); err != nil {
		return nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var found *reader
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		r := daemonAt(pid, want)
		if r == nil {
			continue
		}
		if found != nil && (found.uid != r.uid || found.gid != r.gid || found.readAll != r.readAll || !slicesEqual(found.groups, r.groups)) {
			return nil // two daemons that read it differently
		}
		found = r
	}
	return found
}

func slicesEqual(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// daemonAt is pid's reader when pid is an http_status daemon (not a
// control command) whose --dir is the directory want describes.
func daemonAt(pid int, want syscall.Stat_t) *reader {
	proc := "/proc/" + strconv.Itoa(pid)
	comm, err := os.ReadFile(proc + "/comm")
	if err != nil || strings.TrimSpace(string(comm)) != "http_status" {
		return nil
	}
	cmdline, err := os.ReadFile(proc + "/cmdline")
	if err != nil {
		return nil
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if len(args) > 1 && isCtlCommand(args[1]) {
		return nil
	}
	dir := daemonDirArg(args[1:])
	if !filepath.IsAbs(dir) {
		cwd, err := os.Readlink(proc + "/cwd")
		if err != nil {
			return nil
		}
		dir = filepath.Join(cwd, dir)
	}
	// Through its root where this user may look (a daemon in a chroot or
	// a mount namespace of its own), else as this process sees the path.
	var st syscall.Stat_t
	if err := syscall.Stat(proc+"/root"+dir, &st); err != nil {
		if err := syscall.Stat(dir, &st); err != nil {
			return nil
		}
	}
	if st.Dev != want.Dev || st.Ino != want.Ino {
		return nil
	}
	status, err := os.ReadFile(proc + "/status")
	if err != nil {
		return nil
	}
	r := &reader{pid: pid}
	var seen int
	for _, line := range strings.Split(string(status), "\n") {
		key, val, _ := strings.Cut(line, ":")
		f := strings.Fields(val)
		switch key {
		case "Uid", "Gid":
			if len(f) < 4 {
				return nil
			}
			id, err := strconv.ParseUint(f[3], 10, 32) // the filesystem id
			if err != nil {
				return nil
			}
			if key == "Uid" {
				r.uid = uint32(id)
			} else {
				r.gid = uint32(id)
			}
			seen++
		case "Groups":
			for _, g := range f {
				id, err := strconv.ParseUint(g, 10, 32)
				if err != nil {
					return nil
				}
				r.groups = append(r.groups, uint32(id))
			}
		case "CapEff":
			if len(f) != 1 {
				return nil
			}
			caps, err := strconv.ParseUint(f[0], 16, 64)
			if err != nil {
				return nil
			}
			r.readAll = caps&(1<<unix.CAP_DAC_OVERRIDE|1<<unix.CAP_DAC_READ_SEARCH) != 0
			seen++
		}
	}
	if seen != 3 {
		return nil
	}
	return r
}

// daemonDirArg is the --dir a daemon was started with (the flag package's
// spellings), or the default.
func daemonDirArg(args []string) string {
	dir := DefaultDir
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "dir" {
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				break
			}
			i++
			val = args[i]
		}
		dir = val
	}
	return dir
}

// errIsPermission says whether a read failed for want of permission.
func errIsPermission(err error) bool {
	return errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM)
}
