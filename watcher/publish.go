//go:build linux

package watcher

import (
	"net/netip"
	"slices"
	"time"

	"github.com/http-status/http_status/cache"
)

// publish builds the next snapshot from the current one: a full rescan result
// (entries, when not nil) replaces every flag, touched names are re-read one
// by one, and the VIP set is recomputed when addrs says so. Each change is
// logged once. Nothing is published when nothing changed; it reports whether
// a snapshot was published.
func (w *Watcher) publish(touched map[string]struct{}, entries map[string]cache.Entry, addrs bool) bool {
	old := w.store.Load()
	b := cache.NewBuilder(old)
	now := w.now()
	changed := old.Generation() == 0
	var transitions uint64
	// A publication logs at most maxLoggedChanges flag changes one by
	// one (a rescan of 10,000 flags, or the directory removed, would
	// otherwise write 10,000 lines at once), and the loop at most
	// flagLineBudget per flagLineWindow (loglimit.go); the rest are
	// counted in one line.
	var unlogged int
	logLine := func() bool {
		if transitions > maxLoggedChanges {
			unlogged++
			return false
		}
		return w.lines.allow()
	}

	apply := func(name string, e cache.Entry, ok bool) {
		prev, had := old.Lookup(name)
		switch {
		case !ok && had:
			b.Delete(name)
			changed = true
			transitions++
			if !logLine() {
				return
			}
			w.log.Info().Str("flag", name).Str("state", "missing").Str("was", prev.State.String()).Msg(name + " removed: out of rotation")
		case ok && had && prev.SameAs(e):
			// Unchanged (a touch, a rewrite of the same words).
		case ok:
			e.Since = now
			b.Set(name, e)
			changed = true
			transitions++
			if !logLine() {
				return
			}
			if e.State != cache.Up && !e.Expires.IsZero() && !e.Expires.After(now) {
				// Written with an expiry already past (a wrong year, a
				// clock behind): it counts as up from the start. Say so
				// where the operator looks, not "NAME drain".
				w.log.Warn().Str("flag", name).Str("state", "up").Str("written", e.State.String()).Time("until", e.Expires).
					Msg(name + " says " + e.State.String() + " until " + e.Expires.UTC().Format(time.RFC3339) + ", which has passed: it counts as up")
				return
			}
			ev := w.log.Info().Str("flag", name).Str("state", e.State.String())
			if had {
				ev = ev.Str("was", prev.State.String())
			}
			if e.Weight != cache.NoWeight {
				ev = ev.Int("weight", e.Weight)
			}
			if e.Reason != "" {
				ev = ev.Str("reason", e.Reason)
			}
			if !e.Expires.IsZero() {
				ev = ev.Time("until", e.Expires)
			}
			ev.Msg(name + " " + e.State.String())
		}
	}

	if entries != nil {
		for name, prev := range old.Services() {
			if _, ok := entries[name]; !ok {
				apply(name, prev, false)
			}
		}
		for name, e := range entries {
			apply(name, e, true)
		}
	}
	for name := range touched {
		if !cache.ValidName(name) {
			continue
		}
		if entries != nil {
			continue // the rescan already read it
		}
		e, ok, held := w.readFlag(name)
		if held {
			continue // the previous state stays until the writer closes it
		}
		if w.dirProblem() != "" {
			ok = false
		}
		apply(name, e, ok)
	}
	if w.applyProbes(old, b) {
		changed = true
	}
	connsChanged, connWaiters := w.applyConns(old, b)
	defer func() {
		// Their counts are in the store now (or equal to what was).
		for _, ch := range connWaiters {
			close(ch)
		}
	}()
	if connsChanged {
		changed = true
	}
	if p := w.dirProblem(); old.DirProblem() != p {
		b.SetDirProblem(p)
		changed = true
	}

	// Overrides that expired since the last turn: log them once. Responders
	// already answer Up from the expiry instant on (Entry.Effective).
	for name, e := range old.ExpiredIn(w.lastExp, now) {
		changed = true
		transitions++
		if logLine() {
			w.log.Info().Str("flag", name).Str("state", "up").Str("was", e.State.String()).Time("expired", e.Expires).Msg(name + " override expired: up")
		}
	}
	w.lastExp = now
	if unlogged > 0 {
		w.lines.hold(w.lines.now(), unlogged)
	}
	w.lines.flush(w.log, false)

	if w.addrs != nil {
		if old.VIPsOK() != w.addrs.ok {
			b.SetVIPsOK(w.addrs.ok)
			changed = true
		}
		if addrs {
			next := w.addrs.set()
			if w.logVIPDiff(old.VIPs(), next) {
				b.SetVIPs(next)
				changed = true
			}
		}
	} else if !old.VIPsOK() {
		b.SetVIPsOK(true)
		changed = true
	}

	if !changed {
		return false
	}
	w.store.Publish(b.Snapshot(now))
	w.count(func(s *Stats) { s.Publishes++; s.Transitions += transitions })
	return true
}

// maxLoggedChanges bounds the flag changes one publication logs line by
// line.
const maxLoggedChanges = 32

// logVIPDiff logs addresses that appeared or went away; it reports whether
// anything differs.
func (w *Watcher) logVIPDiff(old, next map[netip.Addr]cache.VIPFlags) bool {
	var added, gone []netip.Addr
	for a, f := range next {
		if of, ok := old[a]; !ok || of != f {
			added = append(added, a)
		}
	}
	for a := range old {
		if _, ok := next[a]; !ok {
			gone = append(gone, a)
		}
	}
	if len(added)+len(gone) == 0 {
		return false
	}
	// A big first list is summarised rather than logged line by line.
	if len(added)+len(gone) > 32 {
		w.log.Info().Int("added", len(added)).Int("gone", len(gone)).Int("total", len(next)).Msg("addresses changed")
		return true
	}
	slices.SortFunc(added, netip.Addr.Compare)
	slices.SortFunc(gone, netip.Addr.Compare)
	for _, a := range added {
		w.log.Info().Str("vip", a.String()).Bool("loopback", next[a]&cache.OnLoopback != 0).Msg("VIP " + a.String() + " present")
	}
	for _, a := range gone {
		w.log.Info().Str("vip", a.String()).Msg("VIP " + a.String() + " gone")
	}
	return true
}
