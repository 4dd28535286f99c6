//go:build linux

package httpd

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/http-status/http_status/cache"

	"github.com/http-status/http_status/internal/check"
	"github.com/http-status/http_status/internal/testenv"
	"github.com/http-status/http_status/internal/testsnap"
)

// engineCase is one way to serve: net/http alone, or the fast engine with
// its own SO_REUSEPORT sockets or with one shared (inherited) socket.
type engineCase struct {
	name   string
	fast   bool
	listen func(addr string) (net.Listener, error)
}

var testEngines = []engineCase{
	{"net-http", false, func(a string) (net.Listener, error) { return net.Listen("tcp", a) }},
	{"fast-reuseport", true, func(a string) (net.Listener, error) { return ListenReusePort(a, 2) }},
	{"fast-shared", true, func(a string) (net.Listener, error) { return net.Listen("tcp", a) }},
}

// serveEngine serves h with engine e on a loopback port until the test ends
// or stop is called; tweak adjusts the server's limits first. stop cancels
// and returns the serve error.
func serveEngine(t *testing.T, e engineCase, h *Handler, tweak func(*http.Server)) (addr string, stop func() error) {
	t.Helper()
	ln, err := e.listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(h, zerolog.Nop())
	if tweak != nil {
		tweak(srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		defer ln.Close()
		if e.fast {
			done <- ServeFast(ctx, h, srv, ln, 2*time.Second, FastOptions{Loops: 2})
		} else {
			done <- Serve(ctx, srv, ln, 2*time.Second)
		}
	}()
	var once sync.Once
	var serr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case serr = <-done:
			case <-time.After(10 * time.Second):
				t.Error("serve did not return")
			}
		})
		return serr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String(), stop
}

// fastTestHandler is testHandler with stand-ins for the pages at their
// paths (/healthz, /health and /status.json: what the host-less rule and
// the handoff care about is the path, not the page; internal/pages tests
// the pages) and an extra path, served by net/http after a handoff.
func fastTestHandler(t *testing.T) *Handler {
	h := testHandler(t)
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "page host="+r.Host+"\n")
	})
	for _, p := range []string{PathHealthz, PathHealth, PathStatusJSON} {
		h.Handle(p, page)
	}
	h.Handle("/extra", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "extra "+r.Method+" "+r.URL.RawQuery+"\n")
	}))
	return h
}

var dateRE = regexp.MustCompile(`\r\nDate: [^\r]*\r\n`)

// exchange sends req on a new connection and reads until the server
// closes it (or a short idle wait passes for keep-alive answers).
func exchange(t *testing.T, addr, req string) string {
	t.Helper()
	got, err := exchangeErr(addr, req)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// exchangeErr is exchange for use off the test's goroutine.
func exchangeErr(addr, req string) (string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		return "", err
	}
	// Half-close after the requests: both engines answer every request
	// they were sent and then close, so the answer is everything up to
	// EOF, however slow the machine (a silence would cut a slow second
	// answer of a kept-alive pair).
	_ = c.(*net.TCPConn).CloseWrite()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	all, _ := io.ReadAll(c)
	return dateRE.ReplaceAllString(string(all), "\r\nDate: X\r\n"), nil
}

// allEngines runs get(addr of engine i, case j) for every engine and case
// at once, each on its own connection, and returns the answers by engine
// then case: the exchanges spend their time waiting on idle and header
// timeouts, so they wait together.
func allEngines(t *testing.T, addrs []string, cases int, get func(addr string, j int) (string, error)) [][]string {
	t.Helper()
	got := make([][]string, len(addrs))
	errs := make([][]error, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		got[i], errs[i] = make([]string, cases), make([]error, cases)
		for j := range cases {
			wg.Go(func() { got[i][j], errs[i][j] = get(a, j) })
		}
	}
	wg.Wait()
	for i := range errs {
		for j, err := range errs[i] {
			if err != nil {
				t.Fatalf("engine %d, case %d: %v", i, j, err)
			}
		}
	}
	return got
}

