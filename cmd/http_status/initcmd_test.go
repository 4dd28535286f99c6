//go:build linux

package main

import (
	"fmt"
	"github.com/http-status/http_status/internal/testenv"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A service's init script as the original http_status users wrote them: it
// sources the distribution's functions (per variant), then
// http_status.functions, then handles its own commands. Only start and
// stop are its own; activate and inactivate come from the functions file.
const initScriptTemplate = `#!{{SHELL}}
### BEGIN INIT INFO
# Provides:          trafficserver
# Required-Start:    $network
# Required-Stop:     $network
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: a service behind a load balancer
### END INIT INFO
set -e
{{DISTRO}}
{{NAME}}
. {{FUNCS}}

case "$1" in
start) echo "Starting trafficserver" ;;
stop) echo "Stopping trafficserver" ;;
*) echo "Usage: $0 {start|stop|activate|inactivate}" >&2; exit 2 ;;
esac
`

// redHatFunctions stands in for Red Hat's /etc/rc.d/init.d/functions, which
// Debian does not ship: echo_success and echo_failure print what
// initscripts' do with BOOTUP other than "color" (no cursor moves, no
// colour), portably (the real file is bash-only).
const redHatFunctions = `BOOTUP=serial
echo_success() { printf '[  OK  ]\r'; return 0; }
echo_failure() { printf '[FAILED]\r'; return 1; }
`

// TestInitScriptActivate runs a real init script under dash and bash, as
// the original's users did: "SCRIPT activate" prints the usual line and
// puts the service in rotation (the running daemon answers 200),
// "SCRIPT inactivate" takes it out, with the exit codes an init system
// expects. Plain, Debian (the real /lib/lsb/init-functions) and Red Hat
// (echo_success, stand-in) output; with and without the http_status
// binary; named after the script, an rc.d link, or HTTP_STATUS_NAME.
func TestInitScriptActivate(t *testing.T) {
	// Not parallel: it writes init scripts and executes them at once, and a
	// fork in a parallel test can hold a script open for writing at that
	// moment (exec: "text file busy", golang/go#22315).
	funcs := contribPath(t, "http_status.functions")
	var shells []string
	for _, s := range []string{"dash", "bash"} {
		p, err := exec.LookPath(s)
		if err != nil {
			t.Logf("%s not installed; the init script runs under the others", s)
			continue
		}
		shells = append(shells, p)
	}
	if len(shells) == 0 {
		t.Skip("neither dash nor bash installed")
	}
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "flags")
	port := testenv.FreePort(t)
	startDaemon(t, nil, "--dir", dir, "--port", strconv.Itoa(port), "--vips=false", "--log-format=json")
	status := func(query string) int {
		t.Helper()
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/status?%s", port, query))
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitStatus := func(query string, want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := status(query)
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/status?%s = %d, want %d", query, got, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitStatus("SERVICE=trafficserver", 404)

	rh := filepath.Join(tmp, "functions")
	if err := os.WriteFile(rh, []byte(redHatFunctions), 0o644); err != nil {
		t.Fatal(err)
	}
	const lsb = "/lib/lsb/init-functions"
	type variant struct {
		name       string
		distro     string
		ok, failed func(verb, what string) string
	}
	variants := []variant{
		{"plain", "", func(v, w string) string { return v + " " + w + " : [  OK  ]\n" },
			func(v, w string) string { return v + " " + w + " : [FAILED]\n" }},
		{"redhat", ". " + rh, func(v, w string) string { return v + " " + w + " : [  OK  ]\r\n" },
			func(v, w string) string { return v + " " + w + " : [FAILED]\r\n" }},
	}
	if _, err := os.Stat(lsb); err == nil {
		variants = append(variants, variant{"debian", ". " + lsb,
			func(v, w string) string { return v + " " + w + "...done.\n" },
			func(v, w string) string { return v + " " + w + "...failed.\n" }})
	} else {
		t.Logf("%s missing (Debian package lsb-base): the Debian variant is not run", lsb)
	}
	bins := map[string]string{"without binary": "/nonexistent/http_status", "with binary": testBinary(t)}

	for _, shell := range shells {
		for _, v := range variants {
			for mode, bin := range bins {
				t.Run(filepath.Base(shell)+" "+v.name+" "+mode, func(t *testing.T) {
					sdir := t.TempDir()
					write := func(name, setName string) string {
						t.Helper()
						s := strings.NewReplacer("{{SHELL}}", shell, "{{DISTRO}}", v.distro, "{{NAME}}", setName, "{{FUNCS}}", funcs).Replace(initScriptTemplate)
						p := filepath.Join(sdir, name)
						if err := os.WriteFile(p, []byte(s), 0o755); err != nil {
							t.Fatal(err)
						}
						return p
					}
					script := write("trafficserver", "")
					run := func(flagDir, path string, args ...string) (int, string, string) {
						t.Helper()
						cmd := exec.Command(path, args...)
						cmd.Env = append(cleanEnv(), "HTTP_STATUS_DIR="+flagDir, "HTTP_STATUS_BIN="+bin, "TERM=dumb")
						var stdout, stderr strings.Builder
						cmd.Stdout, cmd.Stderr = &stdout, &stderr
						err := cmd.Run()
						code := 0
						if ee, ok := err.(*exec.ExitError); ok {
							code = ee.ExitCode()
						} else if err != nil {
							t.Fatalf("%s %v: %v", path, args, err)
						}
						return code, stdout.String(), stderr.String()
					}
					expect := func(wantCode int, wantOut string, path string, args ...string) {
						t.Helper()
						code, out, errOut := run(dir, path, args...)
						if code != wantCode || out != wantOut {
							t.Fatalf("%s %s: exit %d, stdout %q (stderr %q); want exit %d, stdout %q",
								filepath.Base(path), strings.Join(args, " "), code, out, errOut, wantCode, wantOut)
						}
					}

					expect(0, v.ok("Activating", "trafficserver"), script, "activate")
					waitStatus("SERVICE=trafficserver", 200)
					if b, err := os.ReadFile(filepath.Join(dir, "trafficserver")); err != nil || strings.TrimSpace(string(b)) != strings.TrimSpace(flagUpContent(mode)) {
						t.Errorf("flag after activate: %q, %v", b, err)
					}
					expect(0, v.ok("Activating", "trafficserver.8080"), script, "activate", "8080")
					waitStatus("SERVICE=trafficserver&PORT=8080", 200)
					expect(0, v.ok("Deactivating", "trafficserver"), script, "inactivate")
					waitStatus("SERVICE=trafficserver", 404)
					expect(0, v.ok("Deactivating", "trafficserver.8080"), script, "deactivate", "8080")
					waitStatus("SERVICE=trafficserver&PORT=8080", 404)
					// Taking out what is not in rotation is no error.
					expect(0, v.ok("Deactivating", "trafficserver"), script, "inactivate")

					// Run through an rc.d link, the service keeps its name.
					link := filepath.Join(sdir, "S20trafficserver")
					if err := os.Symlink(script, link); err != nil {
						t.Fatal(err)
					}
					expect(0, v.ok("Activating", "trafficserver"), link, "activate")
					waitStatus("SERVICE=trafficserver", 200)
					expect(0, v.ok("Deactivating", "trafficserver"), link, "deactivate")
					waitStatus("SERVICE=trafficserver", 404)

					// A script whose file name is not the service's.
					named := write("ats", "HTTP_STATUS_NAME=trafficserver HTTP_STATUS_PORT=80")
					expect(0, v.ok("Activating", "trafficserver.80"), named, "activate")
					waitStatus("SERVICE=trafficserver&PORT=80", 200)
					expect(0, v.ok("Deactivating", "trafficserver.80"), named, "inactivate")
					waitStatus("SERVICE=trafficserver&PORT=80", 404)

					// The script's own commands still run; other words
					// reach its usage error.
					expect(0, "Starting trafficserver\n", script, "start")
					expect(2, "", script, "bogus")
					expect(2, "", script, "activate", "not-a-port")
					expect(2, "", script, "activate", "80", "extra")

					// A flag that cannot be written: [FAILED] and exit 1.
					blocker := filepath.Join(sdir, "file")
					if err := os.WriteFile(blocker, nil, 0o644); err != nil {
						t.Fatal(err)
					}
					code, out, _ := run(filepath.Join(blocker, "flags"), script, "activate")
					if code != 1 || out != v.failed("Activating", "trafficserver") {
						t.Errorf("activate into an impossible directory: exit %d, stdout %q; want exit 1, %q", code, out, v.failed("Activating", "trafficserver"))
					}
					des, _ := os.ReadDir(dir)
					if len(des) != 0 {
						t.Errorf("status directory not empty at the end: %d entries", len(des))
					}
				})
			}
		}
	}
}

// flagUpContent is what activate leaves in the flag file: the control
// command writes "up", the shell fallback an empty file (also up).
func flagUpContent(mode string) string {
	if mode == "with binary" {
		return "up\n"
	}
	return ""
}
