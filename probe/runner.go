// Package probe runs active health checks (HTTP, TCP, FastCGI, container
// state, scripts) declared in a configuration file, and reports each
// service's combined verdict through a callback.
//
// probe is a producer, like watcher: it never writes the store. cmd wires
// [Options.Report] to the watcher, whose loop publishes the results in the
// next snapshot; [cache.Snapshot.Effective] combines them with the flag.
//
// # Schedule
//
// Each probe runs in its own goroutine: the first attempt at a random
// instant within min(interval, 1s) of start, then every interval (so
// probes keep random phases and 1,000 of them never fire in the same
// millisecond). At most Concurrency attempts run at once (a semaphore);
// every attempt has its own timeout (a context), so a hanging target
// delays nobody beyond that timeout, and responders never wait for a
// probe at all.
//
// # Rise and fall
//
// A passing probe turns failing after fall consecutive failures; a failing
// one turns passing after rise consecutive successes. Before its first
// result a probe is "pending": with initial = "down" (the default) pending
// counts as failing and the first result is adopted at once; with initial =
// "up" it counts as passing and fall failures are needed, unless it comes
// with a reload to a service whose probes were failing: then it counts as
// failing and rise successes are needed. A probe with
// only_if_vip is idle while that address is absent from this host: it does
// not run and does not vote; when the address comes back the probe starts
// afresh (pending), or failing if it was failing when the address went.
//
// # Concurrency
//
// A [Runner]'s methods are safe for concurrent use. [Runner.Apply] keeps
// the probes whose settings did not change (with their state) and stops
// the others; [Runner.Close] stops everything and waits.
package probe

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/http-status/http_status/cache"
)

// DefaultConcurrency is how many attempts may run at once by default.
const DefaultConcurrency = 32

// Options configure a [Runner].
type Options struct {
	// Logger gets one line per transition.
	Logger zerolog.Logger
	// Concurrency bounds the attempts running at once; 0 means
	// DefaultConcurrency.
	Concurrency int
	// HasVIP reports whether an address is on this host (for only_if_vip);
	// cmd passes the store's current snapshot's HasVIP. Nil: never present.
	// It only decides whether the probe runs: whether a gated probe votes
	// is decided by each snapshot from its own VIPs (cache.CheckStatus.Gate).
	HasVIP func(netip.Addr) bool
	// LoopbackVIPsOnly: only an address on a loopback interface opens an
	// only_if_vip gate (--vip-loopback-only), as HasVIP does.
	LoopbackVIPsOnly bool
	// Report receives a service's new combined status whenever it changes.
	// It is called with the runner's lock held: it must not block (the
	// watcher's SetProbeResults does not) nor call back into the Runner.
	Report func(service string, st cache.ProbeStatus)
	// Clear is called for a service whose probes were all removed.
	Clear func(service string)
	// Observe, when not nil, is told how long each attempt took (from the
	// moment it got a concurrency slot) and whether it passed; it feeds the
	// probe-duration histogram. It must not block.
	Observe func(service string, ok bool, d time.Duration)
	// Ready, when not nil, holds back every probe's first attempt until it
	// is closed (cmd passes the watcher's Ready, so only_if_vip sees the
	// real address list). Statuses are reported (pending) before that.
	Ready <-chan struct{}
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	// checkerFor replaces the kinds' checkers in tests that run the
	// schedule on synctest's fake clock, where real I/O has no place.
	checkerFor func(*Spec) (checker, error)
}

// Runner schedules the probes of the current configuration.
type Runner struct {
	opts   Options
	log    zerolog.Logger
	sem    chan struct{}
	ctx    context.Context
	cancel context.CancelFunc

	applyMu sync.Mutex // serializes Apply and Close
	// stuckGone, owned by Apply: the stuck attempts of probes a reload
	// removed, by Spec.ID, until they end; a probe with that ID added
	// back waits for its attempt as if it had never gone.
	stuckGone map[string]chan struct{}

	mu       sync.Mutex
	probes   map[string]*running // by Spec.ID
	services map[string]*service // by service name
	closed   bool
}

type service struct {
	name   string
	probes []*running // configuration order
	last   cache.ProbeStatus
	have   bool
}

