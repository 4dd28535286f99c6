//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/nstest"
	"github.com/http-status/http_status/internal/pages"
	"github.com/http-status/http_status/internal/testenv"
)

// holdServer accepts connections on ln and keeps them open until the client
// closes (then closes its end, as a server does) or the test ends.
func holdServer(t *testing.T, ln net.Listener) {
	t.Helper()
	testenv.AcceptEach(t, ln, func(c net.Conn) {
		t.Cleanup(func() { c.Close() })
		_, _ = io.Copy(io.Discard, c)
		c.Close()
	})
}

// loopbackPort listens on 127.0.0.1 and ::1 on one port, serving with
// holdServer.
func loopbackPort(t *testing.T) int {
	t.Helper()
	port, l4, l6 := testenv.ListenBoth(t)
	holdServer(t, l4)
	holdServer(t, l6)
	return port
}

// dialLoopback opens n4 IPv4 and n6 IPv6 connections to port.
func dialLoopback(t *testing.T, port, n4, n6 int) []net.Conn {
	t.Helper()
	var cs []net.Conn
	for i := range n4 + n6 {
		network, host := "tcp4", "127.0.0.1"
		if i >= n4 {
			network, host = "tcp6", "::1"
		}
		c, err := net.Dial(network, net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cs = append(cs, c)
	}
	return cs
}

// ctlAsync runs a control command in the background.
type ctlAsync struct {
	out, errb *testenv.LogBuffer
	done      chan int
}

func startCtl(args ...string) *ctlAsync {
	a := &ctlAsync{out: &testenv.LogBuffer{}, errb: &testenv.LogBuffer{}, done: make(chan int, 1)}
	go func() { a.done <- runCtl(args, a.out, a.errb, time.Now()) }()
	return a
}

// waitOutput polls until out contains want.
func waitOutput(t *testing.T, what string, out interface{ String() string }, want string) {
	t.Helper()
	testenv.PollUntil(t, what, 15*time.Second, func() (bool, string) {
		s := out.String()
		return strings.Contains(s, want), s
	})
}

func flagContent(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return "(removed)"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDrainWaitLoopback: drain --wait blocks while IPv4 and IPv6
// connections are open, prints one line per change, returns within about a
// second of the last close, and only then applies --then.
func TestDrainWaitLoopback(t *testing.T) {
	t.Parallel() // mostly waiting on sockets and timers
	port := loopbackPort(t)
	cs := dialLoopback(t, port, 2, 1)
	dir := t.TempDir()
	flag := filepath.Join(dir, fmt.Sprintf("web.%d", port))
	a := startCtl("drain", "web", "--port", strconv.Itoa(port), "--reason", "deploy 9", "--wait", "30s", "--then", "maint", "--min-wait", "0", "--dir", dir)
	waitOutput(t, "3 connections counted", a.out, fmt.Sprintf("3 connections on port %d", port))
	if got := flagContent(t, flag); got != "drain # deploy 9\n" {
		t.Fatalf("while waiting the flag holds %q, want the drain", got)
	}
	cs[0].Close()
	waitOutput(t, "2 left", a.out, "2 connections on port")
	cs[2].Close() // the IPv6 one
	waitOutput(t, "1 left", a.out, "1 connection on port")
	select {
	case code := <-a.done:
		t.Fatalf("returned %d with a connection open:\n%s%s", code, a.out, a.errb)
	default:
	}
	if got := flagContent(t, flag); got != "drain # deploy 9\n" {
		t.Fatalf("--then applied before idle: %q", got)
	}
	closed := time.Now()
	cs[1].Close()
	select {
	case code := <-a.done:
		took := time.Since(closed)
		t.Logf("drain --wait returned %v after the last close", took)
		if code != 0 {
			t.Fatalf("exit %d:\n%s%s", code, a.out, a.errb)
		}
		if took > 2*time.Second {
			t.Errorf("returned %v after the last close, want about a second at most", took)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("still waiting 15 s after the last close:\n%s", a.out)
	}
	if got := flagContent(t, flag); got != "maint # deploy 9\n" {
		t.Errorf("after --then maint: %q", got)
	}
	out := a.out.String()
	for _, want := range []string{"web." + strconv.Itoa(port) + ": drain # deploy 9", "drained: no connections", "web." + strconv.Itoa(port) + ": maint # deploy 9"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\r") {
		t.Error("a live line on a non-terminal")
	}
}

// TestDrainWaitDeadline: at the deadline it exits 1, says how many remain,
// and leaves drain; --min-wait holds an idle service until it is over.
func TestDrainWaitDeadline(t *testing.T) {
	t.Parallel() // mostly waiting on sockets and timers
	port := loopbackPort(t)
	dialLoopback(t, port, 1, 0)
	dir := t.TempDir()
	flag := filepath.Join(dir, fmt.Sprintf("api.%d", port))
	start := time.Now()
	code, out, errs := ctlRunAt(time.Now(), "drain", fmt.Sprintf("api.%d", port), "--wait", "1s", "--then", "maint", "--min-wait", "0", "--dir", dir)
	if code != 1 || !strings.Contains(errs, fmt.Sprintf("deadline: 1 connection still open on port %d", port)) || !strings.Contains(errs, "left in drain") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	if d := time.Since(start); d < time.Second || d > 5*time.Second {
		t.Errorf("took %v for --wait 1s", d)
	}
	if got := flagContent(t, flag); got != "drain\n" {
		t.Errorf("after the deadline the flag holds %q, want drain", got)
	}

	// No connections at all: done once --min-wait is over, not before.
	idle := loopbackPort(t)
	start = time.Now()
	code, out, errs = ctlRunAt(time.Now(), "drain", "idle", "-p", strconv.Itoa(idle), "--wait", "10s", "--min-wait", "1s", "--then", "inactivate", "--dir", dir)
	if code != 0 || time.Since(start) < time.Second {
		t.Fatalf("exit %d after %v\n%s%s", code, time.Since(start), out, errs)
	}
	if got := flagContent(t, filepath.Join(dir, fmt.Sprintf("idle.%d", idle))); got != "(removed)" {
		t.Errorf("--then inactivate left %q", got)
	}
}

// TestDrainWaitSomeoneElse: a flag changed by someone else while waiting
// ends the wait without --then; conn= in the flag decides the port counted
// and survives the rewrite.
func TestDrainWaitSomeoneElse(t *testing.T) {
	t.Parallel() // mostly waiting on sockets and timers
	port := loopbackPort(t)
	cs := dialLoopback(t, port, 1, 0)
	dir := t.TempDir()
	flag := filepath.Join(dir, "web.8080")
	if err := os.WriteFile(flag, []byte(fmt.Sprintf("up conn=%d\n", port)), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startCtl("drain", "web.8080", "--wait", "30s", "--then", "maint", "--min-wait", "0", "--dir", dir)
	waitOutput(t, "counting conn= port", a.out, fmt.Sprintf("1 connection on port %d", port))
	if got := flagContent(t, flag); got != fmt.Sprintf("drain conn=%d\n", port) {
		t.Fatalf("drain dropped conn=: %q", got)
	}
	if code, _, errs := ctlRunAt(time.Now(), "activate", "web.8080", "--dir", dir); code != 0 {
		t.Fatal(errs)
	}
	select {
	case code := <-a.done:
		if code != 1 || !strings.Contains(a.errb.String(), "the flag was changed (now up) while waiting; --then not applied") {
			t.Fatalf("exit %d: %s", code, a.errb)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("still waiting after someone else activated the service")
	}
	cs[0].Close()
	if got := flagContent(t, flag); got != fmt.Sprintf("up conn=%d\n", port) {
		t.Errorf("flag %q", got)
	}
}

func TestDrainWaitUsage(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"maint", "x.80", "--wait", "1s"},
		{"drain", "x.80", "--then", "maint"},
		{"drain", "x.80", "--min-wait", "1s"},
		{"drain", "x.80", "--idle", "5s"},
		{"drain", "x.80", "--wait", "1s", "--idle", "0s"},
		{"drain", "x.80", "--wait", "1s", "--idle", "-1s"},
		{"drain", "x.80", "--wait", "1s", "--then", "up"},
		{"drain", "x.80", "--wait", "1s", "--min-wait", "2s"},
		{"drain", "x.80", "--wait", "-1s"},
		{"drain", "x.80", "y.80", "--wait", "1s"},
		{"drain", "status.html", "--wait", "1s"}, // no port to count
		{"drain", "x.80", "--conn-port", "70000"},
		{"inactivate", "x.80", "--conn-port", "80"},
	} {
		code, _, errs := ctlRunAt(time.Now(), append(args, "--dir", dir)...)
		if code != 2 || errs == "" {
			t.Errorf("%v: exit %d, %q; want 2", args, code, errs)
		}
	}
	if des, _ := os.ReadDir(dir); len(des) != 0 {
		t.Errorf("usage errors wrote %d files", len(des))
	}
}

// TestDrainWaitBinary runs the real binary: Ctrl-C (SIGINT) leaves the
// drain and says so (exit 130); as an unprivileged user who may write the
// status directory, with no daemon running, a second drain --wait counts
// the connection, and returns once it closes.
func TestDrainWaitBinary(t *testing.T) {
	t.Parallel() // mostly waiting on sockets and timers
	port := loopbackPort(t)
	cs := dialLoopback(t, port, 0, 1)
	// A directory others may enter, holding a copy of the binary and the
	// status directory.
	top, bin := openTopWithBinary(t, "http_status-drain-")
	dir := filepath.Join(top, "flags")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		// nobody: no capability, owns nothing but the status directory.
		cred = &syscall.Credential{Uid: 65534, Gid: 65534}
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Log("not root: running as the current user")
	}
	run := func(args ...string) (*exec.Cmd, *bufio.Reader, *testenv.LogBuffer) {
		cmd := exec.Command(bin, args...)
		cmd.Env = cleanEnv()
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		errb := &testenv.LogBuffer{}
		cmd.Stderr = errb
		testenv.DieWithTest(cmd)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd, bufio.NewReader(stdout), errb
	}
	readUntil := func(r *bufio.Reader, want string) {
		t.Helper()
		lines := make(chan string)
		go func() {
			defer close(lines)
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				lines <- l
			}
		}()
		deadline := time.After(15 * time.Second)
		var seen []string
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("output ended without %q: %q", want, seen)
				}
				seen = append(seen, l)
				if strings.Contains(l, want) {
					go func() {
						for range lines {
						}
					}()
					return
				}
			case <-deadline:
				t.Fatalf("no %q within 15 s: %q", want, seen)
			}
		}
	}
	flag := filepath.Join(dir, fmt.Sprintf("svc.%d", port))

	cmd, out, errb := run("drain", "svc", "-p", strconv.Itoa(port), "--wait", "1m", "--then", "maint", "--min-wait", "0", "--dir", dir)
	readUntil(out, "1 connection on port")
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("after SIGINT: %v, want exit 130; stderr %s", err, errb)
	}
	if !strings.Contains(errb.String(), "interrupted: left in drain (1 connection on port") {
		t.Errorf("stderr %q does not say it left the drain", errb)
	}
	if got := flagContent(t, flag); got != "drain\n" {
		t.Errorf("after Ctrl-C the flag holds %q, want drain", got)
	}
	if cred != nil {
		fi, _ := os.Stat(flag)
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65534 {
			t.Errorf("flag owned by uid %d, want the unprivileged user's", st.Uid)
		}
	}

	cmd, out, errb = run("drain", "svc", "-p", strconv.Itoa(port), "--wait", "1m", "--then", "inactivate", "--min-wait", "0", "--dir", dir)
	readUntil(out, "1 connection on port")
	cs[0].Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v; stderr %s", err, errb)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("still waiting after the connection closed")
	}
	if got := flagContent(t, flag); got != "(removed)" {
		t.Errorf("--then inactivate left %q", got)
	}
}