// hostlessChecks are HTTP/1.1 health checks without a Host header, as old
// HAProxy configurations send them ("option httpchk GET /status?...
// HTTP/1.1"): answered as if they had one, by both engines.
var hostlessChecks = []string{
	"GET /status?SERVICE=squid&PORT=80 HTTP/1.1\r\nconnection: close\r\n\r\n", // HAProxy 2.6's exact bytes
	"GET /status?SERVICE=web&PORT=443 HTTP/1.1\r\nConnection: close\r\n\r\n",
	"GET /status HTTP/1.1\nConnection: close\n\n",
	"HEAD /status?SERVICE=squid&PORT=80 HTTP/1.1\r\nConnection: close\r\n\r\n",
	"OPTIONS / HTTP/1.1\r\nConnection: close\r\n\r\n",
	"OPTIONS /status HTTP/1.1\r\nConnection: close\r\n\r\n",
	"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
	"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n",
	"HEAD /healthz HTTP/1.1\r\nUser-Agent: check\r\nConnection: close\r\n\r\n",
	"POST /status HTTP/1.1\r\nConnection: close\r\n\r\n",
	"POST /healthz HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
	// Kept alive and pipelined, with a handoff (/healthz) in between.
	"GET /status HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\nGET /status?SERVICE=squid&PORT=80 HTTP/1.1\r\nConnection: close\r\n\r\n",
	"GET /health HTTP/1.1\r\n\r\nGET /status HTTP/1.1\r\n\r\nOPTIONS / HTTP/1.1\r\nConnection: close\r\n\r\n",
}

// hostlessStrict are HTTP/1.1 requests without Host that stay a 400: any
// other path, or a request the scan does not follow.
var hostlessStrict = []string{
	"GET /extra HTTP/1.1\r\nConnection: close\r\n\r\n",
	"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
	"GET /status.json HTTP/1.1\r\nConnection: close\r\n\r\n",
	"OPTIONS /healthz/ HTTP/1.1\r\nConnection: close\r\n\r\n",
	"GET /%73tatus HTTP/1.1\r\nConnection: close\r\n\r\n",
	"GET http://x/status HTTP/1.1\r\nConnection: close\r\n\r\n",
	"GET /status HTTP/1.1\r\nX: a\r\n folded\r\nConnection: close\r\n\r\n",
	"GET /status HTTP/1.2\r\nConnection: close\r\n\r\n",
	// After a body the rest of the connection is left to net/http.
	"POST /extra HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nabGET /status HTTP/1.1\r\nConnection: close\r\n\r\n",
}

