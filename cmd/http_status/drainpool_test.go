//go:build linux

package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/conns"
	"github.com/http-status/http_status/internal/testenv"
)

// drain --wait behind balancers that keep idle connections to the server
// open for reuse: HAProxy in mode http, nginx with an upstream keepalive.

// httpBackend is a real keep-alive HTTP server on loopback: "/" answers at
// once; "/slow" sends a line every trickle until release is closed, then
// ends its answer.
type httpBackend struct {
	port    int
	release chan struct{}
	slow    chan struct{} // closed when a /slow request arrived
	once    sync.Once
}

const trickle = 200 * time.Millisecond

func startHTTPBackend(t *testing.T, name string) *httpBackend {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &httpBackend{port: ln.Addr().(*net.TCPAddr).Port, release: make(chan struct{}), slow: make(chan struct{})}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			b.once.Do(func() { close(b.slow) })
			tick := time.NewTicker(trickle)
			defer tick.Stop()
			for {
				io.WriteString(w, "working\n")
				w.(http.Flusher).Flush()
				select {
				case <-b.release:
					io.WriteString(w, name+"\n")
					return
				case <-r.Context().Done():
					return
				case <-tick.C:
				}
			}
		}
		io.WriteString(w, name+"\n")
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return b
}

// getN sends n requests to url at once, each on its own client
// connection, and fails unless every one is answered 200.
func getN(t *testing.T, url string, n int) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	errs := make(chan error, n)
	for range n {
		go func() {
			res, err := client.Get(url)
			if err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					err = fmt.Errorf("%s: %s", url, res.Status)
				}
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// openOn counts the established connections on port (as drain --wait does).
func openOn(t *testing.T, port int) conns.PortConns {
	t.Helper()
	c, err := conns.NewCounter()
	if err != nil {
		t.Skipf("no sock_diag here: %v", err)
	}
	defer c.Close()
	got, err := c.CountIdle([]uint16{uint16(port)}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return got[uint16(port)]
}

// drainBin runs the binary's drain --wait in the background.
type drainBin struct {
	out  *testenv.LogBuffer
	done chan struct{}
	err  error
}

func startDrainBin(t *testing.T, bin string, args ...string) *drainBin {
	t.Helper()
	d := &drainBin{out: &testenv.LogBuffer{}, done: make(chan struct{})}
	cmd := exec.Command(bin, append([]string{"drain"}, args...)...)
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = d.out, d.out
	testenv.DieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.err = cmd.Wait(); close(d.done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-d.done })
	return d
}

// wait waits (15 s at most) for drain --wait to exit 0.
func (d *drainBin) wait(t *testing.T) {
	t.Helper()
	select {
	case <-d.done:
		if d.err != nil {
			t.Fatalf("drain --wait: %v\n%s", d.err, d.out)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("drain --wait still waiting:\n%s", d.out)
	}
}

const haproxyPoolCfg = `global
    stats socket {{SOCK}} mode 600 level admin

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout check 1s

frontend fe
    bind 127.0.0.1:{{FRONT}}
    default_backend be

backend be
    balance roundrobin
    # Idle server connections are pooled by default (http-reuse safe);
    # every pool-purge-delay (5s by default) HAProxy closes some of them,
    # but a pool down to one connection may keep it (README).
    option httpchk GET /status?SERVICE=web&PORT={{A}}
    http-check disable-on-404
    server a 127.0.0.1:{{A}} check port {{HTTP}} inter 100ms
    server b 127.0.0.1:{{B}}
`

// TestHAProxyPoolDrainWait: HAProxy in mode http keeps idle connections to
// a server after its requests are answered, and once the drain takes the
// server out it closes them only every pool-purge-delay, not always to the
// last. drain --wait counts them as connections; with --idle 1s they do
// not count once idle for 1s, and the drain ends before HAProxy's first
// purge.
func TestHAProxyPoolDrainWait(t *testing.T) {
	if testing.Short() {
		t.Skip("starts HAProxy; skipped with -short")
	}
	t.Parallel()
	haproxy := haproxyPath(t)
	bin := testBinary(t)
	tmp := t.TempDir()
	flags := filepath.Join(tmp, "flags")
	a, b := startHTTPBackend(t, "a"), startHTTPBackend(t, "b")
	httpPort, agentPort, front := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	webA := fmt.Sprintf("web.%d", a.port)

	daemonLog := &testenv.LogBuffer{}
	startProcess(t, daemonLog, bin, "--dir", flags, "--ip", "127.0.0.1",
		"--port", strconv.Itoa(httpPort), "--agent-port", strconv.Itoa(agentPort),
		"--vips=false", "--log-format", "json")
	binCtl(t, bin, flags, "activate", webA)
	ha := startHAProxy(t, haproxy, tmp, haproxyPoolCfg, []string{"{{FRONT}}", strconv.Itoa(front), "{{A}}", strconv.Itoa(a.port),
		"{{B}}", strconv.Itoa(b.port), "{{HTTP}}", strconv.Itoa(httpPort)}, daemonLog)
	ha.expect("be", "a", "UP", func(s haproxyServer) bool { return s.Status == "UP" })

	getN(t, fmt.Sprintf("http://127.0.0.1:%d/", front), 16)
	pooled := openOn(t, a.port).Open
	if pooled == 0 {
		t.Fatal("HAProxy kept no idle connection to a after its requests: nothing to show")
	}
	t.Logf("%d connections pooled to a", pooled)

	start := time.Now()
	d := startDrainBin(t, bin, webA, "--wait", "1m", "--idle", "1s", "--min-wait", "1s", "--dir", flags)
	d.wait(t)
	t.Logf("drained in %v, %d pooled connections:\n%s", time.Since(start), pooled, d.out)
	out := d.out.String()
	// The first count, before they had been idle for 1s: counted, with no
	// idle note (its elapsed time depends on the machine's load).
	counted := false
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, fmt.Sprintf("%s: %s on port %d (", webA, connWord(pooled), a.port)) && !strings.Contains(l, "idle") {
			counted = true
		}
	}
	if !counted {
		t.Errorf("drain --wait did not count the %d pooled connections first:\n%s", pooled, out)
	}
	want := fmt.Sprintf("%s: drained: no busy connection on port %d after", webA, a.port)
	if !strings.Contains(out, want) || !strings.Contains(out, "idle for 1s+ not counted)\n") {
		t.Errorf("drain --wait output, want %q and the idle ones:\n%s", want, out)
	}
}

