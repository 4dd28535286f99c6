//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/testenv"
)

// TestContribDeployRestart runs contrib/deploy-restart.sh with sh against a
// real listener: it drains and waits while a client is connected, restarts
// only once the service is idle and in maint, then activates it; with a
// client that stays, it stops at the deadline, leaves drain, and does not
// restart.
func TestContribDeployRestart(t *testing.T) {
	t.Parallel()
	script := contribPath(t, "deploy-restart.sh")
	bin := testBinary(t)
	port := loopbackPort(t)
	cs := dialLoopback(t, port, 1, 0)
	dir := t.TempDir()
	flag := filepath.Join(dir, fmt.Sprintf("web.%d", port))
	log := filepath.Join(t.TempDir(), "restart.log")
	env := append(cleanEnv(), "HTTP_STATUS_BIN="+bin, "HTTP_STATUS_DIR="+dir, "MIN_WAIT=0",
		// The "restart" records the state the service was in when it ran.
		"RESTART_CMD=echo restarted >> "+log+"; cat "+flag+" >> "+log,
		"READY_CMD=test -e "+log)
	if err := os.WriteFile(flag, []byte("up\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command("sh", script, "web", fmt.Sprint(port))
	cmd.Env = append(env, "DRAIN_WAIT=30s")
	out := &testenv.LogBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	testenv.DieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waitOutput(t, "the script waits for the connection", out, fmt.Sprintf("1 connection on port %d", port))
	if _, err := os.Stat(log); err == nil {
		t.Fatal("restarted while a client was connected")
	}
	cs[0].Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("deploy-restart.sh: %v\n%s", err, out)
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("deploy-restart.sh still running:\n%s", out)
	}
	if got, _ := os.ReadFile(log); string(got) != "restarted\nmaint # deploy\n" {
		t.Errorf("the restart saw %q, want it to run in maint", got)
	}
	if got := flagContent(t, flag); got != "up\n" {
		t.Errorf("after the deploy the flag holds %q, want up", got)
	}

	// A client that stays: no restart, left in drain, exit 1.
	os.Remove(log)
	dialLoopback(t, port, 0, 1)
	cmd = exec.Command("sh", script, "web", fmt.Sprint(port))
	cmd.Env = append(env, "DRAIN_WAIT=1s")
	b, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(b), "not drained: left as it is, not restarted") {
		t.Fatalf("with a client staying: %v\n%s", err, b)
	}
	if _, err := os.Stat(log); err == nil {
		t.Error("restarted although the drain did not finish")
	}
	if got := flagContent(t, flag); got != "drain # deploy\n" {
		t.Errorf("flag %q, want drain", got)
	}

	// DRAIN_IDLE: the same client, silent for more than a second now,
	// does not count (drain --idle): drained and restarted.
	cmd = exec.Command("sh", script, "web", fmt.Sprint(port))
	cmd.Env = append(env, "DRAIN_WAIT=15s", "DRAIN_IDLE=1s")
	b, err = cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "1 idle for 1s+ not counted") {
		t.Fatalf("with DRAIN_IDLE=1s: %v\n%s", err, b)
	}
	if got, _ := os.ReadFile(log); string(got) != "restarted\nmaint # deploy\n" {
		t.Errorf("with DRAIN_IDLE the restart saw %q, want it to run in maint", got)
	}
}
