//go:build linux

package evloop

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestWheel: every scheduled connection comes due exactly once, never
// early, at most one tick late, including deadlines beyond one turn of the
// wheel, moves and removals.
func TestWheel(t *testing.T) {
	const tick = int64(10 * time.Millisecond)
	var w wheel[struct{}]
	w.init(time.Duration(tick))
	start := w.cur * tick
	rng := rand.New(rand.NewPCG(1, 2))
	conns := make([]*Conn[struct{}], 5000)
	want := map[*Conn[struct{}]]int64{}
	for i := range conns {
		c := &Conn[struct{}]{slot: -1}
		conns[i] = c
		at := start + rng.Int64N(3*wheelSlots*tick)
		w.set(c, at)
		want[c] = at
	}
	// Move some, remove some.
	for _, c := range conns[:500] {
		at := start + rng.Int64N(2*wheelSlots*tick)
		w.set(c, at)
		want[c] = at
	}
	for _, c := range conns[500:700] {
		w.remove(c)
		delete(want, c)
	}
	if w.count != len(want) {
		t.Fatalf("count %d, want %d", w.count, len(want))
	}
	got := map[*Conn[struct{}]]int64{}
	for now := start; now <= start+4*wheelSlots*tick; now += tick / 3 {
		w.expire(now, func(c *Conn[struct{}]) {
			if _, dup := got[c]; dup {
				t.Fatalf("due twice")
			}
			got[c] = now
		})
	}
	if len(got) != len(want) || w.count != 0 {
		t.Fatalf("%d came due, want %d (left %d)", len(got), len(want), w.count)
	}
	var late []int64
	for c, at := range want {
		if got[c] < at {
			t.Fatalf("due at %d, before its time %d", got[c], at)
		}
		late = append(late, got[c]-at)
	}
	if m := slices.Max(late); m > tick+tick/3 {
		t.Fatalf("up to %s late", time.Duration(m))
	}
}

// TestWheelUntilNext: the wait before the next deadline is never longer
// than the time to the first occupied slot (no deadline missed), and is
// capped at untilNextScan ticks (the scan is bounded; a connection due
// later, or in a later turn of the wheel, gets a wake-up on the way).
func TestWheelUntilNext(t *testing.T) {
	const tick = int64(10 * time.Millisecond)
	var w wheel[struct{}]
	w.init(time.Duration(tick))
	start := w.cur * tick
	now := start + tick/2 // between two ticks
	c := &Conn[struct{}]{slot: -1}
	for _, tc := range []struct {
		at, want int64
	}{
		{start + 1, tick - tick/2},                      // due in the next slot
		{start + 5*tick, 5*tick - tick/2},               // a few slots on
		{start + 200*tick, untilNextScan*tick - tick/2}, // past the scan: capped
		{start + (wheelSlots+3)*tick, 3*tick - tick/2},  // a later turn, same slot as 3 ticks on
	} {
		w.set(c, tc.at)
		if got := w.untilNext(now); got != tc.want {
			t.Errorf("deadline %s after start: untilNext %s, want %s", time.Duration(tc.at-start), time.Duration(got), time.Duration(tc.want))
		}
	}
	w.set(c, start+tick)
	if got := w.untilNext(start + 3*tick); got != 0 {
		t.Errorf("a slot already due: untilNext %s, want 0", time.Duration(got))
	}
}
