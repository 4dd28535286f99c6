// Package packaging_test checks what packaging/ and contrib/ ship, for
// real: the SysV init script and the upstart job run the built daemon, and
// the .deb is installed, checked and removed with dpkg (root only).
package packaging_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/testbin"
)

// repoRoot is the repository, one level up from this package.
var repoRoot = func() string {
	abs, err := filepath.Abs("..")
	if err != nil {
		panic(err)
	}
	return abs
}()

var tmpRoot string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "http_status-packaging-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmpRoot = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// testBinary is the http_status binary, one build shared with the other
// packages' tests (internal/testbin).
func testBinary(t *testing.T) string {
	t.Helper()
	return testbin.Path(t)
}

// statusCode GETs /status?query on 127.0.0.1:port; 0 when no answer.
func statusCode(port int, query string) int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/status?" + query)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitStatus polls until /status?query answers want.
func waitStatus(t *testing.T, port int, query string, want int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	got := 0
	for time.Now().Before(deadline) {
		if got = statusCode(port, query); got == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("GET /status?%s on port %d: %d, want %d", query, port, got, want)
}

// waitFor polls cond until it holds or fails the test after 15 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// run runs a command and returns its combined output and exit code.
func run(t *testing.T, env []string, name string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("%s %v: %v", name, args, err)
		}
		code = ee.ExitCode()
	}
	return string(out), code
}

// mustRun is run that fails the test unless the exit code is want.
func mustRun(t *testing.T, want int, env []string, name string, args ...string) string {
	t.Helper()
	out, code := run(t, env, name, args...)
	if code != want {
		t.Fatalf("%s %s: exit %d, want %d; output:\n%s", name, strings.Join(args, " "), code, want, out)
	}
	return out
}

// readPid reads a pidfile; 0 if absent or garbage.
func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the last ')'.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// killPidfile kills what a pidfile names, for cleanups.
func killPidfile(path string) {
	if pid := readPid(path); pid > 0 && alive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
