package cache

import (
	"iter"
	"slices"
	"time"
)

// CheckStatus is the last verdict of one active probe of a service.
type CheckStatus struct {
	Name  string    // probe name from the configuration ("http", "php-ping")
	Kind  string    // http, tcp, fastcgi, container, exec
	OK    bool      // passing after rise/fall; an idle probe keeps its last verdict
	Idle  bool      // not running: its only_if_vip is absent from this host
	Msg   string    // last result: the error, or what a passing check said
	Since time.Time // when OK (or State) last changed (or the probe started)
	// State is what a passing probe asks for besides passing: Drain or
	// Maint from a script that speaks HAProxy's agent words; Up (or the
	// zero value) otherwise.
	State State
	// Weight is the weight (percent) such a script asked for, when
	// HasWeight.
	Weight    int
	HasWeight bool
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
	// Since is when OK (or State) last changed.
	Since time.Time
	// LastErr is why the service fails ("probe php-ping: status 500"), and
	// the reason /status and the agent give; empty when OK.
	LastErr string
	// State, Weight and Reason are what passing probes ask for besides
	// passing (scripts with output = "agent"): State is Drain or Maint
	// (the stricter of what they said; Up or zero otherwise), Weight the
	// smallest weight one named (when HasWeight), Reason theirs.
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
			a.State != b.State || a.HasWeight != b.HasWeight || a.Weight != b.Weight || !slices.Equal(a.Containers, b.Containers) {
			return false
		}
	}
	return true
}

// Probe returns the probe status of a service; ok is false when the service
// has no probes. It does not allocate.
func (s *Snapshot) Probe(name string) (ProbeStatus, bool) {
	p, ok := s.probes[name]
	return p, ok
}

// NumProbed is the number of services that have probes.
func (s *Snapshot) NumProbed() int { return len(s.probes) }

// Probes yields each service with probes and its status, in no order.
func (s *Snapshot) Probes() iter.Seq2[string, ProbeStatus] {
	return func(yield func(string, ProbeStatus) bool) {
		for k, p := range s.probes {
			if !yield(k, p) {
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
//     every probe is idle): Up, with the flag's weight and reason;
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
	e = e.Effective(now)
	if e.State != Up || len(s.probes) == 0 {
		return e, true
	}
	p, has := s.probes[name]
	if !has {
		return e, true
	}
	if !p.OK {
		return Entry{State: Down, Weight: NoWeight, Reason: p.LastErr, Since: p.Since}, true
	}
	if p.HasWeight && (e.Weight == NoWeight || p.Weight < e.Weight) {
		e.Weight = p.Weight
	}
	if p.State == Drain || p.State == Maint {
		return Entry{State: p.State, Weight: e.Weight, Reason: p.Reason, Since: p.Since}, true
	}
	if e.Reason == "" {
		e.Reason = p.Reason
	}
	return e, true
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
