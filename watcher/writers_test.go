//go:build linux

package watcher

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/http-status/http_status/cache"
)

// TestWriteInPlaceNeverUp rewrites flags in place with the shell, as
// operators do (`echo drain > squid.80`): open with O_TRUNC, then write.
// Read between the two, the file is empty, which means up. Every snapshot
// the watcher publishes is checked: none may show the flag up, since every
// state written is out of rotation. Before the fix thousands of
// publications were up in a run.
func TestWriteInPlaceNeverUp(t *testing.T) {
	t.Parallel()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh:", err)
	}
	dir := t.TempDir()
	write(t, filepath.Join(dir, "old.80"), "down\n")
	st := cache.NewStore()
	var up, out atomic.Int64
	var counting atomic.Bool
	counting.Store(true)
	st.SetOnPublish(func(s *cache.Snapshot) {
		if !counting.Load() {
			return
		}
		for _, name := range []string{"old.80", "new.80"} {
			if e, ok := s.Lookup(name); ok {
				if e.State == cache.Up {
					up.Add(1)
				} else {
					out.Add(1)
				}
			}
		}
	})
	_, st = startWatcher(t, Options{Dir: dir, Store: st})

	// An existing flag rewritten, and a new one created by the
	// redirection itself (missing, then drain: never up either).
	script := `cd "$1" || exit 1
for i in $(seq 150); do
	echo drain > old.80; echo down > old.80
	rm -f new.80; echo maint > new.80
done
echo maint > old.80`
	if b, err := exec.Command(sh, "-c", script, "sh", dir).CombinedOutput(); err != nil {
		t.Fatalf("sh: %v: %s", err, b)
	}
	waitFor(t, st, "old.80 maint", state("old.80", cache.Maint))
	waitFor(t, st, "new.80 maint", state("new.80", cache.Maint))
	counting.Store(false)
	if n := up.Load(); n > 0 {
		t.Errorf("%d snapshots showed a flag up while only out-of-rotation states were written", n)
	}
	if out.Load() < 10 {
		t.Errorf("only %d snapshots with the flags out: the writes were not followed", out.Load())
	}

	// Emptying a flag still means up: at once for a new file, after the
	// settle time for a flag that was out of rotation.
	f, err := os.Create(filepath.Join(dir, "touched.80"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	waitFor(t, st, "touched.80 up", state("touched.80", cache.Up))
	if err := os.Truncate(filepath.Join(dir, "old.80"), 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "old.80 up after truncation", state("old.80", cache.Up))
}

// TestEmptyHeldWhileOpen keeps an emptied flag open for writing: it stays
// out of rotation until the writer closes it or maxHold passes.
func TestEmptyHeldWhileOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "squid.80")
	write(t, p, "drain\n")
	_, st := startWatcher(t, Options{Dir: dir})
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A marker written after the truncation: once it is seen, the
	// truncation was too.
	write(t, filepath.Join(dir, "marker"), "")
	waitFor(t, st, "marker", has("marker"))
	if e, _ := st.Load().Lookup("squid.80"); e.State != cache.Drain {
		t.Errorf("squid.80 %v while emptied and still open for writing, want drain", e.State)
	}
	if _, err := f.WriteString("maint\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	waitFor(t, st, "squid.80 maint", state("squid.80", cache.Maint))
}

// TestHoldEndsAtClose: a new flag created empty is held while its writer
// has it open, and the close alone (which makes no fsnotify event) ends the
// hold at once: with the hold's timers at an hour, only the close's wake-up
// can publish it.
func TestHoldEndsAtClose(t *testing.T) {
	setDuration(t, &holdPoll, time.Hour)
	setDuration(t, &maxHold, time.Hour)
	dir := t.TempDir()
	_, st := startWatcher(t, Options{Dir: dir})
	p := filepath.Join(dir, "squid.80")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "marker"), "")
	waitFor(t, st, "marker", has("marker"))
	if _, ok := st.Load().Lookup("squid.80"); ok {
		t.Fatal("squid.80 published while created empty and still open for writing")
	}
	f.Close()
	waitFor(t, st, "squid.80 up after its close", state("squid.80", cache.Up))
}

