//go:build linux

package watcher

import (
	"sync"

	"github.com/http-status/http_status/cache"
)

// connQueue holds connection counts waiting for the loop (SetConnCounts).
type connQueue struct {
	mu      sync.Mutex
	pending *cache.ConnCounts
	waiters []chan struct{}
}

// SetConnCounts hands the latest connection counts to the loop, which
// publishes them with the next snapshot (only the latest is kept). The
// returned channel is closed once they are published (or found equal to
// what is already published). It does not block; it is safe to call from
// any goroutine. The maps in c must not be modified afterwards.
func (w *Watcher) SetConnCounts(c cache.ConnCounts) <-chan struct{} {
	done := make(chan struct{})
	q := &w.conns
	q.mu.Lock()
	q.pending = &c
	q.waiters = append(q.waiters, done)
	q.mu.Unlock()
	// The probe wake-up serves any result from outside: publish picks up
	// probes and counts alike.
	select {
	case w.probeWake <- struct{}{}:
	default:
	}
	return done
}

// applyConns moves pending counts into b; it reports whether anything
// changed, and returns the channels of the callers whose counts it took,
// for publish to close once the snapshot is in the store. Called by the
// loop only (publish).
func (w *Watcher) applyConns(old *cache.Snapshot, b *cache.Builder) (changed bool, taken []chan struct{}) {
	q := &w.conns
	q.mu.Lock()
	c, taken := q.pending, q.waiters
	q.pending, q.waiters = nil, nil
	q.mu.Unlock()
	if c == nil || old.ConnCounts().Same(*c) {
		return false, taken
	}
	b.SetConns(*c)
	return true, taken
}
