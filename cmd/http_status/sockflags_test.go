//go:build linux

package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/faulttest"
	"github.com/http-status/http_status/internal/testenv"
)

// TestSocketActivationFlagConflict runs the binary under
// systemd-socket-activate with an http and an agent socket on 127.0.0.1,
// as the shipped socket units pass them, and command-line flags that ask
// for other addresses (HTTP_STATUS_OPTS="-i 0.0.0.0 --agent-port ..."). The
// passed sockets win; the log warns naming both the socket and the flags,
// and so does systemd's STATUS= line. With flags that agree, nothing is
// said.
func TestSocketActivationFlagConflict(t *testing.T) {
	sa, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("systemd-socket-activate not installed (Debian package systemd)")
	}
	run := func(t *testing.T, httpPort, agentPort int, flags ...string) (*daemonProc, string) {
		t.Helper()
		sock, msgs := notifySocket(t)
		args := []string{"-l", "127.0.0.1:" + strconv.Itoa(httpPort), "-l", "127.0.0.1:" + strconv.Itoa(agentPort),
			"--fdname=http:agent", "-E", "NOTIFY_SOCKET=" + sock,
			testBinary(t), "--dir", t.TempDir(), "--vips=false", "--log-format=json"}
		cmd := exec.Command(sa, append(args, flags...)...)
		cmd.Env = cleanEnv()
		p := startProc(t, cmd)
		activatedGet(t, p, fmt.Sprintf("http://127.0.0.1:%d/status", httpPort))
		ready := faulttest.ExpectNotify(t, msgs, 10*time.Second, "READY=1", func(m string) bool { return faulttest.HasLine(m, "READY=1") })
		// The agent answers on its passed socket, not on --agent-port.
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(agentPort), 5*time.Second)
		if err != nil {
			t.Fatalf("agent socket: %v", err)
		}
		_, _ = c.Write([]byte("status.html\n"))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 128)
		n, _ := c.Read(buf)
		c.Close()
		if !strings.HasPrefix(string(buf[:n]), "down ready") {
			t.Errorf("agent answered %q, want down ready (no status.html)", buf[:n])
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if code := p.wait(t, 20*time.Second); code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
		return p, ready
	}
	statusLine := func(m string) string {
		for _, l := range strings.Split(m, "\n") {
			if strings.HasPrefix(l, "STATUS=") {
				return l
			}
		}
		return ""
	}

	t.Run("disagree", func(t *testing.T) {
		httpPort, agentPort, otherAgent := testenv.FreePort(t), testenv.FreePort(t), busyPort(t)
		p, ready := run(t, httpPort, agentPort, "-i", "0.0.0.0", "-p", strconv.Itoa(httpPort), "--agent-port", strconv.Itoa(otherAgent))
		logs := p.stderr.String()
		httpSock, agentSock := "127.0.0.1:"+strconv.Itoa(httpPort), "127.0.0.1:"+strconv.Itoa(agentPort)
		var warns []string
		for _, l := range strings.Split(logs, "\n") {
			if strings.Contains(l, `"level":"warn"`) && strings.Contains(l, "systemd passed the") {
				warns = append(warns, l)
			}
		}
		if len(warns) != 2 ||
			!strings.Contains(warns[0], "http socket "+httpSock) || !strings.Contains(warns[0], "--ip 0.0.0.0") || strings.Contains(warns[0], "--port") ||
			// The agent listens on --ip unless --agent-ip says otherwise.
			!strings.Contains(warns[1], "agent socket "+agentSock) || !strings.Contains(warns[1], "--ip 0.0.0.0 --agent-port "+strconv.Itoa(otherAgent)) ||
			!strings.Contains(warns[0], "systemctl edit http_status.socket") {
			t.Errorf("want one warning per socket naming the socket and the flags; got:\n%s", strings.Join(warns, "\n"))
		}
		st := statusLine(ready)
		for _, want := range []string{"WARNING: http on " + httpSock + " from systemd, not --ip 0.0.0.0", "agent on " + agentSock + " from systemd, not --ip 0.0.0.0 --agent-port " + strconv.Itoa(otherAgent), "services up"} {
			if !strings.Contains(st, want) {
				t.Errorf("READY's %q lacks %q", st, want)
			}
		}
	})
	t.Run("agree", func(t *testing.T) {
		httpPort, agentPort := testenv.FreePort(t), testenv.FreePort(t)
		p, ready := run(t, httpPort, agentPort, "-i", "127.0.0.1", "--port", strconv.Itoa(httpPort), "--agent-port", strconv.Itoa(agentPort))
		if logs := p.stderr.String(); strings.Contains(logs, "systemd passed the") {
			t.Errorf("flags that agree with the sockets gave a warning:\n%s", logs)
		}
		if st := statusLine(ready); st == "" || strings.Contains(st, "WARNING") {
			t.Errorf("READY's status line %q: want the summary alone", st)
		}
	})
}

// TestSocketDropIn checks the drop-in README gives for listening elsewhere
// with the shipped socket unit: systemd-analyze verify accepts the unit
// with it, and systemd reads ListenStream= as the drop-in says (reset, then
// one new address).
func TestSocketDropIn(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian package systemd)")
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const start = "# systemctl edit http_status.socket\n"
	i := strings.Index(string(readme), start)
	if i < 0 {
		t.Fatalf("README lacks the drop-in (a block starting %q)", start)
	}
	dropIn := string(readme[i+len(start):])
	dropIn = dropIn[:strings.Index(dropIn, "```")]
	if !strings.Contains(dropIn, "ListenStream=\nListenStream=0.0.0.0:8001\n") {
		t.Fatalf("drop-in %q does not reset ListenStream= and set 0.0.0.0:8001", dropIn)
	}
	tmp := t.TempDir()
	bin := testBinary(t)
	for _, name := range []string{"http_status.service", "http_status.socket"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, name), []byte(strings.ReplaceAll(string(b), "/usr/sbin/http_status", bin)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(tmp, "http_status.socket.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	verify := func(dropIn string) (string, error) {
		if err := os.WriteFile(filepath.Join(tmp, "http_status.socket.d", "override.conf"), []byte(dropIn), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(analyze, "verify", filepath.Join(tmp, "http_status.socket"))
		cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=notice", "SYSTEMD_UNIT_PATH="+tmp+":")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// The drop-in is read: one that only resets ListenStream= leaves the
	// socket without an address, which verify refuses.
	if out, err := verify("[Socket]\nListenStream=\n"); err == nil || !strings.Contains(out, "no Listen setting") {
		t.Fatalf("verify with a reset-only drop-in: err=%v, output %q; want the unit refused (is the drop-in read?)", err, out)
	}
	if out, err := verify(dropIn); err != nil || len(strings.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify with README's drop-in: err=%v, output:\n%s", err, out)
	}
}
