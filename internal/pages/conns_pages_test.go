//go:build linux

package pages

import (
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/httpd"

	"github.com/http-status/http_status/internal/check"
	"github.com/http-status/http_status/internal/testsnap"
)

// withConns publishes counts into st as the watcher would.
func withConns(st *cache.Store, c cache.ConnCounts) {
	b := cache.NewBuilder(st.Load())
	b.SetConns(c)
	st.Publish(b.Snapshot(time.Now()))
}

// TestPagesConnections: the counts in the snapshot show on every page and
// in the metrics; an idle sampler is woken and waited for (briefly).
func TestPagesConnections(t *testing.T) {
	st := testsnap.Store(t, map[string]string{"squid.80": "drain", "web.8080": "up conn=443", "status.html": ""}, nil)
	c := check.New(check.Options{Store: st})
	h := httpd.NewHandler(c)
	var touched atomic.Int32
	// A stand-in for the sampler: the first request finds it idle; it
	// publishes a sample and releases the request, as conns.Sampler does.
	need := func() <-chan struct{} {
		touched.Add(1)
		ch := make(chan struct{})
		if !st.Load().ConnCounts().Live {
			go func() {
				withConns(st, cache.ConnCounts{Live: true, Ports: map[uint16]int{80: 2, 443: 0}})
				close(ch)
			}()
		} else {
			close(ch)
		}
		return ch
	}
	New(Options{Store: st, NeedConns: need}).Mount(h)
	NewMetrics(MetricsOptions{Handler: h, NeedConns: need}).Mount(h)

	_, _, body := get(t, h, "GET", "/status.json")
	var v StatusJSON
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	byName := map[string]ServiceJSON{}
	for _, s := range v.Services {
		byName[s.Name] = s
	}
	if !v.ConnsLive || byName["squid.80"].Conns == nil || *byName["squid.80"].Conns != 2 || byName["squid.80"].ConnPort != 80 {
		t.Fatalf("squid.80: %+v (live %v)", byName["squid.80"], v.ConnsLive)
	}
	if s := byName["web.8080"]; s.Conns == nil || *s.Conns != 0 || s.ConnPort != 443 {
		t.Errorf("web.8080 (conn=443): %+v", s)
	}
	if s := byName["status.html"]; s.Conns != nil || s.ConnPort != 0 {
		t.Errorf("status.html has no port: %+v", s)
	}
	if !strings.Contains(body, `"connections":2,"conn_port":80`) {
		t.Errorf("JSON field names: %s", body)
	}
	_, _, text := get(t, h, "GET", "/status.txt")
	if !strings.Contains(text, "squid.80 drain code 404 conns 2 since") || !strings.Contains(text, "web.8080 up code 200 conns 0 since") {
		t.Errorf("/status.txt:\n%s", text)
	}
	_, _, board := get(t, h, "GET", "/board")
	if !strings.Contains(board, `<td class="conns" title="port 80">2</td>`) || !strings.Contains(board, `<td class="conns">-</td>`) {
		t.Errorf("board lacks the counts")
	}
	_, _, metrics := get(t, h, "GET", "/metrics")
	for _, want := range []string{`http_status_service_connections{service="squid.80"} 2`, `http_status_service_connections{service="web.8080"} 0`, "http_status_connections_sampling 1"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(metrics, `http_status_service_connections{service="status.html"}`) {
		t.Error("a gauge for a service without a port")
	}
	if touched.Load() != 4 {
		t.Errorf("the sampler was told %d times, want once per page", touched.Load())
	}

	// The sampler stopped: no counts anywhere, and no stale ones.
	withConns(st, cache.ConnCounts{})
	h2 := httpd.NewHandler(c)
	New(Options{Store: st}).Mount(h2)
	NewMetrics(MetricsOptions{Handler: h2}).Mount(h2)
	if _, _, body := get(t, h2, "GET", "/status.json"); strings.Contains(body, `"connections":`) || !strings.Contains(body, `"connections_live":false`) {
		t.Errorf("stopped sampler: %s", body)
	}
	if _, _, m := get(t, h2, "GET", "/metrics"); strings.Contains(m, "http_status_service_connections{") || !strings.Contains(m, "http_status_connections_sampling 0") {
		t.Error("stopped sampler: gauges remain")
	}
}

func TestAgo(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		-time.Second:                      "just now",
		0:                                 "0s ago",
		42 * time.Second:                  "42s ago",
		5*time.Minute + 3*time.Second:     "5m 3s ago",
		3*time.Hour + 12*time.Minute:      "3h 12m ago",
		2*24*time.Hour + 3*time.Hour + 59: "2d 3h ago",
		29 * 24 * time.Hour:               "29d 0h ago",
		60600*time.Hour + 11*time.Minute:  "on 2019-12-25",
	} {
		if got := ago(now, now.Add(-d)); got != want {
			t.Errorf("ago(%v) = %q, want %q", d, got, want)
		}
	}
	if ago(now, time.Time{}) != "" {
		t.Error("zero time")
	}
}

// TestBoardLooks: what a person sees: an expired override's time is a
// date, maint rows are tinted blue (not like down rows), idle probes grey.
func TestBoardLooks(t *testing.T) {
	h, _ := pagesHandler(t, pagesStore(t), nil)
	_, hdr, body := get(t, h, "GET", "/board")
	for _, want := range []string{
		`>on 2000-01-01</td>`, // db.5432: expired in 2000
		`tr.state-maint td{background:#f3f6fd}`,
		`tr.state-down td{background:#fff6f6}`,
		`.idle{background:#e8eaed;color:#555}`,
		`<tr id="no-flags" hidden>`,
		`<span id="gen">1</span>`,
		`data-generation="1"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("board lacks %q", want)
		}
	}
	if strings.Contains(body, "h0m") || strings.Contains(body, "0000h") {
		t.Error("board shows a raw Go duration")
	}
	csp := hdr.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src "+boardScriptHash+";") || !strings.Contains(csp, "connect-src 'self'") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP %q", csp)
	}
	if strings.Contains(boardJS, "{{") || strings.Contains(boardJS, "</script") || strings.Contains(boardJS, "//") || strings.Contains(boardJS, "/*") {
		t.Error("boardJS would break its template")
	}
}