// TestNginxKeepaliveDrainWaitIdle: nginx keeps idle connections to its
// upstream servers (keepalive) for keepalive_timeout, 60 s by default,
// whether or not the server still gets requests. Open-source nginx cannot
// see the drain (no active check): a reload with the server marked down
// closes the pool at once, but with a balancer that takes the server out
// without a reload (Tengine's check module, NGINX Plus) the pool stays.
// That case is run here, the server kept in the upstream and sent no more
// requests: with --idle 1s the pooled connections do not count, a slow
// request in flight (nginx sends it on the connection it used last, at
// once) keeps the drain waiting as long as its answer sends data within
// 1s, and the drain ends once it is answered.
func TestNginxKeepaliveDrainWaitIdle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nginx; skipped with -short")
	}
	t.Parallel()
	nginx := toolPath(t, "nginx", "drain --wait behind nginx's upstream keepalive")
	bin := testBinary(t)
	tmp := t.TempDir()
	flags := filepath.Join(tmp, "flags")
	a := startHTTPBackend(t, "a")
	webA := fmt.Sprintf("web.%d", a.port)
	binCtl(t, bin, flags, "activate", webA)

	temps := nginxTempPaths(nginx, tmp)
	front := testenv.FreePort(t)
	conf := filepath.Join(tmp, "nginx.conf")
	writeFlags(t, tmp, map[string]string{"nginx.conf": fmt.Sprintf(`daemon off;
master_process off;
pid %s;
error_log stderr notice;
events { worker_connections 256; }
http {
    access_log off;
%s    upstream web {
        server 127.0.0.1:%d;
        keepalive 32;
    }
    server {
        listen 127.0.0.1:%d;
        location / {
            proxy_pass http://web;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`, filepath.Join(tmp, "nginx.pid"), temps, a.port, front)})
	cmd := exec.Command(nginx, "-e", "stderr", "-p", tmp+"/", "-c", conf)
	cmd.Env = cleanEnv()
	startProc(t, cmd)
	through := fmt.Sprintf("http://127.0.0.1:%d", front)
	testenv.PollUntil(t, "nginx answers", 15*time.Second, func() (bool, string) {
		res, err := http.Get(through + "/")
		if err != nil {
			return false, err.Error()
		}
		res.Body.Close()
		return res.StatusCode == 200, res.Status
	})

	getN(t, through+"/", 8)
	slowDone := make(chan error, 1)
	go func() {
		res, err := (&http.Client{Timeout: 20 * time.Second}).Get(through + "/slow")
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				err = fmt.Errorf("/slow: %s", res.Status)
			}
		}
		slowDone <- err
	}()
	select {
	case <-a.slow:
	case err := <-slowDone:
		t.Fatalf("/slow answered before its release: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("/slow never reached the backend")
	}
	slowSince := time.Now()
	pooled := openOn(t, a.port)
	if pooled.Open < 2 {
		t.Fatalf("nginx keeps %d connections to the backend; want idle ones besides the slow request's", pooled.Open)
	}

	const idle = time.Second
	d := startDrainBin(t, bin, webA, "--wait", "1m", "--idle", idle.String(), "--min-wait", "1s", "--dir", flags)
	waitOutput(t, "pooled connections not counted", d.out, fmt.Sprintf("%d idle for 1s+ not counted", pooled.Open-1))
	// Longer than --idle since the slow request came: it still counts, as
	// its answer sends data every trickle.
	select {
	case <-d.done:
		t.Fatalf("drain --wait ended with a request in flight (for %v):\n%s", time.Since(slowSince), d.out)
	case <-time.After(2*idle - time.Since(slowSince)):
	}
	if s := d.out.String(); strings.Contains(s, "drained") {
		t.Fatalf("drained with a request in flight:\n%s", s)
	}
	released := time.Now()
	close(a.release)
	if err := <-slowDone; err != nil {
		t.Fatal(err)
	}
	d.wait(t)
	t.Logf("drain --wait --idle %v ended %v after the slow request was answered:\n%s", idle, time.Since(released), d.out)
	want := fmt.Sprintf("%s: drained: no busy connection on port %d after", webA, a.port)
	if s := d.out.String(); !strings.Contains(s, want) || !strings.Contains(s, "idle for 1s+ not counted)\n") {
		t.Errorf("drain --wait output, want %q and the idle ones:\n%s", want, s)
	}
	if got := flagContent(t, filepath.Join(flags, webA)); got != "drain\n" {
		t.Errorf("flag %q, want drain", got)
	}
}
