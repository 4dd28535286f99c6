//go:build linux

package pages

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/httpd"

	"github.com/http-status/http_status/internal/check"
	"github.com/http-status/http_status/internal/testenv"
	"github.com/http-status/http_status/internal/testserve"
	"github.com/http-status/http_status/internal/testsnap"
)

// pagesHandler is a Handler with every page and /metrics mounted over a
// hand-built snapshot.
func pagesHandler(t *testing.T, st *cache.Store, hb func() time.Duration) (*httpd.Handler, *Metrics) {
	t.Helper()
	c := check.New(check.Options{Store: st})
	h := httpd.NewHandler(c)
	New(Options{Store: st, HeartbeatAge: hb, HeartbeatMaxAge: 3 * time.Second}).Mount(h)
	m := NewMetrics(MetricsOptions{Handler: h, HeartbeatAge: hb, Watcher: func() WatcherStats {
		return WatcherStats{Events: 7, Rescans: 2, Overflows: 1, Resubscribes: 3, Publishes: 5, Transitions: 4, LastRescan: time.Millisecond}
	}})
	m.Mount(h)
	return h, m
}

func pagesStore(t testing.TB) *cache.Store {
	return testsnap.Store(t, map[string]string{
		"status.html": "",
		"squid.80":    "",
		"web.443":     "drain 50% # deploy <b>1234</b>",
		"db.5432":     "down until=2000-01-01T00:00:00Z # expired long ago",
		"mail.25":     "maint until=2999-01-01T00:00:00Z # kernel",
		"old.8080":    "<html>old page</html>",
	}, map[string]cache.VIPFlags{"192.0.2.10": cache.OnOther, "10.0.0.1": cache.OnLoopback})
}

func get(t *testing.T, h http.Handler, method, target string) (int, http.Header, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

func TestStatusJSON(t *testing.T) {
	h, _ := pagesHandler(t, pagesStore(t), nil)
	code, hdr, body := get(t, h, "GET", "/status.json")
	if code != 200 || hdr.Get("Content-Type") != "application/json" || hdr.Get("Cache-Control") != "private, no-store" {
		t.Fatalf("%d %v", code, hdr)
	}
	var v StatusJSON
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("decode: %v\n%s", err, body)
	}
	if v.Generation != 1 || !v.DirOK || !v.VIPsOK || v.Built.IsZero() {
		t.Fatalf("header fields: %+v", v)
	}
	byName := map[string]ServiceJSON{}
	var names []string
	for _, s := range v.Services {
		byName[s.Name] = s
		names = append(names, s.Name)
	}
	if got := strings.Join(names, " "); got != "db.5432 mail.25 old.8080 squid.80 status.html web.443" {
		t.Fatalf("services not sorted or incomplete: %s", got)
	}
	web := byName["web.443"]
	if web.State != "drain" || web.Effective != "drain" || web.Code != 404 || web.Weight == nil || *web.Weight != 50 || web.Reason != "deploy <b>1234</b>" {
		t.Errorf("web.443: %+v", web)
	}
	if sq := byName["squid.80"]; sq.Weight != nil || sq.Effective != "up" || sq.Code != 200 || sq.Expires != nil || sq.Invalid != "" {
		t.Errorf("squid.80: %+v", sq)
	}
	// An expired override: the flag says down, /status answers up.
	if db := byName["db.5432"]; db.State != "down" || db.Effective != "up" || db.Code != 200 || db.Reason != "" {
		t.Errorf("db.5432: %+v", db)
	}
	if m := byName["mail.25"]; m.Effective != "maint" || m.Code != 503 || m.Expires == nil || m.Expires.Year() != 2999 {
		t.Errorf("mail.25: %+v", m)
	}
	if o := byName["old.8080"]; o.Effective != "up" || !strings.Contains(o.Invalid, "not in the flag-file grammar") {
		t.Errorf("old.8080: %+v", o)
	}
	if v.Counts["up"] != 4 || v.Counts["drain"] != 1 || v.Counts["maint"] != 1 || v.Counts["down"] != 0 {
		t.Errorf("counts: %v", v.Counts)
	}
	if len(v.VIPs) != 2 || v.VIPs[0] != (VIPJSON{"10.0.0.1", true}) || v.VIPs[1] != (VIPJSON{"192.0.2.10", false}) {
		t.Errorf("vips: %+v", v.VIPs)
	}
	// No probe data is invented: the field is absent until probes exist.
	if strings.Contains(body, `"probe"`) {
		t.Errorf("probe field present: %s", body)
	}
	// HEAD: same headers, no body.
	code, hdr2, body := get(t, h, "HEAD", "/status.json")
	if code != 200 || body != "" || hdr2.Get("Content-Length") == "" {
		t.Errorf("HEAD: %d %q %v", code, body, hdr2)
	}
}

