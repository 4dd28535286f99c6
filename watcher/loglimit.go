//go:build linux

package watcher

import (
	"time"

	"github.com/rs/zerolog"
)

// Per-flag change lines are limited over time as well as per publication:
// an rm -rf of 10,000 flags, or a deploy rewriting each flag, makes many
// small publications, and one line per change would fill journald's
// per-unit rate limit (10,000 lines per 30 s by default, then it drops
// lines), hiding the warnings that matter. Warnings and errors about the
// directory, the loop, addresses and probes are logged elsewhere and never
// counted here.
const (
	// flagLineWindow and flagLineBudget: at most flagLineBudget flag
	// change lines per flagLineWindow.
	flagLineWindow = 10 * time.Second
	flagLineBudget = 64
	// summaryEvery spaces the lines counting what was not logged.
	summaryEvery = time.Second
)

// flagLines is the loop's budget of per-flag change lines. Only the loop
// uses it. Its clock is monotonic (time.Now), never Options.Now: a step of
// the wall clock must not reopen or freeze the budget.
type flagLines struct {
	now         func() time.Time
	windowStart time.Time
	inWindow    int       // lines logged since windowStart
	pending     int       // changes not logged, not yet summarised
	pendingFrom time.Time // when the first of them was held back
	lastSummary time.Time
}

// allow reports whether one more flag change may be logged line by line;
// when not, the change is counted for the next summary.
func (f *flagLines) allow() bool {
	now := f.now()
	if f.windowStart.IsZero() || now.Sub(f.windowStart) >= flagLineWindow {
		f.windowStart, f.inWindow = now, 0
	}
	if f.inWindow < flagLineBudget {
		f.inWindow++
		return true
	}
	f.hold(now, 1)
	return false
}

// hold counts n changes that were not logged one by one.
func (f *flagLines) hold(now time.Time, n int) {
	if f.pending == 0 {
		f.pendingFrom = now
	}
	f.pending += n
}

// flush logs one line counting the changes held back, at most once per
// summaryEvery (unless force); the loop calls it after each publication
// and on its tick, so the count is never later than a tick.
func (f *flagLines) flush(log zerolog.Logger, force bool) {
	if f.pending == 0 {
		return
	}
	now := f.now()
	if !force && !f.lastSummary.IsZero() && now.Sub(f.lastSummary) < summaryEvery {
		return
	}
	log.Info().Int("unlogged", f.pending).Dur("over", now.Sub(f.pendingFrom)).
		Msgf("%d more flag changes not logged one by one (at most %d lines per publication and %d per %s): see /status.json or `http_status list`",
			f.pending, maxLoggedChanges, flagLineBudget, flagLineWindow)
	f.pending = 0
	f.lastSummary = now
}
