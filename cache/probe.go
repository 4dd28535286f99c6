package cache

import (
	"iter"
	"net/netip"
	"slices"
	"time"
)

// CheckStatus is the last verdict of one active probe of a service.
type CheckStatus struct {
	Name  string    // probe name from the configuration ("http", "php-ping")
	Kind  string    // http, tcp, fastcgi, container, exec
	OK    bool      // passing after rise/fall; an idle probe keeps its last verdict
	Idle  bool      // not running: its only_if_vip is absent from this host (the prober's view)
	Msg   string    // last result: the error, or what a passing check said
	Since time.Time // when OK last changed (or the probe started)
	// Reason is what /status and the agent say when this check fails the
	// service ("probe php-ping: status 500"), at most MaxReasonLen bytes.
	Reason string
	// Gate is the check's only_if_vip (zero: none). The snapshot decides
	// from its own VIP set whether a gated check is idle, so the gate
	// moves together with the address: from the first snapshot on, and
	// in the same publication as a VIP failover.
	Gate netip.Addr
	// GateLoopback: only the address on a loopback interface opens the
	// gate (--vip-loopback-only).
	GateLoopback bool
	// State is what a passing probe asks for besides passing: Drain or
	// Maint from a script that speaks HAProxy's agent words (output =
	// "agent"); Up (or the zero value) otherwise.
	State State
	// Weight is the weight (percent) such a script asked for, when
	// HasWeight.
	Weight    int
	HasWeight bool
	// StateReason is what /status and the agent say when this check's
	// State (or an up script's "#reason") applies ("probe agent: deploy").
	StateReason string
	// Containers are the containers a container probe matched at its last
	// attempt (none for other kinds).
	Containers []Container
}

// Container is one container a container probe matched.
type Container struct {
	Name   string // without the leading "/"
	ID     string // 12 characters
	State  string // running, exited, created, ...
	Health string // healthy, unhealthy, starting; "" without a health check
	OK     bool   // counts as healthy
}

// ProbeStatus is the combined verdict of a service's active probes. It is a
// value: the Checks slice is never modified once it is in a [Snapshot].
type ProbeStatus struct {
	// OK is true when every probe that is not idle passes.
	OK bool
	// Since is when OK last changed.
	Since time.Time
	// LastErr is why the service fails ("probe php-ping: status 500"), and
	// the reason /status and the agent give; empty when OK.
	LastErr string
	// State, Weight and Reason are what the passing checks ask for
	// besides passing ([AgentVerdict]): Drain or Maint (Up or zero
	// otherwise), the smallest weight one named (when HasWeight), and the
	// reason that goes with them.
	State     State
	Weight    int
	HasWeight bool
	Reason    string
	// Checks lists the probes, in configuration order.
	Checks []CheckStatus
}

// Same reports whether two statuses say the same thing (ignoring Since).
func (p ProbeStatus) Same(o ProbeStatus) bool {
	if p.OK != o.OK || p.LastErr != o.LastErr || len(p.Checks) != len(o.Checks) ||
		p.State != o.State || p.HasWeight != o.HasWeight || p.Weight != o.Weight || p.Reason != o.Reason {
		return false
	}
	for i := range p.Checks {
		a, b := p.Checks[i], o.Checks[i]
		if a.Name != b.Name || a.Kind != b.Kind || a.OK != b.OK || a.Idle != b.Idle || a.Msg != b.Msg ||
			a.Reason != b.Reason || a.Gate != b.Gate || a.GateLoopback != b.GateLoopback ||
			a.State != b.State || a.HasWeight != b.HasWeight || a.Weight != b.Weight || a.StateReason != b.StateReason ||
			!slices.Equal(a.Containers, b.Containers) {
			return false
		}
	}
	return true
}

// AgentVerdict combines what the passing checks that are not idle ask for
// besides passing (scripts with output = "agent"): the strictest state
// (maint over drain over up) with its check's StateReason, or, while up,
// the first up check's StateReason; and the smallest weight named. It does
// not allocate.
func AgentVerdict(checks []CheckStatus, idle func(CheckStatus) bool) (st State, weight int, hasWeight bool, reason string) {
	st = Up
	for _, c := range checks {
		if !c.OK || idle(c) {
			continue
		}
		switch {
		case stateRank(c.State) > stateRank(st):
			st, reason = c.State, c.StateReason
		case st == Up && reason == "":
			reason = c.StateReason
		}
		if c.HasWeight && (!hasWeight || c.Weight < weight) {
			weight, hasWeight = c.Weight, true
		}
	}
	return st, weight, hasWeight, reason
}

// stateRank orders what a passing check may ask for: up < drain < maint.
func stateRank(s State) int {
	switch s {
	case Drain:
		return 1
	case Maint:
		return 2
	}
	return 0
}

// gated reports whether a check of p has an only_if_vip gate: only then
// does a snapshot see p otherwise than the prober reported it.
func gated(p ProbeStatus) bool {
	for _, c := range p.Checks {
		if c.Gate.IsValid() {
			return true
		}
	}
	return false
}

// Probe returns the probe status of a service as this snapshot sees it: a
// gated check is idle exactly when its VIP is absent from this snapshot, and
// OK and LastErr follow. ok is false when the service has no probes.
func (s *Snapshot) Probe(name string) (ProbeStatus, bool) {
	p, ok := s.probes[name]
	if !ok {
		return p, false
	}
	return s.resolve(p), true
}

