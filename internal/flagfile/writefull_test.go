//go:build linux

package flagfile

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/http-status/http_status/internal/faulttest"
	"github.com/http-status/http_status/internal/testenv"
)

// TestWriteFilesystemRefuses: a status directory that is full (ENOSPC as
// the temp file is written), out of inodes, or read-only (real tmpfs
// mounts in a mount namespace of the test's own). Each write must fail,
// saying the flag is unchanged, leave the flag as it was and no temp file
// behind. The error once named the temp file twice and not the flag.
func TestWriteFilesystemRefuses(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (tmpfs mounts in a mount namespace)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare")
	}
	t.Parallel()
	testenv.RunChild(t, "TestWriteFilesystemRefusesChild", "unshare", "--mount", "--propagation", "private")
}

func TestWriteFilesystemRefusesChild(t *testing.T) {
	testenv.IsChild(t, "TestWriteFilesystemRefusesChild")
	for _, c := range []struct {
		name, opts string
		fill       func(dir string) error
		want       string
	}{
		{"full", "size=8k", func(dir string) error {
			// Two pages: the flag's and this one's.
			return os.WriteFile(filepath.Join(dir, "fill"), make([]byte, 4096), 0o644)
		}, "write temp file: write " /* then the temp file's name */},
		{"inodes", "nr_inodes=3", func(dir string) error {
			// The root, the flag, this one.
			return os.WriteFile(filepath.Join(dir, "fill"), nil, 0o644)
		}, "create temp file in "},
		{"readonly", "size=1m", func(dir string) error {
			return unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
		}, "create temp file in "},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := unix.Mount("tmpfs", dir, "tmpfs", 0, c.opts); err != nil {
				t.Skipf("mount tmpfs: %v", err)
			}
			t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
			if err := os.WriteFile(filepath.Join(dir, "web.80"), []byte("up\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := c.fill(dir); err != nil {
				t.Fatal(err)
			}
			err := Write(dir, "web.80", []byte("drain # "+strings.Repeat("x", 150)+"\n"))
			testenv.ErrContains(t, err, c.want)
			testenv.ErrContains(t, err, "; web.80 unchanged")
			if n := strings.Count(err.Error(), ".tmp"); n > 1 {
				t.Errorf("the temp file named %d times: %v", n, err)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "web.80")); string(b) != "up\n" {
				t.Errorf("flag after the failed write: %q, want it as it was", b)
			}
			des, _ := os.ReadDir(dir)
			for _, de := range des {
				if strings.HasSuffix(de.Name(), ".tmp") {
					t.Errorf("temp file left: %s", de.Name())
				}
			}
			t.Logf("%s: %v", c.name, err)
		})
	}
}

// TestReplaceIfRemoveIf: each changes the flag only while it holds what
// the caller expects, and otherwise leaves the other writer's flag (or its
// absence) as it is, with no temp file behind.
func TestReplaceIfRemoveIf(t *testing.T) {
	replaceIfCases(t, t.TempDir())
}

// TestReplaceIfNoExchange: the same on a filesystem without
// RENAME_EXCHANGE or RENAME_NOREPLACE (a real FUSE mount whose server has
// no RENAME2, as NFS and most FUSE servers: renameat2 with a flag is
// EINVAL there), and an operator's write landing at the last instant
// before the new content goes in: it must stay. The fallback used to read
// the flag, then rename over it: the operator's up was overwritten with
// maint; and RemoveIf could not put another writer's flag back (EINVAL)
// and left none, out of rotation.
func TestReplaceIfNoExchange(t *testing.T) {
	testenv.RunInMountNamespace(t, "TestReplaceIfNoExchangeChild")
}

func TestReplaceIfNoExchangeChild(t *testing.T) {
	testenv.IsChild(t, "TestReplaceIfNoExchangeChild")
	dir := t.TempDir()
	mfs := faulttest.NoExchangeMount(t, dir)
	os.WriteFile(filepath.Join(dir, "a"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "b"), nil, 0o644)
	for to, flag := range map[string]uint{"b": unix.RENAME_EXCHANGE, "c": unix.RENAME_NOREPLACE} {
		if err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(dir, "a"), unix.AT_FDCWD, filepath.Join(dir, to), flag); !errors.Is(err, unix.EINVAL) {
			t.Fatalf("renameat2 flag %#x on the mount: %v, want EINVAL (the filesystem this test is about)", flag, err)
		}
	}
	os.Remove(filepath.Join(dir, "a"))
	os.Remove(filepath.Join(dir, "b"))
	replaceIfCases(t, dir)

	p := filepath.Join(dir, "web.80")
	mine, theirs := []byte("drain\n"), []byte("up\n")
	var landed atomic.Bool
	mfs.SetBefore(func(op, name string) {
		if name == "web.80" && (op == "rename" || op == "link") && landed.CompareAndSwap(false, true) {
			mfs.Put("web.80", theirs)
		}
	})
	if err := os.WriteFile(p, mine, 0o644); err != nil {
		t.Fatal(err)
	}
	err := ReplaceIf(dir, "web.80", []byte("maint\n"), mine)
	got, _ := os.ReadFile(p)
	if !landed.Load() || !errors.Is(err, ErrChanged) || string(got) != string(theirs) {
		t.Errorf("ReplaceIf with the operator's write landing last: %v, flag %q (operator wrote: %v); want %v and the operator's %q", err, got, landed.Load(), ErrChanged, theirs)
	}
	mfs.SetBefore(nil)
	if des, _ := os.ReadDir(dir); len(des) != 1 {
		t.Errorf("left %d entries, want the flag alone", len(des))
	}
}

func replaceIfCases(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, "web.80")
	mine, theirs := []byte("drain\n"), []byte("up\n")
	check := func(what string, err, wantErr error, want string) {
		t.Helper()
		if !errors.Is(err, wantErr) {
			t.Errorf("%s: %v, want %v", what, err, wantErr)
		}
		got, rerr := os.ReadFile(p)
		if os.IsNotExist(rerr) {
			got = []byte("(none)")
		}
		if string(got) != want {
			t.Errorf("%s: flag %q, want %q", what, got, want)
		}
		des, _ := os.ReadDir(dir)
		for _, de := range des {
			if de.Name() != "web.80" {
				t.Errorf("%s: left %s", what, de.Name())
			}
		}
	}
	os.WriteFile(p, theirs, 0o644)
	check("replace over theirs", ReplaceIf(dir, "web.80", []byte("maint\n"), mine), ErrChanged, "up\n")
	check("remove theirs", RemoveIf(dir, "web.80", mine), ErrChanged, "up\n")
	os.Remove(p)
	check("replace none", ReplaceIf(dir, "web.80", []byte("maint\n"), mine), ErrChanged, "(none)")
	check("remove none", RemoveIf(dir, "web.80", mine), ErrChanged, "(none)")
	os.WriteFile(p, mine, 0o644)
	check("replace mine", ReplaceIf(dir, "web.80", []byte("maint\n"), mine), nil, "maint\n")
	os.WriteFile(p, mine, 0o644)
	check("remove mine", RemoveIf(dir, "web.80", mine), nil, "(none)")
}
