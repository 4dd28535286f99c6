package probe

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/probecheck"
)

// scripted is a checker whose outcome the test sets; it records when each
// attempt started and ended. It stands in for the kinds' checkers (tested
// against real peers elsewhere) so that the schedule runs on synctest's
// fake clock.
type scripted struct {
	fail, hang atomic.Bool
	mu         sync.Mutex
	starts     []time.Time
	ends       []time.Time
}

func (s *scripted) check(ctx context.Context) (outcome, error) {
	s.mu.Lock()
	s.starts = append(s.starts, time.Now())
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.ends = append(s.ends, time.Now())
		s.mu.Unlock()
	}()
	if s.hang.Load() {
		<-ctx.Done()
		// What the kinds say when the timeout (2s here) cuts an attempt.
		return outcome{}, fmt.Errorf("timeout after %s", 2*time.Second)
	}
	if s.fail.Load() {
		return outcome{}, errors.New("scripted failure")
	}
	return outcome{Outcome: probecheck.Outcome{Msg: "fine"}}, nil
}

func (s *scripted) attempts() ([]time.Time, []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.starts...), append([]time.Time(nil), s.ends...)
}

// TestRunnerClock runs one probe's schedule on a fake clock: the first
// attempt within min(interval, 1s), then one every interval exactly; the
// first result adopted at once; down after exactly fall failures, up after
// exactly rise successes; an attempt cut at its timeout.
func TestRunnerClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		chk := &scripted{}
		c := newCollector()
		r := newTestRunner(t, c, Options{checkerFor: func(*Spec) (checker, error) { return chk, nil }})
		start := time.Now()
		if err := r.Apply(mustParse(t, `
[[probe]]
service = "web.80"
kind = "tcp"
address = "127.0.0.1:1"
interval = "10s"
timeout = "2s"
rise = 3
fall = 2
`)); err != nil {
			t.Fatal(err)
		}
		if st, ok := c.get("web.80"); !ok || st.OK || !strings.Contains(st.LastErr, "pending") {
			t.Fatalf("before the first attempt: %+v, %v; want pending, failing", st, ok)
		}
		time.Sleep(time.Second + time.Millisecond)
		synctest.Wait()
		starts, _ := chk.attempts()
		if len(starts) != 1 || starts[0].Sub(start) > time.Second+time.Millisecond {
			t.Fatalf("first attempts %v, want one within 1s of %v", starts, start)
		}
		first := starts[0]
		// step waits until just after attempt k (0 is the first) and
		// returns the status then.
		step := func(k int) cache.ProbeStatus {
			t.Helper()
			time.Sleep(time.Until(first.Add(time.Duration(k)*10*time.Second + 3*time.Second)))
			synctest.Wait()
			if starts, _ := chk.attempts(); len(starts) != k+1 {
				t.Fatalf("after attempt %d: %d attempts", k, len(starts))
			}
			st, _ := c.get("web.80")
			return st
		}
		if st := step(0); !st.OK {
			t.Fatalf("first result (pass) not adopted at once: %+v", st)
		}
		chk.fail.Store(true)
		if st := step(1); !st.OK {
			t.Fatalf("one failure of fall = 2: %+v, want still passing", st)
		}
		if st := step(2); st.OK || st.LastErr != "probe tcp: scripted failure" {
			t.Fatalf("two failures of fall = 2: %+v, want failing", st)
		}
		chk.fail.Store(false)
		for k := 3; k <= 4; k++ {
			if st := step(k); st.OK {
				t.Fatalf("%d successes of rise = 3: %+v, want still failing", k-2, st)
			}
		}
		if st := step(5); !st.OK {
			t.Fatalf("three successes of rise = 3: %+v, want passing", st)
		}
		// A hanging target: the attempt ends at its 2 s timeout, and with
		// fall = 2 the second one turns the probe down.
		chk.hang.Store(true)
		step(6)
		if st := step(7); st.OK || st.LastErr != "probe tcp: timeout after 2s" {
			t.Fatalf("two timeouts: %+v", st)
		}
		starts, ends := chk.attempts()
		for i := 1; i < len(starts); i++ {
			if d := starts[i].Sub(starts[i-1]); d != 10*time.Second {
				t.Errorf("attempt %d came %v after the one before, want the interval, 10s", i, d)
			}
		}
		for i := 6; i <= 7; i++ {
			if d := ends[i].Sub(starts[i]); d != 2*time.Second {
				t.Errorf("hanging attempt %d took %v, want the timeout, 2s", i, d)
			}
		}
		logs := c.log()
		if n := strings.Count(logs, "web.80/tcp down"); n != 2 {
			t.Errorf("down logged %d times, want 2:\n%s", n, logs)
		}
		for _, want := range []string{`"failures":2`, `"successes":3`, `"first":true`} {
			if !strings.Contains(logs, want) {
				t.Errorf("logs lack %s:\n%s", want, logs)
			}
		}
	})
}