func TestStatusText(t *testing.T) {
	h, _ := pagesHandler(t, pagesStore(t), nil)
	code, _, body := get(t, h, "GET", "/status.txt")
	if code != 200 {
		t.Fatal(code)
	}
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	if !strings.HasPrefix(lines[0], "Service count: 6; up: 4; drain: 1; maint: 1; down: 0; generation: 1; built: ") || !strings.HasSuffix(lines[0], "; dir: ok; vips: ok") {
		t.Fatalf("summary line %q", lines[0])
	}
	want := []*regexp.Regexp{
		regexp.MustCompile(`^    0 db\.5432 up code 200 since \S+$`),
		regexp.MustCompile(`^    1 mail\.25 maint code 503 since \S+ until 2999-01-01T00:00:00Z reason "kernel"$`),
		regexp.MustCompile(`^    2 old\.8080 up code 200 since \S+ invalid ".*grammar"$`),
		regexp.MustCompile(`^    3 squid\.80 up code 200 since \S+$`),
		regexp.MustCompile(`^    4 status\.html up code 200 since \S+$`),
		regexp.MustCompile(`^    5 web\.443 drain code 404 weight 50% since \S+ reason "deploy <b>1234</b>"$`),
		regexp.MustCompile(`^VIP count: 2$`),
		regexp.MustCompile(`^    0 10\.0\.0\.1 loopback$`),
		regexp.MustCompile(`^    1 192\.0\.2\.10$`),
	}
	if len(lines) != len(want)+1 {
		t.Fatalf("%d lines:\n%s", len(lines), body)
	}
	for i, re := range want {
		if !re.MatchString(lines[i+1]) {
			t.Errorf("line %d %q does not match %s", i+1, lines[i+1], re)
		}
	}
}

