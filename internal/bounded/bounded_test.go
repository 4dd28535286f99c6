package bounded

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestCall: a call that ends in time is waited for and its result read; one
// that does not is left running after the bound, Busy until it ends, and
// the Call is ready again afterwards.
func TestCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var c Call
		got := 0
		if !c.Do(time.Second, func() { got = 1 }) || got != 1 || c.Busy() {
			t.Fatalf("a quick call: got %d, busy %v", got, c.Busy())
		}
		release := make(chan struct{})
		start := time.Now()
		if c.Do(time.Second, func() { <-release }) {
			t.Fatal("a blocked call reported as ended")
		}
		if waited := time.Since(start); waited != time.Second {
			t.Errorf("waited %s for the blocked call, want the bound, 1s", waited)
		}
		if !c.Busy() {
			t.Fatal("not busy while the call left running still runs")
		}
		close(release)
		synctest.Wait()
		if c.Busy() {
			t.Fatal("still busy after the call ended")
		}
		if !c.Do(time.Second, func() { got = 2 }) || got != 2 {
			t.Fatalf("after the blocked call: got %d", got)
		}
	})
}

// TestCallUntil: a stop ends the wait at once, before the bound, and the
// call is left running as when the bound passes.
func TestCallUntil(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var c Call
		release, stop := make(chan struct{}), make(chan struct{})
		time.AfterFunc(100*time.Millisecond, func() { close(stop) })
		start := time.Now()
		if c.DoUntil(stop, time.Minute, func() { <-release }) {
			t.Fatal("a blocked call reported as ended")
		}
		if waited := time.Since(start); waited != 100*time.Millisecond {
			t.Errorf("waited %s, want until the stop, 100ms", waited)
		}
		if !c.Busy() {
			t.Fatal("not busy while the call left running still runs")
		}
		close(release)
		synctest.Wait()
		if c.Busy() {
			t.Fatal("still busy after the call ended")
		}
	})
}
