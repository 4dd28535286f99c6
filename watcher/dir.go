//go:build linux

package watcher

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// # Which directory is watched
//
// An inotify watch sits on an inode, not on a path. The path the daemon was
// given can come to lead somewhere else without any event on the watched
// inode: a deploy tool swaps a symlink (ln -s B st.new && mv -T st.new st),
// somebody bind-mounts another directory over it or unmounts one. Answers
// would then follow a directory nobody looks at any more, until the next
// full resync.
//
// So the loop remembers the device and inode of the directory it watches and
// compares them with what the path leads to now: on every event that names
// the path itself (the parent directory is watched too, so a rename or
// symlink swap in it is seen at once), and on every tick (mounts make no
// inotify event at all). When they differ it moves the watch to what the
// path leads to now and rescans; when the path leads nowhere, every service
// is out of rotation and the snapshot says why.

// fileID identifies an inode.
type fileID struct{ dev, ino uint64 }

func idOf(fi fs.FileInfo) fileID {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino} // Dev is uint32 on some arches
}

// dirWatch is the loop's record of the watches on the status directory and
// its parent. Only the loop uses it.
type dirWatch struct {
	path, parent string
	id           fileID // what the watch on path is on; valid while watched
	watched      bool
	parentID     fileID
	parentOK     bool
	problem      string // why path is not watched; "" while it is
	remote       string // the watched directory's filesystem when inotify misses remote changes
	polled       time.Time
}

// checkDir makes the watch follow what w.dir.path leads to now. It reports
// whether that changed (a new directory is watched, or the watched one went
// away, or the problem changed): the caller then rescans.
func (w *Watcher) checkDir() bool {
	d := &w.dir
	w.checkParent()
	for attempt := 0; ; attempt++ {
		fi, err := os.Stat(d.path)
		if err == nil && !fi.IsDir() {
			err = errNotDir
		}
		if err != nil {
			return w.unwatchDir(dirProblem(err))
		}
		id := idOf(fi)
		if d.watched && id == d.id {
			return false
		}
		if d.watched {
			w.log.Warn().Str("dir", d.path).Str("was", idString(d.id)).Str("now", idString(id)).
				Msg("status directory path leads to another directory now (symlink swap or mount); watching the new one")
			_ = w.fsw.Remove(d.path)
			d.watched = false
		}
		if err := w.fsw.Add(d.path); err != nil {
			return w.unwatchDir(dirProblem(err))
		}
		// The path may have been re-pointed between the Stat and the Add:
		// the watch is on whatever it led to at the Add. Check that this is
		// what we recorded, or start over.
		fi2, err := os.Stat(d.path)
		if err == nil && idOf(fi2) == id {
			wasProblem := d.problem
			d.id, d.watched, d.problem = id, true, ""
			if err := w.wr.watch(d.path); err != nil {
				w.log.Warn().Err(err).Str("dir", d.path).Msg("inotify: cannot tell when a flag file is closed after writing: an empty flag counts as up at once")
			}
			if r := remoteFS(d.path); r != d.remote {
				d.remote = r
				if r != "" {
					w.log.Warn().Str("dir", d.path).Str("fs", r).Dur("every", remotePoll).
						Msg("status directory is on a " + r + " filesystem: inotify misses changes made on other hosts, so it is also rescanned periodically")
				}
			}
			if wasProblem != "" && wasProblem != problemNotYet {
				w.log.Info().Str("dir", d.path).Str("was", wasProblem).Msg("status directory watched again")
			}
			return true
		}
		_ = w.fsw.Remove(d.path)
		if attempt == 3 {
			return w.unwatchDir("changing too fast to watch")
		}
	}
}

// problemNotYet is the problem before the first check.
const problemNotYet = "not read yet"

var errNotDir = errors.New("not a directory")

// unwatchDir drops the watch on the directory and records why; it reports
// whether anything changed.
func (w *Watcher) unwatchDir(problem string) bool {
	d := &w.dir
	changed := d.watched || d.problem != problem
	w.wr.unwatch()
	if d.watched {
		_ = w.fsw.Remove(d.path)
		d.watched = false
	}
	if d.problem != problem {
		w.log.Error().Str("dir", d.path).Str("problem", problem).
			Msg("status directory not watched: every service is out of rotation until it is back")
	}
	d.problem = problem
	return changed
}