// TestHostlessChecks: a health check without Host gets its real answer (not
// 400) from both engines; any other path stays a 400.
func TestHostlessChecks(t *testing.T) {
	for _, e := range testEngines {
		addr, _ := serveEngine(t, e, fastTestHandler(t), nil)
		for _, req := range hostlessChecks {
			got := exchange(t, addr, req)
			n := strings.Count(req, " HTTP/1.1")
			if strings.Count(got, "HTTP/1.1 ") != n || strings.Contains(got, "400 Bad Request") {
				t.Errorf("%s: %.100q: want %d answers and no 400, got %q", e.name, req, n, got)
			}
		}
		for _, req := range hostlessStrict {
			got := exchange(t, addr, req)
			if !strings.Contains(got, "HTTP/1.1 400 Bad Request") {
				t.Errorf("%s: %.100q: want a 400, got %q", e.name, req, got)
			}
		}
	}
	// The answers themselves.
	addr, _ := serveEngine(t, testEngines[1], fastTestHandler(t), nil)
	for req, want := range map[string]string{
		hostlessChecks[0]: "HTTP/1.1 200 OK\r\n",
		hostlessChecks[1]: "HTTP/1.1 404 Not Found\r\n",
		hostlessChecks[4]: "HTTP/1.1 200 OK\r\nAllow: GET, HEAD, OPTIONS\r\n",
		hostlessChecks[6]: "HTTP/1.1 200 OK\r\n",
		hostlessChecks[9]: "HTTP/1.1 405 Method Not Allowed\r\n",
	} {
		if got := exchange(t, addr, req); !strings.HasPrefix(got, want) {
			t.Errorf("%.100q: got %q, want it to start with %q", req, got, want)
		}
	}
	// /health reaches the page mounted there (internal/pages mounts
	// /healthz's answer), with the Host it did not send left empty.
	if got := exchange(t, addr, hostlessChecks[7]); !strings.HasPrefix(got, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(got, "\r\n\r\npage host=\n") {
		t.Errorf("/health: got %q, want the page mounted there", got)
	}
}

// TestFastSameBytes sends the same raw requests to net/http and to the fast
// engine and wants the same bytes back (the Date value aside).
func TestFastSameBytes(t *testing.T) {
	t.Parallel()
	reqs := []string{
		"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"GET /status?SERVICE=squid&PORT=80 HTTP/1.0\r\n\r\n",
		"GET /status?SERVICE=squid&PORT=80&VIP=192.0.2.10 HTTP/1.0\r\n\r\n",
		"GET /status?SERVICE=squid&PORT=80&VIP=192.0.2.11 HTTP/1.0\r\n\r\n",
		"GET /status?SERVICE=web&PORT=443 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"GET /status?SERVICE=nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"GET /status?SERVICE=../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"GET /status?SERVICE=%73quid&PORT=80 HTTP/1.0\r\n\r\n",
		"GET /status?VIP=192.0.2.10%2C192.0.2.10&SERVICE=squid&PORT=80 HTTP/1.0\r\n\r\n",
		"GET /status?%zz HTTP/1.0\r\n\r\n",
		"HEAD /status?SERVICE=squid&PORT=80 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"HEAD /status HTTP/1.0\r\n\r\n",
		"OPTIONS / HTTP/1.0\r\n\r\n",
		"OPTIONS /status?SERVICE=nope HTTP/1.0\r\n\r\n",
		"OPTIONS /other HTTP/1.0\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"POST /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"DELETE /anything HTTP/1.0\r\n\r\n",
		"POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
		"POST /status HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"GET /status HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"GET /extra?a=b HTTP/1.0\r\n\r\n",
		"GET /%73tatus HTTP/1.0\r\n\r\n",
		"GET /status/ HTTP/1.0\r\n\r\n",
		"GET http://x/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		// Connection handling.
		"GET /status HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /status HTTP/1.0\r\n\r\n",
		"GET /status HTTP/1.0\r\nConnection: Keep-Alive, close\r\n\r\n",
		"GET /status HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\nGET /status HTTP/1.1\r\nHost: x\r\nConnection: CLOSE\r\n\r\n",
		"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n",
		"GET /status HTTP/1.1\nHost: x\nConnection: close\n\n",
		"\r\nGET /status HTTP/1.0\r\n\r\n",
		// Connection tokens as net/http reads them: bounded by spaces,
		// commas or tabs; on HTTP/1.0 keep-alive wins over close.
		"GET /status HTTP/1.1\r\nHost: x\r\nConnection: foo close\r\n\r\nGET /status HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\tfoo\r\n\r\nGET /status HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /status HTTP/1.1\r\nHost: x\r\nConnection: closed\r\n\r\nGET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"GET /status HTTP/1.0\r\nConnection: close, keep-alive\r\n\r\nGET /status HTTP/1.0\r\n\r\n",
		"GET /status HTTP/1.0\r\nConnection: foo keep-alive\r\n\r\nGET /status HTTP/1.0\r\n\r\n",
		"GET /status HTTP/1.0\r\nConnection: KEEP-ALIVE\r\n\r\nGET /status HTTP/1.0\r\n\r\n",
		// Blank lines after a POST are tolerated (net/http: "RFC 7230
		// section 3 tolerance for old buggy clients"), not after a GET.
		"POST /status HTTP/1.1\r\nHost: x\r\n\r\n\r\n\r\nGET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"POST /status HTTP/1.1\r\nHost: x\r\n\r\n\n\nGET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"POST /status HTTP/1.1\r\nHost: x\r\n\r\n\r\n\r\n\r\nGET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"GET /status HTTP/1.1\r\nHost: x\r\n\r\n\r\nGET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		// Pipelining, with a handoff in the middle.
		"GET /status HTTP/1.1\r\nHost: x\r\n\r\nHEAD /status HTTP/1.1\r\nHost: x\r\n\r\nGET /extra?p HTTP/1.1\r\nHost: x\r\n\r\nGET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		// Bad input.
		"GET /status\r\n\r\n",
		"GET /status FOO/1.1\r\nHost: x\r\n\r\n",
		"GET /status HTTP/1.1\r\n\r\n",
		"GET /status HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET /status HTTP/1.1\r\nHost: a b\r\n\r\n",
		"GET /status HTTP/2.0\r\nHost: x\r\n\r\n",
		"GET /status HTTP/1.1\r\nHost: x\r\nNo-Colon\r\n\r\n",
		"GET /status HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
		"GET /status HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n",
		"G@T /status HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /sta\x01tus HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /status HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
		"GET /status HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
		"GET /status HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 16<<10) + "\r\n\r\n",
	}
	reqs = append(reqs, hostlessChecks...)
	reqs = append(reqs, hostlessStrict...)
	var addrs []string
	for _, e := range testEngines {
		a, _ := serveEngine(t, e, fastTestHandler(t), nil)
		addrs = append(addrs, a)
	}
	got := allEngines(t, addrs, len(reqs), func(addr string, j int) (string, error) { return exchangeErr(addr, reqs[j]) })
	for j, req := range reqs {
		want := got[0][j]
		for i, e := range testEngines[1:] {
			if got[i+1][j] != want {
				t.Errorf("%s: request %.120q\n got %q\nwant %q", e.name, req, got[i+1][j], want)
			}
		}
	}
}

// TestFastCounts: every answer is counted exactly once, as with net/http.
func TestFastCounts(t *testing.T) {
	reqs := "GET /status HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /status?SERVICE=nope HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /status?SERVICE=..x HTTP/1.1\r\nHost: x\r\n\r\n" +
		"OPTIONS / HTTP/1.1\r\nHost: x\r\n\r\n" +
		"PUT /status HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /extra HTTP/1.1\r\nHost: x\r\n\r\n" +
		"HEAD /status?SERVICE=squid&PORT=80 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	var counts []map[int]uint64
	for _, e := range testEngines {
		h := fastTestHandler(t)
		addr, stop := serveEngine(t, e, h, nil)
		if got := exchange(t, addr, reqs); strings.Count(got, "HTTP/1.1 ") != 8 {
			t.Fatalf("%s: want 8 answers, got %q", e.name, got)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		m := map[int]uint64{}
		h.Codes().Each(func(code int, n uint64) { m[code] = n })
		counts = append(counts, m)
	}
	want := map[int]uint64{200: 3, 400: 1, 404: 2, 405: 1}
	for i, m := range counts {
		if len(m) != len(want) {
			t.Errorf("%s: counts %v, want %v", testEngines[i].name, m, want)
		}
		for code, n := range want {
			if m[code] != n {
				t.Errorf("%s: counts %v, want %v", testEngines[i].name, m, want)
			}
		}
	}
}

// TestFastKeepAliveIdle: an idle keep-alive connection is closed after the
// idle timeout, one that keeps asking is not.
func TestFastKeepAliveIdle(t *testing.T) {
	t.Parallel()
	for _, e := range testEngines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			const idle = time.Second
			addr, _ := serveEngine(t, e, fastTestHandler(t), func(s *http.Server) { s.IdleTimeout = idle })
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			var lastSent time.Time
			for i := 0; i < 4; i++ {
				if i > 0 {
					// Active well within the idle timeout (room for a
					// starved client): kept open.
					time.Sleep(idle / 10)
				}
				lastSent = time.Now()
				if _, err := io.WriteString(c, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := br.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("idle connection: read %d, %v; want EOF", n, err)
			}
			// The server's idle time starts after the last request was
			// sent, so the close cannot be seen sooner than idle after
			// that (a busy machine only makes it later).
			if d := time.Since(lastSent); d < idle-50*time.Millisecond || d > 4*time.Second {
				t.Fatalf("idle connection closed %v after the last request, want about %v", d, idle)
			}
		})
	}
}