// ProbeReported is the probe status of a service as the prober reported it,
// before this snapshot's VIPs decide the gated checks (see [Snapshot.Probe]).
func (s *Snapshot) ProbeReported(name string) (ProbeStatus, bool) {
	p, ok := s.probes[name]
	return p, ok
}

// CheckIdle reports whether c is idle in this snapshot.
func (s *Snapshot) CheckIdle(c CheckStatus) bool {
	if c.Gate.IsValid() {
		return !s.HasVIP(c.Gate, c.GateLoopback)
	}
	return c.Idle
}

// gatedVerdict combines the checks of p, which has a gated check, with idle
// saying which are idle: the first check that is not idle and fails
// decides. reason and since say why and since when it fails. It does not
// allocate.
func gatedVerdict(p ProbeStatus, idle func(CheckStatus) bool) (ok bool, reason string, since time.Time) {
	for _, c := range p.Checks {
		if !c.OK && !idle(c) {
			if p.OK { // the prober saw it passing: the gate moved here
				return false, c.Reason, c.Since
			}
			return false, c.Reason, p.Since
		}
	}
	return true, "", p.Since
}

// resolve is p with each check's idleness and the combined verdict as this
// snapshot sees them.
func (s *Snapshot) resolve(p ProbeStatus) ProbeStatus {
	if !gated(p) {
		return p
	}
	checks := make([]CheckStatus, len(p.Checks))
	copy(checks, p.Checks)
	for i := range checks {
		checks[i].Idle = s.CheckIdle(checks[i])
	}
	p.Checks = checks
	idle := func(c CheckStatus) bool { return c.Idle }
	ok, reason, since := gatedVerdict(p, idle)
	r := ProbeStatus{OK: ok, Since: since, LastErr: reason, Checks: checks, State: Down}
	if ok {
		r.State, r.Weight, r.HasWeight, r.Reason = AgentVerdict(checks, idle)
	}
	return r
}

// NumProbed is the number of services that have probes.
func (s *Snapshot) NumProbed() int { return len(s.probes) }

// Probes yields each service with probes and its status as [Snapshot.Probe]
// gives it, in no order.
func (s *Snapshot) Probes() iter.Seq2[string, ProbeStatus] {
	return func(yield func(string, ProbeStatus) bool) {
		for k, p := range s.probes {
			if !yield(k, s.resolve(p)) {
				return
			}
		}
	}
}

// Effective is the state a responder reports for the flag-file name at now:
// the flag's entry ([Entry.Effective]) combined with the service's probes.
// Both /status and the agent answer from it. The rule:
//
//   - no flag file: Missing, whatever the probes say;
//   - the flag says drain, maint or down: that state, whatever the probes say
//     (the operator's word wins);
//   - the flag says up and the probes pass (or the service has none, or
//     every probe is idle; a probe gated by only_if_vip is idle while its
//     VIP is absent from this snapshot): Up, with the flag's weight and
//     reason;
//   - the flag says up and a probe fails: Down, with the probe's last error
//     as the reason and Since the time the probes started failing;
//   - the flag says up and the probes pass, one asking for drain or maint
//     (a script with output = "agent"): that state, with its reason;
//   - a weight a probe asks for applies when the flag names none, and the
//     smaller of the two applies when it does.
//
// ok is false when there is no flag file. It does not allocate.
func (s *Snapshot) Effective(name string, now time.Time) (Entry, bool) {
	e, ok := s.Lookup(name)
	if !ok {
		return e, false
	}
	return s.effective(name, e, now), true
}

// effective is [Snapshot.Effective] for the flag-file name whose entry e
// the caller already looked up.
func (s *Snapshot) effective(name string, e Entry, now time.Time) Entry {
	e = e.Effective(now)
	if e.State != Up || len(s.probes) == 0 {
		return e
	}
	p, has := s.probes[name]
	if !has {
		return e
	}
	// The prober's own verdict, unless a gate makes this snapshot's VIPs
	// decide which checks are idle.
	g := gated(p)
	ok, reason, since := p.OK, p.LastErr, p.Since
	if g {
		ok, reason, since = gatedVerdict(p, s.CheckIdle)
	}
	if !ok {
		return Entry{State: Down, Weight: NoWeight, Reason: reason, Since: since}
	}
	// What the passing checks ask for; a State left Missing acts as Up.
	st, w, hasW, why := p.State, p.Weight, p.HasWeight, p.Reason
	if g {
		st, w, hasW, why = AgentVerdict(p.Checks, s.CheckIdle)
	}
	if hasW && (e.Weight == NoWeight || w < e.Weight) {
		e.Weight = w
	}
	if st == Drain || st == Maint {
		return Entry{State: st, Weight: e.Weight, Reason: why, Since: p.Since}
	}
	if e.Reason == "" {
		e.Reason = why
	}
	return e
}

// SetProbe records the probe status of a service; the Checks slice is owned
// by the snapshot afterwards. The first change copies the probe map.
func (b *Builder) SetProbe(name string, p ProbeStatus) {
	b.copyProbes()
	b.next.probes[name] = p
}

// DeleteProbe forgets a service's probes (it has none any more).
func (b *Builder) DeleteProbe(name string) {
	if _, ok := b.next.probes[name]; !ok {
		return
	}
	b.copyProbes()
	delete(b.next.probes, name)
}

func (b *Builder) copyProbes() {
	if b.probesCp {
		return
	}
	m := make(map[string]ProbeStatus, len(b.next.probes)+1)
	for k, v := range b.next.probes {
		m[k] = v
	}
	b.next.probes = m
	b.probesCp = true
}
