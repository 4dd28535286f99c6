//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/http-status/http_status/httpd"
	"github.com/http-status/http_status/internal/daemon"
	"github.com/http-status/http_status/internal/pages"
	"github.com/http-status/http_status/internal/testenv"
)

// pagePaths are what --pages moves off the check port (GET / from a
// browser is checked apart: without Accept: text/html it is a 404 anyway).
var pagePaths = []string{httpd.PathBoard, httpd.PathStatusJSON, httpd.PathStatusText, httpd.PathMetrics, httpd.PathEvents}

// getAccept is GET base+q with an Accept header; HEAD for /events, which
// would stream.
func getAccept(t *testing.T, base, q, accept string) (int, string) {
	t.Helper()
	method := http.MethodGet
	if q == httpd.PathEvents {
		method = http.MethodHead
	}
	req, err := http.NewRequest(method, base+q, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, q, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// openEventsAt opens an /events stream on addr and returns its status code;
// a 200 stream stays open until the test ends.
func openEventsAt(t *testing.T, addr string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET /events on %s: %v", addr, err)
	}
	if res.StatusCode == 200 {
		line, err := bufio.NewReader(res.Body).ReadString('\n')
		if err != nil || line != "retry: 2000\n" {
			t.Fatalf("/events on %s: first line %q, %v", addr, line, err)
		}
	}
	return res.StatusCode
}

// TestPagesOwnListener: with --pages 127.0.0.1:P the pages, /events and
// /metrics answer on P and are 404s on the check port (counted there like
// any unknown path), /status stays on the check port alone, /healthz is on
// both; a page request on P wakes the connection sampler and /events keeps
// its 64-stream limit there. Both engines.
func TestPagesOwnListener(t *testing.T) {
	t.Parallel()
	for _, engine := range []string{daemon.EngineFast, daemon.EngineNetHTTP} {
		t.Run(strings.ReplaceAll(engine, "/", "_"), func(t *testing.T) {
			t.Parallel()
			testPagesOwnListener(t, engine)
		})
	}
}

func testPagesOwnListener(t *testing.T, engine string) {
	dir := filepath.Join(t.TempDir(), "flags")
	writeFlags(t, dir, map[string]string{"status.html": "", "squid.80": "", "web.443": "drain 50% # deploy 7"})
	pagesAddr := testenv.ClosedAddr(t)
	d := runDaemon(t, "--dir", dir, "--vips=false", "--engine", engine, "--pages", pagesAddr)
	pagesBase := "http://" + pagesAddr

	// The check port: /status and /healthz, nothing else.
	if code, body := d.get(t, "/status?SERVICE=squid&PORT=80"); code != 200 {
		t.Fatalf("check port /status: %d %q", code, body)
	}
	for _, p := range []string{httpd.PathHealthz, httpd.PathHealth} {
		if code, body := d.get(t, p); code != 200 || !strings.HasPrefix(body, "ok\n") {
			t.Errorf("check port %s: %d %q", p, code, body)
		}
	}
	notFound := 0
	for _, p := range pagePaths {
		code, body := getAccept(t, d.base, p, "")
		if code != 404 || (p != httpd.PathEvents && body != httpd.BodyNotFound) {
			t.Errorf("check port %s: %d %q, want the plain 404", p, code, body)
		}
		notFound++
	}
	if code, body := getAccept(t, d.base, "/", "text/html"); code != 404 || body != httpd.BodyNotFound {
		t.Errorf("check port / for a browser: %d %q, want the plain 404", code, body)
	}
	notFound++

	// The pages' own port.
	for _, p := range []string{httpd.PathHealthz, httpd.PathHealth} {
		if code, body := getAccept(t, pagesBase, p, ""); code != 200 || !strings.HasPrefix(body, "ok\n") {
			t.Errorf("pages port %s: %d %q", p, code, body)
		}
	}
	if code, body := getAccept(t, pagesBase, "/status?SERVICE=squid&PORT=80", ""); code != 404 || body != httpd.BodyPagesNotFound {
		t.Errorf("pages port /status: %d %q, want its 404", code, body)
	}
	if code, body := getAccept(t, pagesBase, httpd.PathBoard, "text/html"); code != 200 || !strings.Contains(body, "web.443") {
		t.Errorf("pages port /board: %d", code)
	}
	if code, body := getAccept(t, pagesBase, "/", "text/html"); code != 200 || !strings.Contains(body, "on the check port, not here") {
		t.Errorf("pages port index: %d %q", code, body)
	}
	if code, body := getAccept(t, pagesBase, httpd.PathStatusText, ""); code != 200 || !strings.Contains(body, "web.443 drain code 404 weight 50%") {
		t.Errorf("pages port /status.txt: %d %q", code, body)
	}
	// A page request wakes the connection sampler (the page waits up to a
	// second for counts; a later one has them).
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := getAccept(t, pagesBase, httpd.PathStatusJSON, "")
		var v pages.StatusJSON
		if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil || len(v.Services) != 3 {
			t.Fatalf("pages port /status.json: %d %v\n%s", code, err, body)
		}
		if v.ConnsError != "" {
			t.Logf("connection counts unavailable here (%s): the sampler's wake-up is not checked", v.ConnsError)
			break
		}
		if v.ConnsLive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/status.json on the pages port did not wake the connection sampler")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// /metrics there counts the check port's answers: its 404s included,
	// none of the pages port's.
	code, body := getAccept(t, pagesBase, httpd.PathMetrics, "")
	for _, want := range []string{
		fmt.Sprintf(`http_status_requests_total{code="404"} %d`+"\n", notFound),
		`http_status_service_state{service="web.443",state="drain"} 1`,
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("pages port /metrics lacks %q (code %d)", want, code)
		}
	}
	// /events there, with its limit of streams.
	for i := range pages.MaxEventSubscribers {
		if code := openEventsAt(t, pagesAddr); code != 200 {
			t.Fatalf("stream %d on the pages port: %d", i+1, code)
		}
	}
	if code := openEventsAt(t, pagesAddr); code != 503 {
		t.Errorf("stream %d on the pages port: %d, want 503", pages.MaxEventSubscribers+1, code)
	}

	if err := d.stop(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, d.out)
	}
	if c, err := net.Dial("tcp", pagesAddr); err == nil {
		c.Close()
		t.Error("the pages port still accepts after the daemon stopped")
	}
}