// TestRunnerClockOnlyIfVIP: on a fake clock, an only_if_vip probe is idle
// (and does not run) while its VIP is absent, becomes active within
// idlePoll of the VIP appearing, starts afresh (pending) and runs.
func TestRunnerClockOnlyIfVIP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		chk := &scripted{}
		chk.fail.Store(true)
		var present atomic.Bool
		vip := netip.MustParseAddr("192.0.2.10")
		c := newCollector()
		r := newTestRunner(t, c, Options{
			HasVIP:     func(a netip.Addr) bool { return a == vip && present.Load() },
			checkerFor: func(*Spec) (checker, error) { return chk, nil }})
		if err := r.Apply(mustParse(t, `
[[probe]]
service = "web.80"
kind = "tcp"
address = "127.0.0.1:1"
interval = "5s"
timeout = "1s"
only_if_vip = "192.0.2.10"
`)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		st, _ := c.get("web.80")
		if starts, _ := chk.attempts(); len(starts) != 0 || !st.OK || len(st.Checks) != 1 || !st.Checks[0].Idle {
			t.Fatalf("VIP absent for a minute: %d attempts, %+v; want none, idle, passing", len(starts), st)
		}
		present.Store(true)
		appeared := time.Now()
		time.Sleep(idlePoll)
		synctest.Wait()
		st, _ = c.get("web.80")
		starts, _ := chk.attempts()
		if len(starts) != 1 || starts[0].Sub(appeared) > idlePoll || st.OK || st.Checks[0].Idle || st.LastErr != "probe tcp: scripted failure" {
			t.Fatalf("%v after the VIP appeared: attempts %v, %+v; want one attempt, active and failing", idlePoll, starts, st)
		}
		present.Store(false)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if st, _ := c.get("web.80"); !st.OK || !st.Checks[0].Idle {
			t.Fatalf("VIP gone: %+v, want idle again", st)
		}
	})
}

// TestRunnerClockPhases: probes started together keep the random phase of
// their first attempt: each later attempt comes a whole number of
// intervals after the first, so they never all fire in the same instant.
func TestRunnerClockPhases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var chks []*scripted
		r := NewRunner(Options{Logger: zerolog.Nop(), checkerFor: func(*Spec) (checker, error) {
			mu.Lock()
			defer mu.Unlock()
			c := &scripted{}
			chks = append(chks, c)
			return c, nil
		}})
		defer r.Close()
		var b strings.Builder
		const n = 200
		for i := range n {
			fmt.Fprintf(&b, "[[probe]]\nservice = \"s%d\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\ninterval = \"10s\"\n", i)
		}
		if err := r.Apply(mustParse(t, b.String())); err != nil {
			t.Fatal(err)
		}
		time.Sleep(25 * time.Second)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		seen := map[time.Time]bool{}
		for i, c := range chks {
			starts, _ := c.attempts()
			if len(starts) != 3 {
				t.Fatalf("probe %d: %d attempts in 25s, want 3", i, len(starts))
			}
			for k := 1; k < 3; k++ {
				if d := starts[k].Sub(starts[0]); d != time.Duration(k)*10*time.Second {
					t.Errorf("probe %d: attempt %d came %v after the first, want %v", i, k, d, time.Duration(k)*10*time.Second)
				}
			}
			seen[starts[1]] = true
		}
		if len(seen) < n/2 {
			t.Errorf("second attempts of %d probes fell on %d instants, want them spread", n, len(seen))
		}
	})
}

