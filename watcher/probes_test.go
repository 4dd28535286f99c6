//go:build linux

package watcher

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/http-status/http_status/cache"
)

func waitSnap(t *testing.T, st *cache.Store, what string, cond func(*cache.Snapshot) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(st.Load()) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestSetProbeResults: results handed over before Run are in the first
// snapshot; later ones are published by the loop; Clear removes them.
func TestSetProbeResults(t *testing.T) {
	t.Parallel()
	store := cache.NewStore()
	w, err := New(Options{Dir: t.TempDir(), Store: store, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	w.SetProbeResults("php.9000", cache.ProbeStatus{OK: false, LastErr: "probe fpm-ping: pending: no result yet"})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = w.Run(ctx) })
	defer wg.Wait()
	defer cancel()
	<-w.Ready()
	if p, ok := store.Load().Probe("php.9000"); !ok || p.OK {
		t.Fatalf("first snapshot: %+v, %v", p, ok)
	}
	gen := store.Load().Generation()
	// Only the latest of a burst counts.
	for i := range 100 {
		w.SetProbeResults("php.9000", cache.ProbeStatus{OK: i == 99, LastErr: "x"})
	}
	waitSnap(t, store, "passing", func(s *cache.Snapshot) bool { p, _ := s.Probe("php.9000"); return p.OK })
	if d := store.Load().Generation() - gen; d > 100 {
		t.Errorf("%d publications for 100 results", d)
	}
	// The same status again publishes nothing.
	gen = store.Load().Generation()
	p, _ := store.Load().Probe("php.9000")
	w.SetProbeResults("php.9000", p)
	w.SetProbeResults("other", cache.ProbeStatus{OK: true})
	waitSnap(t, store, "other", func(s *cache.Snapshot) bool { _, ok := s.Probe("other"); return ok })
	if d := store.Load().Generation() - gen; d != 1 {
		t.Errorf("%d publications, want 1", d)
	}
	w.ClearProbeResults("php.9000")
	waitSnap(t, store, "cleared", func(s *cache.Snapshot) bool { _, ok := s.Probe("php.9000"); return !ok })
	if w.Stats().ProbeUpdates == 0 {
		t.Error("ProbeUpdates not counted")
	}
}
