package cache

import (
	"slices"
	"strconv"
	"testing"
	"time"
)

func TestNamePort(t *testing.T) {
	for name, want := range map[string]uint16{
		"squid.80": 80, "web.443": 443, "a.b.65535": 65535, "status.html": 0, "squid": 0,
		"x.0": 0, "x.65536": 0, "x.080": 0, "x.": 0, "x.-1": 0,
	} {
		if got := NamePort(name); got != want {
			t.Errorf("NamePort(%q) = %d, want %d", name, got, want)
		}
	}
}

func TestSnapshotConns(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	b := NewBuilder(Empty())
	b.Set("squid.80", Entry{State: Up, Weight: NoWeight})
	b.Set("web.8080", Entry{State: Up, Weight: NoWeight, ConnPort: 443})
	b.Set("api.9000", Entry{State: Up, Weight: NoWeight})
	b.Set("status.html", Entry{State: Up, Weight: NoWeight})
	b.Set("old.81", Entry{State: Drain, Weight: NoWeight, Expires: now.Add(-time.Minute)})
	s := b.Snapshot(now)
	cfg := map[string]uint16{"api.9000": 9443, "web.8080": 1}

	ports, draining := s.ConnPorts(cfg, now)
	if !slices.Equal(ports, []uint16{80, 81, 443, 9443}) || draining {
		t.Fatalf("ConnPorts = %v, %v; want [80 81 443 9443] false (old.81's drain expired)", ports, draining)
	}
	if _, ok := s.Conns("squid.80"); ok {
		t.Error("counts before the sampler ran")
	}

	b = NewBuilder(s)
	b.Set("db.5432", Entry{State: Drain, Weight: NoWeight})
	b.SetConns(ConnCounts{Live: true, Ports: map[uint16]int{80: 3, 443: 7, 9443: 2, 81: 0, 5432: 1}, Config: cfg})
	s = b.Snapshot(now)
	for name, want := range map[string]int{"squid.80": 3, "web.8080": 7, "api.9000": 2, "old.81": 0, "db.5432": 1} {
		if n, ok := s.Conns(name); !ok || n != want {
			t.Errorf("Conns(%s) = %d, %v; want %d", name, n, ok, want)
		}
	}
	if _, ok := s.Conns("status.html"); ok {
		t.Error("status.html has no port, yet has a count")
	}
	if _, draining := s.ConnPorts(cfg, now); !draining {
		t.Error("db.5432 drains, ConnPorts says nothing drains")
	}

	// An agent script draining an up flag is a drain too.
	b = NewBuilder(Empty())
	b.Set("app.8080", Entry{State: Up, Weight: NoWeight})
	b.SetProbe("app.8080", ProbeStatus{OK: true, State: Drain, Reason: "probe agent: deploy",
		Checks: []CheckStatus{{Name: "agent", Kind: "exec", OK: true, State: Drain}}})
	ps := b.Snapshot(now)
	if eff, _ := ps.Effective("app.8080", now); eff.State != Drain {
		t.Fatalf("setup: the agent script does not drain (%v)", eff.State)
	}
	if _, draining := ps.ConnPorts(nil, now); !draining {
		t.Error("a drain by an agent script does not count as a drain")
	}
	// So is an agent script draining a flag whose own drain expired (the
	// flag is up again from its until=): whatever Effective says.
	b = NewBuilder(ps)
	b.Set("app.8080", Entry{State: Drain, Weight: NoWeight, Expires: now.Add(-time.Minute)})
	ps = b.Snapshot(now)
	if eff, _ := ps.Effective("app.8080", now); eff.State != Drain {
		t.Fatalf("setup: the agent script does not drain the expired drain (%v)", eff.State)
	}
	if _, draining := ps.ConnPorts(nil, now); !draining {
		t.Error("a drain by an agent script under an expired flag drain does not count as a drain")
	}

	b = NewBuilder(s)
	b.SetConns(ConnCounts{Config: cfg})
	s = b.Snapshot(now)
	if _, ok := s.Conns("squid.80"); ok {
		t.Error("a count while the sampler is stopped")
	}
	if !(ConnCounts{Live: true, Ports: map[uint16]int{1: 1}}).Same(ConnCounts{Live: true, Ports: map[uint16]int{1: 1}}) ||
		(ConnCounts{Live: true, Ports: map[uint16]int{1: 1}}).Same(ConnCounts{Live: true, Ports: map[uint16]int{1: 2}}) {
		t.Error("Same")
	}
}

func TestStoreOnPublish(t *testing.T) {
	st := NewStore()
	var seen []uint64
	st.SetOnPublish(func(s *Snapshot) {
		if st.Load() != s {
			t.Error("hook called before the snapshot is current")
		}
		seen = append(seen, s.Generation())
	})
	s := Empty()
	for range 3 {
		s = NewBuilder(s).Snapshot(time.Now())
		st.Publish(s)
	}
	if !slices.Equal(seen, []uint64{1, 2, 3}) {
		t.Errorf("hook saw %v", seen)
	}
}

// BenchmarkConnPorts is what the idle sampler does once a second: find the
// ports to count and whether anything drains, over 10,000 flags.
func BenchmarkConnPorts(b *testing.B) {
	bl := NewBuilder(Empty())
	for i := range 10000 {
		bl.Set("svc"+strconv.Itoa(i)+"."+strconv.Itoa(1+i%60000), Entry{State: Up, Weight: NoWeight})
	}
	s := bl.Snapshot(time.Now())
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		s.ConnPorts(nil, now)
	}
}
