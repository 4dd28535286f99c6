//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/faulttest"
	"github.com/http-status/http_status/internal/testenv"
)

// contribPath is a file under contrib/ (tests run in cmd/http_status).
func contribPath(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "contrib", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("contrib file: %v", err)
	}
	return p
}

// toolPath finds a tool in PATH or the sbin directories, or skips.
func toolPath(t *testing.T, name, why string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skipf("%s not installed (apt-get install %s); skipping: %s", name, name, why)
	return ""
}

// TestContribHAProxyCfg: contrib/haproxy.cfg and the example the package
// ships load in HAProxy without a warning.
func TestContribHAProxyCfg(t *testing.T) {
	t.Parallel()
	haproxy := toolPath(t, "haproxy", "haproxy -c -f contrib/haproxy.cfg")
	for _, cfg := range []string{contribPath(t, "haproxy.cfg"), filepath.Join("..", "..", "packaging", "examples", "haproxy.cfg")} {
		out, err := exec.Command(haproxy, "-c", "-f", cfg).CombinedOutput()
		if err != nil {
			t.Errorf("haproxy -c -f %s: %v\n%s", cfg, err, out)
			continue
		}
		if strings.Contains(string(out), "WARNING") || strings.Contains(string(out), "ALERT") {
			t.Errorf("haproxy -c -f %s warns:\n%s", cfg, out)
		}
	}
}

func TestContribKeepalivedConf(t *testing.T) {
	t.Parallel()
	keepalived := toolPath(t, "keepalived", "keepalived -t -f contrib/keepalived.conf")
	out, err := exec.Command(keepalived, "-t", "-f", contribPath(t, "keepalived.conf")).CombinedOutput()
	if err != nil {
		t.Fatalf("keepalived -t: %v\n%s", err, out)
	}
	for _, bad := range []string{"deprecated", "Unknown keyword", "ignoring"} {
		if strings.Contains(string(out), bad) {
			t.Errorf("keepalived -t says %q:\n%s", bad, out)
		}
	}
}

func TestContribShellSyntax(t *testing.T) {
	t.Parallel()
	sh := toolPath(t, "sh", "shell syntax check")
	for _, f := range []string{"http_status.functions", "trafficserver/http_status-parent-check.sh"} {
		if out, err := exec.Command(sh, "-n", contribPath(t, f)).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v\n%s", f, err, out)
		}
	}
}

