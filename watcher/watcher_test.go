//go:build linux

package watcher

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/testenv"
)

// startWatcher runs a watcher on dir until the test ends.
func startWatcher(t *testing.T, opts Options) (*Watcher, *cache.Store) {
	t.Helper()
	return startWatcherLogger(t, opts, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel))
}

// startWatcherLog is startWatcher with every log line written to logs.
func startWatcherLog(t *testing.T, opts Options, logs io.Writer) (*Watcher, *cache.Store) {
	t.Helper()
	return startWatcherLogger(t, opts, zerolog.New(logs))
}

func startWatcherLogger(t *testing.T, opts Options, log zerolog.Logger) (*Watcher, *cache.Store) {
	t.Helper()
	if opts.Store == nil {
		opts.Store = cache.NewStore()
	}
	opts.Logger = log
	w, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-w.Ready():
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("watcher not ready after 10s")
	}
	return w, opts.Store
}

// waitFor polls the store until cond holds or the deadline passes.
func waitFor(t *testing.T, st *cache.Store, what string, cond func(*cache.Snapshot) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(st.Load()) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; snapshot has %v", what, st.Load().Names())
		}
		time.Sleep(time.Millisecond)
	}
}

func has(name string) func(*cache.Snapshot) bool {
	return func(s *cache.Snapshot) bool { _, ok := s.Lookup(name); return ok }
}

func hasNot(name string) func(*cache.Snapshot) bool {
	return func(s *cache.Snapshot) bool { _, ok := s.Lookup(name); return !ok }
}

func state(name string, want cache.State) func(*cache.Snapshot) bool {
	return func(s *cache.Snapshot) bool { e, _ := s.Lookup(name); return e.State == want }
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestInitialScan(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "squid.80"), "")
	write(t, filepath.Join(dir, "web.443"), "drain 25% # deploy")
	write(t, filepath.Join(dir, ".hidden"), "")
	write(t, filepath.Join(dir, "x.tmp"), "")
	write(t, filepath.Join(dir, "bad name"), "")
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, st := startWatcher(t, Options{Dir: dir})
	s := st.Load()
	if got := s.Names(); fmt.Sprint(got) != "[squid.80 web.443]" {
		t.Fatalf("names = %v", got)
	}
	e, _ := s.Lookup("web.443")
	if e.State != cache.Drain || e.Weight != 25 || e.Reason != "deploy" {
		t.Fatalf("web.443 = %+v", e)
	}
	if !s.DirOK() {
		t.Fatal("DirOK false")
	}
}

func TestCreateRemoveRename(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, st := startWatcher(t, Options{Dir: dir})
	p := filepath.Join(dir, "squid.80")

	write(t, p, "")
	waitFor(t, st, "create", has("squid.80"))

	write(t, p, "maint # swap disk")
	waitFor(t, st, "rewrite to maint", state("squid.80", cache.Maint))

	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "remove", hasNot("squid.80"))

	// Write a temp file and rename it into place: the temp name is never
	// seen, the final one is, with its full content.
	tmp := filepath.Join(dir, ".squid.80.tmp")
	write(t, tmp, "drain 10%")
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "rename into place", state("squid.80", cache.Drain))
	if e, _ := st.Load().Lookup("squid.80"); e.Weight != 10 {
		t.Fatalf("weight = %d", e.Weight)
	}
	if _, ok := st.Load().Lookup(".squid.80.tmp"); ok {
		t.Fatal("temp file visible")
	}

	// Rename out of the directory.
	if err := os.Rename(p, filepath.Join(t.TempDir(), "moved")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "rename away", hasNot("squid.80"))
}

func TestSymlinkIgnored(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "target")
	write(t, target, "")
	_, st := startWatcher(t, Options{Dir: dir})
	if err := os.Symlink(target, filepath.Join(dir, "link.80")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "marker"), "")
	waitFor(t, st, "marker", has("marker"))
	if _, ok := st.Load().Lookup("link.80"); ok {
		t.Fatal("symlink counted as a flag")
	}
}

func TestDirRemovedAndRecreated(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	dir := filepath.Join(parent, "status")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "a"), "")
	_, st := startWatcher(t, Options{Dir: dir})
	waitFor(t, st, "a", has("a"))

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "dir gone", func(s *cache.Snapshot) bool { return !s.DirOK() && s.Len() == 0 })

	// Recreate with a file already in it (as an rsync or a package would).
	tmp := filepath.Join(parent, "status.new")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(tmp, "b"), "")
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "dir back with b", func(s *cache.Snapshot) bool { _, ok := s.Lookup("b"); return ok && s.DirOK() })

	// And it is watched again.
	write(t, filepath.Join(dir, "c"), "")
	waitFor(t, st, "c after recreate", has("c"))

	// Removed, then recreated with mkdir.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "dir gone again", func(s *cache.Snapshot) bool { return !s.DirOK() })
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "d"), "")
	waitFor(t, st, "d after mkdir", has("d"))
}

func TestMissingDirAtStart(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "later")
	_, st := startWatcher(t, Options{Dir: dir})
	if st.Load().DirOK() {
		t.Fatal("DirOK for a missing dir")
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "x"), "")
	waitFor(t, st, "x", has("x"))
}

func TestCreateDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "a", "b")
	_, st := startWatcher(t, Options{Dir: dir, CreateDir: true})
	if !st.Load().DirOK() {
		t.Fatal("dir not created")
	}
}

