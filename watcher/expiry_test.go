//go:build linux

package watcher

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/testenv"
)

// TestExpiryReturnsUp writes a drain override that expires 300 ms later and
// checks that, with no file event, the service is up from then on, the change
// is logged, and a new snapshot was published.
func TestExpiryReturnsUp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logs := &testenv.LogBuffer{}
	_, store := startWatcherLog(t, Options{Dir: dir}, logs)

	until := time.Now().Add(300 * time.Millisecond)
	content := "drain until=" + until.UTC().Format(time.RFC3339Nano) + " # deploy 1234\n"
	if err := os.WriteFile(filepath.Join(dir, "squid.80"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}

	// The write shows up as drain (unless the machine was so slow that the
	// override already expired).
	var gen uint64
	deadline := time.Now().Add(10 * time.Second)
	for {
		snap := store.Load()
		e, ok := snap.Lookup("squid.80")
		if ok && e.State == cache.Drain {
			if !e.Expires.Equal(until.Truncate(0)) {
				t.Fatalf("expiry = %v, want %v", e.Expires, until)
			}
			if time.Now().Before(until) && e.Effective(time.Now()).State != cache.Drain {
				t.Fatalf("before expiry the effective state is %v, want drain", e.Effective(time.Now()).State)
			}
			gen = snap.Generation()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("squid.80 never seen as drain; entry %+v ok=%v", e, ok)
		}
		time.Sleep(5 * time.Millisecond)
	}

	// After the instant: up, logged, and a later generation.
	deadline = time.Now().Add(10 * time.Second)
	for {
		snap := store.Load()
		e, _ := snap.Lookup("squid.80")
		eff := e.Effective(time.Now())
		logged := strings.Contains(logs.String(), "squid.80 override expired: up")
		if !time.Now().Before(until) && eff.State == cache.Up && eff.Reason == "" &&
			snap.Generation() > gen && logged {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after expiry: effective %+v, generation %d (was %d), logged %v; logs:\n%s",
				eff, snap.Generation(), gen, logged, logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := strings.Count(logs.String(), "override expired"); n != 1 {
		t.Errorf("expiry logged %d times, want once", n)
	}
}

// TestExpiredAtStart: an override that expired while the daemon was down is
// plain up as soon as the daemon starts (the expiry is in the file).
func TestExpiredAtStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	if err := os.WriteFile(filepath.Join(dir, "squid.80"), []byte("maint until="+past+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if err := os.WriteFile(filepath.Join(dir, "web.443"), []byte("maint until="+future+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, store := startWatcherLog(t, Options{Dir: dir}, &testenv.LogBuffer{})
	snap := store.Load()
	e, ok := snap.Lookup("squid.80")
	if !ok || e.Effective(time.Now()).State != cache.Up {
		t.Errorf("squid.80 expired an hour ago: effective %v, want up", e.Effective(time.Now()).State)
	}
	e, ok = snap.Lookup("web.443")
	if !ok || e.Effective(time.Now()).State != cache.Maint {
		t.Errorf("web.443 expires in an hour: effective %v, want maint", e.Effective(time.Now()).State)
	}
}

// TestExpiryAlreadyPast: a flag written with an expiry that has already
// passed (a wrong year) counts as up at once, and the log says so, rather
// than "squid.80 drain" while the answer is 200.
func TestExpiryAlreadyPast(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var logs testenv.LogBuffer
	_, store := startWatcherLog(t, Options{Dir: dir}, &logs)
	if err := os.WriteFile(filepath.Join(dir, "squid.80"), []byte("drain until=2025-11-30T10:00:00Z # deploy\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, store, "squid.80 read", func(s *cache.Snapshot) bool { _, ok := s.Lookup("squid.80"); return ok })
	if e, _ := store.Load().Lookup("squid.80"); e.Effective(time.Now()).State != cache.Up {
		t.Errorf("effective state %v, want up", e.Effective(time.Now()).State)
	}
	out := logs.String()
	if !strings.Contains(out, "squid.80 says drain until 2025-11-30T10:00:00Z, which has passed: it counts as up") || !strings.Contains(out, `"level":"warn"`) {
		t.Errorf("no warning that the expiry has passed:\n%s", out)
	}
	if strings.Contains(out, `"message":"squid.80 drain"`) {
		t.Errorf("logged as a drain:\n%s", out)
	}
}
