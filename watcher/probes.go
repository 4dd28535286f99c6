//go:build linux

package watcher

import (
	"github.com/http-status/http_status/cache"
)

// probeUpdate is a pending change of one service's probe status.
type probeUpdate struct {
	st  cache.ProbeStatus
	del bool
}

// SetProbeResults hands a service's combined probe status to the loop, which
// publishes it with the next snapshot. Only the latest status per service is
// kept, so a slow loop never queues stale results. It does not block; it is
// safe to call from any goroutine. st.Checks must not be modified afterwards.
func (w *Watcher) SetProbeResults(name string, st cache.ProbeStatus) {
	w.queueProbe(name, probeUpdate{st: st})
}

// ClearProbeResults forgets a service's probes (they were removed from the
// configuration): the service answers by its flag alone again.
func (w *Watcher) ClearProbeResults(name string) {
	w.queueProbe(name, probeUpdate{del: true})
}

func (w *Watcher) queueProbe(name string, u probeUpdate) {
	w.probeMu.Lock()
	if w.probePending == nil {
		w.probePending = map[string]probeUpdate{}
	}
	w.probePending[name] = u
	w.probeMu.Unlock()
	select {
	case w.probeWake <- struct{}{}:
	default:
	}
}

// applyProbes moves the pending probe results into b; it reports whether
// anything changed. Called by the loop only.
func (w *Watcher) applyProbes(old *cache.Snapshot, b *cache.Builder) bool {
	w.probeMu.Lock()
	pending := w.probePending
	w.probePending = nil
	w.probeMu.Unlock()
	changed := false
	for name, u := range pending {
		prev, had := old.ProbeReported(name)
		switch {
		case u.del:
			if had {
				b.DeleteProbe(name)
				changed = true
			}
		case had && prev.Same(u.st) && prev.Since.Equal(u.st.Since):
		default:
			b.SetProbe(name, u.st)
			changed = true
		}
	}
	if changed {
		w.count(func(s *Stats) { s.ProbeUpdates++ })
	}
	return changed
}
