//go:build linux

package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/testenv"
)

// TestStopPhases follows the built binary through a stop with --lameduck,
// for each engine, from the outside: while the lameduck runs /healthz says
// so (200, the answers are still live), /status and the agent still follow
// the flags (the agent with drain for services that are up, never for one
// that is out), a second daemon started for the same ports meanwhile (an
// upgrade without socket activation) fails instead of sharing them, and
// once the daemon exited the ports refuse connections.
func TestStopPhases(t *testing.T) {
	t.Parallel()
	for _, engine := range []string{"fast", "net/http"} {
		t.Run(strings.ReplaceAll(engine, "/", ""), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			write := func(name, content string) {
				t.Helper()
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			write("squid.80", "")
			write("web.80", "down\n")
			port, agentPort := testenv.FreePort(t), testenv.FreePort(t)
			args := []string{"--dir", dir, "--port", strconv.Itoa(port), "--agent-port", strconv.Itoa(agentPort),
				"--vips=false", "--engine", engine, "--log-format=json"}
			a := startDaemon(t, nil, append(args, "--lameduck=3s")...)
			base := waitServing(t, a, port)
			squid, web := base+"/status?SERVICE=squid&PORT=80", base+"/status?SERVICE=web&PORT=80"
			if code, body := healthz(t, base); code != 200 || strings.Contains(body, "stopping") {
				t.Fatalf("/healthz before the stop = %d %q, want 200 without stopping", code, body)
			}

			if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(2 * time.Second)
			for {
				code, body := healthz(t, base)
				if strings.Contains(body, "stopping: lameduck: the listeners close at ") {
					if code != 200 || !strings.Contains(body, "the agent answers drain") {
						t.Fatalf("/healthz in lameduck = %d %q, want 200 naming the agent's drain", code, body)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("/healthz 2 s after SIGTERM (lameduck 3 s) = %d %q, want a stopping line", code, body)
				}
				time.Sleep(5 * time.Millisecond)
			}
			answers(t, squid, 200, "lameduck, squid up")
			answers(t, web, 503, "lameduck, web down")
			if got := agentAsk(t, agentPort, "squid.80\n"); !strings.HasPrefix(got, "up drain") {
				t.Errorf("agent in lameduck, squid up = %q, want up drain", got)
			}
			if got := agentAsk(t, agentPort, "web.80\n"); !strings.HasPrefix(got, "down") {
				t.Errorf("agent in lameduck, web down = %q, want down", got)
			}
			// The watcher still runs: a flag changed now is answered.
			write("squid.80", "down\n")
			answers(t, squid, 503, "lameduck, squid taken down")

			// The new daemon of an upgrade, started while the old one
			// still holds the ports: it must fail, not share them.
			b := startDaemon(t, nil, args...)
			if code := b.wait(t, 10*time.Second); code == 0 {
				t.Fatalf("a second daemon on the ports of one in lameduck exited 0:\n%s", b.stderr.String())
			}
			if !strings.Contains(b.stderr.String(), "address already in use") {
				t.Errorf("second daemon's error does not say address already in use:\n%s", b.stderr.String())
			}
			answers(t, web, 503, "after the second daemon failed")

			if code := a.wait(t, 15*time.Second); code != 0 {
				t.Fatalf("exit after SIGTERM = %d, want 0\n%s", code, a.stderr.String())
			}
			for _, p := range []int{port, agentPort} {
				c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), 5*time.Second)
				if err == nil {
					c.Close()
					t.Errorf("port %d accepts a connection after the daemon exited", p)
				} else if !strings.Contains(err.Error(), "refused") {
					t.Errorf("port %d after exit: %v, want connection refused", p, err)
				}
			}
		})
	}
}

// healthz returns /healthz's code and body.
func healthz(t *testing.T, base string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}
