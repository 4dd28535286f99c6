package cache

import (
	"net/netip"
	"testing"
	"time"
)

func TestEffectiveCombinesFlagAndProbes(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	failing := ProbeStatus{OK: false, Since: now.Add(-time.Minute), LastErr: "probe http: HTTP 500, want 200-399",
		Checks: []CheckStatus{{Name: "http", Kind: "http", Msg: "HTTP 500, want 200-399"}}}
	passing := ProbeStatus{OK: true, Since: now.Add(-time.Hour), Checks: []CheckStatus{{Name: "http", Kind: "http", OK: true, Msg: "HTTP 200"}}}
	flag := func(st State) *Entry { return &Entry{State: st, Weight: 50, Reason: "flag reason"} }
	cases := []struct {
		name   string
		flag   *Entry
		probe  *ProbeStatus
		want   State
		reason string
	}{
		{"no flag, no probe", nil, nil, Missing, ""},
		{"no flag, probe passing", nil, &passing, Missing, ""},
		{"no flag, probe failing", nil, &failing, Missing, ""},
		{"up, no probe", flag(Up), nil, Up, "flag reason"},
		{"up, probe passing", flag(Up), &passing, Up, "flag reason"},
		{"up, probe failing", flag(Up), &failing, Down, failing.LastErr},
		{"drain, probe failing", flag(Drain), &failing, Drain, "flag reason"},
		{"maint, probe passing", flag(Maint), &passing, Maint, "flag reason"},
		{"down, probe passing", flag(Down), &passing, Down, "flag reason"},
		{"expired drain, probe failing", &Entry{State: Drain, Weight: NoWeight, Expires: now.Add(-time.Second)}, &failing, Down, failing.LastErr},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBuilder(Empty())
			if tc.flag != nil {
				b.Set("web.80", *tc.flag)
			}
			if tc.probe != nil {
				b.SetProbe("web.80", *tc.probe)
			}
			b.Set("other.80", Entry{State: Up, Weight: NoWeight})
			s := b.Snapshot(now)
			e, ok := s.Effective("web.80", now)
			if ok != (tc.flag != nil) || e.State != tc.want || e.Reason != tc.reason {
				t.Errorf("Effective = %+v, %v; want %s %q", e, ok, tc.want, tc.reason)
			}
			if tc.want == Down && tc.flag.State == Up || tc.name == "expired drain, probe failing" {
				if !e.Since.Equal(failing.Since) || e.Weight != NoWeight {
					t.Errorf("probe-down entry %+v: want Since %v and no weight", e, failing.Since)
				}
			}
			if o, _ := s.Effective("other.80", now); o.State != Up {
				t.Errorf("unprobed service: %+v", o)
			}
		})
	}
}

func TestBuilderProbesCopyOnWrite(t *testing.T) {
	now := time.Now()
	b := NewBuilder(Empty())
	b.SetProbe("a", ProbeStatus{OK: true})
	s1 := b.Snapshot(now)
	b2 := NewBuilder(s1)
	b2.SetProbe("a", ProbeStatus{OK: false, LastErr: "x"})
	b2.SetProbe("b", ProbeStatus{OK: true})
	s2 := b2.Snapshot(now)
	if p, _ := s1.Probe("a"); !p.OK || s1.NumProbed() != 1 {
		t.Errorf("published snapshot modified: %+v, %d", p, s1.NumProbed())
	}
	if p, _ := s2.Probe("a"); p.OK || s2.NumProbed() != 2 {
		t.Errorf("next snapshot: %+v, %d", p, s2.NumProbed())
	}
	b3 := NewBuilder(s2)
	b3.DeleteProbe("a")
	b3.DeleteProbe("zzz")
	s3 := b3.Snapshot(now)
	if _, ok := s3.Probe("a"); ok || s3.NumProbed() != 1 || s2.NumProbed() != 2 {
		t.Errorf("delete: %d %d", s3.NumProbed(), s2.NumProbed())
	}
	n := 0
	for range s2.Probes() {
		n++
	}
	if n != 2 {
		t.Errorf("Probes yielded %d", n)
	}
}

func TestProbeStatusSame(t *testing.T) {
	a := ProbeStatus{OK: false, LastErr: "e", Checks: []CheckStatus{{Name: "x", Msg: "m"}}}
	b := a
	b.Since = time.Now()
	b.Checks = []CheckStatus{{Name: "x", Msg: "m", Since: time.Now()}}
	if !a.Same(b) {
		t.Error("Since should not matter")
	}
	b.Checks = []CheckStatus{{Name: "x", Msg: "other"}}
	if a.Same(b) {
		t.Error("a different message is a change")
	}
}