// TestFastGracefulStop: on stop, a connection accepted before it gets its
// answer (with Connection: close), an idle keep-alive connection is closed,
// a handed-over connection is finished by net/http, and no new connection
// is accepted.
func TestFastGracefulStop(t *testing.T) {
	t.Parallel()
	for _, e := range testEngines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			addr, stop := serveEngine(t, e, fastTestHandler(t), nil)
			dial := func() net.Conn {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				return c
			}
			// idle: served once, kept alive.
			idle := dial()
			_, _ = io.WriteString(idle, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
			ibr := bufio.NewReader(idle)
			if res, err := http.ReadResponse(ibr, nil); err != nil || res.StatusCode != 200 {
				t.Fatalf("idle conn: %v %v", res, err)
			} else {
				_, _ = io.Copy(io.Discard, res.Body)
			}
			// partial: half a request sent before the stop.
			partial := dial()
			_, _ = io.WriteString(partial, "GET /status?SERVICE=squid")
			// handed: a page request handed to net/http, kept alive.
			handed := dial()
			_, _ = io.WriteString(handed, "GET /extra HTTP/1.1\r\nHost: x\r\n\r\n")
			hbr := bufio.NewReader(handed)
			if res, err := http.ReadResponse(hbr, nil); err != nil || res.StatusCode != 200 {
				t.Fatalf("handed conn: %v %v", res, err)
			} else {
				_, _ = io.Copy(io.Discard, res.Body)
			}
			time.Sleep(50 * time.Millisecond) // the partial bytes are read
			stopped := make(chan error, 1)
			go func() { stopped <- stop() }()
			// The idle one is closed.
			if n, err := ibr.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("idle keep-alive conn after stop: read %d, %v; want EOF", n, err)
			}
			// New connections are refused.
			deadline := time.Now().Add(5 * time.Second)
			for {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					break
				}
				c.Close()
				if time.Now().After(deadline) {
					t.Fatal("still accepting after stop")
				}
				time.Sleep(5 * time.Millisecond)
			}
			// The partial request completes and is answered, then closed.
			_, _ = io.WriteString(partial, "&PORT=80 HTTP/1.1\r\nHost: x\r\n\r\n")
			b, err := io.ReadAll(partial)
			if err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 200 OK\r\n") || !strings.Contains(string(b), "\r\nConnection: close\r\n") || !strings.HasSuffix(string(b), check.BodyOK) {
				t.Fatalf("partial request after stop: %v %q", err, b)
			}
			// The handed-over connection is closed by net/http.
			if n, err := hbr.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("handed conn after stop: read %d, %v; want EOF", n, err)
			}
			select {
			case err := <-stopped:
				if err != nil {
					t.Fatalf("serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("serve did not return")
			}
		})
	}
}