// TestEmptiedAfterChurnSettles: a flag rewritten in place between drain and
// empty as fast as a writer can, then left empty, comes up by the settle
// after the last write: with maxHold at an hour, nothing else can end its
// hold.
func TestEmptiedAfterChurnSettles(t *testing.T) {
	setDuration(t, &maxHold, time.Hour)
	dir := t.TempDir()
	p := filepath.Join(dir, "squid.80")
	write(t, p, "drain\n")
	_, st := startWatcher(t, Options{Dir: dir})
	waitFor(t, st, "squid.80 drain", state("squid.80", cache.Drain))
	for i := range 2000 {
		c := "drain\n"
		if i%2 == 1 {
			c = ""
		}
		write(t, p, c)
	}
	waitFor(t, st, "squid.80 up after the churn", state("squid.80", cache.Up))
}

// TestEmptiedBeforeStartHeld: the daemon starts while `echo drain > FILE`
// is between its truncation and its write (a restart during a deploy). The
// writers' instance saw nothing of it, so only the file's change time can
// say it may still be written: the first snapshot must not show it up, and
// the write then counts. settle is an hour here, so the change is always
// recent, however slow the machine.
func TestEmptiedBeforeStartHeld(t *testing.T) {
	setDuration(t, &settle, time.Hour)
	dir := t.TempDir()
	p := filepath.Join(dir, "squid.80")
	write(t, p, "down\n")
	// Born before it is emptied: wait until the clock the kernel stamps
	// files with has moved on past the tolerance for a creation.
	born := time.Now()
	for time.Since(born) < 100*time.Millisecond {
		time.Sleep(10 * time.Millisecond)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, st := startWatcher(t, Options{Dir: dir})
	if e, ok := st.Load().Lookup("squid.80"); ok && e.State == cache.Up {
		t.Fatal("the first snapshot shows an emptied flag up while its writer may still write")
	}
	if _, err := f.WriteString("drain\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	waitFor(t, st, "squid.80 drain once written", state("squid.80", cache.Drain))
}

// TestTouchedBeforeStartIsUp: a flag created empty just before the start
// (touch, as in the original) is up in the first snapshot.
func TestTouchedBeforeStartIsUp(t *testing.T) {
	setDuration(t, &settle, time.Hour)
	dir := t.TempDir()
	if out, err := exec.Command("touch", filepath.Join(dir, "squid.80")).CombinedOutput(); err != nil {
		t.Skipf("touch: %v %s", err, out)
	}
	_, st := startWatcher(t, Options{Dir: dir})
	if e, ok := st.Load().Lookup("squid.80"); !ok || e.State != cache.Up {
		t.Fatalf("squid.80 = %v, %v at start, want up", e.State, ok)
	}
}

// TestHalfWrittenHeld: a writer that writes its line in several calls
// leaves content that holds no state word ("dr" of drain, "mown" where
// maint is written over down without truncating) or an expiry cut short
// ("until=17" of until=1770000000: an override that has passed). Each reads
// as up; while the writer still has the file open, the previous state
// stays, and its close brings the whole line.
func TestHalfWrittenHeld(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, first, rest string
		trunc             bool
		want              cache.State
	}{
		{"word cut", "dr", "ain\n", true, cache.Drain},
		{"word over the old one", "do", "wn \n", false, cache.Down}, // over "maint\n": "doint", then "down \n"
		{"expiry cut", "drain until=17", "99999999\n", true, cache.Drain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			p := filepath.Join(dir, "squid.80")
			write(t, p, "maint\n")
			_, st := startWatcher(t, Options{Dir: dir})
			flags := os.O_WRONLY
			if tc.trunc {
				flags |= os.O_TRUNC
			}
			f, err := os.OpenFile(p, flags, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteString(tc.first); err != nil {
				t.Fatal(err)
			}
			// Once the marker is seen, so was the first write.
			write(t, filepath.Join(dir, "marker"), "")
			waitFor(t, st, "marker", has("marker"))
			if e, _ := st.Load().Lookup("squid.80"); e.Effective(time.Now()).State == cache.Up {
				t.Errorf("squid.80 up (%+v) while half-written and still open for writing", e)
			}
			if _, err := f.WriteString(tc.rest); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, st, "squid.80 "+tc.want.String(), state("squid.80", tc.want))
		})
	}
}

// setDuration sets one of the watcher's timing variables for a test. The
// old value comes back when the test's cleanups run, after the watcher the
// test starts later has stopped (cleanups run last-registered first): a
// deferred restore would write it while that watcher may still read it.
func setDuration(t *testing.T, p *time.Duration, v time.Duration) {
	t.Helper()
	old := *p
	*p = v
	t.Cleanup(func() { *p = old })
}