// TestRunnerClockKeptFailingNeedsRise: a probe that inherits a failing
// verdict (a reload that renames the failing probe of a service, or its
// only_if_vip address coming back) needs rise successes before the
// service counts as passing again, with the default initial = "down" too.
// Its first success used to be adopted at once, as a fresh probe's is.
func TestRunnerClockKeptFailingNeedsRise(t *testing.T) {
	const conf = `
[[probe]]
service = "web.80"
name = %q
kind = "tcp"
address = "127.0.0.1:1"
interval = "10s"
timeout = "1s"
rise = 3
%s`
	// successesUntilOK lets the schedule run in steps of a second and
	// returns how many attempts passed until the service passed.
	successesUntilOK := func(t *testing.T, c *collector, chk *scripted) int {
		t.Helper()
		before, _ := chk.attempts()
		for range 60 {
			time.Sleep(time.Second)
			synctest.Wait()
			if st, _ := c.get("web.80"); st.OK {
				starts, _ := chk.attempts()
				return len(starts) - len(before)
			}
		}
		t.Fatal("still failing after a minute of successes")
		return 0
	}
	t.Run("reload", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			chk := &scripted{}
			chk.fail.Store(true)
			c := newCollector()
			r := newTestRunner(t, c, Options{checkerFor: func(*Spec) (checker, error) { return chk, nil }})
			if err := r.Apply(mustParse(t, fmt.Sprintf(conf, "a", ""))); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Second)
			synctest.Wait()
			if st, _ := c.get("web.80"); st.OK {
				t.Fatalf("failing target: %+v, want failing", st)
			}
			chk.fail.Store(false)
			if err := r.Apply(mustParse(t, fmt.Sprintf(conf, "b", ""))); err != nil {
				t.Fatal(err)
			}
			if n := successesUntilOK(t, c, chk); n != 3 {
				t.Fatalf("renamed probe of a failing service passed after %d successes, want rise = 3", n)
			}
		})
	})
	t.Run("only_if_vip", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			chk := &scripted{}
			chk.fail.Store(true)
			var present atomic.Bool
			present.Store(true)
			vip := netip.MustParseAddr("192.0.2.10")
			c := newCollector()
			r := newTestRunner(t, c, Options{
				HasVIP:     func(a netip.Addr) bool { return a == vip && present.Load() },
				checkerFor: func(*Spec) (checker, error) { return chk, nil }})
			if err := r.Apply(mustParse(t, fmt.Sprintf(conf, "a", `only_if_vip = "192.0.2.10"`))); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Second)
			synctest.Wait()
			if st, _ := c.get("web.80"); st.OK {
				t.Fatalf("failing target: %+v, want failing", st)
			}
			present.Store(false)
			time.Sleep(15 * time.Second)
			synctest.Wait()
			if st, _ := c.get("web.80"); !st.OK || !st.Checks[0].Idle {
				t.Fatalf("VIP gone: %+v, want idle", st)
			}
			chk.fail.Store(false)
			present.Store(true)
			if n := successesUntilOK(t, c, chk); n != 3 {
				t.Fatalf("probe back with its VIP passed after %d successes, want rise = 3", n)
			}
		})
	})
}

// unkillable is a checker whose attempt, once stuck is set, ignores its
// context until the test releases it: a stand-in for a script in
// uninterruptible sleep (a hung disk or mount), which no signal ends, so
// that the schedule around it runs on synctest's fake clock. The real
// thing, a script blocked on a FUSE mount whose server never answers, is
// TestExecProbeUninterruptible.
type unkillable struct {
	stuck   atomic.Bool
	release chan struct{}
	calls   atomic.Int32
	last    atomic.Int64 // when the last attempt started, UnixNano
}

func (u *unkillable) check(ctx context.Context) (outcome, error) {
	u.calls.Add(1)
	u.last.Store(time.Now().UnixNano())
	if u.stuck.Load() {
		<-u.release
		return outcome{}, fmt.Errorf("timeout after %s", 2*time.Second)
	}
	return outcome{Outcome: probecheck.Outcome{Msg: "fine"}}, nil
}

