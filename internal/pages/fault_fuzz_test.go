//go:build linux

package pages

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/httpd"

	"github.com/http-status/http_status/internal/check"
)

// FuzzHandlerRequest sends arbitrary paths, queries and methods through the
// full handler (checks, pages, metrics). Properties: no panic; only the
// codes the handler is documented to send; /status agrees with Check; no
// request changes the snapshot.
func FuzzHandlerRequest(f *testing.F) {
	for _, s := range [][3]string{
		{"GET", "/status", "SERVICE=squid&PORT=80&VIP=192.0.2.10"},
		{"GET", "/status", "SERVICE=%2e%2e%2fetc&PORT=-1"},
		{"GET", "/status", "VIP=::ffff:192.0.2.10,fe80::1%25eth0&SERVICE=web&port=443"},
		{"GET", "/status", "SERVICE=" + strings.Repeat("a", 300)},
		{"GET", "/status", "%zz&&==;;SERVICE"},
		{"HEAD", "/status.json", "pretty"},
		{"GET", "/board", "refresh=99999999999999999999"},
		{"GET", "/board", "refresh=-1"},
		{"GET", "/status.txt", ""},
		{"GET", "/healthz", ""},
		{"GET", "/metrics", ""},
		{"OPTIONS", "/", ""},
		{"PUT", "/status.json", "state=up"},
		{"GET", "//status", ""},
		{"GET", "/status\x00", ""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	st := pagesStore(f)
	c := check.New(check.Options{Store: st})
	h := httpd.NewHandler(c)
	New(Options{Store: st, HeartbeatAge: func() time.Duration { return 0 }}).Mount(h)
	NewMetrics(MetricsOptions{Handler: h}).Mount(h)
	before := st.Load()
	allowed := map[int]bool{200: true, 400: true, 404: true, 405: true, 503: true}
	f.Fuzz(func(t *testing.T, method, path, rawQuery string) {
		if method == "" || strings.ContainsAny(method, " \t\r\n") {
			method = "GET"
		}
		r := &http.Request{Method: method, URL: &url.URL{Path: path, RawQuery: rawQuery}, Header: http.Header{}, Host: "x", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
		r = r.WithContext(t.Context())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if !allowed[rec.Code] {
			t.Fatalf("%s %q ? %q: code %d", method, path, rawQuery, rec.Code)
		}
		if path == "/status" && (method == "GET" || method == "HEAD") {
			if want := c.Check(rawQuery).Code; rec.Code != want {
				t.Fatalf("/status?%q: handler %d, Check %d", rawQuery, rec.Code, want)
			}
		}
		if path == httpd.PathStatusJSON && method == "GET" && rec.Code == 200 && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("invalid JSON for ?%q", rawQuery)
		}
		if st.Load() != before {
			t.Fatal("a request changed the snapshot")
		}
	})
}

// FuzzFlagContentPages writes arbitrary flag-file content and name into a
// snapshot and renders every page. Properties: no panic; /status answers
// the entry's effective state; the JSON is valid and says the same; the
// text page keeps one line per service (content cannot inject lines); the
// board never contains the content's markup unescaped.
func FuzzFlagContentPages(f *testing.F) {
	for _, s := range []string{
		"", "up", "drain 50% # deploy", "down until=2000-01-01T00:00:00Z # old",
		"maint until=2999-01-01T00:00:00Z", "<script>alert(1)</script>", "drain # <b>x</b>\nsecond line",
		"up 9999%", "down # \xff\xfe", "\x00\x01", "drain # a\r\nInjected: 1", "# only a comment\ndown # r",
		"down # " + strings.Repeat("é", 300),
	} {
		f.Add("svc.80", s)
	}
	f.Add("bad/name", "down")
	now := time.Now()
	f.Fuzz(func(t *testing.T, name, content string) {
		e, _ := cache.ParseFlag([]byte(content))
		e.Since = now
		b := cache.NewBuilder(cache.Empty())
		b.Set(name, e)
		b.SetDirProblem("")
		b.SetVIPsOK(true)
		st := cache.NewStore()
		st.Publish(b.Snapshot(now))
		valid := cache.ValidName(name)
		if got := st.Load().Len(); got != map[bool]int{true: 1, false: 0}[valid] {
			t.Fatalf("Len %d for name %q", got, name)
		}
		c := check.New(check.Options{Store: st, Now: func() time.Time { return now }})
		h := httpd.NewHandler(c)
		New(Options{Store: st, Now: func() time.Time { return now }}).Mount(h)
		eff := e.Effective(now)
		if valid {
			if res := c.CheckName(name, nil); res.Code != eff.State.HTTPCode() {
				t.Fatalf("CheckName %d, want %d for %q", res.Code, eff.State.HTTPCode(), content)
			}
		}
		var v StatusJSON
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/status.json", nil))
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || rec.Code != 200 {
			t.Fatalf("status.json: %d %v", rec.Code, err)
		}
		if valid && (len(v.Services) != 1 || v.Services[0].Effective != eff.State.String() || v.Services[0].Reason != eff.Reason) {
			t.Fatalf("status.json %+v, entry %+v", v.Services, eff)
		}
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/status.txt", nil))
		if lines := strings.Count(rec.Body.String(), "\n"); lines != 2+len(v.Services) {
			t.Fatalf("status.txt has %d lines for %d services:\n%s", lines, len(v.Services), rec.Body.String())
		}
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/board", nil))
		if rec.Code != 200 {
			t.Fatalf("board: %d", rec.Code)
		}
		// One script only: the board's own (boardscript.go).
		if body := rec.Body.String(); strings.Count(body, "<script") != 1 || !strings.Contains(body, "<script>"+boardJS+"</script>") || strings.Contains(body, "<b>") {
			t.Fatalf("board has unescaped markup from %q", content)
		}
	})
}
