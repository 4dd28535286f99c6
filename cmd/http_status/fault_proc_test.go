//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/faulttest"
)

// Faults against the real binary: what a process sees (signals, file
// descriptors, a hostile network peer).

// TestFaultDirRemovedUnderLoad: the status directory is removed and
// recreated several times while clients poll; every check is answered
// (200 or 404, never an error), and the state ends exact.
func TestFaultDirRemovedUnderLoad(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "flags")
	writeFlags(t, dir, map[string]string{"squid.80": "", "web.443": "drain"})
	d := runDaemon(t, "--dir", dir)
	baseG := faulttest.MetricValue(t, d.base, "go_goroutines")
	load := faulttest.StartLoad(d.base, "/status?SERVICE=squid&PORT=80", 4, func(c int) bool { return c == 200 || c == 404 })
	for i := 0; i < 5; i++ {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		d.waitCode(t, "/status?SERVICE=squid&PORT=80", 404)
		faulttest.WaitHealthz(t, d.base, "degraded: status directory missing")
		load.WaitMore(t, 100) // clients keep polling while it is gone
		// Recreate with a different content each round.
		writeFlags(t, dir, map[string]string{"squid.80": "", "web.443": fmt.Sprintf("up %d%%", 10+i), fmt.Sprintf("round.%d", i): "maint"})
		d.waitCode(t, "/status?SERVICE=squid&PORT=80", 200)
		load.WaitMore(t, 100)
	}
	load.Finish(t)
	faulttest.ExpectExact(t, d.base, map[string]string{"squid.80": "up", "web.443": "up", "round.4": "maint"})
	if v := faulttest.StatusJSON(t, d.base); !v.DirOK || *v.Services[2].Weight != 14 {
		t.Errorf("after recreation: %+v", v)
	}
	faulttest.WaitHealthz(t, d.base, "ok\n")
	faulttest.GoroutinesBack(t, d.base, baseG)
	if err := d.stop(t); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

// TestFaultSIGHUPUnderLoad: SIGHUP (a full rescan) under load fails no
// request, and the state is exact afterwards.
func TestFaultSIGHUPUnderLoad(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "flags")
	writeFlags(t, dir, map[string]string{"squid.80": "", "status.html": "", "web.443": "drain # deploy"})
	d := runDaemon(t, "--dir", dir)
	baseG := faulttest.MetricValue(t, d.base, "go_goroutines")
	load := faulttest.StartLoad(d.base, "/status?SERVICE=squid&PORT=80", 4, func(c int) bool { return c == 200 })
	before := faulttest.MetricValue(t, d.base, "http_status_watcher_rescans_total")
	for i := 0; i < 20; i++ {
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	deadline := time.Now().Add(10 * time.Second)
	for faulttest.MetricValue(t, d.base, "http_status_watcher_rescans_total") <= before {
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not rescan")
		}
		time.Sleep(10 * time.Millisecond)
	}
	load.Finish(t)
	faulttest.ExpectExact(t, d.base, map[string]string{"squid.80": "up", "status.html": "up", "web.443": "drain"})
	faulttest.GoroutinesBack(t, d.base, baseG)
	if err := d.stop(t); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if !strings.Contains(d.out.String(), "SIGHUP: rescanning") {
		t.Error("SIGHUP not logged")
	}
}

// raiseNofile lifts this process's descriptor limit to n when it is lower
// (as root), restoring it at the end; children inherit it. It reports
// whether n descriptors are available.
func raiseNofile(t *testing.T, n uint64) bool {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		return false
	}
	if old.Cur >= n {
		return true
	}
	lim := syscall.Rlimit{Cur: n, Max: max(n, old.Max)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return false
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
	return true
}

