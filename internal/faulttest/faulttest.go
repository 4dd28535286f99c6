//go:build linux

// Package faulttest has the helpers of the fault and abuse tests, shared
// by the in-process tests of internal/daemon and the process tests of
// cmd/http_status: load generators, /status.json and /metrics readers,
// goroutine-leak checks.
package faulttest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/pages"
)

// LoadGen polls a URL from several goroutines until stopped, counting
// answers and failures (transport errors or a code accept refuses).
type LoadGen struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	n, fails atomic.Int64
	mu       sync.Mutex
	first    string // first failure
	client   *http.Client
}

// StartLoad starts workers polling base+path as fast as they can; accept
// says which codes are fine at this point of the test.
func StartLoad(base, path string, workers int, accept func(code int) bool) *LoadGen {
	return StartPacedLoad(base, path, workers, 0, accept)
}

// StartPacedLoad is StartLoad with each worker pausing between requests:
// for a test that needs checks to keep being answered while something else
// happens, not the most requests the machine can make.
func StartPacedLoad(base, path string, workers int, pause time.Duration, accept func(code int) bool) *LoadGen {
	tr := &http.Transport{MaxIdleConnsPerHost: workers, DisableCompression: true}
	l := &LoadGen{stop: make(chan struct{}), client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
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
				if pause > 0 {
					select {
					case <-l.stop:
						return
					case <-time.After(pause):
					}
				}
			}
		}()
	}
	return l
}

func (l *LoadGen) fail(msg string) {
	l.fails.Add(1)
	l.mu.Lock()
	if l.first == "" {
		l.first = msg
	}
	l.mu.Unlock()
}

// WaitMore waits until the workers have made k more requests.
func (l *LoadGen) WaitMore(t *testing.T, k int64) {
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

// Finish stops the workers and fails the test if any request failed or
// none was made.
func (l *LoadGen) Finish(t *testing.T) {
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

// StatusJSON fetches and decodes /status.json.
func StatusJSON(t *testing.T, base string) pages.StatusJSON {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Get(base + "/status.json")
	if err != nil {
		t.Fatalf("GET /status.json: %v", err)
	}
	defer res.Body.Close()
	var v pages.StatusJSON
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil || res.StatusCode != 200 {
		t.Fatalf("GET /status.json: %d %v", res.StatusCode, err)
	}
	return v
}

// StateOf is name -> effective state.
func StateOf(v pages.StatusJSON) map[string]string {
	m := map[string]string{}
	for _, s := range v.Services {
		m[s.Name] = s.Effective
	}
	return m
}

func FmtStates(m map[string]string) string {
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

func SameStates(a, b map[string]string) bool {
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

// ExpectExact polls /status.json until every service and state is exactly
// want (name -> effective state) and the directory is ok.
func ExpectExact(t *testing.T, base string, want map[string]string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		v := StatusJSON(t, base)
		got := StateOf(v)
		if v.DirOK && SameStates(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("state not exact: dir_ok=%v\n got %s\nwant %s", v.DirOK, FmtStates(got), FmtStates(want))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// MetricValue scrapes base/metrics and returns the value of the sample
// whose line starts with name (with labels, if given), or -1.
func MetricValue(t *testing.T, base, name string) float64 {
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

// NoLeaks records the goroutine count and, at cleanup, waits (bounded) for
// it to come back: every goroutine the test started must be gone.
func NoLeaks(t *testing.T) {
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

// GoroutinesBack waits until the daemon at base runs at most baseline+slack
// goroutines again (go_goroutines from /metrics): whatever a fault started
// in it has ended.
func GoroutinesBack(t *testing.T, base string, baseline float64) {
	t.Helper()
	const slack = 5
	deadline := time.Now().Add(15 * time.Second)
	for {
		g := MetricValue(t, base, "go_goroutines")
		if g >= 0 && g <= baseline+slack {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon runs %v goroutines, %v before the fault", g, baseline)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// HTTPGet fetches url on a fresh connection and returns code and body.
func HTTPGet(t *testing.T, url string) (int, string) {
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

// IsRoot reports whether the test runs as root.
func IsRoot() bool { return os.Geteuid() == 0 }

// WaitHealthz polls /healthz until its body contains want.
func WaitHealthz(t *testing.T, base, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body := HTTPGet(t, base+"/healthz")
		if strings.Contains(body, want) {
			if code != 200 {
				t.Errorf("/healthz %d %q", code, body)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz never said %q; last %d %q", want, code, body)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ExpectNotify reads notifications until one satisfies match, or fails the
// test after timeout. It returns the matching message. Every message read
// must be well formed: no empty line.
func ExpectNotify(t *testing.T, msgs <-chan string, timeout time.Duration, what string, match func(string) bool) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				t.Fatalf("notify socket closed while waiting for %s", what)
			}
			// sd_notify(3): newline-separated assignments; an empty line
			// is not one.
			if m == "" || strings.HasPrefix(m, "\n") || strings.HasSuffix(m, "\n") || strings.Contains(m, "\n\n") {
				t.Errorf("notification %q has an empty line", m)
			}
			if match(m) {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s notification within %s", what, timeout)
		}
	}
}

// HasLine reports whether the notification m has the assignment line kv.
func HasLine(m, kv string) bool {
	for _, l := range strings.Split(m, "\n") {
		if l == kv {
			return true
		}
	}
	return false
}
