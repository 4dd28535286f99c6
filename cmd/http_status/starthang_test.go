//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/faulttest"
	"github.com/http-status/http_status/internal/testenv"
)

// TestStopDuringHungStartBinary: the real binary started on a status
// directory whose filesystem does not answer, and SIGTERM before it has
// read it. The stop must be handled (logged, within the watcher's 2 s)
// and the exit status be a normal stop's, 0. The process itself can only
// finish exiting once the kernel lets go of its thread in the FUSE
// request, so the test releases the mount after the log line.
func TestStopDuringHungStartBinary(t *testing.T) {
	testenv.RunInMountNamespace(t, "TestStopDuringHungStartBinaryChild")
}

func TestStopDuringHungStartBinaryChild(t *testing.T) {
	testenv.IsChild(t, "TestStopDuringHungStartBinaryChild")
	dir := filepath.Join(faulttest.TempDir(t), "status")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	release := faulttest.HungMountAt(t, dir)
	d := startDaemon(t, nil, "--dir", dir, "-p", fmt.Sprint(testenv.FreePort(t)), "--vips=false", "--log-format", "json")
	t.Cleanup(release) // before the process's cleanup: it cannot die while its thread hangs
	testenv.PollUntil(t, "the start blocked on the directory", 10*time.Second, func() (bool, string) {
		return strings.Contains(d.stderr.String(), "no answer from its filesystem"), "no such log line"
	})
	sent := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testenv.PollUntil(t, "the stop logged", 10*time.Second, func() (bool, string) {
		return strings.Contains(d.stderr.String(), "SIGTERM during the start"), "no such log line"
	})
	testenv.PollUntil(t, "Run's end logged", 10*time.Second, func() (bool, string) {
		return strings.Contains(d.stderr.String(), "stopping without the watcher loop"), "no such log line"
	})
	if took := time.Since(sent); took > 4*time.Second {
		t.Errorf("the stop took %s, want the watcher's 2 s at most (and some slack)", took)
	}
	if strings.Contains(d.stderr.String(), "http_status ready") {
		t.Error("ready after a stop during the start")
	}
	release()
	if code := d.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit %d after a stop during the start, want 0 (a normal stop)", code)
	}
}

// TestHungConfigAtStartBinary: the real binary's probe file is on a
// filesystem that does not answer. The start must fail after 5 s naming
// the file and why, exit 1, never ready.
func TestHungConfigAtStartBinary(t *testing.T) {
	testenv.RunInMountNamespace(t, "TestHungConfigAtStartBinaryChild")
}

func TestHungConfigAtStartBinaryChild(t *testing.T) {
	testenv.IsChild(t, "TestHungConfigAtStartBinaryChild")
	dir := faulttest.TempDir(t)
	conf := filepath.Join(dir, "probes.toml")
	if err := os.WriteFile(conf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	release := faulttest.HungMountAt(t, conf)
	port := testenv.FreePort(t)
	d := startDaemon(t, nil, "--dir", filepath.Join(dir, "status"), "-p", fmt.Sprint(port), "--vips=false", "--config", conf, "--log-format", "json")
	t.Cleanup(release) // before the process's cleanup: it cannot die while its thread hangs
	want := "read " + conf + ": no answer within 5s"
	testenv.PollUntil(t, "the start failing on the probe file", 10*time.Second, func() (bool, string) {
		return strings.Contains(d.stderr.String(), want), "no such log line"
	})
	release()
	if code := d.wait(t, 10*time.Second); code != 1 {
		t.Errorf("exit %d with the probe file hung at start, want 1", code)
	}
	if strings.Contains(d.stderr.String(), "http_status ready") {
		t.Error("ready with the probe file hung")
	}
}
