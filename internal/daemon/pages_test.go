//go:build linux

package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestConfigPages: --pages takes port, off (and "", the zero Config) or an
// IP address with a decimal port; anything else is refused naming the flag.
func TestConfigPages(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t.TempDir())
	for _, ok := range []string{"", "port", "off", "127.0.0.1:8003", "[::1]:8003", "0.0.0.0:0", "[::]:65535", "10.1.2.3:1"} {
		cfg.Pages = ok
		if err := cfg.Validate(); err != nil {
			t.Errorf("--pages %q: %v", ok, err)
		}
	}
	for _, bad := range []string{"nonsense", "on", "8003", ":8003", "localhost:8003", "::1:8003", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:+80", "127.0.0.1:0x50", "127.0.0.1:080", "Port"} {
		cfg.Pages = bad
		if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), "--pages ") {
			t.Errorf("--pages %q: %v, want an error naming --pages", bad, err)
		}
	}
}

// TestPagesListenerLameduck: the pages' own listener (here on ::1) stays
// open through --lameduck, /healthz there saying so, and is closed when Run
// returns, as the check port is.
func TestPagesListenerLameduck(t *testing.T) {
	t.Parallel()
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	} else {
		ln.Close()
	}
	cfg := testConfig(t.TempDir())
	cfg.VIPs = false
	cfg.Pages = "[::1]:0"
	cfg.Lameduck = time.Second
	r := startDaemon(t, cfg, Options{})
	addr := r.d.PagesAddr()
	if addr == nil || !strings.HasPrefix(addr.String(), "[::1]:") {
		t.Fatalf("PagesAddr %v, want [::1]:port", addr)
	}
	get := func(base, path string) (int, string) {
		t.Helper()
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s%s: %v", base, path, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	pages := "http://" + addr.String()
	if code, body := get(pages, "/metrics"); code != 200 || !strings.Contains(body, "http_status_stopping 0") {
		t.Fatalf("/metrics on the pages port: %d", code)
	}
	if code, _ := get(r.base, "/metrics"); code != 404 {
		t.Fatalf("/metrics on the check port: %d, want 404", code)
	}
	r.cancel()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := get(pages, "/healthz")
		if code == 200 && strings.Contains(body, "stopping: lameduck") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz on the pages port during lameduck: %d %q", code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	get(r.base, "/status") // the check port still answers (get fails the test otherwise)
	r.stopClean(t)
	if c, err := net.Dial("tcp", addr.String()); err == nil {
		c.Close()
		t.Error("the pages port still accepts after Run returned")
	}
}

// TestPagesClash: --pages on the check port's or the agent port's port
// fails the start with an error that names which (it said only "address
// already in use", as if another program held it).
func TestPagesClash(t *testing.T) {
	t.Parallel()
	free := func() int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port
	}
	check, agent := free(), free()
	for _, c := range []struct{ pages, want string }{
		{fmt.Sprintf("127.0.0.1:%d", check), fmt.Sprintf("clashes with the check port (--ip, --port) on 127.0.0.1:%d", check)},
		{fmt.Sprintf("0.0.0.0:%d", agent), fmt.Sprintf("clashes with the agent port (--agent-ip, --agent-port) on 127.0.0.1:%d", agent)},
	} {
		cfg := testConfig(t.TempDir())
		cfg.VIPs = false
		cfg.Port, cfg.AgentPort, cfg.Pages = check, agent, c.pages
		d, err := New(cfg, Options{Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err = d.Run(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "address already in use") {
			t.Errorf("--pages %s: Run = %v, want an error saying %q", c.pages, err, c.want)
		}
	}
}