// TestFaultIdleConnections: 5,000 keep-alive connections, each having
// made one request, sit idle. The daemon still answers new checks and its
// pages, and once they close it gives the descriptors and goroutines back.
func TestFaultIdleConnections(t *testing.T) {
	t.Parallel()
	const conns = 5000
	// The client ends live here, the server ends in the daemon: each
	// process needs a little over conns descriptors.
	if !raiseNofile(t, conns+1000) {
		t.Skipf("cannot get %d file descriptors (RLIMIT_NOFILE; needs root to raise)", conns+1000)
	}
	dir := filepath.Join(t.TempDir(), "flags")
	writeFlags(t, dir, map[string]string{"squid.80": "", "web.443": "drain"})
	d := runDaemon(t, "--dir", dir)
	baseG := faulttest.MetricValue(t, d.base, "go_goroutines")
	addr := strings.TrimPrefix(d.base, "http://")

	open := make([]net.Conn, conns)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	const workers = 32
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			for i := w; i < conns; i += workers {
				c, err := idleConn(addr)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("connection %d: %w", i, err)
					}
					mu.Unlock()
					return
				}
				open[i] = c
			}
		})
	}
	wg.Wait()
	closeAll := func() {
		for _, c := range open {
			if c != nil {
				c.Close()
			}
		}
	}
	defer closeAll()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	fds, g := faulttest.MetricValue(t, d.base, "process_open_fds"), faulttest.MetricValue(t, d.base, "go_goroutines")
	t.Logf("with %d idle connections the daemon has %v descriptors, %v goroutines, RSS %v MB", conns, fds, g, faulttest.MetricValue(t, d.base, "process_resident_memory_bytes")/(1<<20))
	if fds < conns {
		t.Errorf("daemon holds %v descriptors, want >= %d idle connections", fds, conns)
	}
	// New checks and pages still get answers.
	for _, q := range []string{"/status?SERVICE=squid&PORT=80", "/status?SERVICE=web&PORT=443", "/healthz", "/status.json", "/metrics"} {
		code, _ := faulttest.HTTPGet(t, d.base+q)
		if want := map[bool]int{true: 404, false: 200}[strings.Contains(q, "web")]; code != want {
			t.Errorf("%s with %d idle connections: %d, want %d", q, conns, code, want)
		}
	}
	// Each idle connection still works.
	for _, i := range []int{0, conns / 2, conns - 1} {
		if err := oneRequest(open[i]); err != nil {
			t.Errorf("idle connection %d: %v", i, err)
		}
	}
	closeAll()
	// Descriptors and goroutines come back.
	deadline := time.Now().Add(20 * time.Second)
	for {
		fds, g := faulttest.MetricValue(t, d.base, "process_open_fds"), faulttest.MetricValue(t, d.base, "go_goroutines")
		if fds < 100 && g <= baseG+5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after closing: %v descriptors, %v goroutines (%v before)", fds, g, baseG)
		}
		time.Sleep(50 * time.Millisecond)
	}
	faulttest.ExpectExact(t, d.base, map[string]string{"squid.80": "up", "web.443": "drain"})
	if err := d.stop(t); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

// idleConn connects and makes one keep-alive request.
func idleConn(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if err := oneRequest(c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func oneRequest(c net.Conn) error {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET /status?SERVICE=squid&PORT=80 HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return err
	}
	res, err := http.ReadResponse(bufio.NewReaderSize(c, 512), nil)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("status %d", res.StatusCode)
	}
	return nil
}

// TestFaultSlowloris: clients that trickle their headers a byte at a time
// are cut off (ReadHeaderTimeout) while checks keep being answered.
func TestFaultSlowloris(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "flags")
	writeFlags(t, dir, map[string]string{"squid.80": ""})
	d := runDaemon(t, "--dir", dir)
	addr := strings.TrimPrefix(d.base, "http://")
	baseG := faulttest.MetricValue(t, d.base, "go_goroutines")
	// Checks every millisecond or so: the load is there to be answered
	// meanwhile, not to load the machine.
	load := faulttest.StartPacedLoad(d.base, "/status?SERVICE=squid&PORT=80", 2, time.Millisecond, func(c int) bool { return c == 200 })

	const slow = 200
	results := make(chan error, slow)
	for i := 0; i < slow; i++ {
		go func() { results <- slowClient(addr, 30*time.Second) }()
	}
	for i := 0; i < slow; i++ {
		if err := <-results; err != nil {
			t.Errorf("slow client: %v", err)
		}
	}
	load.Finish(t)
	faulttest.GoroutinesBack(t, d.base, baseG)
	faulttest.ExpectExact(t, d.base, map[string]string{"squid.80": "up"})
	if err := d.stop(t); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