// TestFastManyConns: many concurrent keep-alive clients, with pipelining,
// all get right answers (run with -race).
func TestFastManyConns(t *testing.T) {
	t.Parallel()
	for _, e := range testEngines[1:] {
		t.Run(e.name, func(t *testing.T) {
			addr, _ := serveEngine(t, e, fastTestHandler(t), nil)
			var wg sync.WaitGroup
			for i := 0; i < 32; i++ {
				wg.Go(func() {
					c, err := net.Dial("tcp", addr)
					if err != nil {
						t.Error(err)
						return
					}
					defer c.Close()
					br := bufio.NewReader(c)
					for j := 0; j < 50; j++ {
						// The deadline is per exchange: it catches a
						// connection the server stops answering, not the
						// whole run's pace (3,200 requests under -race
						// took over 10 s on one busy core).
						_ = c.SetDeadline(time.Now().Add(10 * time.Second))
						req := "GET /status?SERVICE=squid&PORT=80 HTTP/1.1\r\nHost: x\r\n\r\n"
						if j%10 == 9 {
							req = "GET /extra HTTP/1.1\r\nHost: x\r\n\r\n"
						}
						if _, err := io.WriteString(c, req+req); err != nil {
							t.Error(err)
							return
						}
						for k := 0; k < 2; k++ {
							res, err := http.ReadResponse(br, nil)
							if err != nil {
								t.Error(err)
								return
							}
							b, _ := io.ReadAll(res.Body)
							if res.StatusCode != 200 || (string(b) != check.BodyOK && !strings.HasPrefix(string(b), "extra")) {
								t.Errorf("got %d %q", res.StatusCode, b)
								return
							}
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

// TestFastMaxConns: connections over the bound are closed at once.
func TestFastMaxConns(t *testing.T) {
	t.Parallel()
	ln, err := ListenReusePort("127.0.0.1:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	h := fastTestHandler(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- ServeFast(ctx, h, NewServer(h, zerolog.Nop()), ln, time.Second, FastOptions{MaxConns: 2})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		ln.Close()
	}()
	held := holdConns(t, ln.Addr().String(), "GET /status HTTP/1.1\r\nHost: x\r\n\r\n", 2)
	// Over the limit: a 503 saying why, and a clean close.
	if got := exchange(t, ln.Addr().String(), "GET /status HTTP/1.0\r\n\r\n"); got != respOverloaded {
		t.Fatalf("third connection: %q, want the overload answer", got)
	}
	held[0].Close()
	servedAgain(t, ln.Addr().String(), "after one closed")
}

// holdConns opens n connections to addr, each asking req and answered 200,
// and keeps them open (the test's cleanup closes them).
func holdConns(t *testing.T, addr, req string, n int) []net.Conn {
	t.Helper()
	var held []net.Conn
	for i := range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_, _ = io.WriteString(c, req)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if res, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || res.StatusCode != 200 {
			t.Fatalf("conn %d: %v %v", i, res, err)
		}
		held = append(held, c)
	}
	return held
}

// servedAgain waits up to 5 s for a new connection to addr to be answered
// 200 (a connection closed elsewhere frees its place asynchronously).
func servedAgain(t *testing.T, addr, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		got := exchange(t, addr, "GET /status HTTP/1.0\r\n\r\n")
		if strings.HasPrefix(got, "HTTP/1.0 200 OK") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not served %s: %q", what, got)
		}
	}
}

// TestFastOptionsDefaults: the engine takes the server's limits.
func TestFastOptionsDefaults(t *testing.T) {
	srv := NewServer(http.NotFoundHandler(), zerolog.Nop())
	srv.ReadHeaderTimeout = time.Millisecond
	o := FastOptions{}.withDefaults(srv)
	if o.ReadHeaderTimeout != time.Millisecond || o.IdleTimeout != IdleTimeout || o.WriteTimeout != WriteTimeout || o.MaxHeaderBytes != MaxHeaderBytes || o.Loops < 1 || o.MaxConns != DefaultFastMaxConns {
		t.Fatalf("defaults: %+v", o)
	}
}

func fastBenchChecker(tb testing.TB) *check.Checker {
	st := testsnap.Store(tb, map[string]string{"status.html": "", "squid.80": "", "web.443": "drain 50% # deploy 1234"}, map[string]cache.VIPFlags{"192.0.2.10": cache.OnOther})
	return check.New(check.Options{Store: st})
}

// TestFastAnswerNoAllocs: parsing and answering a health check allocates
// nothing.
func TestFastAnswerNoAllocs(t *testing.T) {
	c := fastBenchChecker(t)
	req := []byte("GET /status?SERVICE=web&PORT=443&VIP=192.0.2.10 HTTP/1.1\r\nHost: 127.0.0.1:8001\r\nUser-Agent: HAProxy\r\nConnection: keep-alive\r\n\r\n")
	out := make([]byte, 0, 4096)
	var h fastHandler
	var r fastReq
	var codes CodeCounts
	now := time.Now()
	allocs := testing.AllocsPerRun(1000, func() {
		n, oc := parseRequest(req, MaxHeaderBytes, &r)
		if oc != reqAnswer || n != len(req) {
			t.Fatalf("outcome %d n %d", oc, n)
		}
		out, _ = fastAnswer(out[:0], c, &codes, &r, h.dateFor(now), false)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per request", allocs)
	}
}

func BenchmarkFastParseAnswer(b *testing.B) {
	c := fastBenchChecker(b)
	req := []byte("GET /status?SERVICE=squid&PORT=80 HTTP/1.1\r\nHost: 127.0.0.1:8001\r\nUser-Agent: wrk\r\n\r\n")
	out := make([]byte, 0, 4096)
	var h fastHandler
	var r fastReq
	var codes CodeCounts
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = parseRequest(req, MaxHeaderBytes, &r)
		out, _ = fastAnswer(out[:0], c, &codes, &r, h.dateFor(now), false)
	}
}

// FuzzFastParse feeds arbitrary bytes to the parser and, when it answers,
// to the answer writer: no panic, consumed bytes within the input, the
// query inside the request, and an answer that net/http's client reads.
func FuzzFastParse(f *testing.F) {
	for _, s := range []string{
		"GET /status HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /status?SERVICE=squid&PORT=80&VIP=192.0.2.10 HTTP/1.0\r\n\r\n",
		"OPTIONS / HTTP/1.0\r\n\r\n",
		"PUT /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"\r\n\nGET /status HTTP/1.1\nHost: x\n\n",
		"GET /status HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"GET /status HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\nGET /",
		"GET /st",
		"\r",
	} {
		f.Add([]byte(s), uint16(64))
	}
	c := fastBenchChecker(f)
	var codes CodeCounts
	f.Fuzz(func(t *testing.T, b []byte, limit uint16) {
		lim := int(limit%(MaxHeaderBytes+1)) + 1
		var r fastReq
		n, oc := parseRequest(b, lim, &r)
		if n < 0 || n > len(b) || n > lim {
			t.Fatalf("n = %d for %d bytes (limit %d)", n, len(b), lim)
		}
		switch oc {
		case reqIncomplete, reqBad, reqTooLarge:
			if n != 0 {
				t.Fatalf("outcome %d with n = %d", oc, n)
			}
			return
		case reqHandoff:
			return
		case reqAnswer:
		default:
			t.Fatalf("outcome %d", oc)
		}
		if len(r.query) > 0 {
			q := string(r.query)
			if !strings.Contains(string(b[:n]), q) {
				t.Fatalf("query %q not in the request", q)
			}
		}
		var h fastHandler
		out, closeAfter := fastAnswer(nil, c, &codes, &r, h.dateFor(time.Now()), false)
		method := "GET"
		if r.head {
			method = "HEAD"
		}
		res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(out))), &http.Request{Method: method})
		if err != nil {
			t.Fatalf("answer %q: %v", out, err)
		}
		body, err := io.ReadAll(res.Body)
		if err != nil || (r.head && len(body) != 0) {
			t.Fatalf("answer %q: body %q %v", out, body, err)
		}
		if closeAfter != res.Close {
			t.Fatalf("answer %q: close %v, response says %v", out, closeAfter, res.Close)
		}
	})
}

// TestFastPartialRequests: a request cut off by the read-header timeout or
// by the client's half-close gets what net/http answers (400), a
// connection that never sent a byte is closed silently.
func TestFastPartialRequests(t *testing.T) {
	t.Parallel()
	// A whole request line without its line end is read as the line by
	// net/http (its bufio.Reader hands over what came before the
	// timeout): one that parses leaves net/http waiting for headers, and
	// the timeout then closes silently; one that does not gets the 400.
	// From 4,096 bytes on (bufio's buffer) net/http is waiting for the rest
	// of the line, and closes silently.
	reqs := []string{"", "\x16\x03\x01\x02\x00", "GET /status", "GET /status HTTP/1.1\r\nHost: x\r\n",
		"GET /status HTTP/1.1", "GET /status?SERVICE=a&PORT=80 HTTP/1.0", "get /status HTTP/1.1", "GET /status HTTP/2.0",
		"GET /status HTTP/1.1\r", "GET /status HTTP/9", "GET /%zz HTTP/1.1", "GET status HTTP/1.1", "GET  /status HTTP/1.1",
		"GET /" + strings.Repeat("a", 5000) + " HTTP/1.1", "GET /" + strings.Repeat("a", 4081) + " HTTP/1.\r"}
	var addrs []string
	// The half-closed cases are answered at the client's EOF, not at the
	// timeout: they go to servers whose timeout never fires in the test.
	// At 1 s, a server goroutine starved that long on a busy core closed
	// with the request unread, and the client saw a reset, not the answer.
	halfAddr := map[string]string{}
	for _, e := range testEngines {
		// Long enough that a client starved by a busy machine still sends
		// its bytes in time (the cases wait it out together).
		a, _ := serveEngine(t, e, fastTestHandler(t), func(s *http.Server) { s.ReadHeaderTimeout = time.Second })
		addrs = append(addrs, a)
		halfAddr[a], _ = serveEngine(t, e, fastTestHandler(t), func(s *http.Server) { s.ReadHeaderTimeout = time.Minute })
	}
	type tc struct {
		req  string
		half bool
	}
	var cases []tc
	for _, half := range []bool{false, true} {
		for _, req := range reqs {
			cases = append(cases, tc{req, half})
		}
	}
	got := allEngines(t, addrs, len(cases), func(addr string, j int) (string, error) {
		if cases[j].half {
			addr = halfAddr[addr]
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, cases[j].req)
		if cases[j].half {
			_ = c.(*net.TCPConn).CloseWrite()
		}
		b, err := io.ReadAll(c)
		if err != nil {
			return "", fmt.Errorf("%q: %w", cases[j].req, err)
		}
		return string(b), nil
	})
	for j, c := range cases {
		want := got[0][j]
		for i, e := range testEngines[1:] {
			if got[i+1][j] != want {
				t.Errorf("%s: %q (half-close %v): got %q, want %q", e.name, c.req, c.half, got[i+1][j], want)
			}
		}
	}
}

// TestFastBackpressure: a client that pipelines many requests and reads
// slowly fills the socket; the engine keeps the rest of the answers until
// the socket takes them and loses none.
func TestFastBackpressure(t *testing.T) {
	t.Parallel()
	for _, e := range testEngines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			addr, _ := serveEngine(t, e, fastTestHandler(t), nil)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.(*net.TCPConn).SetReadBuffer(32 << 10)
			// The deadline is renewed as answers come (below): it
			// catches answers that stop coming, not the pace (net/http's
			// 5,000 took over 20 s on one busy core under -race).
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			// 30,000 answers (6 MB) overflow the client's 32 KB buffer
			// and the server's socket buffer (at most 4 MB on Linux).
			// net/http, whose goroutine simply blocks in write, is the
			// reference here, not the subject: 5,000 (1 MB) still back it
			// up, at a sixth of the race detector's time.
			n := 30000
			if !e.fast {
				n = 5000
			}
			go func() {
				req := strings.Repeat("GET /status?SERVICE=squid&PORT=80 HTTP/1.1\r\nHost: x\r\n\r\n", 100)
				for i := 0; i < n/100; i++ {
					if _, err := io.WriteString(c, req); err != nil {
						return
					}
				}
			}()
			// Let the buffers fill: the client's receive queue holds
			// half its buffer's worth of answers, unread.
			rc, err := c.(*net.TCPConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			testenv.PollUntil(t, "the client's receive queue fills", 20*time.Second, func() (bool, string) {
				inq := 0
				_ = rc.Control(func(fd uintptr) { inq, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
				return inq >= 16<<10, fmt.Sprintf("%d bytes unread", inq)
			})
			br := bufio.NewReader(c)
			// The first answer is parsed; the others must be the same
			// bytes, the Date value aside (it has a fixed width), which
			// is much cheaper to check 30,000 times under -race.
			var tmpl []byte
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					t.Fatalf("answer 0: %v", err)
				}
				tmpl = append(tmpl, line...)
				if string(line) == "\r\n" {
					break
				}
			}
			res, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(tmpl)), nil)
			if err != nil || res.StatusCode != 200 || res.ContentLength != int64(len(check.BodyOK)) {
				t.Fatalf("answer 0: %q: %v", tmpl, err)
			}
			body := make([]byte, len(check.BodyOK))
			if _, err := io.ReadFull(br, body); err != nil || string(body) != check.BodyOK {
				t.Fatalf("answer 0 body %q: %v", body, err)
			}
			tmpl = append(tmpl, body...)
			d := bytes.Index(tmpl, []byte("\r\nDate: "))
			if d < 0 {
				t.Fatalf("answer 0 has no Date: %q", tmpl)
			}
			dateEnd := d + len("\r\nDate: ") + len(http.TimeFormat)
			ans := make([]byte, len(tmpl))
			for i := 1; i < n; i++ {
				if i%100 == 0 {
					_ = c.SetDeadline(time.Now().Add(20 * time.Second))
				}
				if _, err := io.ReadFull(br, ans); err != nil {
					t.Fatalf("answer %d: %v", i, err)
				}
				if !bytes.Equal(ans[:d], tmpl[:d]) || !bytes.Equal(ans[dateEnd:], tmpl[dateEnd:]) {
					t.Fatalf("answer %d: %q, want %q", i, ans, tmpl)
				}
			}
		})
	}
}

