//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/testenv"
)

// namedBackend is a real TCP service: it greets each connection with its
// name, then holds it until the peer closes. It counts what it accepted.
type namedBackend struct {
	name     string
	ln       net.Listener
	accepted atomic.Int64
}

func startBackend(t *testing.T, name string) *namedBackend {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &namedBackend{name: name, ln: ln}
	testenv.AcceptEach(t, ln, func(c net.Conn) {
		b.accepted.Add(1)
		defer c.Close()
		if _, err := io.WriteString(c, b.name+"\n"); err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, c)
	})
	return b
}

func (b *namedBackend) port() int { return b.ln.Addr().(*net.TCPAddr).Port }

const haproxyDrainCfg = `global
    stats socket {{SOCK}} mode 600 level admin

defaults
    mode tcp
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout check 1s

frontend fe
    bind 127.0.0.1:{{FRONT}}
    default_backend be

backend be
    balance roundrobin
    option httpchk GET /status?SERVICE=web&PORT={{A}}
    http-check disable-on-404
    server a 127.0.0.1:{{A}} check port {{HTTP}} inter 100ms agent-check agent-port {{AGENT}} agent-inter 100ms agent-send "web.{{A}}\n"
    server b 127.0.0.1:{{B}}
`

// TestHAProxyDrainWait runs a real HAProxy in front of two real backends:
// drain --wait on backend a makes HAProxy stop sending it new connections,
// a long-lived client connection through HAProxy keeps the drain waiting,
// and once it closes the service goes to maint (and HAProxy with it).
func TestHAProxyDrainWait(t *testing.T) {
	if testing.Short() {
		t.Skip("starts HAProxy; skipped with -short")
	}
	t.Parallel()
	haproxy := haproxyPath(t)
	bin := testBinary(t)
	tmp := t.TempDir()
	flags := filepath.Join(tmp, "flags")
	a, b := startBackend(t, "a"), startBackend(t, "b")
	httpPort, agentPort, front := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	webA := fmt.Sprintf("web.%d", a.port())

	daemonLog := &testenv.LogBuffer{}
	startProcess(t, daemonLog, bin, "--dir", flags, "--ip", "127.0.0.1",
		"--port", strconv.Itoa(httpPort), "--agent-port", strconv.Itoa(agentPort),
		"--vips=false", "--log-format", "json")
	binCtl(t, bin, flags, "activate", webA)

	ha := startHAProxy(t, haproxy, tmp, haproxyDrainCfg, []string{"{{FRONT}}", strconv.Itoa(front), "{{A}}", strconv.Itoa(a.port()),
		"{{B}}", strconv.Itoa(b.port()), "{{HTTP}}", strconv.Itoa(httpPort), "{{AGENT}}", strconv.Itoa(agentPort)}, daemonLog)
	expect := func(what string, ok func(s haproxyServer) bool) {
		t.Helper()
		ha.expect("be", "a", what, ok)
	}
	expect("UP", func(s haproxyServer) bool { return s.Status == "UP" && strings.Contains(s.Agent, "up") })

	// A client connection through HAProxy that lands on a, kept open.
	dial := func() (net.Conn, string) {
		t.Helper()
		c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", front))
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		who, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("through HAProxy: %v", err)
		}
		return c, strings.TrimSpace(who)
	}
	var long net.Conn
	for range 10 {
		c, who := dial()
		if who == "a" {
			long = c
			break
		}
		c.Close()
	}
	if long == nil {
		t.Fatal("no connection through HAProxy reached backend a")
	}
	defer long.Close()

	ctlOut := &testenv.LogBuffer{}
	ctl := exec.Command(bin, "drain", webA, "--reason", "deploy", "--wait", "1m", "--then", "maint", "--min-wait", "1s", "--dir", flags)
	ctl.Env = cleanEnv()
	ctl.Stdout, ctl.Stderr = ctlOut, ctlOut
	testenv.DieWithTest(ctl)
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	ctlDone := make(chan struct{})
	var ctlErr error
	go func() { ctlErr = ctl.Wait(); close(ctlDone) }()
	t.Cleanup(func() { _ = ctl.Process.Kill(); <-ctlDone })

	expect("DRAIN", func(s haproxyServer) bool {
		return (s.Status == "DRAIN" || s.Status == "NOLB") && s.Admin&haAdminForcedDrain != 0
	})
	// HAProxy sends no new connection to a: every one goes to b.
	before := a.accepted.Load()
	for i := range 6 {
		c, who := dial()
		c.Close()
		if who != "b" {
			t.Fatalf("new connection %d went to %s while a drains", i, who)
		}
	}
	if n := a.accepted.Load(); n != before {
		t.Errorf("backend a accepted %d new connections while draining", n-before)
	}
	waitOutput(t, "drain --wait counts the long connection", ctlOut, fmt.Sprintf("1 connection on port %d", a.port()))
	select {
	case <-ctlDone:
		t.Fatalf("drain --wait returned (%v) while a client is connected:\n%s", ctlErr, ctlOut)
	default:
	}
	if got := flagContent(t, filepath.Join(flags, webA)); got != "drain # deploy\n" {
		t.Fatalf("flag %q while waiting", got)
	}

	closed := time.Now()
	long.Close()
	select {
	case <-ctlDone:
		if ctlErr != nil {
			t.Fatalf("drain --wait: %v\n%s", ctlErr, ctlOut)
		}
		t.Logf("drain --wait returned %v after the client closed", time.Since(closed))
	case <-time.After(15 * time.Second):
		t.Fatalf("drain --wait still waiting after the client closed:\n%s", ctlOut)
	}
	if got := flagContent(t, filepath.Join(flags, webA)); got != "maint # deploy\n" {
		t.Errorf("flag %q, want maint", got)
	}
	expect("MAINT", func(s haproxyServer) bool {
		return strings.HasPrefix(s.Status, "MAINT") && s.Admin&haAdminForcedMaint != 0
	})
}