// slowClient sends a request one byte every 100 ms and returns nil once the
// server has closed the connection (before limit), an error otherwise.
func slowClient(addr string, limit time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	closed := make(chan struct{})
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(limit))
		_, _ = io.Copy(io.Discard, c) // returns when the server closes (or the deadline)
		close(closed)
	}()
	req := "GET /status?SERVICE=squid&PORT=80 HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 1000) + "\r\n\r\n"
	start := time.Now()
	for i := 0; i < len(req); i++ {
		select {
		case <-closed:
			return nil
		case <-time.After(100 * time.Millisecond):
		}
		if _, err := c.Write([]byte{req[i]}); err != nil {
			return nil // the server closed first
		}
		if time.Since(start) > limit {
			break
		}
	}
	select {
	case <-closed:
		if time.Since(start) >= limit {
			return errors.New("server kept a slowloris connection open")
		}
		return nil
	case <-time.After(limit):
		return errors.New("server kept a slowloris connection open")
	}
}

// TestFaultOversizedRequests: huge request lines, headers and bodies get a
// 4xx or are cut off; the daemon stays up with its memory bounded and its
// state exact.
func TestFaultOversizedRequests(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "flags")
	writeFlags(t, dir, map[string]string{"squid.80": ""})
	d := runDaemon(t, "--dir", dir)
	addr := strings.TrimPrefix(d.base, "http://")
	baseG := faulttest.MetricValue(t, d.base, "go_goroutines")
	vips := strings.TrimSuffix(strings.Repeat("127.0.0.1,", 65), ",")
	cases := []struct {
		name, req string
		want      string // prefix of the status line
	}{
		{"1 MB request line", "GET /status?SERVICE=" + strings.Repeat("a", 1<<20) + " HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 431"},
		{"long SERVICE under the header limit", "GET /status?SERVICE=" + strings.Repeat("a", 5000) + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "HTTP/1.1 400"},
		{"65 VIPs", "GET /status?SERVICE=squid&PORT=80&VIP=" + vips + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "HTTP/1.1 400"},
		{"many headers", "GET /status HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-A: b\r\n", 5000) + "\r\n", "HTTP/1.1 431"},
		{"one 1 MB header", "GET /status HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 1<<20) + "\r\n\r\n", "HTTP/1.1 431"},
		{"huge chunk size", "GET /status HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nffffffffffffffffff\r\n", "HTTP/1.1 "},
		{"POST with 8 MB body", "POST /status.json HTTP/1.1\r\nHost: x\r\nContent-Length: 8388608\r\nConnection: close\r\n\r\n" + strings.Repeat("z", 8<<20), "HTTP/1.1 405"},
		{"GET with 8 MB body", "GET /status?SERVICE=squid&PORT=80 HTTP/1.1\r\nHost: x\r\nContent-Length: 8388608\r\nConnection: close\r\n\r\n" + strings.Repeat("z", 8<<20), "HTTP/1.1 200"},
		{"bad request line", "GET\x00/status HTTP/1.1\r\n\r\n", "HTTP/1.1 400"},
		{"not HTTP", strings.Repeat("\x16\x03\x01\x02\x00", 1000), "HTTP/1.1 400"},
	}
	// The cases run at once (the group returns when all are done): "not
	// HTTP" waits out the header timeout.
	t.Run("cases", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				got, err := rawExchange(addr, tc.req)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(got, tc.want) {
					t.Fatalf("got %.120q, want %q...", got, tc.want)
				}
			})
		}
	})
	if rss := faulttest.MetricValue(t, d.base, "process_resident_memory_bytes"); rss > 200<<20 {
		t.Errorf("RSS %v bytes after oversized requests", rss)
	}
	faulttest.ExpectExact(t, d.base, map[string]string{"squid.80": "up"})
	faulttest.GoroutinesBack(t, d.base, baseG)
	if err := d.stop(t); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

// rawExchange writes req (ignoring a write cut short by the server, which
// may answer and close early) and returns what the server sent back.
func rawExchange(addr, req string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	go func() { _, _ = io.WriteString(c, req) }()
	b, err := io.ReadAll(c)
	if len(b) > 0 {
		return string(b), nil
	}
	return "", fmt.Errorf("no answer: %v", err)
}
