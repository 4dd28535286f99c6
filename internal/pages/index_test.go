//go:build linux

package pages

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/http-status/http_status/httpd"
	"github.com/http-status/http_status/internal/check"
	"github.com/http-status/http_status/internal/testenv"
	"github.com/http-status/http_status/internal/testserve"
)

// TestIndex: GET / from a browser gets the index, on every engine (the
// fast one hands / to net/http); everything else at / keeps its answer:
// the plain-text 404, OPTIONS' health check, 405 for other methods.
func TestIndex(t *testing.T) {
	t.Parallel()
	const browser = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
	for _, e := range testserve.Engines {
		t.Run(e.Name, func(t *testing.T) {
			t.Parallel()
			st := pagesStore(t)
			h := httpd.NewHandler(check.New(check.Options{Store: st}))
			New(Options{Store: st, Version: "http_status 9.8.7 (commit abc)"}).Mount(h)
			addr := testserve.ServeEngine(t, e, h)
			ask := func(method, accept string) (*http.Response, string) {
				t.Helper()
				req := method + " / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
				if accept != "" {
					req += "Accept: " + accept + "\r\n"
				}
				raw := testenv.RawRequest(t, addr, req+"\r\n")
				res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), &http.Request{Method: method})
				if err != nil {
					t.Fatalf("%s / (Accept %q): %v in %q", method, accept, err, raw)
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				return res, string(b)
			}

			res, body := ask("GET", browser)
			if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/html; charset=utf-8" || res.Header.Get("Content-Security-Policy") == "" {
				t.Fatalf("GET / from a browser: %d %v", res.StatusCode, res.Header)
			}
			for _, want := range []string{
				`<a href="/board">`, `<a href="/status.json">`, `<a href="/status.txt">`, `<a href="/metrics">`, `<a href="/healthz">`,
				"GET /status?SERVICE=name&amp;PORT=port&amp;VIP=addr", "http_status 9.8.7 (commit abc)",
			} {
				if !strings.Contains(body, want) {
					t.Errorf("index lacks %q:\n%s", want, body)
				}
			}
			if res, body := ask("HEAD", "text/html"); res.StatusCode != 200 || body != "" || res.ContentLength <= 0 {
				t.Errorf("HEAD / from a browser: %d, %d bytes, Content-Length %d", res.StatusCode, len(body), res.ContentLength)
			}
			for _, accept := range []string{"", "*/*", "text/plain", "text/html;q=0", "application/json"} {
				res, body := ask("GET", accept)
				if res.StatusCode != 404 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") || body != httpd.BodyNotFound {
					t.Errorf("GET / with Accept %q: %d %q %q, want the plain 404", accept, res.StatusCode, res.Header.Get("Content-Type"), body)
				}
			}
			if res, _ := ask("OPTIONS", browser); res.StatusCode != 200 || res.Header.Get("X-Status-State") != "up" {
				t.Errorf("OPTIONS / from a browser: %d %v, want the status.html check", res.StatusCode, res.Header)
			}
			if res, _ := ask("POST", browser); res.StatusCode != 405 {
				t.Errorf("POST / from a browser: %d, want 405", res.StatusCode)
			}
		})
	}
}

func TestAcceptsHTML(t *testing.T) {
	for accept, want := range map[string]bool{
		"text/html":                       true,
		"TEXT/HTML; charset=utf-8":        true,
		"application/json, text/html;q=1": true,
		"text/html;q=0.5":                 true,
		"":                                false,
		"*/*":                             false,
		"text/*":                          false,
		"text/html;q=0":                   false,
		"text/html;q=0.0":                 false,
		"text/htmlx":                      false,
		"text/plain, application/xml":     false,
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		if got := httpd.AcceptsHTML(r); got != want {
			t.Errorf("Accept %q: %v, want %v", accept, got, want)
		}
	}
}
