//go:build linux

package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/testenv"
)

// TestDaemonAndPidfile runs the SysV way: -d --pidfile --log-file. The
// parent exits 0 only once the child is ready; the child runs in its own
// session with a 0644 pidfile holding its PID, replacing a stale one; a
// second start with the same pidfile is refused; SIGTERM removes the pidfile.
func TestDaemonAndPidfile(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "flags")
	pidPath := filepath.Join(tmp, "http_status.pid")
	logPath := filepath.Join(tmp, "http_status.log")
	// A stale pidfile: a PID that cannot exist.
	if err := os.WriteFile(pidPath, []byte("2147483647\n"), 0o666); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(testBinary(t), "-d", "--pidfile", pidPath, "--log-file", logPath,
		"--dir", dir, "--port", "0", "--vips=false")
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("http_status -d: %v\n%s", err, out)
	}
	b, err := os.ReadFile(pidPath)
	if err != nil {
		t.Fatalf("pidfile after the parent exited: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		t.Fatalf("pidfile holds %q", b)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	if pid == cmd.Process.Pid {
		t.Fatal("pidfile holds the parent's PID")
	}
	fi, err := os.Stat(pidPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("pidfile mode %v, want 0644", fi.Mode().Perm())
	}
	if sid := procStatField(t, pid, 6); sid != strconv.Itoa(pid) {
		t.Errorf("daemon session id %s, want its own PID %d (setsid)", sid, pid)
	}
	// Lines reach the file from the logger's queue, an instant after
	// the parent was told the daemon is ready.
	testenv.PollUntil(t, "the ready line in the log file", 10*time.Second, func() (bool, string) {
		logs, _ := os.ReadFile(logPath)
		return strings.Contains(string(logs), "http_status ready"), string(logs)
	})

	// A second instance with the same pidfile refuses to start.
	second := exec.Command(testBinary(t), "--pidfile", pidPath, "--dir", dir, "--port", "0", "--vips=false", "--log-format=json")
	second.Env = cleanEnv()
	out, err = second.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "already running") {
		t.Fatalf("second start: err=%v, want exit 1 saying already running; output:\n%s", err, out)
	}

	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("daemon %d still running 20s after SIGTERM", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Stat(pidPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pidfile still there after exit: %v", err)
	}
}

// TestDaemonStartFailure: when the child cannot start, the parent exits 1
// with the child's error.
func TestDaemonStartFailure(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	notDir := filepath.Join(tmp, "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pidPath := filepath.Join(tmp, "p.pid")
	cmd := exec.Command(testBinary(t), "--daemon", "--pidfile", pidPath, "--dir", notDir, "--port", "0", "--vips=false")
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("err = %v, want exit 1; output:\n%s", err, out)
	}
	if !strings.Contains(string(out), "not a directory") {
		t.Fatalf("parent output does not carry the child's error:\n%s", out)
	}
	if _, err := os.Stat(pidPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pidfile left behind by a failed start: %v", err)
	}
}

// procStatField returns field n (1-based) of /proc/PID/stat.
func procStatField(t *testing.T, pid, n int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// The command (field 2) is in parentheses and may hold spaces.
	s := string(b)
	rest := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return rest[n-3]
}

// processAlive reports whether pid exists and is not a zombie (the daemon is
// not our child, so we cannot reap it).
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}
