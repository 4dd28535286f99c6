package cache

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// bruteNext and bruteExpired are what NextExpiry and ExpiredIn must
// answer: a scan of every entry.
func bruteNext(s *Snapshot, now time.Time) time.Time {
	var next time.Time
	for _, e := range s.Services() {
		if !e.Expires.IsZero() && e.Expires.After(now) && (next.IsZero() || e.Expires.Before(next)) {
			next = e.Expires
		}
	}
	return next
}

func bruteExpired(s *Snapshot, from, to time.Time) map[string]bool {
	out := map[string]bool{}
	for n, e := range s.Services() {
		if !e.Expires.IsZero() && e.Expires.After(from) && !e.Expires.After(to) {
			out[n] = true
		}
	}
	return out
}

// The expiry index answers as a scan of every entry would, through sets,
// rewrites (same and other expiry), deletes and clears, and a published
// snapshot's answers never change when the next one is built from it.
func TestExpiryIndexMatchesScan(t *testing.T) {
	base := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	s := Empty()
	type frozen struct {
		s    *Snapshot
		next time.Time
		exp  map[string]bool
	}
	var old []frozen
	check := func(s *Snapshot, now time.Time) (time.Time, map[string]bool) {
		t.Helper()
		want := bruteNext(s, now)
		if got := s.NextExpiry(now); !got.Equal(want) {
			t.Fatalf("NextExpiry(%v) = %v, a scan says %v", now, got, want)
		}
		from, to := now.Add(-10*time.Minute), now.Add(10*time.Minute)
		wantExp := bruteExpired(s, from, to)
		got := map[string]bool{}
		for n, e := range s.ExpiredIn(from, to) {
			if got[n] {
				t.Fatalf("ExpiredIn yields %s twice", n)
			}
			if e.Expires.IsZero() {
				t.Fatalf("ExpiredIn yields %s with no expiry", n)
			}
			got[n] = true
		}
		if len(got) != len(wantExp) {
			t.Fatalf("ExpiredIn: %d entries, a scan says %d", len(got), len(wantExp))
		}
		for n := range wantExp {
			if !got[n] {
				t.Fatalf("ExpiredIn misses %s", n)
			}
		}
		return want, wantExp
	}
	now := base.Add(30 * time.Minute)
	for round := range 200 {
		b := NewBuilder(s)
		for range 1 + rng.IntN(40) {
			name := "svc" + strconv.Itoa(rng.IntN(300)) + ".80"
			switch r := rng.IntN(10); {
			case r < 2:
				b.Delete(name)
			case r < 4:
				b.Set(name, Entry{State: Drain, Weight: NoWeight})
			default:
				// Few distinct instants, so equal expiries are common.
				at := base.Add(time.Duration(rng.IntN(12)) * 5 * time.Minute)
				b.Set(name, Entry{State: Drain, Weight: NoWeight, Expires: at})
			}
		}
		if round%50 == 49 {
			b.ClearServices()
			b.Set("after-clear.80", Entry{State: Maint, Weight: NoWeight, Expires: base.Add(time.Minute)})
		}
		s = b.Snapshot(now)
		next, exp := check(s, now)
		old = append(old, frozen{s, next, exp})
	}
	for i, f := range old {
		next, exp := check(f.s, now)
		if !next.Equal(f.next) || len(exp) != len(f.exp) {
			t.Fatalf("snapshot %d changed after later builds", i)
		}
	}
}