// TestDrainWaitNamespace runs the binary inside a network namespace of the
// test's own, whose service has IPv4 and IPv6 connections over a veth pair
// from a second namespace plus a loopback one: drain --wait counts them
// there and returns once the last is closed.
func TestDrainWaitNamespace(t *testing.T) {
	t.Parallel() // mostly waiting on sockets and timers
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		t.Skip("nsenter not installed (util-linux)")
	}
	srv := nstest.New(t)
	cli := nstest.New(t)
	nstest.Veth(t, srv, "dw0", []string{"10.199.1.1/24", "fd99:1::1/64"}, cli, "dw1", []string{"10.199.1.2/24", "fd99:1::2/64"})
	ln4 := nstest.Listen(t, srv, "tcp4", "10.199.1.1:0")
	port := ln4.Addr().(*net.TCPAddr).Port
	ln6 := nstest.Listen(t, srv, "tcp6", fmt.Sprintf("[fd99:1::1]:%d", port))
	lnLo := nstest.Listen(t, srv, "tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	for _, ln := range []net.Listener{ln4, ln6, lnLo} {
		holdServer(t, ln)
	}
	var cs []net.Conn
	for _, d := range []struct {
		srvSide bool
		network string
		addr    string
	}{{false, "tcp4", ln4.Addr().String()}, {false, "tcp6", ln6.Addr().String()}, {true, "tcp4", lnLo.Addr().String()}} {
		ns := cli
		if d.srvSide {
			ns = srv
		}
		c, err := nstest.Dial(ns, d.network, d.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cs = append(cs, c)
	}

	dir := t.TempDir()
	cmd := exec.Command(nsenter, fmt.Sprintf("--net=/proc/%d/fd/%d", os.Getpid(), int(srv)), "--",
		testBinary(t), "drain", "svc", "-p", strconv.Itoa(port), "--wait", "1m", "--then", "maint", "--min-wait", "0", "--dir", dir)
	cmd.Env = cleanEnv()
	out := &testenv.LogBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	testenv.DieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done; done <- nil })
	waitOutput(t, "3 connections in the namespace", out, fmt.Sprintf("3 connections on port %d", port))
	for i, c := range cs {
		c.Close()
		if i < len(cs)-1 {
			waitOutput(t, "fewer", out, fmt.Sprintf("%s on port %d", connWord(len(cs)-1-i), port))
		}
	}
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Fatalf("exit %v:\n%s", err, out)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("still waiting after every connection closed:\n%s", out)
	}
	if got := flagContent(t, filepath.Join(dir, fmt.Sprintf("svc.%d", port))); got != "maint\n" {
		t.Errorf("flag %q, want maint", got)
	}
	if strings.Contains(out.String(), "nothing listens") {
		t.Errorf("warned of no listener where the service listens:\n%s", out)
	}

	// From the client's namespace, where nothing listens on the port (a
	// service in a container, seen from the host): its connections are
	// not seen, and the drain says so before it looks idle.
	other, err := exec.Command(nsenter, fmt.Sprintf("--net=/proc/%d/fd/%d", os.Getpid(), int(cli)), "--",
		testBinary(t), "drain", "other", "-p", strconv.Itoa(port), "--wait", "10s", "--min-wait", "0", "--dir", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(other), fmt.Sprintf("other.%d: warning: nothing listens on port %d in this network namespace", port, port)) {
		t.Errorf("drain --wait with nothing listening: %v\n%s", err, other)
	}
}

