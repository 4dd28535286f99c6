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
	"time"

	"github.com/http-status/http_status/internal/testenv"
)

// openTopWithBinary makes a directory others may enter (t.TempDir is
// 0700), removed when the test ends, holding a copy of the binary, and
// returns both paths.
func openTopWithBinary(t *testing.T, prefix string) (top, bin string) {
	t.Helper()
	top, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	if err := os.Chmod(top, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(testBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(top, "http_status")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return top, bin
}

// asNobody gives a status directory owned by nobody (uid 65534) in a
// directory others may enter (t.TempDir is 0700), and runs the real binary
// as nobody: a caller without root's reach, as an operator's account or a
// deploy user is. It skips when not root.
func asNobody(t *testing.T) (dir string, run func(args ...string) (code int, stdout, stderr string)) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the control command as another user")
	}
	top, bin := openTopWithBinary(t, "http_status-perm-")
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

// openTempDir is a t.TempDir that every user may list and search (the one
// above it, t.TempDir's own, is 0700), so that any daemon user could read
// the flags written there with mode 0644.
func openTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// listStates runs list in process and returns each row's STATE and the
// warning lines.
func listStates(t *testing.T, dir string) (map[string]string, string) {
	t.Helper()
	code, out, errs := ctlRun(t, "list", "--dir", dir)
	if code != 0 {
		t.Fatalf("list: exit %d, %s", code, errs)
	}
	return parseList(out), out
}

func parseList(out string) map[string]string {
	states := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] != "NAME" && f[0] != "warning:" {
			states[f[0]] = f[1]
		}
	}
	return states
}

// TestCtlListAsTheDaemonReads: list reads the flags as its caller, the
// daemon as its own user. Root's mode 0600 flag says drain to root, but a
// daemon running as nobody cannot read it and counts it as absent (out of
// rotation); list used to show "drain" as certain. Now: with no daemon
// found, the state is marked as not known ("drain?"), with why; with the
// daemon running (the real binary, as nobody), list says "absent", as the
// daemon answers; a caller who cannot read a flag gets "?", not a guess.
func TestCtlListAsTheDaemonReads(t *testing.T) {
	t.Parallel()
	dir, runNobody := asNobody(t)
	if err := os.Chown(dir, 0, 0); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string, mode os.FileMode) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("open.80", "maint # kernel\n", 0o644)
	write("secret.80", "drain # deploy 7\n", 0o600)

	// No daemon: root reads secret.80, a daemon user may not.
	states, out := listStates(t, dir)
	if states["open.80"] != "maint" || states["secret.80"] != "drain?" ||
		!strings.Contains(out, "warning: secret.80: mode 0600, owner 0, group 0, read here as uid 0: a daemon whose user may not read it counts it as absent") ||
		!strings.Contains(out, "no running daemon on this directory found") {
		t.Errorf("list as root, no daemon: %v, want open.80 maint, secret.80 drain? and why:\n%s", states, out)
	}
	// As nobody, who cannot read secret.80: not known.
	code, out, errs := runNobody("list", "--dir", dir)
	if st := parseList(out); code != 0 || st["open.80"] != "maint" || st["secret.80"] != "?" ||
		!strings.Contains(out, "warning: secret.80: you (uid 65534) cannot read it (mode 0600, owner 0, group 0): what it says is not known here") {
		t.Errorf("list as nobody, no daemon: exit %d, %v, stderr %q; want secret.80 ?:\n%s", code, st, errs, out)
	}

	// The daemon, as nobody (as the shipped unit runs it as a user of its own).
	bin := filepath.Join(filepath.Dir(dir), "http_status")
	cmd := exec.Command(bin, "--dir", dir, "--port", "0", "--vips=false", "--create-dir=false")
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	startProc(t, cmd)
	testenv.PollUntil(t, "list to find the daemon", 10*time.Second, func() (bool, string) {
		states, out = listStates(t, dir)
		return states["secret.80"] == "absent", out
	})
	if states["open.80"] != "maint" || !strings.Contains(out, "warning: secret.80: says drain, but the daemon (pid ") ||
		!strings.Contains(out, "cannot read it (mode 0600, owner 0, group 0): counted as absent, out of rotation") {
		t.Errorf("list as root with the daemon as nobody: %v:\n%s", states, out)
	}
	// nobody cannot read it either, and knows the daemon cannot.
	code, out, _ = runNobody("list", "--dir", dir)
	if st := parseList(out); code != 0 || st["secret.80"] != "absent" {
		t.Errorf("list as nobody with the daemon as nobody: exit %d, %v:\n%s", code, st, out)
	}
	// The directory the daemon cannot list: every service out.
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	states, out = listStates(t, dir)
	if states["open.80"] != "absent" || states["secret.80"] != "absent" || !strings.Contains(out, "cannot list "+dir) {
		t.Errorf("list with the directory 0700 (daemon as nobody): %v:\n%s", states, out)
	}
}

// TestCtlStickyDir: in a sticky directory (mode 1777) a flag owned by
// another user can be neither replaced nor removed by the caller: each
// write fails with exit 1, says the flag is unchanged and why, leaves it
// and no temp file.
func TestCtlStickyDir(t *testing.T) {
	t.Parallel()
	dir, run := asNobody(t)
	if err := os.Chown(dir, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "x.80")
	const old = "drain conn=8080\n"
	if err := os.WriteFile(p, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"maint", "inactivate"} {
		code, _, errs := run(cmd, "x.80", "--dir", dir)
		if code != 1 || !strings.Contains(errs, "operation not permitted; unchanged (the directory is sticky: only the flag's owner may replace or remove it)") {
			t.Errorf("%s over root's flag in a sticky directory, as nobody: exit %d, %q", cmd, code, errs)
		}
	}
	if got := ctlReadFile(t, p); got != old {
		t.Errorf("flag now %q, want %q", got, old)
	}
	if des, _ := os.ReadDir(dir); len(des) != 1 {
		t.Errorf("%d entries left, want the flag alone", len(des))
	}
}
