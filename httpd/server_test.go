//go:build linux

package httpd

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/http-status/http_status/cache"

	"github.com/http-status/http_status/internal/check"
	"github.com/http-status/http_status/internal/testenv"
	"github.com/http-status/http_status/internal/testsnap"
)

func testHandler(t *testing.T) *Handler {
	t.Helper()
	st := testsnap.Store(t, map[string]string{
		"status.html": "",
		"squid.80":    "",
		"web.443":     "drain 50% # deploy 1234",
	}, map[string]cache.VIPFlags{"192.0.2.10": cache.OnOther})
	return NewHandler(check.New(check.Options{Store: st}))
}

func TestHandler(t *testing.T) {
	h := testHandler(t)
	tests := []struct {
		method, target string
		code           int
		body           string
		hdr            map[string]string
	}{
		{"GET", "/status", 200, check.BodyOK, map[string]string{"X-Status-State": "up", "Server": "http_status", "Cache-Control": "private, no-store", "Content-Type": "text/plain; charset=utf-8"}},
		{"GET", "/status?SERVICE=squid&PORT=80&VIP=192.0.2.10", 200, check.BodyOKVIP, nil},
		{"GET", "/status?SERVICE=squid&PORT=80&VIP=192.0.2.11", 404, check.BodyNoVIP + "reason: VIP not configured\n", nil},
		{"GET", "/status?SERVICE=nope", 404, check.BodyNoService, map[string]string{"X-Status-State": "missing"}},
		{"GET", "/status?SERVICE=web&PORT=443", 404, check.BodyDrain + "reason: deploy 1234\n", map[string]string{"X-Status-State": "drain", "X-Status-Weight": "50%", "X-Status-Reason": "deploy 1234"}},
		{"GET", "/status?SERVICE=../../etc/passwd", 400, check.BodyBadService, nil},
		{"HEAD", "/status?SERVICE=squid&PORT=80", 200, "", map[string]string{"Content-Length": "19"}},
		{"POST", "/status", 405, BodyBadMethod, map[string]string{"Allow": "GET, HEAD, OPTIONS"}},
		{"DELETE", "/status?SERVICE=squid&PORT=80", 405, BodyBadMethod, map[string]string{"Allow": "GET, HEAD, OPTIONS"}},
		{"OPTIONS", "/", 200, check.BodyOK, map[string]string{"Allow": "GET, HEAD, OPTIONS"}},
		{"OPTIONS", "/other", 404, BodyNotFound, nil},
		{"GET", "/", 404, BodyNotFound, nil},
		{"GET", "/status/", 404, BodyNotFound, nil},
		{"GET", "/statusx", 404, BodyNotFound, nil},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.target, nil))
			res := rec.Result()
			body, _ := io.ReadAll(res.Body)
			if tt.method == "HEAD" {
				body = nil // the recorder keeps what a real server would drop
			}
			if res.StatusCode != tt.code || string(body) != tt.body {
				t.Fatalf("got %d %q, want %d %q", res.StatusCode, body, tt.code, tt.body)
			}
			for k, v := range tt.hdr {
				if got := res.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

// TestServerWire runs the wire-level checks against every engine.
func TestServerWire(t *testing.T) {
	t.Parallel()
	for _, e := range testEngines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			addr, _ := serveEngine(t, e, testHandler(t), func(s *http.Server) { s.ReadHeaderTimeout = 300 * time.Millisecond })
			testServerWire(t, addr, 300*time.Millisecond)
		})
	}
}

func testServerWire(t *testing.T, addr string, readHeaderTimeout time.Duration) {
	t.Run("HTTP/1.0 without Host", func(t *testing.T) {
		got := testenv.RawRequest(t, addr, "GET /status?SERVICE=squid&PORT=80 HTTP/1.0\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.0 200 OK\r\n") || !strings.HasSuffix(got, "\r\n\r\n"+check.BodyOK) {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("HTTP/1.1 with Host, close", func(t *testing.T) {
		got := testenv.RawRequest(t, addr, "GET /status?SERVICE=nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.1 404 Not Found\r\n") || !strings.HasSuffix(got, check.BodyNoService) {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("HAProxy bare option httpchk", func(t *testing.T) {
		got := testenv.RawRequest(t, addr, "OPTIONS / HTTP/1.0\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.0 200 OK\r\n") || !strings.Contains(got, "Allow: GET, HEAD, OPTIONS\r\n") {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("HEAD has no body", func(t *testing.T) {
		got := testenv.RawRequest(t, addr, "HEAD /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(got, "\r\n\r\n") {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("keep-alive", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for i := 0; i < 3; i++ {
			if _, err := io.WriteString(c, "GET /status?SERVICE=squid&PORT=80 HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != 200 || string(b) != check.BodyOK {
				t.Fatalf("request %d: %d %q", i, res.StatusCode, b)
			}
		}
	})
	t.Run("oversized headers", func(t *testing.T) {
		got := testenv.RawRequest(t, addr, "GET /status HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 64<<10)+"\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.1 431 ") {
			t.Fatalf("got %.80q", got)
		}
	})
	t.Run("slow client is cut off", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, "GET /status HTTP/1.1\r\nHost: x\r\n") // never finishes
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(readHeaderTimeout + 5*time.Second))
		b, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("server did not close a client that never finished its headers: %v (read %q)", err, b)
		}
		if d := time.Since(start); d < readHeaderTimeout/2 {
			t.Fatalf("closed after %v, before the read-header timeout %v", d, readHeaderTimeout)
		}
	})
}

func TestServerLimits(t *testing.T) {
	srv := NewServer(http.NotFoundHandler(), zerolog.Nop())
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes != MaxHeaderBytes {
		t.Fatalf("server limits not set: %+v", srv)
	}
}
