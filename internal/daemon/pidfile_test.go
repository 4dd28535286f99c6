//go:build linux

package daemon

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/http-status/http_status/internal/testenv"
)

// TestClaimPidFile covers the pidfile's stale cases in-process.
func TestClaimPidFile(t *testing.T) {
	dir := t.TempDir()
	sleeper := exec.Command("sleep", "60")
	testenv.DieWithTest(sleeper)
	if err := sleeper.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })

	for _, tc := range []struct {
		name, content string
	}{
		{"missing", ""},
		{"garbage", "not a pid\n"},
		{"dead pid", "2147483647\n"},
		{"pid of another program", strconv.Itoa(sleeper.Process.Pid) + "\n"},
		{"our own pid", strconv.Itoa(os.Getpid())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".pid")
			if tc.content != "" {
				if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			p, err := claimPidFile(path)
			if err != nil {
				t.Fatalf("claimPidFile: %v (want a stale pidfile accepted)", err)
			}
			if err := p.write(); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(path)
			if strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
				t.Fatalf("pidfile holds %q, want our PID", b)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
				t.Fatalf("mode %v, want 0644", fi.Mode().Perm())
			}
			p.remove(testLogger(t))
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("pidfile not removed: %v", err)
			}
		})
	}
}
