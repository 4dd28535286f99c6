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
	for _, bad := range []string{"nonsense", "on", "8003", ":8003", "localhost:8003", "::1:8003", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:+80", "127.0.0.1:0x50", "127.0.0.1:080", "Port", "[fe80::1%lo]:8003"} {
		cfg.Pages = bad
		if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), "--pages ") {
			t.Errorf("--pages %q: %v, want an error naming --pages", bad, err)
		}
	}
	// A zone is refused with the reason, in every address flag.
	cfg.Pages = "[fe80::1%lo]:8003"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "link-local address with a zone is not supported") {
		t.Errorf("--pages with a zone: %v", err)
	}
	cfg.Pages = ""
	for _, f := range []struct {
		name string
		set  func(*Config)
	}{{"--ip", func(c *Config) { c.IP = "fe80::1%lo" }}, {"--agent-ip", func(c *Config) { c.AgentIP = "[fe80::1%eth0]" }}} {
		c := cfg
		f.set(&c)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), f.name+" ") || !strings.Contains(err.Error(), "link-local address with a zone is not supported") {
			t.Errorf("%s with a zone: %v", f.name, err)
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

// TestPagesListenerMaxConns: the pages' own listener holds at most
// pagesMaxConns connections (here 3); one more gets the overload 503 at
// once while /status on the check port still answers, and a slot freed is
// taken again.
func TestPagesListenerMaxConns(t *testing.T) {
	// Not parallel: it lowers pagesMaxConns, which the other daemons of
	// this package read when they start.
	defer func(n int) { pagesMaxConns = n }(pagesMaxConns)
	pagesMaxConns = 3
	cfg := testConfig(t.TempDir())
	cfg.VIPs = false
	cfg.Pages = "127.0.0.1:0"
	r := startDaemon(t, cfg, Options{})
	addr := r.d.PagesAddr().String()
	var held []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	// The listener accepts in order: once a request on the third is
	// answered, all three are held.
	if _, err := io.WriteString(held[2], "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = held[2].SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := held[2].Read(make([]byte, 512)); err != nil {
		t.Fatalf("the third connection: %v", err)
	}
	over := func() string {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c)
		return string(b)
	}
	if got := over(); !strings.HasPrefix(got, "HTTP/1.1 503 ") {
		t.Fatalf("a fourth connection to the pages: %q, want the overload 503", got)
	}
	res, err := http.Get(r.base + "/status?SERVICE=x&PORT=80")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 404 { // no flag: out of rotation, answered
		t.Fatalf("/status on the check port: %d", res.StatusCode)
	}
	held[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for got := over(); !strings.HasPrefix(got, "HTTP/1.1 200 "); got = over() {
		if time.Now().After(deadline) {
			t.Fatalf("after a connection closed: %q, want its slot taken again", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
