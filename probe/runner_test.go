package probe

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/testenv"
)

// collector records what a Runner reports, like the watcher would.
type collector struct {
	mu      sync.Mutex
	last    map[string]cache.ProbeStatus
	cleared map[string]bool
	reports int
	logs    strings.Builder
}

func newCollector() *collector {
	return &collector{last: map[string]cache.ProbeStatus{}, cleared: map[string]bool{}}
}

func (c *collector) report(name string, st cache.ProbeStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last[name] = st
	delete(c.cleared, name)
	c.reports++
}

func (c *collector) clear(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.last, name)
	c.cleared[name] = true
}

func (c *collector) get(name string) (cache.ProbeStatus, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.last[name]
	return st, ok
}

func (c *collector) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logs.Write(p)
}

func (c *collector) log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logs.String()
}

// waitFor polls until cond holds for the service's status.
func (c *collector) waitFor(t *testing.T, name, what string, cond func(cache.ProbeStatus) bool) cache.ProbeStatus {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, ok := c.get(name)
		if ok && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out waiting for %s; last status %+v (have %v)", name, what, st, ok)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newTestRunner(t *testing.T, c *collector, opts Options) *Runner {
	t.Helper()
	opts.Logger = zerolog.New(c)
	opts.Report = c.report
	opts.Clear = c.clear
	r := NewRunner(opts)
	t.Cleanup(r.Close)
	return r
}

