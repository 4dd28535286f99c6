package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/http-status/http_status/cache"
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

func TestContribHAProxyCfg(t *testing.T) {
	t.Parallel()
	haproxy := toolPath(t, "haproxy", "haproxy -c -f contrib/haproxy.cfg")
	out, err := exec.Command(haproxy, "-c", "-f", contribPath(t, "haproxy.cfg")).CombinedOutput()
	if err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "WARNING") || strings.Contains(string(out), "ALERT") {
		t.Errorf("haproxy -c warns:\n%s", out)
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
				for _, bad := range []string{"activate ../x", "activate .x", "activate 'a b'", "activate x 8o", "activate ''", "inactivate ../../etc/passwd"} {
					if err := run(bad); err == nil {
						t.Errorf("%s succeeded", bad)
					}
				}
				des, _ := os.ReadDir(dir)
				if len(des) != 0 {
					t.Errorf("status directory not empty at the end: %d entries", len(des))
				}
			})
		}
	}
}
