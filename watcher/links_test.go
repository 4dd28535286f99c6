//go:build linux

package watcher

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/testenv"
)

// TestHardLinkedFlag writes a flag through a hard link outside the status
// directory. inotify reports that write to the other directory only, so
// before the fix the flag stayed up until the 5-minute resync.
func TestHardLinkedFlag(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	dir, other := filepath.Join(base, "st"), filepath.Join(base, "elsewhere")
	for _, d := range []string{dir, other} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src := filepath.Join(other, "squid")
	write(t, src, "")
	_, st := startWatcher(t, Options{Dir: dir})
	if err := os.Link(src, filepath.Join(dir, "squid.80")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "squid.80 up", state("squid.80", cache.Up))

	write(t, src, "drain # through the other link\n")
	waitFor(t, st, "squid.80 drain through the other link", state("squid.80", cache.Drain))

	// Back to one link: the other name goes, and the flag still follows
	// writes in the directory.
	if err := os.Remove(src); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "squid.80"), "maint\n")
	waitFor(t, st, "squid.80 maint", state("squid.80", cache.Maint))
}

// TestBindMountedFlag: a flag file with another file bind-mounted over it
// (a container given its flag from the host: `docker run -v
// /srv/state:/run/http_status/squid.80`). Mounts make no inotify event,
// and a write through the mount's source makes none in the status
// directory; the answer must follow both within a second. In a mount
// namespace of the test's own: the host's mount table is untouched.
func TestBindMountedFlag(t *testing.T) {
	testenv.RunInMountNamespace(t, "TestBindMountedFlagChild")
}

func TestBindMountedFlagChild(t *testing.T) {
	testenv.IsChild(t, "TestBindMountedFlagChild")
	root := t.TempDir()
	st, other := mkdir(t, filepath.Join(root, "st")), mkdir(t, filepath.Join(root, "host"))
	flag, src := filepath.Join(st, "squid.80"), filepath.Join(other, "state")
	write(t, flag, "")
	write(t, src, "drain # from the host")
	_, store := startWatcher(t, Options{Dir: st, Resync: time.Hour})
	settles(t, store, "start", stateIs("squid.80", cache.Up))

	if err := unix.Mount(src, flag, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("bind mount: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(flag, unix.MNT_DETACH) }) // before TempDir's removal, when a check fails
	settles(t, store, "a file mounted over the flag", stateIs("squid.80", cache.Drain))
	write(t, src, "maint # written on the host")
	settles(t, store, "a write through the mount's source", stateIs("squid.80", cache.Maint))
	write(t, flag, "down # written through the mount")
	settles(t, store, "a write through the flag's path", stateIs("squid.80", cache.Down))

	if err := unix.Unmount(flag, 0); err != nil {
		t.Fatal(err)
	}
	settles(t, store, "unmounted: the file under it again", stateIs("squid.80", cache.Up))
	write(t, src, "drain")
	write(t, flag, "maint")
	settles(t, store, "a write after the unmount", stateIs("squid.80", cache.Maint))
}

// TestMountedIn reads mount points out of a mountinfo table: only entries
// directly in the directory, with the kernel's octal escapes undone.
func TestMountedIn(t *testing.T) {
	table := `22 1 0:21 / /proc rw,nosuid - proc proc rw
36 22 8:1 /srv/state /run/http_status/squid.80 rw - ext4 /dev/sda1 rw
37 22 8:1 /srv/x /run/http_status/web\040site.80 rw - ext4 /dev/sda1 rw
38 22 8:1 /srv/y /run/http_status/sub/deep.80 rw - ext4 /dev/sda1 rw
39 22 8:1 /srv/z /run/http_status rw - ext4 /dev/sda1 rw
40 22 8:1 /srv/w /run/http_status/.hidden rw - ext4 /dev/sda1 rw
41 22 8:1 /srv/v /run/http_status/a\134b rw - ext4 /dev/sda1 rw
`
	got := mountedIn([]byte(table), "/run/http_status")
	want := []string{"squid.80"}
	if len(got) != len(want) {
		t.Fatalf("mountedIn = %v, want %v", got, want)
	}
	for _, n := range want {
		if _, ok := got[n]; !ok {
			t.Fatalf("mountedIn = %v, want %v", got, want)
		}
	}
	for in, out := range map[string]string{`a\040b`: "a b", `a\134b`: `a\b`, `a\011\012`: "a\t\n", `x\04`: `x\04`, `plain`: "plain"} {
		if got := unescapeMountPath(in); got != out {
			t.Errorf("unescapeMountPath(%q) = %q, want %q", in, got, out)
		}
	}
}