// TestConnCountsMatchSS: the daemon's /status.json counts match
// ss -Htn state established '( sport = :P )' | wc -l, IPv4 and IPv6, and
// follow closes; /status.txt and /metrics show the same.
func TestConnCountsMatchSS(t *testing.T) {
	t.Parallel() // mostly waiting on sockets and timers
	ss, err := exec.LookPath("ss")
	if err != nil {
		t.Skip("ss not installed (iproute2)")
	}
	port := loopbackPort(t)
	dir := filepath.Join(t.TempDir(), "flags")
	writeFlags(t, dir, map[string]string{fmt.Sprintf("web.%d", port): "up"})
	d := runDaemon(t, "--dir", dir, "--vips=false")
	cs := dialLoopback(t, port, 3, 2)

	ssCount := func() int {
		out, err := exec.Command(ss, "-Htn", "state", "established", "state", "close-wait", fmt.Sprintf("( sport = :%d )", port)).Output()
		if err != nil {
			t.Fatalf("ss: %v", err)
		}
		return strings.Count(string(out), "\n")
	}
	jsonCount := func() (int, bool) {
		_, body := d.get(t, "/status.json")
		var v pages.StatusJSON
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatal(err)
		}
		if len(v.Services) != 1 || v.Services[0].Conns == nil {
			return -1, v.ConnsLive
		}
		return *v.Services[0].Conns, v.ConnsLive
	}
	check := func(want int) {
		t.Helper()
		testenv.PollUntil(t, fmt.Sprintf("%d connections on /status.json", want), 15*time.Second, func() (bool, string) {
			n, live := jsonCount()
			return n == want, fmt.Sprintf("connections %d, live %v", n, live)
		})
		if n := ssCount(); n != want {
			t.Errorf("ss counts %d, /status.json %d", n, want)
		}
	}
	check(5)
	if _, txt := d.get(t, "/status.txt"); !strings.Contains(txt, " conns 5 since") {
		t.Errorf("/status.txt:\n%s", txt)
	}
	if _, m := d.get(t, "/metrics"); !strings.Contains(m, fmt.Sprintf(`http_status_service_connections{service="web.%d"} 5`, port)) {
		t.Error("/metrics lacks the connection gauge")
	}
	cs[0].Close()
	cs[4].Close()
	check(3)
}

