package flagfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/http-status/http_status/cache"
)

func TestWriteReadRemove(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "status") // created on first write
	if err := Write(dir, "web.80", []byte("drain 50% # deploy\n")); err != nil {
		t.Fatal(err)
	}
	e, ok, problem := Read(filepath.Join(dir, "web.80"))
	if !ok || problem != nil || e.State != cache.Drain || e.Weight != 50 || e.Reason != "deploy" {
		t.Fatalf("read back: %+v %v %v", e, ok, problem)
	}
	des, _ := os.ReadDir(dir)
	if len(des) != 1 {
		t.Fatalf("temp files left: %v", des)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "web.80")); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if removed, err := Remove(dir, "web.80"); !removed || err != nil {
		t.Fatalf("remove: %v %v", removed, err)
	}
	if removed, err := Remove(dir, "web.80"); removed || err != nil {
		t.Fatalf("remove again: %v %v", removed, err)
	}
	if _, ok, problem := Read(filepath.Join(dir, "web.80")); ok || problem != nil {
		t.Fatalf("absent flag: %v %v", ok, problem)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Write(dir, "sub", nil); err == nil {
		t.Fatal("wrote over a directory")
	}
	if _, err := Remove(dir, "sub"); err == nil {
		t.Fatal("removed a directory")
	}
}

func TestReadNotAFlag(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("up"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if _, ok, problem := Read(filepath.Join(dir, "link")); ok || !errors.Is(problem, ErrSymlink) {
		t.Fatalf("symlink: %v %v", ok, problem)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok, problem := Read(filepath.Join(dir, "fifo")); ok || !errors.Is(problem, ErrNotRegular) {
		t.Fatalf("fifo: %v %v", ok, problem)
	}
	// Content partly understood: present, the state word counts, a problem said.
	if err := os.WriteFile(filepath.Join(dir, "odd"), []byte("drain 300%"), 0o644); err != nil {
		t.Fatal(err)
	}
	if e, ok, problem := Read(filepath.Join(dir, "odd")); !ok || problem == nil || e.State != cache.Drain {
		t.Fatalf("odd content: %+v %v %v", e, ok, problem)
	}
	if os.Geteuid() != 0 {
		if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("up"), 0); err != nil {
			t.Fatal(err)
		}
		if _, ok, problem := Read(filepath.Join(dir, "secret")); ok || !errors.Is(problem, ErrUnreadable) {
			t.Fatalf("unreadable: %v %v", ok, problem)
		}
	}
}

// TestReadDeviceNotOpened: a device node named as a flag is not a flag, and
// it is not opened (its driver's open could act: a tape rewinds, a
// watchdog arms). The node's major number is one reserved for local use
// and registered by no driver, so opening it fails with ENXIO: a problem
// that names that error shows the open happened.
func TestReadDeviceNotOpened(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mknod needs root")
	}
	p := filepath.Join(t.TempDir(), "squid.80")
	if err := syscall.Mknod(p, syscall.S_IFCHR|0o644, int(unix.Mkdev(240, 77))); err != nil {
		t.Skipf("mknod: %v", err)
	}
	_, ok, problem := Read(p)
	if ok || !errors.Is(problem, ErrNotRegular) {
		t.Fatalf("a character device: present %v, problem %v; want not a regular file, not opened", ok, problem)
	}
}

// TestReadLongFlag: only the first cache.MaxFlagSize bytes of a flag are
// read, and what the cut hides fails closed. A drain after a long comment
// block used to be read as an empty flag (up), and a drain cut to "drai"
// as an unknown word (up).
func TestReadLongFlag(t *testing.T) {
	comments := func(n int) string { // n bytes of comment lines
		s := strings.Repeat("# a comment line of a hand-written flag ........\n", n/40+1)
		return s[:n-1] + "\n"
	}
	for _, tc := range []struct {
		name, content string
		want          cache.State
		problem       bool
	}{
		{"drain after 5000 bytes of comments", comments(5000) + "drain\n", cache.Down, true},
		{"drain cut to drai", comments(cache.MaxFlagSize-4) + "drain # deploy\n", cache.Down, true},
		{"drain cut to drain", comments(cache.MaxFlagSize-5) + "drained\n", cache.Drain, true},
		{"maint, then a reason past the cut", "maint # " + strings.Repeat("r", 2*cache.MaxFlagSize) + "\n", cache.Maint, true},
		{"exactly MaxFlagSize bytes, drain last", comments(cache.MaxFlagSize-6) + "drain\n", cache.Drain, false},
		{"one-line HTML page past the cut", "<!DOCTYPE html><html><body>" + strings.Repeat("<p>fine</p> ", 600) + "</body></html>\n", cache.Up, true},
		{"drain 50% with 10 KiB of notes after it", "drain 50%\n" + comments(10000), cache.Drain, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "web.80")
			if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			e, ok, problem := Read(p)
			if !ok || e.State != tc.want || (problem != nil) != tc.problem {
				t.Fatalf("%d bytes: %v %v %v; want %v, problem %v", len(tc.content), e.State, ok, problem, tc.want, tc.problem)
			}
		})
	}
}

// TestWriteReplacingLinks: WriteReplacing says how many names led to the
// flag it replaced; afterwards the other name still leads to the old file.
func TestWriteReplacingLinks(t *testing.T) {
	dir := t.TempDir()
	for _, step := range []struct {
		content string
		link    bool // hard-link the flag from elsewhere before the write
		want    uint64
	}{
		{"drain\n", false, 0}, // no flag yet
		{"maint\n", false, 1},
		{"down\n", true, 2},
		{"up\n", false, 1}, // the write made a new file of one name
	} {
		if step.link {
			if err := os.Link(filepath.Join(dir, "squid.80"), filepath.Join(t.TempDir(), "state")); err != nil {
				t.Fatal(err)
			}
		}
		links, err := WriteReplacing(dir, "squid.80", []byte(step.content))
		if err != nil || links != step.want {
			t.Fatalf("WriteReplacing %q = %d, %v; want %d links", step.content, links, err, step.want)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "squid.80")); err != nil || string(b) != step.content {
			t.Fatalf("after writing %q: %q, %v", step.content, b, err)
		}
	}
}