// checkParent keeps a watch on the parent directory, so that the status
// directory's name being created, removed, renamed over or re-pointed is
// seen at once. A parent that cannot be watched only costs speed: the tick
// still notices within a second.
func (w *Watcher) checkParent() {
	d := &w.dir
	if d.parent == d.path {
		return // "/"
	}
	fi, err := os.Stat(d.parent)
	if err != nil {
		if d.parentOK {
			_ = w.fsw.Remove(d.parent)
			d.parentOK = false
		}
		return
	}
	id := idOf(fi)
	if d.parentOK && id == d.parentID {
		return
	}
	if d.parentOK {
		_ = w.fsw.Remove(d.parent)
		d.parentOK = false
	}
	if err := w.fsw.Add(d.parent); err != nil {
		w.log.Debug().Err(err).Str("dir", d.parent).Msg("cannot watch parent of status directory")
		return
	}
	d.parentID, d.parentOK = id, true
}

// dirProblem words an error about the status directory for /healthz, the
// board and systemd's STATUS line.
func dirProblem(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "missing"
	case errors.Is(err, errNotDir), errors.Is(err, syscall.ENOTDIR):
		return "not a directory"
	case errors.Is(err, syscall.ENOSPC):
		return "cannot be watched: out of inotify watches (raise sysctl fs.inotify.max_user_watches)"
	case errors.Is(err, fs.ErrPermission):
		return "not accessible: permission denied"
	}
	return "cannot be watched: " + err.Error()
}

// listProblem words an error listing the status directory. Out of file
// descriptors is the process's limit, not the directory's fault: say so,
// or the operator looks at the directory.
func listProblem(err error) string {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "out of file descriptors (raise ulimit -n, or LimitNOFILE= under systemd)"
	}
	return err.Error()
}

func idString(id fileID) string {
	return "dev " + strconv.FormatUint(id.dev, 10) + " inode " + strconv.FormatUint(id.ino, 10)
}

// isDirName reports whether an event's name is the status directory itself
// (from its own watch, or from the parent's) or its parent.
func (w *Watcher) isDirName(name string) bool {
	return name == w.dir.path || name == w.dir.parent
}

// pollDue reports whether a directory on a remote filesystem is due for its
// periodic rescan.
func (w *Watcher) pollDue() bool {
	d := &w.dir
	if d.remote == "" || !d.watched || time.Since(d.polled) < remotePoll {
		return false
	}
	d.polled = time.Now()
	return true
}

// dirProblem is what the snapshot reports about the directory: why it is not
// watched, or why it could not be listed; "" when all is well.
func (w *Watcher) dirProblem() string {
	if !w.dir.watched {
		return w.dir.problem
	}
	return w.readProblem
}

// remotePoll is how often a status directory on a filesystem whose changes
// inotify cannot see (see remoteFS) is rescanned in full.
const remotePoll = time.Second

// remoteFS names the filesystem holding path when it is one where inotify
// sees only the changes made through this host's own kernel: network and
// cluster filesystems and FUSE. A flag written on another host would never
// make an event, so such a directory is also rescanned every remotePoll.
// It returns "" for local filesystems.
func remoteFS(path string) string {
	magic, err := fsMagic(path)
	if err != nil {
		return ""
	}
	return remoteFSName(magic)
}

// fsMagic is statfs(2)'s f_type of path. A variable so that a test can stand
// in for a network filesystem, which cannot be mounted where tests run.
var fsMagic = func(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Type), nil // Type is int32 on some arches
}

func remoteFSName(magic int64) string {
	switch magic {
	case unix.NFS_SUPER_MAGIC:
		return "nfs"
	case unix.SMB_SUPER_MAGIC, unix.SMB2_SUPER_MAGIC, unix.CIFS_SUPER_MAGIC:
		return "smb/cifs"
	case unix.FUSE_SUPER_MAGIC:
		return "fuse"
	case unix.V9FS_MAGIC:
		return "9p"
	case unix.CEPH_SUPER_MAGIC:
		return "ceph"
	case unix.AFS_SUPER_MAGIC:
		return "afs"
	case unix.CODA_SUPER_MAGIC:
		return "coda"
	case unix.OCFS2_SUPER_MAGIC:
		return "ocfs2"
	case 0x01161970:
		return "gfs2"
	}
	return ""
}
