//go:build linux

package watcher

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/http-status/http_status/cache"
)

// TestSetConnCounts: counts handed to the watcher are published by its loop
// and the caller learns when; equal counts publish nothing but still
// release the caller; the counts follow a flag's conn= port.
func TestSetConnCounts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "web.8080"), []byte("drain conn=443\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, store := startWatcher(t, Options{Dir: dir})

	waitDone := func(ch <-chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("SetConnCounts: not published")
		}
	}
	gen := store.Load().Generation()
	c := cache.ConnCounts{Live: true, Ports: map[uint16]int{443: 5, 8080: 1}}
	waitDone(w.SetConnCounts(c))
	s := store.Load()
	if n, ok := s.Conns("web.8080"); !ok || n != 5 {
		t.Fatalf("Conns(web.8080) = %d, %v; want 5 (conn=443)", n, ok)
	}
	if s.Generation() != gen+1 {
		t.Errorf("generation %d, want %d", s.Generation(), gen+1)
	}
	// The same counts again: released, nothing published.
	waitDone(w.SetConnCounts(cache.ConnCounts{Live: true, Ports: map[uint16]int{443: 5, 8080: 1}}))
	if g := store.Load().Generation(); g != gen+1 {
		t.Errorf("equal counts published generation %d", g)
	}
	// Stopped: no counts.
	waitDone(w.SetConnCounts(cache.ConnCounts{}))
	if _, ok := store.Load().Conns("web.8080"); ok {
		t.Error("count after the sampler stopped")
	}
}