// TestListenReusePort: the sockets share one port, a port already in use
// is refused (a second daemon must not take half the checks), IPv6 works.
func TestListenReusePort(t *testing.T) {
	t.Parallel()
	ln, err := ListenReusePort("127.0.0.1:0", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if n := ln.(interface{ Loops() int }).Loops(); n != 3 {
		t.Fatalf("%d sockets, want 3", n)
	}
	if _, err := ListenReusePort(ln.Addr().String(), 2); err == nil {
		t.Fatal("second bind of a port in use succeeded")
	}
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := ListenReusePort(held.Addr().String(), 2); err == nil {
		t.Fatal("bind of a port net.Listen holds succeeded")
	}
	if l6, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Log("no IPv6 loopback:", err)
	} else {
		l6.Close()
		ln6, err := ListenReusePort("[::1]:0", 2)
		if err != nil {
			t.Fatal(err)
		}
		defer ln6.Close()
		e := engineCase{"fast-ipv6", true, func(string) (net.Listener, error) { return ln6, nil }}
		addr, _ := serveEngine(t, e, fastTestHandler(t), nil)
		if got := exchange(t, addr, "GET /status HTTP/1.0\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.0 200 OK") {
			t.Fatalf("IPv6: %q", got)
		}
	}
}

// TestFastPipelinedPartial: a client that keeps pipelining, each write
// finishing one request and starting the next, makes progress on every
// read; the header timeout runs per request, from its first byte (as
// net/http's), so the connection lives past ReadHeaderTimeout as long as
// each request completes in time.
func TestFastPipelinedPartial(t *testing.T) {
	t.Parallel()
	// Each step takes an eighth of the header timeout (the daemon's own,
	// 2 s); twelve steps last one and a half header timeouts.
	const rht = ReadHeaderTimeout
	for _, e := range testEngines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			addr, _ := serveEngine(t, e, fastTestHandler(t), func(s *http.Server) { s.ReadHeaderTimeout = rht })
			// A client starved for most of a header timeout between two
			// steps (a saturated machine) may rightly be cut off: such a
			// run proves nothing and is tried again. Without the stall a
			// cut is a failure, every time.
			for try := 1; ; try++ {
				stalled, err := pipelineSteadily(addr, rht)
				if err == nil {
					return
				}
				if !stalled || try == 3 {
					t.Fatalf("try %d (client stalled: %v): %v", try, stalled, err)
				}
				t.Logf("try %d: the client stalled, so it may rightly be cut off (%v); again", try, err)
			}
		})
	}
}