// TestPagesOff: with --pages off no page, /events or /metrics answers on
// the check port, no other port is opened, and /status, OPTIONS and
// /healthz keep answering.
func TestPagesOff(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "flags")
	writeFlags(t, dir, map[string]string{"status.html": "", "squid.80": "maint # secret reason"})
	d := runDaemon(t, "--dir", dir, "--vips=false", "--pages", "off")
	for _, p := range pagePaths {
		if code, body := getAccept(t, d.base, p, "text/html"); code != 404 || (p != httpd.PathEvents && body != httpd.BodyNotFound) {
			t.Errorf("%s: %d %q, want the plain 404", p, code, body)
		}
	}
	if code, body := getAccept(t, d.base, "/", "text/html"); code != 404 || body != httpd.BodyNotFound {
		t.Errorf("/ for a browser: %d %q", code, body)
	}
	if code, body := d.get(t, "/status?SERVICE=squid&PORT=80"); code != 503 || !strings.Contains(body, "secret reason") {
		t.Errorf("/status: %d %q", code, body)
	}
	if code, _ := d.get(t, httpd.PathHealthz); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	req, _ := http.NewRequest(http.MethodOptions, d.base+"/", nil)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Errorf("OPTIONS /: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	if err := d.stop(t); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if strings.Contains(d.out.String(), "pages and /metrics listening") {
		t.Errorf("--pages off opened a pages listener:\n%s", d.out)
	}
}