// TestDrainWaitTerminal: on a terminal (a pty made by script(1)) progress
// is one live line, rewritten in place, with the deadline.
func TestDrainWaitTerminal(t *testing.T) {
	t.Parallel()
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script (util-linux) not installed: no pty to test the live line")
	}
	port := loopbackPort(t)
	dialLoopback(t, port, 1, 0)
	dir := t.TempDir()
	line := fmt.Sprintf("%s drain tty -p %d --wait 1500ms --min-wait 0 --dir %s", testBinary(t), port, dir)
	cmd := exec.Command(script, "-qfec", line, "/dev/null")
	cmd.Env = append(cleanEnv(), "TERM=dumb")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1 (deadline)\n%q", err, out)
	}
	s := string(out)
	if n := strings.Count(s, "\r\x1b[K"); n < 2 || !strings.Contains(s, fmt.Sprintf("tty.%d: 1 connection on port %d, ", port, port)) || !strings.Contains(s, "elapsed, deadline in ") {
		t.Errorf("want a live line rewritten at least twice (%d), got %q", n, s)
	}
	if !strings.Contains(s, "deadline: 1 connection still open") {
		t.Errorf("no deadline message: %q", s)
	}
}

// TestSamplerFollowsDrain: the daemon counts nothing while nothing needs
// counts (health checks do not), starts when a flag goes to drain, and
// stops when the drain ends.
func TestSamplerFollowsDrain(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "flags")
	writeFlags(t, dir, map[string]string{"web.8080": "up"})
	port := testenv.FreePort(t)
	log := &testenv.LogBuffer{}
	startProcess(t, log, testBinary(t), "--dir", dir, "-p", strconv.Itoa(port), "--vips=false", "--log-format", "json", "--log-level", "debug")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	testenv.PollUntil(t, "daemon answers", 15*time.Second, func() (bool, string) {
		res, err := http.Get(base + "/status?SERVICE=web&PORT=8080")
		if err != nil {
			return false, err.Error()
		}
		res.Body.Close()
		return res.StatusCode == 200, res.Status
	})
	if strings.Contains(log.String(), "connection sampler started") {
		t.Fatal("the sampler started for health checks alone")
	}
	if code, _, errs := ctlRunAt(time.Now(), "drain", "web.8080", "--dir", dir); code != 0 {
		t.Fatal(errs)
	}
	waitOutput(t, "a drain starts the sampler", log, `"draining":true,"subscribers":0,"time"`)
	if code, _, errs := ctlRunAt(time.Now(), "activate", "web.8080", "--dir", dir); code != 0 {
		t.Fatal(errs)
	}
	waitOutput(t, "the drain's end stops it", log, "connection sampler stopped")
}