// TestContribFunctions sources http_status.functions in every POSIX shell
// found, with the binary and without it (plain touch/rm), and checks what
// activate, inactivate and deactivate do to the status directory.
func TestContribFunctions(t *testing.T) {
	t.Parallel()
	funcs := contribPath(t, "http_status.functions")
	var shells []string
	for _, s := range []string{"sh", "dash", "bash", "busybox"} {
		if p, err := exec.LookPath(s); err == nil {
			shells = append(shells, p)
		}
	}
	if len(shells) == 0 {
		t.Skip("no shell found")
	}
	bins := map[string]string{"without binary": "/nonexistent/http_status"}
	if !testing.Short() {
		bins["with binary"] = testBinary(t)
	}
	for _, shell := range shells {
		for mode, bin := range bins {
			t.Run(filepath.Base(shell)+" "+mode, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "http_status")
				run := func(script string) error {
					t.Helper()
					args := []string{"-c", ". " + funcs + "; " + script}
					if filepath.Base(shell) == "busybox" {
						args = append([]string{"sh"}, args...)
					}
					cmd := exec.Command(shell, args...)
					cmd.Env = append(os.Environ(), "HTTP_STATUS_DIR="+dir, "HTTP_STATUS_BIN="+bin)
					if out, err := cmd.CombinedOutput(); err != nil {
						return fmt.Errorf("%s: %w: %s", script, err, out)
					}
					return nil
				}
				state := func(name string) cache.State {
					t.Helper()
					b, err := os.ReadFile(filepath.Join(dir, name))
					if os.IsNotExist(err) {
						return cache.Missing
					}
					if err != nil {
						t.Fatal(err)
					}
					e, _ := cache.ParseFlag(b)
					return e.State
				}

				if err := run("activate squid 80"); err != nil {
					t.Fatal(err)
				}
				if s := state("squid.80"); s != cache.Up {
					t.Fatalf("after activate: %v, want up", s)
				}
				if err := os.WriteFile(filepath.Join(dir, "squid.80"), []byte("drain\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := run("activate squid 80"); err != nil || state("squid.80") != cache.Up {
					t.Fatalf("activate over a drain flag: %v, state %v; want up", err, state("squid.80"))
				}
				if err := run("activate status.html"); err != nil || state("status.html") != cache.Up {
					t.Fatalf("activate without port: %v, state %v", err, state("status.html"))
				}
				if err := run("inactivate squid 80"); err != nil || state("squid.80") != cache.Missing {
					t.Fatalf("inactivate: %v, state %v; want no flag", err, state("squid.80"))
				}
				if err := run("inactivate squid 80"); err != nil {
					t.Fatalf("inactivate of an absent flag must succeed: %v", err)
				}
				if err := run("deactivate status.html"); err != nil || state("status.html") != cache.Missing {
					t.Fatalf("deactivate: %v, state %v; want no flag", err, state("status.html"))
				}
				for _, bad := range []string{"activate ../x", "activate .x", "activate 'a b'", "activate x 8o", "activate ''", "inactivate ../../etc/passwd",
					// Ports no check can ask for: these used to make or
					// remove x.0, x.70000, x.080 and say done.
					"activate x 0", "activate x 65536", "activate x 70000", "activate x 080", "inactivate x 080", "activate x 1234567"} {
					err := run(bad)
					var ee *exec.ExitError
					if !errors.As(err, &ee) || ee.ExitCode() != 2 {
						t.Errorf("%s: %v, want exit status 2", bad, err)
					}
				}
				if err := run("activate x 65535"); err != nil || state("x.65535") != cache.Up {
					t.Errorf("activate x 65535: %v, state %v", err, state("x.65535"))
				}
				if err := run("inactivate x 65535"); err != nil {
					t.Error(err)
				}
				des, _ := os.ReadDir(dir)
				if len(des) != 0 {
					t.Errorf("status directory not empty at the end: %d entries", len(des))
				}
			})
		}
	}
}

