//go:build linux

package watcher

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/testenv"
)

// settleLimit is how soon an answer must follow the truth after the status
// directory is re-pointed, without the periodic resync's help (the tests set
// it to an hour).
const settleLimit = time.Second

// settles waits until cond holds and fails the test when that took longer
// than settleLimit.
func settles(t *testing.T, st *cache.Store, what string, cond func(*cache.Snapshot) bool) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(settleLimit)
	for !cond(st.Load()) {
		if time.Now().After(deadline) {
			s := st.Load()
			t.Fatalf("%s: not settled within %s; snapshot: names %v, dir problem %q", what, settleLimit, s.Names(), s.DirProblem())
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("%s: settled in %s", what, time.Since(start).Round(time.Microsecond))
}

func stateIs(name string, want cache.State) func(*cache.Snapshot) bool {
	return func(s *cache.Snapshot) bool { e, _ := s.Lookup(name); return e.State == want && s.DirOK() }
}

func mkdir(t *testing.T, p string) string {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// swapSymlink re-points link to target atomically, as deploy tools do:
// ln -s target link.new && mv -T link.new link.
func swapSymlink(t *testing.T, target, link string) {
	t.Helper()
	tmp := link + ".new"
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
}

// TestDirSymlinkSwap: the status path is a symlink that a deploy swaps; the
// answers follow the new target at once, and later changes in the new
// target are seen (the watch moved), changes in the old one are not.
func TestDirSymlinkSwap(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	a, b := mkdir(t, filepath.Join(root, "A")), mkdir(t, filepath.Join(root, "B"))
	write(t, filepath.Join(a, "web.80"), "")
	write(t, filepath.Join(b, "web.80"), "down # old release")
	st := filepath.Join(root, "st")
	if err := os.Symlink(a, st); err != nil {
		t.Fatal(err)
	}
	_, store := startWatcher(t, Options{Dir: st, Resync: time.Hour})
	settles(t, store, "start on A", stateIs("web.80", cache.Up))

	swapSymlink(t, b, st)
	settles(t, store, "swapped to B", stateIs("web.80", cache.Down))
	write(t, filepath.Join(b, "web.80"), "drain")
	settles(t, store, "change in B", stateIs("web.80", cache.Drain))
	write(t, filepath.Join(a, "web.80"), "maint")
	write(t, filepath.Join(b, "marker"), "")
	settles(t, store, "marker in B", has("marker"))
	if e, _ := store.Load().Lookup("web.80"); e.State != cache.Drain {
		t.Fatalf("a change in the old target A leaked in: %v", e.State)
	}

	swapSymlink(t, a, st)
	settles(t, store, "swapped back to A", stateIs("web.80", cache.Maint))

	// The symlink removed: nothing is in rotation, and the snapshot says why.
	if err := os.Remove(st); err != nil {
		t.Fatal(err)
	}
	settles(t, store, "symlink removed", func(s *cache.Snapshot) bool {
		return s.DirProblem() == "missing" && s.Len() == 0
	})
	if err := os.Symlink(b, st); err != nil {
		t.Fatal(err)
	}
	settles(t, store, "symlink back, to B", stateIs("web.80", cache.Drain))

	// A dangling symlink is a missing directory; a symlink to a file is
	// not a directory.
	write(t, filepath.Join(root, "file"), "")
	swapSymlink(t, filepath.Join(root, "file"), st)
	settles(t, store, "symlink to a file", func(s *cache.Snapshot) bool { return s.DirProblem() == "not a directory" && s.Len() == 0 })
	swapSymlink(t, filepath.Join(root, "nowhere"), st)
	settles(t, store, "dangling symlink", func(s *cache.Snapshot) bool { return s.DirProblem() == "missing" && s.Len() == 0 })
	swapSymlink(t, a, st)
	settles(t, store, "back to A", stateIs("web.80", cache.Maint))
}

// TestDirExchanged: two real directories swapped with one
// renameat2(RENAME_EXCHANGE), the atomic way to replace a directory.
func TestDirExchanged(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	st, next := mkdir(t, filepath.Join(root, "st")), mkdir(t, filepath.Join(root, "st.next"))
	write(t, filepath.Join(st, "db.5432"), "")
	write(t, filepath.Join(next, "db.5432"), "maint")
	_, store := startWatcher(t, Options{Dir: st, Resync: time.Hour})
	settles(t, store, "start", stateIs("db.5432", cache.Up))
	if err := unix.Renameat2(unix.AT_FDCWD, next, unix.AT_FDCWD, st, unix.RENAME_EXCHANGE); err != nil {
		t.Skipf("renameat2(RENAME_EXCHANGE) not supported here: %v", err)
	}
	settles(t, store, "exchanged", stateIs("db.5432", cache.Maint))
	write(t, filepath.Join(st, "db.5432"), "drain")
	settles(t, store, "change in the new directory", stateIs("db.5432", cache.Drain))
}

// TestDirParentRepointed: a symlink higher up the path is swapped. No event
// reaches the watches on the directory or its parent; the tick notices.
func TestDirParentRepointed(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	x, y := mkdir(t, filepath.Join(root, "X", "st")), mkdir(t, filepath.Join(root, "Y", "st"))
	write(t, filepath.Join(x, "app"), "")
	write(t, filepath.Join(y, "app"), "down")
	link := filepath.Join(root, "current")
	if err := os.Symlink(filepath.Dir(x), link); err != nil {
		t.Fatal(err)
	}
	_, store := startWatcher(t, Options{Dir: filepath.Join(link, "st"), Resync: time.Hour})
	settles(t, store, "start on X", stateIs("app", cache.Up))
	swapSymlink(t, filepath.Dir(y), link)
	settles(t, store, "parent re-pointed to Y", stateIs("app", cache.Down))
	write(t, filepath.Join(y, "app"), "")
	settles(t, store, "change in Y", stateIs("app", cache.Up))
}

// TestDirChmodIsAnEvent: a mode change of a flag is re-read (as root every
// flag stays readable; the unprivileged case runs the real daemon under
// setpriv in cmd/http_status), and a mode change of the directory rescans.
func TestDirChmodIsAnEvent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w, store := startWatcher(t, Options{Dir: dir, Resync: time.Hour})
	p := filepath.Join(dir, "svc")
	write(t, p, "")
	settles(t, store, "created", has("svc"))
	before := w.Stats().Rescans
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(settleLimit)
	for w.Stats().Rescans == before {
		if time.Now().After(deadline) {
			t.Fatal("chmod of the status directory did not rescan it")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestDirBindMount: a directory bind-mounted over the status path, and
// unmounted again, in a mount namespace of the test's own (the host's mount
// table is untouched). Mounts make no inotify event; the answer must still
// follow within a second.
func TestDirBindMount(t *testing.T) {
	testenv.RunInMountNamespace(t, "TestDirBindMountChild")
}

func TestDirBindMountChild(t *testing.T) {
	testenv.IsChild(t, "TestDirBindMountChild")
	root := t.TempDir()
	st, e := mkdir(t, filepath.Join(root, "st")), mkdir(t, filepath.Join(root, "E"))
	write(t, filepath.Join(st, "squid.80"), "")
	write(t, filepath.Join(e, "squid.80"), "drain # E")
	_, store := startWatcher(t, Options{Dir: st, Resync: time.Hour})
	settles(t, store, "start", stateIs("squid.80", cache.Up))

	if err := unix.Mount(e, st, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("bind mount: %v", err)
	}
	settles(t, store, "bind mount over the status dir", stateIs("squid.80", cache.Drain))
	write(t, filepath.Join(st, "squid.80"), "maint") // through the mount: E's file
	settles(t, store, "change under the mount", stateIs("squid.80", cache.Maint))

	if err := unix.Unmount(st, 0); err != nil {
		t.Fatal(err)
	}
	settles(t, store, "unmounted", stateIs("squid.80", cache.Up))
	write(t, filepath.Join(st, "squid.80"), "down")
	settles(t, store, "change after unmount", stateIs("squid.80", cache.Down))

	// A mount over the parent hides the status directory.
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	settles(t, store, "parent hidden by a mount", func(s *cache.Snapshot) bool { return s.DirProblem() == "missing" && s.Len() == 0 })
	if err := unix.Unmount(root, 0); err != nil {
		t.Fatal(err)
	}
	settles(t, store, "parent back", stateIs("squid.80", cache.Down))
}

// TestDirOutOfWatches: when inotify watches run out (ENOSPC), the snapshot
// says so (not "missing"), nothing is in rotation, and the watcher keeps
// trying until a watch can be added. The limit is lowered in a user
// namespace of the test's own: the host's limit is untouched.
func TestDirOutOfWatches(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare (util-linux) not installed")
	}
	if err := exec.Command("unshare", "--user", "--map-root-user", "true").Run(); err != nil {
		t.Skipf("cannot make a user namespace here: %v", err)
	}
	testenv.RunChild(t, "TestDirOutOfWatchesChild", "unshare", "--user", "--map-root-user")
}

func TestDirOutOfWatchesChild(t *testing.T) {
	testenv.IsChild(t, "TestDirOutOfWatchesChild")
	const limit = "/proc/sys/user/max_inotify_watches"
	orig, err := os.ReadFile(limit)
	if err != nil {
		t.Skipf("no per-namespace inotify limit: %v", err)
	}
	if err := os.WriteFile(limit, []byte("0"), 0); err != nil {
		t.Skipf("cannot lower %s in a user namespace: %v", limit, err)
	}
	defer os.WriteFile(limit, orig, 0)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "svc"), "")
	_, store := startWatcher(t, Options{Dir: dir, Resync: time.Hour})
	s := store.Load()
	if s.DirOK() || s.Len() != 0 || !strings.Contains(s.DirProblem(), "out of inotify watches") {
		t.Fatalf("with no watches left: DirOK %v, %d flags, problem %q", s.DirOK(), s.Len(), s.DirProblem())
	}
	if !strings.Contains(s.Summary(time.Now()), "out of inotify watches") {
		t.Fatalf("summary (systemd STATUS) does not say why: %q", s.Summary(time.Now()))
	}
	if err := os.WriteFile(limit, []byte("100"), 0); err != nil {
		t.Fatal(err)
	}
	settles(t, store, "watches available again", has("svc"))
	write(t, filepath.Join(dir, "svc"), "drain")
	settles(t, store, "watched", stateIs("svc", cache.Drain))
}

func TestRemoteFSNames(t *testing.T) {
	for magic, want := range map[int64]string{
		unix.NFS_SUPER_MAGIC: "nfs", unix.CIFS_SUPER_MAGIC: "smb/cifs", unix.SMB2_SUPER_MAGIC: "smb/cifs",
		unix.FUSE_SUPER_MAGIC: "fuse", unix.V9FS_MAGIC: "9p", unix.CEPH_SUPER_MAGIC: "ceph",
		unix.TMPFS_MAGIC: "", unix.EXT4_SUPER_MAGIC: "", unix.XFS_SUPER_MAGIC: "", unix.BTRFS_SUPER_MAGIC: "", unix.OVERLAYFS_SUPER_MAGIC: "",
	} {
		if got := remoteFSName(magic); got != want {
			t.Errorf("remoteFSName(%#x) = %q, want %q", magic, got, want)
		}
	}
	if got := remoteFS(t.TempDir()); got != "" {
		t.Logf("the test's temp dir is on %s (rescanned every %s)", got, remotePoll)
	}
}

// TestRemoteFSPolled: on a filesystem where inotify misses other hosts'
// writes, the directory is rescanned every remotePoll. No network
// filesystem can be mounted where tests run, so statfs is made to say NFS
// for the (local) directory; the rescans must then come on their own.
func TestRemoteFSPolled(t *testing.T) {
	dir := t.TempDir()
	orig := fsMagic
	fsMagic = func(string) (int64, error) { return unix.NFS_SUPER_MAGIC, nil }
	t.Cleanup(func() { fsMagic = orig }) // registered first, so it runs after the watcher stopped
	w, _ := startWatcher(t, Options{Dir: dir, Resync: time.Hour})
	before := w.Stats().Rescans
	deadline := time.Now().Add(10 * remotePoll)
	for w.Stats().Rescans < before+2 {
		if time.Now().After(deadline) {
			t.Fatalf("no periodic rescans of a remote directory: %d -> %d", before, w.Stats().Rescans)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