type running struct {
	spec   Spec
	chk    checker
	cancel context.CancelFunc
	done   chan struct{}
	// stuck, owned by the probe's loop: closed when an attempt that
	// outlived its timeout by stuckAfter ends at last; nil when none.
	stuck chan struct{}

	// Guarded by Runner.mu.
	ok      bool
	pending bool
	idle    bool
	succ    int
	fail    int
	msg     string
	since   time.Time
	// From the last attempt that passed: what it asked for besides
	// passing (scripts with output = "agent").
	agentReply
	// From the last attempt: the containers a container probe matched.
	containers []cache.Container
}

// NewRunner returns a Runner with no probes; [Runner.Apply] gives it some.
func NewRunner(opts Options) *Runner {
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Report == nil {
		opts.Report = func(string, cache.ProbeStatus) {}
	}
	if opts.Clear == nil {
		opts.Clear = func(string) {}
	}
	if opts.checkerFor == nil {
		opts.checkerFor = newChecker
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Runner{
		opts:     opts,
		log:      opts.Logger,
		sem:      make(chan struct{}, opts.Concurrency),
		ctx:      ctx,
		cancel:   cancel,
		probes:   map[string]*running{},
		services: map[string]*service{},
	}
}

// Apply makes cfg the running configuration (nil: no probes). Unchanged
// probes keep running with their state; removed ones are stopped and waited
// for before Apply returns.
func (r *Runner) Apply(cfg *Config) error {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	var specs []Spec
	if cfg != nil {
		specs = cfg.Probes
	}
	// Build every checker first: a bad spec changes nothing.
	type item struct {
		spec Spec
		chk  checker // nil: the running probe is kept
	}
	items := make([]item, 0, len(specs))
	ids := make(map[string]bool, len(specs))
	for i := range specs {
		s := specs[i]
		id := s.ID()
		if ids[id] {
			// Probes are matched by ID across reloads.
			return fmt.Errorf("probe %s: duplicate probe name", id)
		}
		ids[id] = true
		r.mu.Lock()
		old := r.probes[id]
		r.mu.Unlock()
		var chk checker
		if old == nil || !old.spec.Equal(&s) {
			c, err := r.opts.checkerFor(&s)
			if err != nil {
				return fmt.Errorf("probe %s: %w", id, err)
			}
			chk = c
		}
		items = append(items, item{s, chk})
	}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errors.New("probe: runner is closed")
	}
	now := r.opts.Now()
	keep := map[string]*running{}
	services := map[string]*service{}
	var start []*running
	for _, it := range items {
		id := it.spec.ID()
		p := r.probes[id]
		if it.chk != nil {
			p = &running{spec: it.spec, chk: it.chk, done: make(chan struct{}), since: now}
			p.reset()
			// initial = "up" is for a service with no verdict yet: a
			// reload that changes or renames the probes of a failing
			// service must not put it back in rotation before the new
			// probe has passed rise times.
			if old := r.services[it.spec.Service]; old != nil && old.have && !old.last.OK {
				p.keepFailing()
			}
			start = append(start, p)
		}
		keep[id] = p
		sv := services[p.spec.Service]
		if sv == nil {
			sv = &service{name: p.spec.Service}
			if old := r.services[sv.name]; old != nil {
				sv.last, sv.have = old.last, old.have
			}
			services[sv.name] = sv
		}
		sv.probes = append(sv.probes, p)
	}
	var stop []*running
	for id, p := range r.probes {
		if keep[id] != p {
			stop = append(stop, p)
		}
	}
	var cleared []string
	for name := range r.services {
		if services[name] == nil {
			cleared = append(cleared, name)
		}
	}
	r.probes, r.services = keep, services
	r.mu.Unlock()

	for _, p := range stop {
		p.cancel()
	}
	for _, p := range stop {
		<-p.done
	}
	// A probe whose settings changed starts afresh, but not beside its
	// old attempt if that one is stuck: its process (in uninterruptible
	// sleep on a hung mount) would get a sibling blocked on the same
	// mount at each reload. The new settings wait for it as the old ones
	// would have, failing meanwhile. The old loop has ended (done), so
	// its stuck is read safely.
	// The same for a probe removed by one reload and added back by a
	// later one while the attempt is still stuck.
	for id, ch := range r.stuckGone {
		select {
		case <-ch:
			delete(r.stuckGone, id) // it ended
			continue
		default:
		}
		if np := keep[id]; np != nil && slices.Contains(start, np) {
			np.stuck = ch
			delete(r.stuckGone, id)
		}
	}
	for _, p := range stop {
		if p.stuck == nil {
			continue
		}
		if np := keep[p.spec.ID()]; np != nil {
			np.stuck = p.stuck
		} else {
			if r.stuckGone == nil {
				r.stuckGone = map[string]chan struct{}{}
			}
			r.stuckGone[p.spec.ID()] = p.stuck
		}
	}
	slices.Sort(cleared)
	for _, name := range cleared {
		r.log.Info().Str("service", name).Msg(name + ": probes removed; the flag alone decides")
		r.opts.Clear(name)
	}
	for _, p := range start {
		ctx, cancel := context.WithCancel(r.ctx)
		p.cancel = cancel
		go r.loop(ctx, p)
	}
	r.mu.Lock()
	for _, name := range slices.Sorted(maps.Keys(r.services)) {
		r.publishLocked(r.services[name])
	}
	r.mu.Unlock()
	if len(start)+len(stop) > 0 {
		r.log.Info().Int("probes", len(keep)).Int("started", len(start)).Int("stopped", len(stop)).Msg("probe configuration applied")
	}
	return nil
}