// TestDrainPort: which port drain --wait counts: --conn-port, else the
// flag's conn=, else the --config file's conn_port, else the name's.
func TestDrainPort(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "probes.toml")
	if err := os.WriteFile(cfg, []byte("[[probe]]\nservice = \"web.8080\"\nkind = \"tcp\"\nconn_port = 443\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "api.9000"), []byte("up conn=9443\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		f    ctlFlags
		name string
		want uint16
	}{
		{ctlFlags{dir: dir}, "web.8080", 8080},
		{ctlFlags{dir: dir, config: cfg}, "web.8080", 443},
		{ctlFlags{dir: dir, config: cfg, connPort: 1443}, "web.8080", 1443},
		{ctlFlags{dir: dir, config: cfg}, "api.9000", 9443},
		{ctlFlags{dir: dir}, "api.9000", 9443},
	} {
		if got, err := drainPort(tc.f, tc.name); err != nil || got != tc.want {
			t.Errorf("%s %+v: %d, %v; want %d", tc.name, tc.f, got, err, tc.want)
		}
	}
	if _, err := drainPort(ctlFlags{dir: dir}, "status.html"); err == nil {
		t.Error("no port, no error")
	}
	if _, err := drainPort(ctlFlags{dir: dir, config: filepath.Join(dir, "missing.toml")}, "status.html"); err == nil {
		t.Error("a missing --config is not an error")
	}
}
