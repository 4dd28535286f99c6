//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/http-status/http_status/internal/faulttest"
	"github.com/http-status/http_status/internal/testenv"
)

// TestFlagReadRetriedAfterFDs runs the real binary, takes its file
// descriptors away (prlimit on the running process: every new descriptor
// fails with EMFILE), writes a flag, and gives the descriptors back. The
// flag read while none was free counted as absent (fail closed); once they
// are back it must be read again on its own, not only at the next --resync
// (10m here) or SIGHUP: no inotify event comes for it any more.
func TestFlagReadRetriedAfterFDs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	port := testenv.FreePort(t)
	d := startDaemon(t, nil, "--dir", dir, "-p", fmt.Sprint(port), "--resync", "10m", "--vips=false", "--log-format", "json")
	base := waitServing(t, d, port)
	url := base + "/status?SERVICE=web&PORT=80"
	if code, _ := faulttest.HTTPGet(t, url); code != 404 {
		t.Fatalf("no flag yet: %d, want 404", code)
	}

	pid := d.cmd.Process.Pid
	var old unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &old); err != nil {
		t.Skipf("prlimit: %v", err)
	}
	none := unix.Rlimit{Cur: 1, Max: old.Max} // below every open descriptor: each new one fails
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &none, nil); err != nil {
		t.Skipf("prlimit: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "web.80"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.PollUntil(t, "the daemon fails to read the flag", 10*time.Second, func() (bool, string) {
		return strings.Contains(d.stderr.String(), "web.80: too many open files"), "no such log line"
	})
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &old, nil); err != nil {
		t.Fatalf("prlimit back: %v", err)
	}
	testenv.PollUntil(t, "the flag read again once descriptors are free", 5*time.Second, func() (bool, string) {
		code, body := faulttest.HTTPGet(t, url)
		return code == 200, fmt.Sprintf("%d %q", code, body)
	})
}