// Close stops every probe and waits for them. It is idempotent.
func (r *Runner) Close() {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	r.mu.Lock()
	r.closed = true
	probes := r.probes
	r.probes = map[string]*running{}
	r.services = map[string]*service{}
	r.mu.Unlock()
	r.cancel()
	for _, p := range probes {
		<-p.done
	}
}

// NumProbes is how many probes run.
func (r *Runner) NumProbes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.probes)
}

func (p *running) reset() {
	p.ok = p.spec.Initial == "up"
	p.pending = true
	p.succ, p.fail = 0, 0
	p.msg = "pending: no result yet"
	p.agentReply, p.containers = agentReply{state: cache.Up}, nil
}

// keepFailing makes a probe that starts afresh count as failing, not
// pending: a pending probe adopts its first result at once (initial =
// "down"), which would put the service back after one success instead of
// rise.
func (p *running) keepFailing() {
	p.ok, p.pending = false, false
	p.msg = "no result yet: failing until it passes rise times"
}

// idlePoll is how often an idle probe looks for its VIP.
const idlePoll = time.Second

func (r *Runner) loop(ctx context.Context, p *running) {
	defer close(p.done)
	if r.opts.Ready != nil {
		select {
		case <-r.opts.Ready:
		case <-ctx.Done():
			return
		}
	}
	iv := p.spec.Interval.Duration
	first := min(iv, time.Second)
	t := time.NewTimer(rand.N(first) + time.Millisecond)
	defer t.Stop()
	// due is when the running attempt was due. The first attempt (and the
	// first after an idle spell) sets the probe's phase: the random delay
	// above must carry over to every later attempt, or probes started
	// together would all fire together from their second attempt on.
	var due time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if p.spec.OnlyIfVIP != "" {
			present := r.opts.HasVIP != nil && r.opts.HasVIP(p.spec.VIP)
			if !present {
				r.setIdle(p, true)
				t.Reset(min(iv, idlePoll))
				due = time.Time{}
				continue
			}
			r.setIdle(p, false)
		}
		if due.IsZero() {
			due = time.Now()
		}
		next := due.Add(iv)
		out, err := r.attempt(ctx, p)
		if ctx.Err() != nil {
			return
		}
		r.record(p, out, err)
		now := time.Now()
		if !next.After(now) {
			// Overran (slow target or a full semaphore): skip the missed
			// runs rather than firing them back to back.
			for !next.After(now) {
				next = next.Add(iv)
			}
		}
		due = next
		t.Reset(next.Sub(now))
	}
}

// stuckAfter is how long past its timeout an attempt may take before it
// counts as stuck. Every kind stops at its timeout (a script's process
// group is killed, then its output read for at most a second more), so an
// attempt still running by then is one whose process the kernel will not
// kill: a script in uninterruptible sleep on a hung disk or network mount.
const stuckAfter = 3 * time.Second

// stopWait is how long a stop (Close, or a reload that removes the probe)
// waits for an attempt under way.
const stopWait = 2 * time.Second

