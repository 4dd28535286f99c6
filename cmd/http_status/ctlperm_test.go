//go:build linux

package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// asNobody gives a status directory owned by nobody (uid 65534) in a
// directory others may enter (t.TempDir is 0700), and runs the real binary
// as nobody: a caller without root's reach, as an operator's account or a
// deploy user is. It skips when not root.
func asNobody(t *testing.T) (dir string, run func(args ...string) (code int, stdout, stderr string)) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the control command as another user")
	}
	bin := testBinary(t)
	top, err := os.MkdirTemp("", "http_status-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	if err := os.Chmod(top, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(top, "http_status")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(top, "flags")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	return dir, func(args ...string) (int, string, string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = cleanEnv()
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), out.String(), errb.String()
	}
}

// TestCtlKeepsConnOrRefuses: a rewrite keeps the flag's conn=; when the
// caller cannot read the flag (root's, mode 0600, in a directory the caller
// may write) it refuses and leaves the flag, instead of writing the new
// state without conn= and saying nothing (drain --wait and the connection
// counts then looked at another port).
func TestCtlKeepsConnOrRefuses(t *testing.T) {
	t.Parallel()
	dir, run := asNobody(t)
	p := filepath.Join(dir, "squid.80")
	const old = "drain conn=8080 # deploy 7\n"
	if err := os.WriteFile(p, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run("maint", "squid.80", "--dir", dir)
	if code != 1 || !strings.Contains(errs, "squid.80: cannot read the current flag to keep its conn= (permission denied: you are uid 65534); unchanged") {
		t.Errorf("maint over an unreadable flag: exit %d, stdout %q, stderr %q; want exit 1 and the refusal", code, out, errs)
	}
	if got := ctlReadFile(t, p); got != old {
		t.Errorf("flag now %q, want it unchanged %q", got, old)
	}
	// drain --wait refuses before counting or writing, too.
	code, _, errs = run("drain", "squid.80", "--dir", dir, "--wait", "5s", "--then", "maint")
	if code != 1 || !strings.Contains(errs, "cannot read the current flag") || ctlReadFile(t, p) != old {
		t.Errorf("drain --wait over an unreadable flag: exit %d, stderr %q, flag %q", code, errs, ctlReadFile(t, p))
	}
	// Given the port, the caller's word is complete: written.
	code, _, errs = run("maint", "squid.80", "--dir", dir, "--conn-port", "9090")
	if code != 0 {
		t.Fatalf("maint --conn-port: exit %d, stderr %q", code, errs)
	}
	if got := ctlReadFile(t, p); got != "maint conn=9090\n" {
		t.Errorf("after maint --conn-port 9090: %q", got)
	}
	// A flag the caller can read keeps its conn=, also when part of its
	// content is not understood (the daemon still honours that conn=).
	if err := os.WriteFile(p, []byte("drain conn=8080 bogus\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := run("down", "squid.80", "--dir", dir); code != 0 {
		t.Fatalf("down: exit %d, stderr %q", code, errs)
	}
	if got := ctlReadFile(t, p); got != "down conn=8080\n" {
		t.Errorf("down over a flag with conn=8080 and a word not understood: %q, want conn= kept", got)
	}
}