// TestContribNginxStatus loads contrib/nginx-status.conf into a stock
// nginx (nginx -t must pass without a warning), then runs that nginx in
// front of the daemon and sends real checks through it: the answer is
// http_status's, and follows the flag. Everything nginx writes stays in a
// temp dir (-p, -e, pid and temp paths).
func TestContribNginxStatus(t *testing.T) {
	t.Parallel()
	nginx := toolPath(t, "nginx", "nginx -t and a real check through contrib/nginx-status.conf")
	dir := filepath.Join(t.TempDir(), "flags")
	d := runDaemon(t, "--dir", dir, "--vips=false")
	tmp := t.TempDir()
	snippet, err := os.ReadFile(contribPath(t, "nginx-status.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(snippet), "proxy_pass http://127.0.0.1:8001;") {
		t.Fatal("nginx-status.conf no longer proxies to 127.0.0.1:8001; update this test")
	}
	daemonAddr := strings.TrimPrefix(d.base, "http://")
	writeFlags(t, tmp, map[string]string{"status.conf": strings.ReplaceAll(string(snippet), "127.0.0.1:8001", daemonAddr)})
	temps := nginxTempPaths(nginx, tmp)
	port := testenv.FreePort(t)
	conf := filepath.Join(tmp, "nginx.conf")
	writeFlags(t, tmp, map[string]string{"nginx.conf": fmt.Sprintf(`daemon off;
master_process off;
pid %s;
error_log stderr notice;
events { worker_connections 64; }
http {
    access_log off;
%s    server {
        listen 127.0.0.1:%d;
        include %s;
        location / { return 200 "the site\n"; }
    }
}
`, filepath.Join(tmp, "nginx.pid"), temps, port, filepath.Join(tmp, "status.conf"))})
	args := []string{"-e", "stderr", "-p", tmp + "/", "-c", conf}
	out, err := exec.Command(nginx, append([]string{"-t"}, args...)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "test is successful") || strings.Contains(string(out), "[warn]") {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	cmd := exec.Command(nginx, args...)
	cmd.Env = cleanEnv()
	startProc(t, cmd)

	through := "http://127.0.0.1:" + strconv.Itoa(port)
	check := through + "/status?SERVICE=nginx&PORT=80"
	var code int
	var body string
	deadline := time.Now().Add(15 * time.Second)
	for {
		if res, err := http.Get(check); err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			code, body = res.StatusCode, string(b)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nginx never answered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code != 404 || body != "Not Found - Service not available!\n" {
		t.Fatalf("check through nginx without a flag: %d %q, want http_status's 404", code, body)
	}
	writeFlags(t, dir, map[string]string{"nginx.80": ""})
	for deadline := time.Now().Add(15 * time.Second); ; {
		code, body = faulttest.HTTPGet(t, check)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("check through nginx after the flag: %d %q", code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if body != "OK - service fine!\n" {
		t.Errorf("check through nginx: body %q", body)
	}
	if code, body := faulttest.HTTPGet(t, through+"/"); code != 200 || body != "the site\n" {
		t.Errorf("the site itself: %d %q", code, body)
	}
	res, err := http.Post(check, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 403 {
		t.Errorf("POST through nginx: %d, want 403", res.StatusCode)
	}
}

// TestContribSquidConf: the active part of contrib/squid.conf (Squid 3 and
// later, in front of HAProxy) parses in the Squid installed (5.7 in CI)
// without an error or a warning. Squid 5 only logs "ERROR: Ignoring unknown
// cache_peer option" for the 2.x monitorurl= and exits 0, so the exit status
// alone proves nothing. The 2.x lines must stay commented out.
func TestContribSquidConf(t *testing.T) {
	t.Parallel()
	squid := toolPath(t, "squid", "squid -k parse on contrib/squid.conf")
	b, err := os.ReadFile(contribPath(t, "squid.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	if !strings.Contains(conf, "# cache_peer 192.0.2.21 parent 80 0 no-query originserver round-robin name=web1 monitorurl=") {
		t.Error("squid.conf lost its commented Squid 2.6/2.7 monitorurl= example")
	}
	for _, line := range strings.Split(conf, "\n") {
		if l := strings.TrimSpace(line); !strings.HasPrefix(l, "#") && (strings.Contains(l, "monitorurl") || strings.HasPrefix(l, "cache_dir")) {
			t.Errorf("active line Squid 5 would ignore, or a cache directory: %q", l)
		}
	}
	// A copy in a temp dir: -k parse only reads it, and nothing in it names
	// a system path.
	cfg := filepath.Join(t.TempDir(), "squid.conf")
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(squid, "-k", "parse", "-f", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("squid -k parse: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Processing: cache_peer 127.0.0.1 parent 8080") {
		t.Fatalf("squid -k parse did not read the cache_peer line:\n%s", out)
	}
	for _, bad := range []string{"ERROR", "WARNING", "FATAL", "Bungled", "UPGRADE"} {
		if strings.Contains(string(out), bad) {
			t.Errorf("squid -k parse says %s:\n%s", bad, out)
		}
	}
}

// nginxTempPaths is the *_temp_path lines (indented for an http block) of
// the modules the nginx binary has, each in its own directory under tmp,
// so that nothing goes to /var/lib/nginx.
func nginxTempPaths(nginx, tmp string) string {
	version, _ := exec.Command(nginx, "-V").CombinedOutput()
	temps := ""
	for _, m := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		if m == "client_body" || !strings.Contains(string(version), "--without-http_"+m+"_module") {
			temps += fmt.Sprintf("    %s_temp_path %s;\n", m, filepath.Join(tmp, m))
		}
	}
	return temps
}
