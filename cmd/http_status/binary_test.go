//go:build linux

package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/http-status/http_status/internal/nstest"
	"github.com/http-status/http_status/internal/testbin"
	"github.com/http-status/http_status/internal/testenv"
)

// Most tests here wait on child processes and the daemon's timeouts: let
// four of them wait at once.
func TestMain(m *testing.M) {
	testenv.WaitBoundParallel(4)
	os.Exit(m.Run())
}

// testBinary is the http_status binary for tests that need a real process
// (signals, inherited descriptors, setsid): one build shared with the other
// packages' tests (internal/testbin).
func testBinary(t *testing.T) string {
	t.Helper()
	return testbin.Path(t)
}

// daemonProc is a started child; Cleanup kills it if the test did not stop
// it.
type daemonProc struct {
	cmd    *exec.Cmd
	stderr *testenv.LogBuffer
	done   chan struct{}
	err    error // from Wait, valid once done is closed
}

// startProc starts cmd with stderr captured and registers its cleanup.
func startProc(t *testing.T, cmd *exec.Cmd) *daemonProc {
	t.Helper()
	return startProcWith(t, cmd, cmd.Start)
}

// startProcWith is startProc with start in place of cmd.Start (a start
// inside a network namespace: nstest.Do).
func startProcWith(t *testing.T, cmd *exec.Cmd, start func() error) *daemonProc {
	t.Helper()
	p := &daemonProc{cmd: cmd, stderr: &testenv.LogBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	cmd.Stdout = p.stderr
	testenv.DieWithTest(cmd)
	if err := start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(cmd.Path), p.stderr.String())
		}
	})
	return p
}

// startDaemon runs the binary with args and extra environment.
func startDaemon(t *testing.T, env []string, args ...string) *daemonProc {
	t.Helper()
	cmd := exec.Command(testBinary(t), args...)
	cmd.Env = append(cleanEnv(), env...)
	return startProc(t, cmd)
}

// startDaemonIn runs the binary with args inside the network namespace ns.
func startDaemonIn(t *testing.T, ns netns.NsHandle, args ...string) *daemonProc {
	t.Helper()
	cmd := exec.Command(testBinary(t), args...)
	cmd.Env = cleanEnv()
	return startProcWith(t, cmd, func() error { return nstest.Do(ns, cmd.Start) })
}

// cleanEnv is the test's environment without systemd variables that would
// leak into children.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "JOURNAL_STREAM", daemonEnv:
			continue
		}
		env = append(env, kv)
	}
	return env
}

// wait waits for the process to exit and returns its exit code.
func (p *daemonProc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("process did not exit within %s", timeout)
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatalf("wait: %v", p.err)
	return -1
}

// notifySocket listens on a unixgram socket in a temp dir, as systemd's
// NOTIFY_SOCKET, and returns its path and the datagrams received.
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen %s: %v", path, err)
	}
	msgs := make(chan string, 1024)
	go func() {
		defer close(msgs)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return path, msgs
}

// busyPort returns a loopback port the test keeps bound until it ends, so
// a daemon that falls back to binding it fails loudly.
func busyPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}
