//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRestartQueuedChecksSeeNewState: with the sockets held as systemd holds
// them, checks that arrive while no daemon runs wait in the backlog; the
// operator takes the service out meanwhile. The next daemon must answer
// every queued check, HTTP and agent, from the flags as they are now (a
// complete first view), never with the 200 or "up" the stopped daemon
// would have given. For each engine.
func TestRestartQueuedChecksSeeNewState(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	for _, engine := range []string{"fast", "net/http"} {
		t.Run(strings.ReplaceAll(engine, "/", ""), func(t *testing.T) {
			t.Parallel()
			var files []*os.File
			var ports []int
			for range 2 { // http, agent
				f, port := heldSocket(t)
				files = append(files, f)
				ports = append(ports, port)
			}
			httpPort, agentPort := ports[0], ports[1]
			dir := t.TempDir()
			flag := filepath.Join(dir, "squid.80")
			if err := os.WriteFile(flag, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			start := func() *daemonProc {
				sh := []string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, testBinary(t), "--dir", dir, "--vips=false",
					"--engine", engine, "--port", strconv.Itoa(busyPort(t)), "--log-format=json"}
				cmd := exec.Command("/bin/sh", sh...)
				cmd.Env = append(cleanEnv(), "LISTEN_FDS=2", "LISTEN_FDNAMES=http:agent")
				cmd.ExtraFiles = files
				return startProc(t, cmd)
			}
			a := start()
			waitServing(t, a, httpPort)
			if code := getStatus(t, http.DefaultClient, httpPort, "SERVICE=squid&PORT=80"); code != 200 {
				t.Fatalf("first daemon: /status = %d, want 200", code)
			}
			if got := agentAsk(t, agentPort, "squid.80\n"); !strings.HasPrefix(got, "up ") {
				t.Fatalf("first daemon: agent = %q, want up", got)
			}
			_ = a.cmd.Process.Signal(syscall.SIGTERM)
			if code := a.wait(t, 20*time.Second); code != 0 {
				t.Fatalf("first daemon exit = %d", code)
			}

			// No daemon runs: the operator takes squid out, checks queue.
			if err := os.WriteFile(flag, []byte("down\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			type queued struct {
				c     net.Conn
				agent bool
			}
			var qs []queued
			for i := range 8 {
				port, req, agent := httpPort, "GET /status?SERVICE=squid&PORT=80 HTTP/1.0\r\n\r\n", i%2 == 1
				if agent {
					port, req = agentPort, "squid.80\n"
				}
				c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
				if err != nil {
					t.Fatalf("connect while no daemon runs (the held socket should queue it): %v", err)
				}
				defer c.Close()
				if _, err := io.WriteString(c, req); err != nil {
					t.Fatal(err)
				}
				qs = append(qs, queued{c, agent})
			}

			b := start()
			for i, q := range qs {
				_ = q.c.SetDeadline(time.Now().Add(15 * time.Second))
				line, err := bufio.NewReader(q.c).ReadString('\n')
				if err != nil {
					t.Fatalf("queued check %d (agent %v): %v\n%s", i, q.agent, err, b.stderr.String())
				}
				if q.agent && !strings.HasPrefix(line, "down") {
					t.Errorf("queued agent check %d = %q, want down", i, line)
				}
				if !q.agent && !strings.HasPrefix(line, "HTTP/1.0 503 ") {
					t.Errorf("queued HTTP check %d = %q, want 503", i, line)
				}
			}
			_ = b.cmd.Process.Signal(syscall.SIGTERM)
			if code := b.wait(t, 20*time.Second); code != 0 {
				t.Fatalf("second daemon exit = %d", code)
			}
		})
	}
}