// TestBurst creates and removes 4,000 files as fast as possible: the final
// state must be exact. (An inotify queue overflow, which a bigger burst may
// cause, is forced and checked by TestFaultInotifyOverflow in
// internal/daemon; 10,000 files here cost 6 s of CPU under -race.)
func TestBurst(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("burst of 4,000 files skipped in -short mode")
	}
	dir := t.TempDir()
	w, st := startWatcher(t, Options{Dir: dir})
	const n = 4000
	for i := 0; i < n; i++ {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("svc%05d.80", i)))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	waitFor(t, st, "4,000 flags", func(s *cache.Snapshot) bool { return s.Len() == n })
	for i := 0; i < n; i += 2 {
		if err := os.Remove(filepath.Join(dir, fmt.Sprintf("svc%05d.80", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, st, "2,000 flags", func(s *cache.Snapshot) bool { return s.Len() == n/2 })
	s := st.Load()
	for i := 0; i < n; i++ {
		_, ok := s.Lookup(fmt.Sprintf("svc%05d.80", i))
		if ok != (i%2 == 1) {
			t.Fatalf("svc%05d.80 present=%v", i, ok)
		}
	}
	t.Logf("stats: %+v", w.Stats())
}

func TestRescanAndHeartbeat(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w, st := startWatcher(t, Options{Dir: dir})
	before := w.Stats().Rescans
	// Once Rescan's channel is closed the rescanned state is published,
	// with no polling: a rescan begun after the write reads the file.
	if err := os.WriteFile(filepath.Join(dir, "late.80"), []byte("drain"), 0o644); err != nil {
		t.Fatal(err)
	}
	done := w.Rescan()
	again := w.Rescan() // a second request while one is pending is served too
	for _, c := range []<-chan struct{}{done, again} {
		select {
		case <-c:
		case <-time.After(10 * time.Second):
			t.Fatal("Rescan never reported done")
		}
	}
	if w.Stats().Rescans == before {
		t.Fatal("Rescan did not rescan")
	}
	if e, ok := st.Load().Lookup("late.80"); !ok || e.State != cache.Drain {
		t.Fatalf("after Rescan: late.80 = %+v, %v; want drain", e, ok)
	}
	if age := w.HeartbeatAge(); age > 5*time.Second {
		t.Fatalf("heartbeat stale: %v", age)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	if _, err := New(Options{Dir: t.TempDir()}); err == nil {
		t.Error("nil store accepted")
	}
	if _, err := New(Options{Store: cache.NewStore()}); err == nil {
		t.Error("empty dir accepted")
	}
	f := filepath.Join(t.TempDir(), "file")
	write(t, f, "")
	if _, err := New(Options{Store: cache.NewStore(), Dir: f}); err == nil {
		t.Error("a file accepted as the status directory")
	}
}

// TestHeartbeatIgnoresWallClock: the heartbeat behind /healthz and the
// systemd watchdog runs on the monotonic clock. A wall-clock step (date -s,
// an NTP step; here the watcher's Now jumps an hour) neither fakes a stall
// nor hides one.
func TestHeartbeatIgnoresWallClock(t *testing.T) {
	t.Parallel()
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	// The loop is held in its publish hook while hold is set, as a stuck
	// loop would be.
	var hold atomic.Bool
	release := make(chan struct{})
	dir := t.TempDir()
	w, _ := startWatcher(t, Options{Dir: dir, Now: now, OnPublish: func(time.Duration) {
		if hold.Load() {
			<-release
		}
	}})
	offset.Store(int64(time.Hour)) // the clock jumps forward
	select {
	case <-w.Rescan(): // the loop turned under the new clock
	case <-time.After(10 * time.Second):
		t.Fatal("rescan not published")
	}
	if age := w.HeartbeatAge(); age > time.Second {
		t.Fatalf("after a forward jump of the wall clock the heartbeat looks %s old", age)
	}
	// The loop is stuck while the clock jumps back: that must show.
	hold.Store(true)
	write(t, filepath.Join(dir, "x.80"), "") // a publish: the loop is held in it
	offset.Store(-int64(time.Hour))
	deadline := time.Now().Add(10 * time.Second)
	for w.HeartbeatAge() < time.Second {
		if time.Now().After(deadline) {
			t.Fatal("a stuck loop never showed an old heartbeat after the clock stepped back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	hold.Store(false)
	close(release)
}

// TestLogLinesPerPublicationBounded: one publication logs at most 32 flag
// changes line by line and counts the rest in one line. The first scan of
// 500 flags, and the status directory going away with them, used to log
// 500 lines each.
func TestLogLinesPerPublicationBounded(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "status")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		write(t, filepath.Join(dir, fmt.Sprintf("svc%d.80", i)), "drain")
	}
	var logs testenv.LogBuffer
	_, st := startWatcherLog(t, Options{Dir: dir}, &logs)
	waitFor(t, st, "500 flags", func(s *cache.Snapshot) bool { return len(s.Names()) == 500 })
	count := func(sub string) int { return strings.Count(logs.String(), sub) }
	if n := count(`"flag":"svc`); n != maxLoggedChanges {
		t.Fatalf("first scan of 500 flags logged %d flag lines, want %d", n, maxLoggedChanges)
	}
	if n := count(`"unlogged":468`); n != 1 {
		t.Fatalf("no summary line for the other 468 changes:\n%s", logs.String())
	}
	// The directory moved away: every flag goes in one publication.
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "no flags", func(s *cache.Snapshot) bool { return len(s.Names()) == 0 })
	if n := count(`removed: out of rotation`); n != maxLoggedChanges {
		t.Fatalf("the directory with 500 flags gone: %d lines, want %d", n, maxLoggedChanges)
	}
}