func TestBoard(t *testing.T) {
	h, _ := pagesHandler(t, pagesStore(t), nil)
	code, hdr, body := get(t, h, "GET", "/board")
	if code != 200 || hdr.Get("Content-Type") != "text/html; charset=utf-8" || !strings.Contains(hdr.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("%d %v", code, hdr)
	}
	for _, want := range []string{
		`<tr class="state-drain" data-service="web.443" data-state="drain">`,
		`<span class="badge drain">drained</span>`,
		`deploy &lt;b&gt;1234&lt;/b&gt;`, // the reason is escaped
		`<noscript><meta http-equiv="refresh" content="10"></noscript>`,
		`<tr class="state-up" data-service="db.5432" data-state="up">`,
		`(flag says down, expired)`,
		`<td class="name">10.0.0.1</td><td>loopback</td>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("board lacks %q", want)
		}
	}
	for _, bad := range []string{"<b>", "http://", "https://"} {
		if strings.Contains(body, bad) {
			t.Errorf("board contains %q (unescaped reason or external asset)", bad)
		}
	}
	if strings.Count(body, "<script") != 1 || !strings.Contains(body, "<script>"+boardJS+"</script>") {
		t.Error("board has a script other than its own")
	}
	if _, _, body := get(t, h, "GET", "/board?refresh=0"); strings.Contains(body, `http-equiv="refresh"`) {
		t.Error("refresh=0 still refreshes")
	}
	if code, _, _ := get(t, h, "GET", "/board?refresh=abc"); code != 400 {
		t.Errorf("refresh=abc: %d", code)
	}
	// An empty host still renders, and says why nothing is in rotation.
	empty := testsnap.Store(t, nil, nil)
	h2, _ := pagesHandler(t, empty, nil)
	if _, _, body := get(t, h2, "GET", "/board"); !strings.Contains(body, "No flag files") {
		t.Error("empty board")
	}
}

// TestPagesReadOnly: nothing on the network can change a state.
func TestPagesReadOnly(t *testing.T) {
	st := pagesStore(t)
	h, m := pagesHandler(t, st, nil)
	before := st.Load()
	for _, p := range []string{httpd.PathStatusJSON, httpd.PathStatusText, httpd.PathBoard, httpd.PathHealthz, httpd.PathMetrics, "/status"} {
		for _, method := range []string{"POST", "PUT", "DELETE", "PATCH"} {
			if code, _, _ := get(t, h, method, p+"?SERVICE=web&PORT=443&state=up"); code != 405 {
				t.Errorf("%s %s = %d, want 405", method, p, code)
			}
		}
	}
	// OPTIONS on a page is a 405 too (README: the pages answer GET and
	// HEAD only); it used to be a 404. OPTIONS /status is the health check.
	for _, p := range []string{httpd.PathStatusJSON, httpd.PathStatusText, httpd.PathBoard, httpd.PathHealthz, httpd.PathHealth, httpd.PathMetrics} {
		if code, hdr, _ := get(t, h, "OPTIONS", p); code != 405 || hdr.Get("Allow") != "GET, HEAD" {
			t.Errorf("OPTIONS %s = %d, Allow %q; want 405, GET, HEAD", p, code, hdr.Get("Allow"))
		}
	}
	// The page handlers refuse writes on their own too (the fast engine
	// may hand them requests directly).
	pg := New(Options{Store: st})
	for _, hh := range []http.Handler{pg.page(pg.serveJSON), http.HandlerFunc(pg.serveHealthz), m} {
		if code, hdr, _ := get(t, hh, "POST", "/x"); code != 405 || hdr.Get("Allow") != "GET, HEAD" {
			t.Errorf("direct POST: %d %v", code, hdr)
		}
	}
	if st.Load() != before {
		t.Fatal("a request changed the snapshot")
	}
}

func TestPageRenderLimit(t *testing.T) {
	st := pagesStore(t)
	p := New(Options{Store: st})
	for i := 0; i < MaxPageRenders; i++ {
		p.sem <- struct{}{}
	}
	if code, hdr, _ := get(t, p.page(p.serveJSON), "GET", "/status.json"); code != 503 || hdr.Get("Retry-After") == "" {
		t.Fatalf("over the limit: %d %v", code, hdr)
	}
	<-p.sem
	if code, _, _ := get(t, p.page(p.serveJSON), "GET", "/status.json"); code != 200 {
		t.Fatalf("under the limit: %d", code)
	}
}

func TestHealthz(t *testing.T) {
	now := time.Now()
	var age time.Duration
	clock := func() time.Duration { return age }
	p := New(Options{Store: pagesStore(t), HeartbeatAge: clock, HeartbeatMaxAge: 3 * time.Second, Now: func() time.Time { return now }})
	h := http.HandlerFunc(p.serveHealthz)
	if code, _, body := get(t, h, "GET", "/healthz"); code != 200 || !strings.HasPrefix(body, "ok\n") || strings.Contains(body, "degraded") {
		t.Fatalf("fresh: %d %q", code, body)
	}
	age = 10 * time.Second
	if code, _, body := get(t, h, "GET", "/healthz"); code != 503 || !strings.Contains(body, "watcher loop stalled: last turn 10s ago") {
		t.Fatalf("stalled: %d %q", code, body)
	}
	// Degraded: the daemon is healthy, the host is not.
	b := cache.NewBuilder(cache.Empty())
	b.SetDirProblem("missing")
	b.SetVIPsOK(false)
	st := cache.NewStore()
	st.Publish(b.Snapshot(now))
	age = 0
	p = New(Options{Store: st, HeartbeatAge: clock, Now: func() time.Time { return now }})
	code, _, body := get(t, http.HandlerFunc(p.serveHealthz), "GET", "/healthz")
	if code != 200 || !strings.Contains(body, "degraded: status directory missing") || !strings.Contains(body, "degraded: VIP list not current") {
		t.Fatalf("degraded: %d %q", code, body)
	}
	// Before the first read (a daemon started on a hung status directory)
	// nothing is known of the VIPs either: "netlink subscription down"
	// would send the operator to the wrong place, and with --vips=false
	// there is no subscription at all.
	p = New(Options{Store: cache.NewStore(), HeartbeatAge: clock, Now: func() time.Time { return now }})
	code, _, body = get(t, http.HandlerFunc(p.serveHealthz), "GET", "/healthz")
	if !strings.Contains(body, "degraded: status directory not read yet") || strings.Contains(body, "VIP list") {
		t.Fatalf("not read yet: %d %q, want the directory not read, no VIP line", code, body)
	}
}

func TestMetrics(t *testing.T) {
	h, m := pagesHandler(t, pagesStore(t), func() time.Duration { return 250 * time.Millisecond })
	for _, q := range []string{"/status", "/status?SERVICE=squid&PORT=80", "/status?SERVICE=web&PORT=443", "/status?SERVICE=a/b", "/nope"} {
		get(t, h, "GET", q)
	}
	get(t, h, "POST", "/status")
	m.ObservePublish(150 * time.Microsecond)
	code, hdr, body := get(t, h, "GET", "/metrics")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("%d %v", code, hdr)
	}
	for _, want := range []string{
		`http_status_requests_total{code="200"} 2`,
		`http_status_requests_total{code="400"} 1`,
		`http_status_requests_total{code="404"} 2`,
		`http_status_requests_total{code="405"} 1`,
		`http_status_service_state{service="web.443",state="drain"} 1`,
		`http_status_service_state{service="db.5432",state="up"} 1`,
		`http_status_service_state{service="mail.25",state="maint"} 1`,
		`http_status_service_weight_percent{service="web.443"} 50`,
		`http_status_services{state="up"} 4`,
		`http_status_services{state="down"} 0`,
		`http_status_vips 2`,
		`http_status_snapshot_generation 1`,
		`http_status_dir_ok 1`,
		`http_status_vips_ok 1`,
		`http_status_transitions_total 4`,
		`http_status_watcher_events_total 7`,
		`http_status_watcher_rescans_total 2`,
		`http_status_watcher_inotify_overflows_total 1`,
		`http_status_watcher_netlink_resubscribes_total 3`,
		`http_status_watcher_publishes_total 5`,
		`http_status_watcher_last_rescan_duration_seconds 0.001`,
		`http_status_publish_latency_seconds_bucket{le="0.00016"} 1`,
		`http_status_publish_latency_seconds_count 1`,
		"http_status_watcher_heartbeat_age_seconds ",
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// Probe durations: a hook only; no series until a probe reports.
	if strings.Contains(body, "http_status_probe_duration_seconds_count") {
		t.Error("probe series invented")
	}
	m.ObserveProbe("squid.80", "ok", 3*time.Millisecond)
	if _, _, body := get(t, h, "GET", "/metrics"); !strings.Contains(body, `http_status_probe_duration_seconds_count{result="ok",service="squid.80"} 1`) {
		t.Error("probe observation missing")
	}
}

// TestStatusCountsNoAllocs: counting answers keeps the /status path
// allocation-free, and each answer is counted once, by the transport.
func TestStatusCountsNoAllocs(t *testing.T) {
	st := pagesStore(t)
	h := httpd.NewHandler(check.New(check.Options{Store: st}))
	w := &discardWriter{hdr: http.Header{}}
	r := httptest.NewRequest("GET", "/status?SERVICE=squid&PORT=80", nil)
	n := testing.AllocsPerRun(1000, func() {
		clear(w.hdr)
		h.ServeHTTP(w, r)
	})
	if n != 0 {
		t.Fatalf("%v allocs per /status", n)
	}
	var got uint64
	h.Codes().Each(func(code int, v uint64) {
		if code == 200 {
			got = v
		}
	})
	if got != 1001 { // AllocsPerRun runs once more to warm up
		t.Fatalf("counted %d answers, want 1001", got)
	}
}

// discardWriter is an http.ResponseWriter that keeps nothing.
type discardWriter struct{ hdr http.Header }

func (w *discardWriter) Header() http.Header         { return w.hdr }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// TestPagesProbes: probe results from the snapshot show on every page, and
// a failing probe turns an up flag down exactly as /status answers.
func TestPagesProbes(t *testing.T) {
	now := time.Now()
	b := cache.NewBuilder(cache.Empty())
	for name, content := range map[string]string{"php.9000": "", "api.80": "", "web.443": "drain"} {
		e, _ := cache.ParseFlag([]byte(content))
		e.Since = now
		b.Set(name, e)
	}
	b.SetProbe("php.9000", cache.ProbeStatus{OK: false, Since: now, LastErr: "probe php-ping: status 500", Checks: []cache.CheckStatus{
		{Name: "php-ping", Kind: "fastcgi", OK: false, Msg: "status 500", Since: now},
	}})
	b.SetProbe("api.80", cache.ProbeStatus{OK: true, Since: now, Checks: []cache.CheckStatus{
		{Name: "http", Kind: "http", OK: true, Msg: "200 OK", Since: now},
		{Name: "vip-only", Kind: "tcp", OK: true, Idle: true, Since: now},
	}})
	b.SetDirProblem("")
	b.SetVIPsOK(true)
	st := cache.NewStore()
	st.Publish(b.Snapshot(now))
	h, _ := pagesHandler(t, st, nil)

	if code, _, _ := get(t, h, "GET", "/status?SERVICE=php&PORT=9000"); code != 503 {
		t.Fatalf("/status for a failing probe: %d", code)
	}
	_, _, body := get(t, h, "GET", "/status.json")
	var v StatusJSON
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	by := map[string]ServiceJSON{}
	for _, s := range v.Services {
		by[s.Name] = s
	}
	php := by["php.9000"]
	if php.State != "up" || php.Effective != "down" || php.Code != 503 || php.Reason != "probe php-ping: status 500" ||
		php.Probe == nil || php.Probe.OK || len(php.Probe.Checks) != 1 || php.Probe.Checks[0].Kind != "fastcgi" {
		t.Errorf("php.9000: %+v probe %+v", php, php.Probe)
	}
	if api := by["api.80"]; api.Effective != "up" || api.Probe == nil || !api.Probe.OK || len(api.Probe.Checks) != 2 || !api.Probe.Checks[1].Idle {
		t.Errorf("api.80: %+v", api)
	}
	if by["web.443"].Probe != nil {
		t.Error("probe invented for a service without probes")
	}
	if _, _, txt := get(t, h, "GET", "/status.txt"); !strings.Contains(txt, "php.9000 down code 503 since") || !strings.Contains(txt, "probe failing") || !strings.Contains(txt, "api.80 up code 200 since "+now.UTC().Format(time.RFC3339)+" probe ok") {
		t.Errorf("status.txt:\n%s", txt)
	}
	_, _, board := get(t, h, "GET", "/board")
	for _, want := range []string{`data-service="php.9000" data-state="down"`, `(flag says up, probe failing)`, `<span class="badge down" title="fastcgi: status 500">php-ping</span>`, `<span class="badge idle" title="idle, tcp: ">vip-only</span>`} {
		if !strings.Contains(board, want) {
			t.Errorf("board lacks %q", want)
		}
	}
	_, _, metrics := get(t, h, "GET", "/metrics")
	for _, want := range []string{`http_status_service_state{service="php.9000",state="down"} 1`, `http_status_service_probe_ok{service="php.9000"} 0`, `http_status_service_probe_ok{service="api.80"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestHealthAlias: /health answers like /healthz (the name FastCGI health
// bridges served), on every engine, with and without a Host header.
func TestHealthAlias(t *testing.T) {
	st := pagesStore(t)
	h := httpd.NewHandler(check.New(check.Options{Store: st}))
	New(Options{Store: st}).Mount(h)
	for _, e := range testserve.Engines {
		addr := testserve.ServeEngine(t, e, h)
		var answers []string
		for _, p := range []string{httpd.PathHealthz, httpd.PathHealth} {
			for _, host := range []string{"Host: x\r\n", ""} {
				raw := testenv.RawRequest(t, addr, "GET "+p+" HTTP/1.1\r\n"+host+"Connection: close\r\n\r\n")
				i := strings.Index(raw, "\r\n\r\n")
				if !strings.HasPrefix(raw, "HTTP/1.1 200 OK\r\n") || i < 0 {
					t.Fatalf("%s: GET %s (%q): %q", e.Name, p, host, raw)
				}
				answers = append(answers, raw[i:])
			}
		}
		for _, a := range answers[1:] {
			if a != answers[0] {
				t.Errorf("%s: /health and /healthz differ: %q vs %q", e.Name, a, answers[0])
			}
		}
	}
}