// pipelineSteadily sends 12 requests to addr, each write finishing one
// request and starting the next, an eighth of rht apart, and reads the 12
// answers. stalled says whether a gap between two writes came near rht.
func pipelineSteadily(addr string, rht time.Duration) (stalled bool, err error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return false, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	const head, tail = "GET /status?SERVICE=squid&PORT=80 HTTP/1.1\r\nHost: x\r\n", "\r\n"
	const steps = 12
	answers := make(chan error, 1)
	go func() {
		br := bufio.NewReader(c)
		for i := range steps {
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				answers <- fmt.Errorf("answer %d: %w", i, err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				answers <- fmt.Errorf("answer %d: %d", i, res.StatusCode)
				return
			}
		}
		answers <- nil
	}()
	if _, err := io.WriteString(c, head); err != nil {
		return false, err
	}
	last := time.Now()
	for i := range steps {
		// Pacing, not ordering: each request completes well within the
		// header timeout, the next one starts at once.
		time.Sleep(rht / 8)
		next := head
		if i == steps-1 {
			next = ""
		}
		if gap := time.Since(last); gap > rht/2 {
			stalled = true
		}
		if _, err := io.WriteString(c, tail+next); err != nil {
			return stalled, fmt.Errorf("write %d: %w", i, err)
		}
		last = time.Now()
	}
	return stalled, <-answers
}
