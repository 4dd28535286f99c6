//go:build linux

package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/faulttest"
	"github.com/http-status/http_status/internal/testenv"
)

// TestContribFunctionsHung: without the binary, http_status.functions
// writes the flag itself; on a status directory whose filesystem stopped
// answering (a FUSE server that never answers, mounted for real) activate
// and inactivate give up after HTTP_STATUS_IO_TIMEOUT with status 1 and a
// message, their output captured through a pipe as "$(...)" does. They
// used to wait for as long as the mount hung: the init script with them.
func TestContribFunctionsHung(t *testing.T) {
	if _, err := exec.LookPath("timeout"); err != nil {
		t.Skip("needs timeout (coreutils)")
	}
	testenv.RunInMountNamespace(t, "TestContribFunctionsHungChild")
}

func TestContribFunctionsHungChild(t *testing.T) {
	testenv.IsChild(t, "TestContribFunctionsHungChild")
	funcs := contribPath(t, "http_status.functions")
	dir := filepath.Join(faulttest.TempDir(t), "status")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Cleanups run last first: the mount is let go, then the background
	// writers blocked on it (each call leaves one, never waited for)
	// finish, and may create the flag in the directory under the mount;
	// only then can the temp dir be removed.
	t.Cleanup(func() {
		env := []byte("HTTP_STATUS_DIR=" + dir + "\x00")
		testenv.PollUntil(t, "the background writers gone", 10*time.Second, func() (bool, string) {
			ds, _ := os.ReadDir("/proc")
			for _, d := range ds {
				if b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "environ")); err == nil && bytes.Contains(b, env) {
					return false, "pid " + d.Name() + " still runs"
				}
			}
			return true, ""
		})
	})
	faulttest.HungMountAt(t, dir)
	for _, shell := range []string{"sh", "dash", "bash", "busybox"} {
		p, err := exec.LookPath(shell)
		if err != nil {
			continue
		}
		// Under set -e too: the script stops at the failed call, saying why.
		for _, fn := range []string{"activate", "inactivate", "set -e; activate"} {
			t.Run(shell+" "+fn, func(t *testing.T) {
				t.Parallel()
				call := fn + ` squid 80 || echo "status $?"`
				if strings.HasPrefix(fn, "set -e") {
					call = fn + " squid 80"
				}
				args := []string{"-c", ". " + funcs + "; " + call + "; echo went on"}
				if shell == "busybox" {
					args = append([]string{"sh"}, args...)
				}
				cmd := exec.Command(p, args...)
				cmd.Env = append(os.Environ(), "HTTP_STATUS_DIR="+dir, "HTTP_STATUS_BIN=/nonexistent/http_status", "HTTP_STATUS_IO_TIMEOUT=1")
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				testenv.DieWithTest(cmd)
				start := time.Now()
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- cmd.Wait() }()
				var err error
				select {
				case err = <-done:
				case <-time.After(15 * time.Second):
					t.Fatalf("%s squid 80 on a hung status directory: still running after 15s with HTTP_STATUS_IO_TIMEOUT=1", fn)
				}
				var ee *exec.ExitError
				// Without set -e the call's status is 1 and the script goes on
				// ("|| echo" shows the status); with it, the script stops, status 1.
				wantOn := !strings.HasPrefix(fn, "set -e")
				okStatus := strings.Contains(out.String(), "status 1") && err == nil
				if !wantOn {
					okStatus = errors.As(err, &ee) && ee.ExitCode() == 1
				}
				if !okStatus || strings.Contains(out.String(), "went on") != wantOn || !strings.Contains(out.String(), "squid.80: no answer within 1s") {
					t.Errorf("%s: %v after %v, output %q; want status 1 and the reason (and the script to go on unless set -e)", fn, err, time.Since(start).Round(time.Millisecond), out.String())
				}
			})
		}
	}
}