// attempt runs one check under the semaphore and the probe's timeout. An
// attempt that has not ended stuckAfter past its timeout fails at once
// (its last result must not stand for the service meanwhile), and until
// it ends no new one starts: each later attempt fails saying so, and a
// hung mount holds one process per probe. The stuck attempt's slot of the
// semaphore is given back once it fails.
func (r *Runner) attempt(ctx context.Context, p *running) (outcome, error) {
	timeout := p.spec.Timeout.Duration
	if p.stuck != nil {
		select {
		case <-p.stuck:
			p.stuck = nil
		default:
			return outcome{}, fmt.Errorf("the previous attempt is still running, more than %s past its timeout %s (a process the kernel does not kill: uninterruptible sleep on a hung disk or mount?)", stuckAfter, timeout)
		}
	}
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return outcome{}, ctx.Err()
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	start := time.Now()
	// The check's results are written by its goroutine and read here only
	// once it has ended (done closed).
	var out outcome
	var err error
	done := make(chan struct{})
	// The slot is given back when the attempt ends or once it is stuck,
	// whichever comes first: stuck attempts are bounded by the probes
	// (one each), and one that held its slot until its process ended
	// could, with others on the same hung mount, leave no slot to the
	// other probes, whose last results would then stand indefinitely.
	var freed atomic.Bool
	free := func() {
		if freed.CompareAndSwap(false, true) {
			<-r.sem
		}
	}
	go func() {
		defer close(done)
		defer free()
		defer cancel()
		out, err = p.chk.check(cctx)
	}()
	t := time.NewTimer(timeout + stuckAfter)
	defer t.Stop()
	select {
	case <-done:
	case <-ctx.Done():
		// Stopping. The cancel ends every check within a second (a
		// script's process group is killed), except one the kernel does
		// not kill, which must not hold the stop for its timeout.
		select {
		case <-done:
		case <-time.After(stopWait):
			free()
			p.stuck = done
			return outcome{}, ctx.Err()
		}
	case <-t.C:
		free()
		p.stuck = done
		stuck := fmt.Errorf("attempt still running %s past its timeout %s (a process the kernel does not kill: uninterruptible sleep on a hung disk or mount?)", stuckAfter, timeout)
		r.log.Warn().Str("service", p.spec.Service).Str("probe", p.spec.Name).Str("kind", p.spec.Kind).
			Msg(p.spec.ID() + ": " + stuck.Error() + "; no new attempt until it ends")
		return outcome{}, stuck
	}
	if out.state == cache.Missing {
		out.state = cache.Up
	}
	if r.opts.Observe != nil && ctx.Err() == nil {
		r.opts.Observe(p.spec.Service, err == nil, time.Since(start))
	}
	return out, err
}

func (r *Runner) setIdle(p *running, idle bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.idle == idle {
		return
	}
	p.idle = idle
	if idle {
		r.log.Info().Str("service", p.spec.Service).Str("probe", p.spec.Name).Str("vip", p.spec.OnlyIfVIP).
			Msg(p.spec.ID() + " idle: VIP " + p.spec.OnlyIfVIP + " is not on this host")
	} else {
		r.log.Info().Str("service", p.spec.Service).Str("probe", p.spec.Name).Str("vip", p.spec.OnlyIfVIP).
			Msg(p.spec.ID() + " active: VIP " + p.spec.OnlyIfVIP + " is on this host")
	}
	if !idle {
		// Back in service: afresh (pending), except that a probe that
		// was failing when its address went away stays failing until
		// it passes rise times, whatever initial says. While idle it
		// keeps its last result (it does not vote then).
		failing := !p.pending && !p.ok
		p.reset()
		if failing {
			p.keepFailing()
		}
	}
	p.since = r.opts.Now()
	if sv := r.services[p.spec.Service]; sv != nil && slices.Contains(sv.probes, p) {
		r.publishLocked(sv)
	}
}

