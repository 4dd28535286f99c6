//go:build linux

package watcher

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/http-status/http_status/cache"
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
