package cache

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestValidName(t *testing.T) {
	good := []string{"squid.80", "status.html", "a", "web-1_x@y+z:8080", strings.Repeat("a", MaxNameLen)}
	bad := []string{"", ".", "..", ".hidden", "a/b", "../etc", "a\x00b", "a b", "x.tmp", "x~", "é", strings.Repeat("a", MaxNameLen+1), "a\nb"}
	for _, n := range good {
		if !ValidName(n) {
			t.Errorf("ValidName(%q) = false", n)
		}
	}
	for _, n := range bad {
		if ValidName(n) {
			t.Errorf("ValidName(%q) = true", n)
		}
	}
}

func FuzzValidName(f *testing.F) {
	f.Add("squid.80")
	f.Add("../x")
	f.Fuzz(func(t *testing.T, n string) {
		if ValidName(n) && (strings.ContainsAny(n, "/\x00") || n == "." || n == ".." || strings.HasPrefix(n, ".") || len(n) > MaxNameLen) {
			t.Fatalf("ValidName(%q) = true", n)
		}
	})
}

func TestStoreNeverNil(t *testing.T) {
	st := NewStore()
	s := st.Load()
	if s == nil || s.Len() != 0 || s.Generation() != 0 || s.NumVIPs() != 0 {
		t.Fatalf("fresh store: %+v", s)
	}
	if _, ok := s.Lookup("x"); ok {
		t.Fatal("lookup in empty snapshot")
	}
}

// TestBuilderCopyOnWrite checks a published snapshot never changes when the
// next one is built from it.
func TestBuilderCopyOnWrite(t *testing.T) {
	b := NewBuilder(Empty())
	for i := 0; i < 1000; i++ {
		b.Set("svc"+strconv.Itoa(i), Entry{State: Up, Weight: NoWeight})
	}
	b.Set("bad/name", Entry{State: Up})
	s1 := b.Snapshot(time.Now())
	if s1.Len() != 1000 || s1.Generation() != 1 {
		t.Fatalf("s1 len %d gen %d", s1.Len(), s1.Generation())
	}
	b2 := NewBuilder(s1)
	b2.Delete("svc1")
	b2.Delete("nonexistent")
	b2.Set("svc2", Entry{State: Drain, Weight: 10})
	b2.Set("new", Entry{State: Up})
	s2 := b2.Snapshot(time.Now())
	if s2.Len() != 1000 || s2.Generation() != 2 {
		t.Fatalf("s2 len %d gen %d", s2.Len(), s2.Generation())
	}
	if _, ok := s1.Lookup("svc1"); !ok {
		t.Fatal("delete leaked into the old snapshot")
	}
	if e, _ := s1.Lookup("svc2"); e.State != Up {
		t.Fatal("set leaked into the old snapshot")
	}
	if _, ok := s1.Lookup("new"); ok {
		t.Fatal("new entry leaked into the old snapshot")
	}
	if _, ok := s2.Lookup("svc1"); ok {
		t.Fatal("delete lost")
	}
	if e, _ := s2.Lookup("svc2"); e.State != Drain || e.Weight != 10 {
		t.Fatalf("svc2 = %+v", e)
	}
	n := 0
	for range s2.Services() {
		n++
	}
	if n != s2.Len() || len(s2.Names()) != n {
		t.Fatalf("Services yields %d, Len %d", n, s2.Len())
	}
	b3 := NewBuilder(s2)
	b3.ClearServices()
	if s3 := b3.Snapshot(time.Now()); s3.Len() != 0 || s2.Len() != 1000 {
		t.Fatalf("clear: s3 %d s2 %d", s3.Len(), s2.Len())
	}
}

func TestHasVIP(t *testing.T) {
	b := NewBuilder(Empty())
	b.SetVIPs(map[netip.Addr]VIPFlags{
		netip.MustParseAddr("192.0.2.1"):   OnLoopback,
		netip.MustParseAddr("2001:db8::1"): OnOther,
		netip.MustParseAddr("192.0.2.2"):   OnLoopback | OnOther,
	})
	s := b.Snapshot(time.Now())
	for _, tc := range []struct {
		a        string
		loopback bool
		want     bool
	}{
		{"192.0.2.1", false, true},
		{"192.0.2.1", true, true},
		{"::ffff:192.0.2.1", false, true},
		{"2001:db8::1", false, true},
		{"2001:db8::1", true, false},
		{"2001:db8:0:0::1", false, true},
		{"192.0.2.2", true, true},
		{"192.0.2.3", false, false},
	} {
		if got := s.HasVIP(netip.MustParseAddr(tc.a), tc.loopback); got != tc.want {
			t.Errorf("HasVIP(%s, %v) = %v", tc.a, tc.loopback, got)
		}
	}
}

func TestSummaryAndExpiry(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	b := NewBuilder(Empty())
	b.Set("a", Entry{State: Up, Weight: NoWeight})
	b.Set("b", Entry{State: Drain, Weight: NoWeight, Expires: now.Add(time.Minute)})
	b.Set("c", Entry{State: Maint, Weight: NoWeight, Expires: now.Add(-time.Minute)})
	b.SetDirProblem("")
	s := b.Snapshot(now)
	if got := s.Summary(now); got != "2/3 services up, 0 addresses" {
		t.Fatalf("Summary = %q", got)
	}
	if got := s.NextExpiry(now); !got.Equal(now.Add(time.Minute)) {
		t.Fatalf("NextExpiry = %v", got)
	}
	if e, _ := s.Lookup("b"); e.Effective(now.Add(time.Minute)).State != Up {
		t.Fatal("expired drain not up")
	}
}