// TestRunnerStuckAttempt: an attempt that does not end at its timeout (its
// process cannot be killed) must not leave the probe's last result standing:
// stuckAfter past the timeout it fails, each later attempt fails at once
// while it still runs (none is started beside it), and once it ends the
// schedule goes on.
func TestRunnerStuckAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		chk := &unkillable{release: make(chan struct{})}
		var once sync.Once
		release := func() { once.Do(func() { close(chk.release) }) }
		defer release() // a failed test must not leave the bubble blocked
		c := newCollector()
		r := newTestRunner(t, c, Options{checkerFor: func(*Spec) (checker, error) { return chk, nil }})
		if err := r.Apply(mustParse(t, `
[[probe]]
service = "web.80"
kind = "exec"
command = ["/bin/true"]
interval = "10s"
timeout = "2s"
rise = 1
fall = 2
`)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second + time.Millisecond)
		synctest.Wait()
		first := time.Unix(0, chk.last.Load())
		if st, _ := c.get("web.80"); !st.OK || chk.calls.Load() != 1 {
			t.Fatalf("first attempt: %+v, %d calls; want passing, 1 call", st, chk.calls.Load())
		}
		chk.stuck.Store(true)
		at := func(d time.Duration) cache.ProbeStatus {
			t.Helper()
			time.Sleep(time.Until(first.Add(d)))
			synctest.Wait()
			st, _ := c.get("web.80")
			return st
		}
		msg := func(st cache.ProbeStatus) string {
			if len(st.Checks) != 1 {
				return ""
			}
			return st.Checks[0].Msg
		}
		// Attempt 2 starts at 10s and sticks; at its timeout plus
		// stuckAfter it fails (one failure of fall 2).
		if st := at(10*time.Second + 2*time.Second + stuckAfter - 10*time.Millisecond); !st.OK || msg(st) != "fine" {
			t.Fatalf("before stuckAfter: %+v, want still passing, 'fine'", st)
		}
		if st := at(10*time.Second + 2*time.Second + stuckAfter + 10*time.Millisecond); !st.OK || !strings.Contains(msg(st), "attempt still running") || chk.calls.Load() != 2 {
			t.Fatalf("stuck once: %+v, %d calls; want passing (1 failure of 2) with 'attempt still running', 2 calls", st, chk.calls.Load())
		}
		// Attempt 3 at 20s fails at once, without a new call: failing.
		st := at(20*time.Second + 10*time.Millisecond)
		if st.OK || !strings.Contains(st.LastErr, "previous attempt is still running") || chk.calls.Load() != 2 {
			t.Fatalf("still stuck: %+v, %d calls; want failing, 'previous attempt is still running', 2 calls", st, chk.calls.Load())
		}
		// It ends; the next attempt (30s) runs and passes.
		chk.stuck.Store(false)
		release()
		if st := at(30*time.Second + 10*time.Millisecond); !st.OK || chk.calls.Load() != 3 {
			t.Fatalf("after it ended: %+v, %d calls; want passing, 3 calls", st, chk.calls.Load())
		}
		r.Close()
	})
}

// TestRunnerStuckAttemptFreesItsSlot: a stuck attempt gives its
// --probe-concurrency slot back once it counts as stuck (the attempts it
// blocks are bounded by the probes, one each). It held the slot until its
// process ended: with as many probes stuck as slots (scripts on one hung
// NFS mount), every other probe waited for a slot forever, its last result
// standing for its service however the target fared meanwhile.
func TestRunnerStuckAttemptFreesItsSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stuck := &unkillable{release: make(chan struct{})}
		stuck.stuck.Store(true)
		defer close(stuck.release) // a failed test must not leave the bubble blocked
		web := &scripted{}
		c := newCollector()
		r := newTestRunner(t, c, Options{Concurrency: 1, checkerFor: func(s *Spec) (checker, error) {
			if s.Service == "nfs.80" {
				return stuck, nil
			}
			return web, nil
		}})
		if err := r.Apply(mustParse(t, `
[[probe]]
service = "nfs.80"
kind = "exec"
command = ["/bin/true"]
interval = "10s"
timeout = "2s"

[[probe]]
service = "web.80"
kind = "exec"
command = ["/bin/true"]
interval = "10s"
timeout = "2s"
fall = 1
`)); err != nil {
			t.Fatal(err)
		}
		// Both start within 1 s; whichever goes second waits for the
		// slot, at most 2 s + stuckAfter.
		time.Sleep(time.Second + 2*time.Second + stuckAfter + time.Second)
		synctest.Wait()
		before, _ := web.attempts()
		if len(before) == 0 {
			t.Fatal("the other probe never ran")
		}
		web.fail.Store(true)
		time.Sleep(30 * time.Second)
		synctest.Wait()
		after, _ := web.attempts()
		if st, _ := c.get("web.80"); st.OK || len(after) < len(before)+2 {
			t.Fatalf("30 s with the only slot's holder stuck: %d attempts of the other probe (%d before), its status %+v; want it run and failing", len(after), len(before), st)
		}
		r.Close()
	})
}
