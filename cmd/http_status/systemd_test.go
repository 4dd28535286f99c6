//go:build linux

package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/faulttest"
	"github.com/http-status/http_status/internal/testenv"
)

// TestNotifyLifecycle runs the binary with a real unixgram NOTIFY_SOCKET and
// checks the sd_notify sequence READY -> RELOADING/READY (SIGHUP) ->
// STOPPING (SIGTERM), STATUS= updates, watchdog pings, and that --lameduck
// keeps serving after STOPPING=1.
func TestNotifyLifecycle(t *testing.T) {
	t.Parallel()
	sock, msgs := notifySocket(t)
	dir := t.TempDir()
	port, agentPort := testenv.FreePort(t), testenv.FreePort(t)
	p := startDaemon(t, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=400000"},
		"--dir", dir, "--port", strconv.Itoa(port), "--agent-port", strconv.Itoa(agentPort),
		"--vips=false", "--lameduck=3s", "--log-format=json")

	var seq []string // lifecycle messages in order
	life := func(m string) bool {
		for _, k := range []string{"READY=1", "RELOADING=1", "STOPPING=1"} {
			if faulttest.HasLine(m, k) {
				seq = append(seq, k)
				return true
			}
		}
		return false
	}
	m := faulttest.ExpectNotify(t, msgs, 20*time.Second, "READY=1", life)
	if !faulttest.HasLine(m, "READY=1") || !faulttest.HasLine(m, "STATUS=0/0 services up, 0 addresses") {
		t.Fatalf("first lifecycle message = %q, want READY=1 with STATUS=0/0 services up, 0 addresses", m)
	}
	// The listener is bound before READY=1.
	if code := getStatus(t, http.DefaultClient, port, "SERVICE=squid&PORT=80"); code != 404 {
		t.Fatalf("after READY=1: /status = %d, want 404", code)
	}
	faulttest.ExpectNotify(t, msgs, 10*time.Second, "WATCHDOG=1", func(m string) bool { return !life(m) && m == "WATCHDOG=1" })

	if err := os.WriteFile(filepath.Join(dir, "squid.80"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	faulttest.ExpectNotify(t, msgs, 10*time.Second, "STATUS=1/1 services up", func(m string) bool {
		return !life(m) && strings.HasPrefix(m, "STATUS=1/1 services up")
	})
	if got := agentAsk(t, agentPort, "squid.80\n"); got != "up ready 100%\n" {
		t.Fatalf("agent before stop = %q", got)
	}

	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	m = faulttest.ExpectNotify(t, msgs, 10*time.Second, "RELOADING=1", life)
	if !faulttest.HasLine(m, "RELOADING=1") || !strings.Contains(m, "\nMONOTONIC_USEC=") || !strings.HasSuffix(m, "\nSTATUS=reloading") {
		t.Fatalf("after SIGHUP: %q, want RELOADING=1 with MONOTONIC_USEC= and STATUS=reloading", m)
	}
	m = faulttest.ExpectNotify(t, msgs, 15*time.Second, "READY=1 after reload", life)
	if !faulttest.HasLine(m, "READY=1") || !strings.Contains(m, "STATUS=1/1 services up") {
		t.Fatalf("after reload: %q, want READY=1 with STATUS=1/1 services up", m)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	faulttest.ExpectNotify(t, msgs, 10*time.Second, "STOPPING=1", life)
	// Lameduck: still answering from the flags after STOPPING=1.
	if code := getStatus(t, http.DefaultClient, port, "SERVICE=squid&PORT=80"); code != 200 {
		t.Fatalf("during lameduck: /status = %d, want 200", code)
	}
	if got := agentAsk(t, agentPort, "squid.80\n"); !strings.HasPrefix(got, "up drain") {
		t.Fatalf("agent during lameduck = %q, want up drain", got)
	}
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0", code)
	}
	want := []string{"READY=1", "RELOADING=1", "READY=1", "STOPPING=1"}
	if fmt.Sprint(seq) != fmt.Sprint(want) {
		t.Fatalf("lifecycle = %v, want %v", seq, want)
	}
}

// agentAsk sends line to the agent port and returns its one-line reply.
func agentAsk(t *testing.T, port int, line string) string {
	t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("agent dial: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, line); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

func getStatus(t *testing.T, c *http.Client, port int, query string) int {
	t.Helper()
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/status?%s", port, query))
	if err != nil {
		t.Fatalf("GET /status: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// activatedGet GETs url, a socket systemd-socket-activate (p) listens on,
// and returns the answer's status code. The tool binds asynchronously:
// the GET is retried until it listens, for 20 s; the first connection
// starts the daemon.
func activatedGet(t *testing.T, p *daemonProc, url string) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get(url)
		if err == nil {
			res.Body.Close()
			return res.StatusCode
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer on the activated socket %s: %v\n%s", url, err, p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSocketActivation runs the binary under systemd-socket-activate, which
// binds the port, starts the daemon on the first connection and passes the
// socket as fd 3 named "http". --port names a port the test holds, so a
// daemon that ignored the inherited socket would fail to start.
func TestSocketActivation(t *testing.T) {
	t.Parallel()
	sa, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("systemd-socket-activate not installed (Debian package systemd)")
	}
	sock, msgs := notifySocket(t)
	dir := t.TempDir()
	port := testenv.FreePort(t)
	cmd := exec.Command(sa, "-l", "127.0.0.1:"+strconv.Itoa(port), "--fdname=http", "-E", "NOTIFY_SOCKET="+sock,
		testBinary(t), "--dir", dir, "--ip", "127.0.0.1", "--port", strconv.Itoa(busyPort(t)), "--vips=false", "--log-format=json")
	cmd.Env = cleanEnv()
	p := startProc(t, cmd)

	// The first connection starts the daemon and waits in the backlog.
	if code := activatedGet(t, p, fmt.Sprintf("http://127.0.0.1:%d/status", port)); code != 404 {
		t.Fatalf("/status without status.html = %d, want 404", code)
	}
	faulttest.ExpectNotify(t, msgs, 10*time.Second, "READY=1", func(m string) bool { return faulttest.HasLine(m, "READY=1") })
	if err := os.WriteFile(filepath.Join(dir, "status.html"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if !pollStatus(t, port, "", 200, 10*time.Second) {
		t.Fatal("/status never became 200 after touching status.html")
	}
	if !strings.Contains(p.stderr.String(), "using the socket passed by systemd") {
		t.Errorf("log does not say the socket came from systemd:\n%s", p.stderr.String())
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if c := p.wait(t, 20*time.Second); c != 0 {
		t.Fatalf("exit code = %d, want 0", c)
	}
}

func pollStatus(t *testing.T, port int, query string, want int, timeout time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if getStatus(t, http.DefaultClient, port, query) == want {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// activatedDaemon starts the binary with ln passed as systemd would: fd 3,
// LISTEN_FDS=1, LISTEN_FDNAMES=name and LISTEN_PID set by a tiny shell to
// its own PID right before exec, so it equals the daemon's PID.
func activatedDaemon(t *testing.T, f *os.File, name string, env []string, args ...string) *daemonProc {
	t.Helper()
	sh := append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, testBinary(t)}, args...)
	cmd := exec.Command("/bin/sh", sh...)
	cmd.Env = append(cleanEnv(), append([]string{"LISTEN_FDS=1", "LISTEN_FDNAMES=" + name}, env...)...)
	cmd.ExtraFiles = []*os.File{f}
	return startProc(t, cmd)
}

// TestRestartUnderLoad holds the listening socket as systemd does, keeps
// clients polling /status, and replaces the daemon (SIGTERM, then a new
// process on the same inherited socket). No check may fail: connections made
// while no daemon runs wait in the kernel's backlog.
func TestRestartUnderLoad(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	f, port := heldSocket(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "squid.80"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sock, msgs := notifySocket(t)
	args := []string{"--dir", dir, "--ip", "127.0.0.1", "--port", strconv.Itoa(busyPort(t)), "--vips=false", "--log-format=json"}
	env := []string{"NOTIFY_SOCKET=" + sock}
	ready := func(m string) bool { return faulttest.HasLine(m, "READY=1") }

	cur := activatedDaemon(t, f, "http", env, args...)
	faulttest.ExpectNotify(t, msgs, 20*time.Second, "READY=1 from the first daemon", ready)

	// Clients like load balancers: three open a new connection per check
	// (HAProxy), one reuses a keep-alive connection.
	var ok, failed atomic.Int64
	var failMu sync.Mutex
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	url := fmt.Sprintf("http://127.0.0.1:%d/status?SERVICE=squid&PORT=80", port)
	for _, keepAlive := range []bool{false, false, false, true} {
		c := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableKeepAlives: !keepAlive}}
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(url)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 {
						ok.Add(1)
						continue
					}
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
				failed.Add(1)
				failMu.Lock()
				failures = append(failures, fmt.Sprintf("keepalive=%v: %v", keepAlive, err))
				failMu.Unlock()
			}
		})
	}
	stopClients := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopClients()
	waitCount := func(target int64, what string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for ok.Load() < target {
			if time.Now().After(deadline) {
				t.Fatalf("only %d checks answered waiting for %s", ok.Load(), what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitCount(200, "the first daemon")

	const restarts = 3
	for i := range restarts {
		_ = cur.cmd.Process.Signal(syscall.SIGTERM)
		if c := cur.wait(t, 20*time.Second); c != 0 {
			t.Fatalf("daemon %d exit code = %d, want 0", i+1, c)
		}
		before := ok.Load()
		cur = activatedDaemon(t, f, "http", env, args...)
		faulttest.ExpectNotify(t, msgs, 20*time.Second, "READY=1 from the next daemon", ready)
		waitCount(before+200, "the next daemon")
	}
	stopClients()

	_ = cur.cmd.Process.Signal(syscall.SIGTERM)
	if c := cur.wait(t, 20*time.Second); c != 0 {
		t.Fatalf("last daemon exit code = %d, want 0", c)
	}
	t.Logf("%d checks answered across %d restarts, %d failed", ok.Load(), restarts, failed.Load())
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d checks failed across the restarts, first: %v", n, failures[:min(len(failures), 5)])
	}
}

// TestBadInheritedSocket: a descriptor that is not a listening socket is a
// startup error, not a silently missing listener.
func TestBadInheritedSocket(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	regular, err := os.Create(filepath.Join(t.TempDir(), "not-a-socket"))
	if err != nil {
		t.Fatal(err)
	}
	defer regular.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	udpFile, err := udp.(*net.UDPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer udpFile.Close()

	for _, tc := range []struct {
		name string
		f    *os.File
		want string
	}{
		{"regular file", regular, "not a socket"},
		{"udp socket", udpFile, "not a listening socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := activatedDaemon(t, tc.f, "http", nil, "--dir", t.TempDir(), "--port", "0", "--vips=false", "--log-format=json")
			if c := p.wait(t, 20*time.Second); c != 1 {
				t.Fatalf("exit code = %d, want 1; output:\n%s", c, p.stderr.String())
			}
			if out := p.stderr.String(); !strings.Contains(out, tc.want) || !strings.Contains(out, `systemd socket \"http\" (fd 3)`) {
				t.Fatalf("output does not say %q about fd 3:\n%s", tc.want, out)
			}
		})
	}
}

// heldSocket is a listening socket on a free loopback port, held as systemd
// holds one for socket activation: its file is passed to each daemon, and
// connections wait in its backlog while none runs. Both close with the test.
func heldSocket(t *testing.T) (*os.File, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, ln.Addr().(*net.TCPAddr).Port
}
