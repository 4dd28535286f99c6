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
	taken   []chan struct{} // loop-owned: closed once the publish is done
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
// changed. Called by the loop only (publish).
func (w *Watcher) applyConns(old *cache.Snapshot, b *cache.Builder) bool {
	q := &w.conns
	q.mu.Lock()
	c := q.pending
	q.pending = nil
	q.taken = append(q.taken, q.waiters...)
	q.waiters = nil
	q.mu.Unlock()
	if c == nil || old.ConnCounts().Same(*c) {
		return false
	}
	b.SetConns(*c)
	return true
}

// connsPublished tells the callers of SetConnCounts that their counts are
// in the store. Called by the loop once publish is done.
func (w *Watcher) connsPublished() {
	for _, ch := range w.conns.taken {
		close(ch)
	}
	w.conns.taken = nil
}