func mustParse(t *testing.T, s string) *Config {
	t.Helper()
	c, err := Parse([]byte(s), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func isOK(st cache.ProbeStatus) bool  { return st.OK }
func notOK(st cache.ProbeStatus) bool { return !st.OK }

// flipServer answers 200 or 503 depending on healthy, and counts requests
// and, once decided, each kind of answer (so that a request already in
// flight when the test flips healthy is counted as what it got).
type flipServer struct {
	healthy      atomic.Bool
	hits         atomic.Int64
	goods, fails atomic.Int64
}

func (f *flipServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	if f.healthy.Load() {
		f.goods.Add(1)
		w.Write([]byte("ok"))
		return
	}
	f.fails.Add(1)
	http.Error(w, "sick", http.StatusServiceUnavailable)
}

// TestRunnerRiseFall: rise and fall against a real HTTP server (the exact
// counting, on a fake clock, is TestRunnerClock's). The timeout leaves a
// loopback request on a busy machine room: a timeout would be a failure
// the server never saw (at 300 ms, one on a core shared with other busy
// work took the probe down after one 503).
func TestRunnerRiseFall(t *testing.T) {
	t.Parallel()
	fs := &flipServer{}
	fs.healthy.Store(true)
	addr := testenv.ServeHTTP(t, fs)
	c := newCollector()
	r := newTestRunner(t, c, Options{})
	cfg := mustParse(t, fmt.Sprintf(`
[[probe]]
service = "web.80"
kind = "http"
address = %q
interval = "1s"
timeout = "1s"
rise = 3
fall = 2
`, addr))
	if err := r.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	// Pending is reported at once and counts as failing (initial = down).
	st, ok := c.get("web.80")
	if !ok || st.OK || !strings.Contains(st.LastErr, "pending") {
		t.Fatalf("before the first result: %+v, %v", st, ok)
	}
	// The first result decides at once.
	c.waitFor(t, "web.80", "up", isOK)
	f0 := fs.fails.Load()
	fs.healthy.Store(false)
	st = c.waitFor(t, "web.80", "down", notOK)
	if n := fs.fails.Load() - f0; n < 2 {
		t.Errorf("went down after %d failed attempts, want fall = 2", n)
	}
	if st.LastErr != "probe http: HTTP 503, want 200-399" || len(st.Checks) != 1 || st.Checks[0].OK {
		t.Errorf("down status: %+v", st)
	}
	g0 := fs.goods.Load()
	fs.healthy.Store(true)
	c.waitFor(t, "web.80", "up again", isOK)
	if n := fs.goods.Load() - g0; n < 3 {
		t.Errorf("came back after %d good attempts, want rise = 3", n)
	}
	logs := c.log()
	for _, want := range []string{`"message":"web.80/http up: HTTP 200"`, `"message":"web.80/http down: HTTP 503, want 200-399"`, `"failures":2`, `"successes":3`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	if n := strings.Count(logs, "web.80/http down"); n != 1 {
		t.Errorf("down logged %d times, want once:\n%s", n, logs)
	}
}

func TestRunnerInitialUp(t *testing.T) {
	t.Parallel()
	c := newCollector()
	r := newTestRunner(t, c, Options{})
	if err := r.Apply(mustParse(t, fmt.Sprintf(`
[[probe]]
service = "web.80"
kind = "tcp"
address = %q
interval = "100ms"
timeout = "100ms"
fall = 2
initial = "up"
`, testenv.ClosedAddr(t)))); err != nil {
		t.Fatal(err)
	}
	st, _ := c.get("web.80")
	if !st.OK {
		t.Fatalf("initial = up: %+v", st)
	}
	st = c.waitFor(t, "web.80", "down", notOK)
	if !strings.Contains(st.LastErr, "connection refused") {
		t.Errorf("LastErr = %q", st.LastErr)
	}
}

// TestRunnerReloadKeepsFailing: renaming (or changing) the failing probe of
// a service with initial = "up" does not put the service back in rotation:
// the new probe starts failing and must pass rise times. It used to start
// as passing, so the service answered 200 until fall new failures.
func TestRunnerReloadKeepsFailing(t *testing.T) {
	t.Parallel()
	c := newCollector()
	r := newTestRunner(t, c, Options{})
	// fall = 3 with an interval of an hour: a probe that starts passing
	// stays passing through this test whatever its attempts say.
	conf := func(name string, fall int) *Config {
		return mustParse(t, fmt.Sprintf(`
[[probe]]
service = "web.80"
name = %q
kind = "tcp"
address = %q
interval = "1h"
timeout = "1s"
fall = %d
initial = "up"
`, name, testenv.ClosedAddr(t), fall))
	}
	if err := r.Apply(conf("a", 1)); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "web.80", "down", notOK)
	if err := r.Apply(conf("b", 3)); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.get("web.80"); st.OK {
		t.Fatalf("right after the reload that renamed the failing probe: %+v, want still failing", st)
	}
	// A new service still starts as initial says.
	if err := r.Apply(mustParse(t, fmt.Sprintf(`
[[probe]]
service = "api.80"
kind = "tcp"
address = %q
interval = "1h"
fall = 3
initial = "up"
`, testenv.ClosedAddr(t)))); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.get("api.80"); !st.OK {
		t.Errorf("a new service's probe with initial = up: %+v, want passing until its first failures", st)
	}
}

// TestRunnerOnlyIfVIPKeepsFailing: with initial = "up", a probe that was
// failing when its address went away does not come back passing with the
// address: it stays failing until it passes rise times. It used to start
// afresh as passing, so the service answered 200 until fall new failures.
func TestRunnerOnlyIfVIPKeepsFailing(t *testing.T) {
	t.Parallel()
	var present atomic.Bool
	present.Store(true)
	c := gatedProbe(t, &present, "fall = 2\ninitial = \"up\"\n")
	c.waitFor(t, "web.80", "failing", notOK)
	present.Store(false)
	c.waitFor(t, "web.80", "idle", func(st cache.ProbeStatus) bool { return st.Checks[0].Idle })
	present.Store(true)
	st := c.waitFor(t, "web.80", "active again", func(st cache.ProbeStatus) bool { return !st.Checks[0].Idle })
	if st.OK {
		t.Fatalf("back with its address: %+v, want still failing", st)
	}
}

// hangServer answers nothing until released; it tracks requests in flight.
type hangServer struct {
	inflight, peak atomic.Int64
	release        chan struct{}
}

func (h *hangServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := h.inflight.Add(1)
	defer h.inflight.Add(-1)
	for {
		p := h.peak.Load()
		if n <= p || h.peak.CompareAndSwap(p, n) {
			break
		}
	}
	select {
	case <-h.release:
	case <-r.Context().Done():
	}
}

func hangConfig(n int, addr string) string {
	var b strings.Builder
	b.WriteString("[defaults]\ninterval = \"10s\"\ntimeout = \"10s\"\nrise = 1\nfall = 1\n")
	for i := range n {
		fmt.Fprintf(&b, "[[probe]]\nservice = \"hang%d\"\nkind = \"http\"\naddress = %q\n", i, addr)
	}
	return b.String()
}

func waitInflight(t *testing.T, h *hangServer, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.inflight.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("in flight = %d, want %d", h.inflight.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRunnerHangingTargets: hanging targets do not stop other probes from
// running (while fewer than Concurrency hang), and Close returns although
// targets still hang.
func TestRunnerHangingTargets(t *testing.T) {
	t.Parallel()
	h := &hangServer{release: make(chan struct{})}
	defer close(h.release)
	slow := testenv.ServeHTTP(t, h)
	fast := &flipServer{}
	fast.healthy.Store(true)
	fastAddr := testenv.ServeHTTP(t, fast)
	// The fast probe's timeout is 500 ms, not the shortest interval's
	// 100 ms: on one busy core under -race a loopback GET took longer
	// than 100 ms time after time, and the probe, down on its first
	// timeout, never rose again.
	cfg := hangConfig(3, slow) + fmt.Sprintf("[[probe]]\nservice = \"fast\"\nkind = \"http\"\naddress = %q\ninterval = \"500ms\"\ntimeout = \"500ms\"\n", fastAddr)
	c := newCollector()
	r := newTestRunner(t, c, Options{Concurrency: 4})
	if err := r.Apply(mustParse(t, cfg)); err != nil {
		t.Fatal(err)
	}
	waitInflight(t, h, 3)
	h0 := fast.hits.Load()
	deadline := time.Now().Add(10 * time.Second)
	for fast.hits.Load() < h0+3 {
		if time.Now().After(deadline) {
			t.Fatalf("fast probe starved: %d hits", fast.hits.Load()-h0)
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.waitFor(t, "fast", "up", isOK)
	if st, _ := c.get("hang0"); st.OK || !strings.Contains(st.LastErr, "pending") {
		t.Errorf("hanging probe: %+v", st)
	}
	r.Close()
}

// TestRunnerConcurrencyBound: never more than Concurrency attempts at once.
func TestRunnerConcurrencyBound(t *testing.T) {
	t.Parallel()
	h := &hangServer{release: make(chan struct{})}
	slow := testenv.ServeHTTP(t, h)
	c := newCollector()
	r := newTestRunner(t, c, Options{Concurrency: 4})
	if err := r.Apply(mustParse(t, hangConfig(12, slow))); err != nil {
		t.Fatal(err)
	}
	waitInflight(t, h, 4)
	// Give the other eight every chance to exceed the bound.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if p := h.peak.Load(); p > 4 {
			t.Fatalf("peak concurrency %d > 4", p)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Released, the waiting ones get their turn.
	close(h.release)
	for i := range 12 {
		c.waitFor(t, fmt.Sprintf("hang%d", i), "a result", isOK)
	}
	if p := h.peak.Load(); p > 4 {
		t.Errorf("peak concurrency %d > 4", p)
	}
}

// gatedProbe runs one tcp probe of web.80, on a port nothing listens on,
// gated on 192.0.2.10, which is on this host while present is true; more
// holds further keys of the probe (TOML lines).
func gatedProbe(t *testing.T, present *atomic.Bool, more string) *collector {
	t.Helper()
	vip := netip.MustParseAddr("192.0.2.10")
	c := newCollector()
	r := newTestRunner(t, c, Options{HasVIP: func(a netip.Addr) bool { return a == vip && present.Load() }})
	if err := r.Apply(mustParse(t, fmt.Sprintf(`
[[probe]]
service = "web.80"
kind = "tcp"
address = %q
interval = "100ms"
timeout = "100ms"
only_if_vip = "192.0.2.10"
%s`, testenv.ClosedAddr(t), more))); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRunnerOnlyIfVIP(t *testing.T) {
	t.Parallel()
	var present atomic.Bool
	c := gatedProbe(t, &present, "")
	// Standby: the probe is idle and does not vote, though its target is down.
	st := c.waitFor(t, "web.80", "idle", func(st cache.ProbeStatus) bool { return len(st.Checks) == 1 && st.Checks[0].Idle })
	if !st.OK {
		t.Errorf("idle probe votes: %+v", st)
	}
	present.Store(true)
	// Active: first pending (no result yet), then failing on its target.
	st = c.waitFor(t, "web.80", "active and failing", func(st cache.ProbeStatus) bool {
		return !st.OK && strings.Contains(st.LastErr, "connection refused")
	})
	if st.Checks[0].Idle {
		t.Errorf("active: %+v", st)
	}
	present.Store(false)
	c.waitFor(t, "web.80", "idle again", isOK)
	if logs := c.log(); !strings.Contains(logs, "idle: VIP 192.0.2.10 is not on this host") || !strings.Contains(logs, "active: VIP 192.0.2.10 is on this host") {
		t.Errorf("logs:\n%s", logs)
	}
}

// TestRunnerReload: an unchanged probe keeps its state and goroutine, a
// removed service is cleared, and Close leaves no goroutine behind.
func TestRunnerReload(t *testing.T) {
	before := runtime.NumGoroutine()
	fs := &flipServer{}
	fs.healthy.Store(true)
	addr := testenv.ServeHTTP(t, fs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	web := fmt.Sprintf("[[probe]]\nservice = \"web.80\"\nkind = \"http\"\naddress = %q\ninterval = \"100ms\"\ntimeout = \"100ms\"\n", addr)
	db := fmt.Sprintf("[[probe]]\nservice = \"db.1\"\nkind = \"tcp\"\naddress = %q\ninterval = \"100ms\"\ntimeout = \"100ms\"\n", ln.Addr())
	c := newCollector()
	r := NewRunner(Options{Logger: zerolog.New(c), Report: c.report, Clear: c.clear})
	if err := r.Apply(mustParse(t, web+db)); err != nil {
		t.Fatal(err)
	}
	up := c.waitFor(t, "web.80", "up", isOK)
	c.waitFor(t, "db.1", "up", isOK)
	// Reload: web unchanged (now at another line), db removed.
	if err := r.Apply(mustParse(t, "\n\n"+web)); err != nil {
		t.Fatal(err)
	}
	if r.NumProbes() != 1 {
		t.Errorf("probes after reload = %d", r.NumProbes())
	}
	c.mu.Lock()
	cleared := c.cleared["db.1"]
	c.mu.Unlock()
	if !cleared {
		t.Error("db.1 not cleared")
	}
	if st, _ := c.get("web.80"); !st.OK || !st.Since.Equal(up.Since) {
		t.Errorf("web.80 lost its state on reload: %+v (was %+v)", st, up)
	}
	// A changed probe starts afresh.
	if err := r.Apply(mustParse(t, strings.Replace(web, "100ms\"\n", "200ms\"\n", 1))); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "web.80", "up after change", isOK)
	r.Close()
	r.Close() // idempotent
	if err := r.Apply(nil); err == nil {
		t.Error("Apply after Close: no error")
	}
	ln.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 { // the test's HTTP server may linger
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunnerManyProbesSpread(t *testing.T) {
	t.Parallel()
	// 1,000 probes against one server: all come up, and their first
	// attempts are spread (not all in the same millisecond).
	var mu sync.Mutex
	stamps := map[int64]int{}
	srv := testenv.ServeHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		stamps[time.Now().UnixMilli()]++
		mu.Unlock()
	}))
	var b strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&b, "[[probe]]\nservice = \"s%d\"\nkind = \"http\"\naddress = %q\ninterval = \"30s\"\n", i, srv)
	}
	c := newCollector()
	r := newTestRunner(t, c, Options{})
	if err := r.Apply(mustParse(t, b.String())); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		c.waitFor(t, fmt.Sprintf("s%d", i), "up", isOK)
	}
	mu.Lock()
	defer mu.Unlock()
	busiest := 0
	for _, n := range stamps {
		busiest = max(busiest, n)
	}
	if len(stamps) < 100 || busiest > 200 {
		t.Errorf("first attempts landed in %d distinct milliseconds, busiest had %d", len(stamps), busiest)
	}
}