// TestGatedCheckFollowsSnapshotVIPs: a check gated by only_if_vip is idle
// exactly when its VIP is absent from the snapshot, whatever the prober last
// saw, so the gate moves in the same publication as the address.
func TestGatedCheckFollowsSnapshotVIPs(t *testing.T) {
	now := time.Now()
	vip := netip.MustParseAddr("192.0.2.10")
	pending := ProbeStatus{OK: false, Since: now, LastErr: "probe tcp: pending: no result yet", Checks: []CheckStatus{{
		Name: "tcp", Kind: "tcp", OK: false, Idle: true, Msg: "pending: no result yet", Since: now,
		Reason: "probe tcp: pending: no result yet", Gate: vip,
	}}}
	build := func(vips map[netip.Addr]VIPFlags) *Snapshot {
		b := NewBuilder(Empty())
		b.Set("web.80", Entry{State: Up, Weight: NoWeight})
		b.SetProbe("web.80", pending)
		b.SetVIPs(vips)
		return b.Snapshot(now)
	}
	standby := build(map[netip.Addr]VIPFlags{})
	if e, _ := standby.Effective("web.80", now); e.State != Up {
		t.Fatalf("gate closed: %v %q, want up (the probe is idle)", e.State, e.Reason)
	}
	if p, _ := standby.Probe("web.80"); !p.OK || !p.Checks[0].Idle {
		t.Fatalf("gate closed: Probe = %+v", p)
	}
	active := build(map[netip.Addr]VIPFlags{vip: OnOther})
	if e, _ := active.Effective("web.80", now); e.State != Down || e.Reason != "probe tcp: pending: no result yet" {
		t.Fatalf("gate open: %v %q, want down with the probe's reason", e.State, e.Reason)
	}
	if p, _ := active.Probe("web.80"); p.OK || p.Checks[0].Idle || p.LastErr == "" {
		t.Fatalf("gate open: Probe = %+v", p)
	}
	// --vip-loopback-only: the VIP on eth0 does not open the gate.
	pending.Checks[0].GateLoopback = true
	if e, _ := build(map[netip.Addr]VIPFlags{vip: OnOther}).Effective("web.80", now); e.State != Up {
		t.Fatalf("loopback-only gate opened by a non-loopback VIP: %v", e.State)
	}
	if e, _ := build(map[netip.Addr]VIPFlags{vip: OnLoopback}).Effective("web.80", now); e.State != Down {
		t.Fatalf("loopback-only gate not opened by a loopback VIP: %v", e.State)
	}
}

// TestEffectiveAgentProbe: passing probes that speak agent words (an exec
// probe with output = "agent") can drain, put in maintenance and lower the
// weight of an up flag, never raise it nor override the operator's drain.
func TestEffectiveAgentProbe(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	since := now.Add(-time.Minute)
	cases := []struct {
		name   string
		flag   Entry
		probe  ProbeStatus
		want   State
		weight int
		reason string
	}{
		{"probe drains", Entry{State: Up, Weight: NoWeight}, ProbeStatus{OK: true, State: Drain, Reason: "probe agent: deploy", Since: since}, Drain, NoWeight, "probe agent: deploy"},
		{"probe maint", Entry{State: Up, Weight: 80, Reason: "mine"}, ProbeStatus{OK: true, State: Maint, Reason: "probe agent: maint", Since: since}, Maint, 80, "probe agent: maint"},
		{"probe weight, flag none", Entry{State: Up, Weight: NoWeight}, ProbeStatus{OK: true, State: Up, Weight: 50, HasWeight: true}, Up, 50, ""},
		{"smaller weight wins", Entry{State: Up, Weight: 30}, ProbeStatus{OK: true, Weight: 50, HasWeight: true}, Up, 30, ""},
		{"probe weight 0", Entry{State: Up, Weight: 30}, ProbeStatus{OK: true, Weight: 0, HasWeight: true}, Up, 0, ""},
		{"probe reason when the flag has none", Entry{State: Up, Weight: NoWeight}, ProbeStatus{OK: true, State: Up, Reason: "probe agent: slow"}, Up, NoWeight, "probe agent: slow"},
		{"flag reason first", Entry{State: Up, Weight: NoWeight, Reason: "flag"}, ProbeStatus{OK: true, State: Up, Reason: "probe agent: slow"}, Up, NoWeight, "flag"},
		{"zero State is up", Entry{State: Up, Weight: NoWeight}, ProbeStatus{OK: true}, Up, NoWeight, ""},
		{"operator's drain wins", Entry{State: Drain, Weight: NoWeight, Reason: "op"}, ProbeStatus{OK: true, State: Maint, Reason: "probe agent: maint"}, Drain, NoWeight, "op"},
	}
	for _, tc := range cases {
		b := NewBuilder(Empty())
		b.Set("web.80", tc.flag)
		b.SetProbe("web.80", tc.probe)
		e, _ := b.Snapshot(now).Effective("web.80", now)
		if e.State != tc.want || e.Weight != tc.weight || e.Reason != tc.reason {
			t.Errorf("%s: %+v; want %s weight %d reason %q", tc.name, e, tc.want, tc.weight, tc.reason)
		}
		if (tc.want == Drain || tc.want == Maint) && tc.flag.State == Up && !e.Since.Equal(since) {
			t.Errorf("%s: Since %v, want the probe's %v", tc.name, e.Since, since)
		}
	}
}

// TestAgentVerdictGated: a gated check that asks for drain drains the
// service only while this snapshot holds its VIP.
func TestAgentVerdictGated(t *testing.T) {
	now := time.Now()
	vip := netip.MustParseAddr("192.0.2.10")
	p := ProbeStatus{OK: true, Since: now, State: Drain, Reason: "probe agent: deploy", Checks: []CheckStatus{
		{Name: "agent", Kind: "exec", OK: true, Gate: vip, State: Drain, StateReason: "probe agent: deploy", Weight: 50, HasWeight: true},
		{Name: "http", Kind: "http", OK: true},
	}}
	for _, tc := range []struct {
		vips   map[netip.Addr]VIPFlags
		want   State
		weight int
	}{{nil, Up, NoWeight}, {map[netip.Addr]VIPFlags{vip: OnOther}, Drain, 50}} {
		b := NewBuilder(Empty())
		b.Set("web.80", Entry{State: Up, Weight: NoWeight})
		b.SetProbe("web.80", p)
		b.SetVIPs(tc.vips)
		s := b.Snapshot(now)
		e, _ := s.Effective("web.80", now)
		if e.State != tc.want || e.Weight != tc.weight {
			t.Errorf("VIPs %v: %+v, want %s weight %d", tc.vips, e, tc.want, tc.weight)
		}
		if r, _ := s.Probe("web.80"); r.State != tc.want {
			t.Errorf("VIPs %v: Probe().State %s, want %s", tc.vips, r.State, tc.want)
		}
	}
}
