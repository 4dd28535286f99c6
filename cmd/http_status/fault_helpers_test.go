package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/httpd"
	"github.com/http-status/http_status/watcher"
)

// Helpers for the fault and abuse suite (fault_*_test.go).

// loadGen polls a URL from several goroutines until stopped, counting
// answers and failures (transport errors or a code accept refuses).
type loadGen struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	n, fails atomic.Int64
	mu       sync.Mutex
	first    string // first failure
	client   *http.Client
}

// startLoad starts workers polling base+path; accept says which codes are
// fine at this point of the test.
func startLoad(base, path string, workers int, accept func(code int) bool) *loadGen {
	tr := &http.Transport{MaxIdleConnsPerHost: workers, DisableCompression: true}
	l := &loadGen{stop: make(chan struct{}), client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	for i := 0; i < workers; i++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				res, err := l.client.Get(base + path)
				l.n.Add(1)
				if err != nil {
					l.fail(err.Error())
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if !accept(res.StatusCode) {
					l.fail(fmt.Sprintf("GET %s: %d", path, res.StatusCode))
				}
			}
		}()
	}
	return l
}

func (l *loadGen) fail(msg string) {
	l.fails.Add(1)
	l.mu.Lock()
	if l.first == "" {
		l.first = msg
	}
	l.mu.Unlock()
}

// waitMore waits until the workers have made k more requests.
func (l *loadGen) waitMore(t *testing.T, k int64) {
	t.Helper()
	target := l.n.Load() + k
	deadline := time.Now().Add(10 * time.Second)
	for l.n.Load() < target {
		if time.Now().After(deadline) {
			t.Fatalf("load stalled at %d requests", l.n.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// finish stops the workers and fails the test if any request failed or
// none was made.
func (l *loadGen) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	l.client.CloseIdleConnections()
	n, fails := l.n.Load(), l.fails.Load()
	t.Logf("load: %d requests, %d failed", n, fails)
	if n == 0 {
		t.Error("load generator made no request")
	}
	if fails > 0 {
		t.Errorf("%d of %d requests failed; first: %s", fails, n, l.first)
	}
}

// statusJSON fetches and decodes /status.json.
func statusJSON(t *testing.T, base string) httpd.StatusJSON {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Get(base + "/status.json")
	if err != nil {
		t.Fatalf("GET /status.json: %v", err)
	}
	defer res.Body.Close()
	var v httpd.StatusJSON
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil || res.StatusCode != 200 {
		t.Fatalf("GET /status.json: %d %v", res.StatusCode, err)
	}
	return v
}

// stateOf is name -> effective state.
func stateOf(v httpd.StatusJSON) map[string]string {
	m := map[string]string{}
	for _, s := range v.Services {
		m[s.Name] = s.Effective
	}
	return m
}

func fmtStates(m map[string]string) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	if len(parts) > 20 {
		return fmt.Sprintf("%d services: %s ...", len(parts), strings.Join(parts[:20], " "))
	}
	return strings.Join(parts, " ")
}

func sameStates(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// expectExact polls /status.json until every service and state is exactly
// want (name -> effective state) and the directory is ok.
func expectExact(t *testing.T, base string, want map[string]string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		v := statusJSON(t, base)
		got := stateOf(v)
		if v.DirOK && sameStates(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("state not exact: dir_ok=%v\n got %s\nwant %s", v.DirOK, fmtStates(got), fmtStates(want))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// metricValue scrapes base/metrics and returns the value of the sample
// whose line starts with name (with labels, if given), or -1.
func metricValue(t *testing.T, base, name string) float64 {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err == nil {
				return v
			}
		}
	}
	return -1
}

// stack is the daemon wired in-process (watcher, checker, handler, pages,
// metrics, server on a loopback port), for faults that need to reach into
// the watcher.
type stack struct {
	w      *watcher.Watcher
	store  *cache.Store
	base   string
	cancel context.CancelFunc
	done   chan struct{}
	errs   chan error
}

func startStack(t *testing.T, opts watcher.Options) *stack {
	t.Helper()
	s := &stack{store: cache.NewStore(), done: make(chan struct{}), errs: make(chan error, 2)}
	obs := &observability{}
	opts.Store = s.store
	opts.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	opts.OnPublish = obs.onPublish
	w, err := watcher.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.w = w
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.base = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := w.Run(ctx); err != nil {
			s.errs <- err
		}
	})
	select {
	case <-w.Ready():
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("watcher not ready after 10s")
	}
	c := httpd.NewChecker(httpd.CheckerOptions{Store: s.store})
	h := httpd.NewHandler(c)
	obs.mount(h, c, w)
	wg.Go(func() {
		if err := httpd.Serve(ctx, httpd.NewServer(h, zerolog.Nop()), ln, 2*time.Second); err != nil {
			s.errs <- err
		}
	})
	go func() { wg.Wait(); close(s.done) }()
	t.Cleanup(s.stop)
	return s
}

// stop stops the stack and waits for it; safe to call twice.
func (s *stack) stop() {
	s.cancel()
	<-s.done
}

// stopClean stops the stack and fails the test on a runtime error.
func (s *stack) stopClean(t *testing.T) {
	t.Helper()
	s.stop()
	for len(s.errs) > 0 {
		t.Errorf("stack: %v", <-s.errs)
	}
}

// noLeaks records the goroutine count and, at cleanup, waits (bounded) for
// it to come back: every goroutine the test started must be gone.
func noLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		if tr, ok := http.DefaultTransport.(*http.Transport); ok {
			tr.CloseIdleConnections()
		}
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				t.Errorf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:n])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// goroutinesBack waits until the daemon at base runs at most baseline+slack
// goroutines again (go_goroutines from /metrics): whatever a fault started
// in it has ended.
func goroutinesBack(t *testing.T, base string, baseline float64) {
	t.Helper()
	const slack = 5
	deadline := time.Now().Add(15 * time.Second)
	for {
		g := metricValue(t, base, "go_goroutines")
		if g >= 0 && g <= baseline+slack {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon runs %v goroutines, %v before the fault", g, baseline)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// httpGet fetches url on a fresh connection and returns code and body.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// isRoot reports whether the test runs as root.
func isRoot() bool { return os.Geteuid() == 0 }