// TestPagesFlagErrors: a --pages that is not port, off or IP:PORT is a
// usage error (exit 2), and an address in use fails the start (exit 1);
// both say --pages.
func TestPagesFlagErrors(t *testing.T) {
	t.Parallel()
	run := func(t *testing.T, pagesFlag string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, testBinary(t), "--dir", t.TempDir(), "--vips=false", "-p", strconv.Itoa(testenv.FreePort(t)), "--pages", pagesFlag)
		cmd.Env = cleanEnv()
		testenv.DieWithTest(cmd)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("--pages %s: %v, want a failed start\n%s", pagesFlag, err, out)
		return 0, ""
	}
	for _, bad := range []string{"nonsense", "8003", ":8003", "localhost:8003", "127.0.0.1:80030", "127.0.0.1:08003", "on"} {
		if code, out := run(t, bad); code != 2 || !strings.Contains(out, fmt.Sprintf("--pages %q", bad)) {
			t.Errorf("--pages %s: exit %d, want 2 naming the flag\n%s", bad, code, out)
		}
	}
	inUse := "127.0.0.1:" + strconv.Itoa(busyPort(t))
	if code, out := run(t, inUse); code != 1 || !strings.Contains(out, "--pages "+inUse) || !strings.Contains(out, "address already in use") {
		t.Errorf("--pages on a port in use: exit %d, want 1 naming the flag\n%s", code, out)
	}
}

// TestPagesSocketActivation: a socket systemd passes under the name
// "pages" (FileDescriptorName=pages) serves the pages, as --pages ADDR
// would, even without --pages; a --pages naming another address is
// overridden by it, with a warning naming both.
func TestPagesSocketActivation(t *testing.T) {
	t.Parallel()
	sa, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("systemd-socket-activate not installed (Debian package systemd)")
	}
	run := func(t *testing.T, flags ...string) (logs, pagesSock string) {
		t.Helper()
		httpAddr, pagesAddr := testenv.ClosedAddr(t), testenv.ClosedAddr(t)
		args := []string{"-l", httpAddr, "-l", pagesAddr, "--fdname=http:pages",
			testBinary(t), "--dir", t.TempDir(), "--vips=false", "--log-format=json"}
		cmd := exec.Command(sa, append(args, flags...)...)
		cmd.Env = cleanEnv()
		p := startProc(t, cmd)
		if code := activatedGet(t, p, "http://"+pagesAddr+httpd.PathStatusJSON); code != 200 {
			t.Fatalf("/status.json on the pages socket: %d", code)
		}
		if code, _ := getAccept(t, "http://"+pagesAddr, httpd.PathMetrics, ""); code != 200 {
			t.Errorf("/metrics on the pages socket: %d", code)
		}
		if code, body := getAccept(t, "http://"+httpAddr, httpd.PathStatusJSON, ""); code != 404 || body != httpd.BodyNotFound {
			t.Errorf("/status.json on the http socket: %d %q, want the plain 404", code, body)
		}
		if code, _ := getAccept(t, "http://"+httpAddr, httpd.PathHealthz, ""); code != 200 {
			t.Errorf("/healthz on the http socket: %d", code)
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if code := p.wait(t, 20*time.Second); code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
		return p.stderr.String(), pagesAddr
	}
	t.Run("plain", func(t *testing.T) {
		t.Parallel()
		if logs, _ := run(t); strings.Contains(logs, "systemd passed") {
			t.Errorf("a warning about the sockets with no flag to disagree:\n%s", logs)
		}
	})
	t.Run("flag_disagrees", func(t *testing.T) {
		t.Parallel()
		other := testenv.ClosedAddr(t)
		logs, sock := run(t, "--pages", other)
		if !strings.Contains(logs, "systemd passed the pages socket "+sock+", but the command line says --pages "+other) {
			t.Errorf("no warning naming the socket %s and --pages %s:\n%s", sock, other, logs)
		}
	})
}