// record applies one result to the probe's rise/fall counters; it logs a
// transition once and reports the service when its status changed.
func (r *Runner) record(p *running, out outcome, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sv := r.services[p.spec.Service]
	if sv == nil || !slices.Contains(sv.probes, p) {
		return // stopped by a reload meanwhile
	}
	wasOK, wasPending, wasState := p.ok, p.pending, p.state
	p.containers = out.Containers
	if err != nil {
		p.fail++
		p.succ = 0
		p.msg = clean(err.Error())
	} else {
		p.succ++
		p.fail = 0
		p.msg = clean(out.Msg)
		// What a passing script asks for (drain, maint, a weight) applies
		// at once: it is the script's word, like a flag's, not a health
		// verdict that rise and fall smooth.
		p.agentReply = out.agentReply
		p.reason = clean(p.reason)
	}
	switch {
	case p.pending && p.spec.Initial != "up":
		p.ok = err == nil // the first result decides at once
	case p.ok && p.fail >= p.spec.Fall:
		p.ok = false
	case !p.ok && p.succ >= p.spec.Rise:
		p.ok = true
	}
	p.pending = false
	if p.ok && p.state != wasState && p.ok == wasOK && !wasPending {
		r.log.Info().Str("service", p.spec.Service).Str("probe", p.spec.Name).Str("kind", p.spec.Kind).
			Str("state", p.state.String()).Str("result", p.msg).
			Msg(p.spec.ID() + " " + p.state.String() + ": " + p.msg)
		p.since = r.opts.Now()
	}
	if p.ok != wasOK || (wasPending && p.spec.Initial != "up") {
		now := r.opts.Now()
		if p.ok != wasOK {
			p.since = now
		}
		ev := r.log.Info()
		state := p.state.String()
		if !p.ok {
			ev = r.log.Warn()
			state = "down"
		}
		ev = ev.Str("service", p.spec.Service).Str("probe", p.spec.Name).Str("kind", p.spec.Kind).Str("state", state)
		if err != nil {
			ev = ev.Str("error", p.msg).Int("failures", p.fail)
		} else {
			ev = ev.Str("result", p.msg).Int("successes", p.succ)
		}
		if wasPending {
			ev = ev.Bool("first", true)
		}
		ev.Msg(p.spec.ID() + " " + state + ": " + p.msg)
	}
	r.publishLocked(sv)
}

// publishLocked recomputes a service's status and reports it if it changed.
func (r *Runner) publishLocked(sv *service) {
	st := cache.ProbeStatus{OK: true, Checks: make([]cache.CheckStatus, 0, len(sv.probes))}
	for _, p := range sv.probes {
		ok := p.ok // pending with initial = "down" has ok false (reset)
		c := cache.CheckStatus{
			Name: p.spec.Name, Kind: p.spec.Kind, OK: ok, Idle: p.idle, Msg: p.msg, Since: p.since,
			Reason: cache.Clip("probe "+p.spec.Name+": "+p.msg, cache.MaxReasonLen),
			State:  cache.Down, Containers: p.containers,
		}
		if ok {
			c.State, c.Weight, c.HasWeight = p.state, p.weight, p.hasWeight
			// What /status says when this check's drain or maint (or an
			// up script's "#reason") applies.
			why := p.reason
			if why == "" && (p.state == cache.Drain || p.state == cache.Maint) {
				why = p.state.String()
			}
			if why != "" {
				c.StateReason = cache.Clip("probe "+p.spec.Name+": "+why, cache.MaxReasonLen)
			}
		}
		if p.spec.OnlyIfVIP != "" {
			c.Gate, c.GateLoopback = p.spec.VIP, r.opts.LoopbackVIPsOnly
		}
		st.Checks = append(st.Checks, c)
		if !ok && !p.idle && st.OK {
			st.OK = false
			st.LastErr = c.Reason
		}
	}
	st.State = cache.Down
	if st.OK {
		st.State, st.Weight, st.HasWeight, st.Reason = cache.AgentVerdict(st.Checks, func(c cache.CheckStatus) bool { return c.Idle })
	}
	if sv.have && sv.last.Same(st) {
		return
	}
	// The probes' own transitions were logged (record, setIdle); the
	// service's combined verdict is not logged again.
	st.Since = sv.last.Since
	if !sv.have || sv.last.OK != st.OK || sv.last.State != st.State {
		st.Since = r.opts.Now()
	}
	sv.last, sv.have = st, true
	r.opts.Report(sv.name, st)
}

// clean makes a message safe for a header and an agent line: one line of
// printable UTF-8, at most cache.MaxReasonLen bytes.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "?")
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c == 0x7f {
			b[i] = ' '
		}
	}
	return cache.Clip(strings.TrimSpace(string(b)), cache.MaxReasonLen)
}
