//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

	giveBack := takeFDs(t, d.cmd.Process.Pid)
	if err := os.WriteFile(filepath.Join(dir, "web.80"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.PollUntil(t, "the daemon fails to read the flag", 10*time.Second, func() (bool, string) {
		return strings.Contains(d.stderr.String(), "web.80: too many open files"), "no such log line"
	})
	giveBack()
	testenv.PollUntil(t, "the flag read again once descriptors are free", 5*time.Second, func() (bool, string) {
		code, body := faulttest.HTTPGet(t, url)
		return code == 200, fmt.Sprintf("%d %q", code, body)
	})
}

// TestStartOutOfFDs starts the real binary under ever larger descriptor
// limits (ulimit -n), from too few to bind anything up to the first that
// is enough. At each it must either fail before it reports ready (no
// READY=1, exit non-zero, saying it is out of file descriptors) or be
// ready for real: /status and the agent answer and it stops cleanly. A
// daemon that said READY=1 and then died because its event loops could
// not get their epoll and eventfd descriptors told systemd, and a
// --daemon parent, that it had started. The limits start at 10: below
// that the Go runtime itself can die before main, in package init
// ("runtime: eventfd failed"): it keeps the cgroup CPU quota files open
// (two descriptors under cgroup v1) from its start, so at 8 the
// executable's open, epoll and eventfd of the first file take the last
// three, and any one more (a descriptor the runtime opens meanwhile)
// kills it; nothing of ours runs yet to say why.
func TestStartOutOfFDs(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "web.80"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	port, agentPort := testenv.FreePort(t), testenv.FreePort(t)
	failed := 0
	for n := 10; n <= 64; n++ {
		sock, msgs := notifySocket(t)
		cmd := exec.Command("sh", "-c", `ulimit -n "$0" && exec "$@"`, fmt.Sprint(n),
			testBinary(t), "--dir", dir, "-p", fmt.Sprint(port), "--agent-port", fmt.Sprint(agentPort),
			"--vips=false", "--resync", "10m", "--log-format", "json")
		// Two loops a responder whatever the machine, so the limits
		// tried cover every step of the start.
		cmd.Env = append(cleanEnv(), "NOTIFY_SOCKET="+sock, "GOMAXPROCS=2")
		d := startProc(t, cmd)
		ready := false
	wait:
		for {
			select {
			case m := <-msgs:
				if faulttest.HasLine(m, "READY=1") {
					ready = true
					break wait
				}
			case <-d.done:
				break wait
			case <-time.After(15 * time.Second):
				t.Fatalf("ulimit -n %d: neither READY=1 nor an exit within 15s:\n%s", n, d.stderr.String())
			}
		}
		if !ready {
			if code := d.wait(t, 5*time.Second); code == 0 {
				t.Fatalf("ulimit -n %d: exited 0 without READY=1", n)
			}
			if out := d.stderr.String(); !strings.Contains(out, "out of file descriptors") || !strings.Contains(out, "ulimit -n") {
				t.Fatalf("ulimit -n %d: exited without saying why and what to raise:\n%s", n, out)
			}
			failed++
			continue
		}
		if code, body := faulttest.HTTPGet(t, fmt.Sprintf("http://127.0.0.1:%d/status?SERVICE=web&PORT=80", port)); code != 200 {
			t.Fatalf("ulimit -n %d: READY=1, then /status answered %d %q", n, code, body)
		}
		if r := agentAsk(t, agentPort, "web.80\n"); !strings.HasPrefix(r, "up") {
			t.Fatalf("ulimit -n %d: READY=1, then the agent answered %q", n, r)
		}
		if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := d.wait(t, 10*time.Second); code != 0 {
			t.Fatalf("ulimit -n %d: READY=1, then exit %d:\n%s", n, code, d.stderr.String())
		}
		if failed == 0 {
			t.Fatalf("started at ulimit -n %d, the lowest tried: try lower limits", n)
		}
		t.Logf("failed to start below ulimit -n %d, saying why; ready at %d", n, n)
		return
	}
	t.Fatalf("not ready at ulimit -n 64")
}

// TestWatchdogOutOfFDs takes every file descriptor from a running daemon
// (prlimit) and expects its systemd watchdog pings to go on: the watcher
// loop is alive and the checks still answer from the snapshot, so systemd
// must not kill the daemon because a ping needed a socket it could not
// open.
func TestWatchdogOutOfFDs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock, msgs := notifySocket(t)
	port := testenv.FreePort(t)
	cmd := exec.Command(testBinary(t), "--dir", dir, "-p", fmt.Sprint(port), "--vips=false", "--log-format", "json")
	cmd.Env = append(cleanEnv(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=200000")
	d := startProc(t, cmd)
	faulttest.ExpectNotify(t, msgs, 15*time.Second, "READY=1", func(m string) bool { return faulttest.HasLine(m, "READY=1") })

	defer takeFDs(t, d.cmd.Process.Pid)()
	// At most one ping can have opened its socket before the limit fell.
	ping := func(m string) bool { return m == "WATCHDOG=1" }
	for range 3 {
		faulttest.ExpectNotify(t, msgs, 5*time.Second, "WATCHDOG=1 while out of descriptors", ping)
	}
	if strings.Contains(d.stderr.String(), "sd_notify failed") {
		t.Errorf("sd_notify failed while out of descriptors:\n%s", d.stderr.String())
	}
}

// TestRescanOutOfFDs takes every file descriptor from a running daemon and
// asks for a rescan (SIGHUP): the directory cannot be opened to be listed,
// so every service is out of rotation, and STATUS= must name the cause (the
// process's descriptor limit, not inotify's sysctl, which it once named).
// With the descriptors back, it comes back by itself.
func TestRescanOutOfFDs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "web.80"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sock, msgs := notifySocket(t)
	port := testenv.FreePort(t)
	cmd := exec.Command(testBinary(t), "--dir", dir, "-p", fmt.Sprint(port), "--vips=false", "--resync", "10m", "--log-format", "json")
	cmd.Env = append(cleanEnv(), "NOTIFY_SOCKET="+sock)
	d := startProc(t, cmd)
	faulttest.ExpectNotify(t, msgs, 15*time.Second, "READY=1", func(m string) bool { return faulttest.HasLine(m, "READY=1") })

	giveBack := takeFDs(t, d.cmd.Process.Pid)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	m := faulttest.ExpectNotify(t, msgs, 10*time.Second, "READY=1 after SIGHUP", func(m string) bool { return faulttest.HasLine(m, "READY=1") })
	if !strings.Contains(m, "0/0 services up") || !strings.Contains(m, "cannot be listed: out of file descriptors") || strings.Contains(m, "inotify") {
		t.Errorf("STATUS while out of descriptors: %q", m)
	}
	giveBack()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	testenv.PollUntil(t, "back in rotation once descriptors are free", 5*time.Second, func() (bool, string) {
		code, body := faulttest.HTTPGet(t, base+"/status?SERVICE=web&PORT=80")
		return code == 200, fmt.Sprintf("%d %q", code, body)
	})
	if strings.Contains(d.stderr.String(), "inotify instances") {
		t.Errorf("the log blames inotify:\n%s", d.stderr.String())
	}
}

// takeFDs lowers the running process pid's descriptor limit below every
// descriptor it holds (prlimit), so that each new one fails with EMFILE,
// and returns the function that gives the old limit back. It skips when
// prlimit is refused.
func takeFDs(t *testing.T, pid int) (giveBack func()) {
	t.Helper()
	var old unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &old); err != nil {
		t.Skipf("prlimit: %v", err)
	}
	none := unix.Rlimit{Cur: 1, Max: old.Max}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &none, nil); err != nil {
		t.Skipf("prlimit: %v", err)
	}
	return func() {
		if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &old, nil); err != nil {
			t.Errorf("prlimit back: %v", err)
		}
	}
}
