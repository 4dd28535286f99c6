//go:build linux

package watcher

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/http-status/http_status/cache"
)

// TestOnPublishAndTransitions: every publish in answer to an event is timed
// through OnPublish, and each flag change counts as one transition.
func TestOnPublishAndTransitions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.80"), "")
	var mu sync.Mutex
	var lat []time.Duration
	w, st := startWatcher(t, Options{Dir: dir, OnPublish: func(d time.Duration) {
		mu.Lock()
		lat = append(lat, d)
		mu.Unlock()
	}})
	start := w.Stats().Transitions // the initial scan added a.80
	if start != 1 {
		t.Fatalf("Transitions after start = %d, want 1", start)
	}
	// Written with rename so each is one change: a plain create-then-write
	// may be seen empty (up) in between, which would count twice.
	writeAtomic(t, dir, "b.80", "drain")
	waitFor(t, st, "b.80", state("b.80", cache.Drain))
	writeAtomic(t, dir, "a.80", "down # x")
	waitFor(t, st, "a.80 down", state("a.80", cache.Down))
	calls := func() int { mu.Lock(); defer mu.Unlock(); return len(lat) }
	deadline := time.Now().Add(10 * time.Second)
	for w.Stats().Transitions != 3 || calls() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("Transitions = %d, want 3; OnPublish called %d times, want >= 2", w.Stats().Transitions, calls())
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, d := range lat {
		if d < 0 {
			t.Fatalf("negative latency %v", d)
		}
	}
}

func writeAtomic(t *testing.T, dir, name, content string) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	write(t, tmp, content)
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}
