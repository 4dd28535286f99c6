//go:build linux

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/faulttest"
	"github.com/http-status/http_status/internal/testenv"
)

// TestCtlHungStatusDir: the status directory, or one flag in it, is on a
// filesystem that stopped answering (a FUSE server that never answers,
// mounted for real in a mount namespace of the test's own). Every control
// command must end within its --io-timeout with exit 1 and a message that
// names the step that hung, with its output captured through pipes as
// "$(http_status ...)" does. It used to block for good: in uninterruptible
// sleep, which SIGKILL does not end, so the deploy pipeline hung with it.
func TestCtlHungStatusDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a FUSE mount in a mount namespace)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare")
	}
	t.Parallel()
	testenv.RunChild(t, "TestCtlHungStatusDirChild", "unshare", "--mount", "--propagation", "private")
}

func TestCtlHungStatusDirChild(t *testing.T) {
	testenv.IsChild(t, "TestCtlHungStatusDirChild")
	bin := testBinary(t)
	dir := filepath.Join(faulttest.TempDir(t), "status")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"hung.80", "web.80"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("up\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const timeout = time.Second
	// run runs the command and returns its exit status and stderr; a
	// command still running well after its timeout fails the test
	// (release first lets a blocked one end).
	run := func(t *testing.T, release func(), args ...string) (int, string) {
		t.Helper()
		args = append(args, "--dir", dir, "--io-timeout", timeout.String())
		cmd := exec.Command(bin, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		testenv.DieWithTest(cmd)
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		limit := timeout + 5*time.Second
		select {
		case err := <-done:
			took := time.Since(start)
			code := 0
			if err != nil {
				ee, ok := err.(*exec.ExitError)
				if !ok {
					t.Fatalf("%v: %v", args, err)
				}
				code = ee.ExitCode()
			}
			t.Logf("%v: exit %d after %v: %s%s", args, code, took.Round(time.Millisecond), stdout.String(), stderr.String())
			return code, stderr.String()
		case <-time.After(limit):
			release()
			<-done
			t.Fatalf("%v: still running %v after its start, with --io-timeout %v", args, limit, timeout)
			return 0, ""
		}
	}
	hungFlag := filepath.Join(dir, "hung.80")
	release := faulttest.HungMountAt(t, hungFlag)
	// At once: each waits out its timeout.
	t.Run("hung", func(t *testing.T) {
		for _, c := range []struct {
			args []string
			step string
		}{
			{[]string{"drain", "hung.80"}, "read " + hungFlag},
			{[]string{"drain", "hung.80", "--conn-port", "81"}, "write " + hungFlag},
			{[]string{"inactivate", "hung.80"}, "remove " + hungFlag},
			{[]string{"list"}, "list " + dir},
		} {
			t.Run(c.args[0], func(t *testing.T) {
				t.Parallel()
				code, stderr := run(t, release, c.args...)
				if code != 1 || !strings.Contains(stderr, c.step+": no answer within 1s") {
					t.Errorf("%v on a hung flag: exit %d, %q; want 1 naming %q", c.args, code, stderr, c.step)
				}
			})
		}
	})
	// The other flags stay writable: only the hung one blocks.
	if code, stderr := run(t, release, "maint", "web.80"); code != 0 {
		t.Errorf("maint web.80 beside the hung flag: exit %d: %s", code, stderr)
	}
	release()

	// drain --wait: the flag stops answering while the command waits.
	port := testenv.FreePort(t)
	cmd := exec.Command(bin, "drain", "web", "-p", strconv.Itoa(port), "--wait", "1m", "--min-wait", "50s", "--dir", dir, "--io-timeout", "1s")
	p := startProc(t, cmd)
	flag := filepath.Join(dir, "web."+strconv.Itoa(port))
	testenv.PollUntil(t, "drain written", 10*time.Second, func() (bool, string) {
		b, _ := os.ReadFile(flag)
		return string(b) == "drain\n", string(b)
	})
	release = faulttest.HungMountAt(t, flag)
	start := time.Now()
	select {
	case <-p.done:
	case <-time.After(6 * time.Second):
		release()
		t.Fatalf("drain --wait still running 6s after its flag stopped answering, with --io-timeout 1s:\n%s", p.stderr.String())
	}
	t.Logf("drain --wait: %v after the hang: %v: %s", time.Since(start).Round(time.Millisecond), p.err, p.stderr.String())
	ee, ok := p.err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 || !strings.Contains(p.stderr.String(), "read "+flag+" (drain --wait): no answer within 1s") {
		t.Errorf("drain --wait on a flag that stopped answering: %v, %q; want exit 1 naming the read", p.err, p.stderr.String())
	}
	release()

	// The whole directory stops answering.
	release = faulttest.HungMountAt(t, dir)
	if code, stderr := run(t, release, "activate", "web.80"); code != 1 || !strings.Contains(stderr, "read "+filepath.Join(dir, "web.80")+": no answer within 1s") {
		t.Errorf("activate in a hung status directory: exit %d, %q; want 1 naming the read", code, stderr)
	}
}

// TestCtlIOTimeoutFlag: the watching parent reads --io-timeout as the flag
// package does; the child refuses one under a second (drain --wait reports
// progress every half second) before writing anything.
func TestCtlIOTimeoutFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want time.Duration
	}{
		{[]string{"drain", "a.80"}, defaultIOTimeout},
		{[]string{"drain", "a.80", "--io-timeout", "3s"}, 3 * time.Second},
		{[]string{"drain", "--io-timeout=4s", "a.80"}, 4 * time.Second},
		{[]string{"list", "-io-timeout", "2m"}, 2 * time.Minute},
		{[]string{"drain", "a.80", "--io-timeout", "100ms"}, defaultIOTimeout},
		{[]string{"drain", "a.80", "--io-timeout"}, defaultIOTimeout},
		{[]string{"drain", "--", "--io-timeout", "3s"}, defaultIOTimeout},
	} {
		if got := ioTimeoutArg(c.args); got != c.want {
			t.Errorf("ioTimeoutArg(%q) = %v, want %v", c.args, got, c.want)
		}
	}
	dir := faulttest.TempDir(t)
	var stdout, stderr bytes.Buffer
	if code := runCtl([]string{"drain", "a.80", "--io-timeout", "100ms", "--dir", dir}, &stdout, &stderr, time.Now()); code != 2 {
		t.Errorf("--io-timeout 100ms: exit %d, want 2: %s", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "a.80")); !os.IsNotExist(err) {
		t.Errorf("--io-timeout 100ms refused, yet a.80: %v", err)
	}
}
