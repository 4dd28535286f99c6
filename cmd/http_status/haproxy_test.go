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

	"github.com/http-status/http_status/internal/testenv"
)

// This file runs a real HAProxy against the real binary on loopback.

// haproxyPath finds the haproxy binary, or skips the test.
func haproxyPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/haproxy", "/usr/local/sbin/haproxy"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("haproxy not installed (apt-get install haproxy); skipping the real HAProxy test")
	return ""
}

// startProcess starts a child that the test stops (SIGTERM, then kill) at
// the end.
func startProcess(t *testing.T, out *testenv.LogBuffer, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	testenv.DieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return cmd
}

// binCtl runs the built binary's control command args on dir, as an
// operator would, and fails the test if it does not exit 0.
func binCtl(t *testing.T, bin, dir string, args ...string) {
	t.Helper()
	if out, err := exec.Command(bin, append(args, "--dir", dir)...).CombinedOutput(); err != nil {
		t.Fatalf("http_status %v: %v\n%s", args, err, out)
	}
}

// haproxyRun is a real HAProxy on a configuration the test wrote.
type haproxyRun struct {
	t    *testing.T
	sock string             // its runtime API socket
	log  *testenv.LogBuffer // its output
}

// startHAProxy writes tmpl to tmp/haproxy.cfg, with {{SOCK}} and then each
// key of vars (pairs: "{{KEY}}", value) replaced, and starts haproxy on it.
// When the test fails, HAProxy's output and each daemon log are printed.
func startHAProxy(t *testing.T, haproxy, tmp, tmpl string, vars []string, daemonLogs ...*testenv.LogBuffer) *haproxyRun {
	t.Helper()
	h := &haproxyRun{t: t, sock: filepath.Join(tmp, "haproxy.sock"), log: &testenv.LogBuffer{}}
	cfg := filepath.Join(tmp, "haproxy.cfg")
	text := strings.NewReplacer(append([]string{"{{SOCK}}", h.sock}, vars...)...).Replace(tmpl)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	startProcess(t, h.log, haproxy, "-f", cfg, "-db")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("haproxy output:\n%s", h.log)
			for i, l := range daemonLogs {
				t.Logf("http_status log %d:\n%s", i+1, l)
			}
		}
	})
	return h
}

// expect waits (15 s at most) until ok holds for backend/server in
// HAProxy's runtime API, and returns the state that satisfied it.
func (h *haproxyRun) expect(backend, server, what string, ok func(s haproxyServer) bool) haproxyServer {
	h.t.Helper()
	var last haproxyServer
	testenv.PollUntil(h.t, backend+"/"+server+": "+what, 15*time.Second, func() (bool, string) {
		s, err := haproxyServerState(h.sock, backend, server)
		if err != nil {
			return false, err.Error()
		}
		last = s
		return ok(s), s.String()
	})
	return last
}

// haproxyCmd sends one command to HAProxy's runtime API.
func haproxyCmd(sock, cmd string) (string, error) {
	c, err := net.DialTimeout("unix", sock, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// haproxyServer is one server as the runtime API reports it.
type haproxyServer struct {
	Status  string // show stat: UP, DRAIN, NOLB, MAINT, DOWN, "DOWN (agent)", "UP 1/2"...
	Weight  int    // show stat: effective weight
	OpState int    // show servers state: 0 stopped, 1 starting, 2 running, 3 stopping
	Admin   int    // show servers state: admin flags (1 forced maint, 8 forced drain)
	Check   string // show stat: last check
	Agent   string // show stat: last agent check
}

func (s haproxyServer) String() string {
	return fmt.Sprintf("status=%q weight=%d op_state=%d admin=%#x check=%q agent=%q",
		s.Status, s.Weight, s.OpState, s.Admin, s.Check, s.Agent)
}

// Admin-state flags of "show servers state" (HAProxy's SRV_ADMF_*).
const (
	haAdminForcedMaint = 0x01
	haAdminForcedDrain = 0x08
)

func haproxyServerState(sock, backend, server string) (haproxyServer, error) {
	var s haproxyServer
	stat, err := haproxyCmd(sock, "show stat")
	if err != nil {
		return s, err
	}
	rows, hdr := csvRows(stat, ",")
	found := false
	for _, r := range rows {
		if r[hdr["pxname"]] == backend && r[hdr["svname"]] == server {
			s.Status = r[hdr["status"]]
			s.Weight, _ = strconv.Atoi(r[hdr["weight"]])
			s.Check = r[hdr["check_status"]] + " " + r[hdr["last_chk"]]
			if i, ok := hdr["last_agt"]; ok {
				s.Agent = r[hdr["agent_status"]] + " " + r[i]
			}
			found = true
		}
	}
	if !found {
		return s, fmt.Errorf("server %s/%s not in show stat:\n%s", backend, server, stat)
	}
	st, err := haproxyCmd(sock, "show servers state "+backend)
	if err != nil {
		return s, err
	}
	rows, hdr = csvRows(st, " ")
	for _, r := range rows {
		if r[hdr["srv_name"]] == server {
			s.OpState, _ = strconv.Atoi(r[hdr["srv_op_state"]])
			s.Admin, _ = strconv.Atoi(r[hdr["srv_admin_state"]])
			return s, nil
		}
	}
	return s, fmt.Errorf("server %s not in show servers state:\n%s", server, st)
}

// csvRows splits the runtime API's "# name sep name..." tables.
func csvRows(text, sep string) ([][]string, map[string]int) {
	hdr := map[string]int{}
	var rows [][]string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "# ") {
			for i, name := range strings.Split(strings.TrimPrefix(line, "# "), sep) {
				hdr[strings.TrimSpace(name)] = i
			}
			continue
		}
		if line == "" || len(hdr) == 0 {
			continue
		}
		var f []string
		if sep == " " {
			f = strings.Fields(line)
		} else {
			f = strings.Split(line, sep)
		}
		if len(f) >= len(hdr)-1 {
			for len(f) < len(hdr) {
				f = append(f, "")
			}
			rows = append(rows, f)
		}
	}
	return rows, hdr
}

const haproxyTestCfg = `global
    stats socket {{SOCK}} mode 600 level admin

defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    timeout check 1s

backend be
    option httpchk GET /status?SERVICE=x&PORT=80
    http-check disable-on-404
    server s1 127.0.0.1:{{HTTP}} weight 100 check inter 100ms agent-check agent-port {{AGENT}} agent-inter 100ms agent-send "x.80\n"
    # No agent-send: the agent answers for the default flag, status.html.
    server s2 127.0.0.1:{{HTTP}} weight 100 check inter 100ms agent-check agent-port {{AGENT}} agent-inter 100ms
`

// TestHAProxyAgentCheck drives a real HAProxy: its httpchk polls /status and
// its agent-check polls the agent port; the control command flips the
// service's state and the runtime API must follow: UP, weight 50%, DRAIN,
// MAINT, DOWN, UP.
func TestHAProxyAgentCheck(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts HAProxy; skipped with -short")
	}
	haproxy := haproxyPath(t)
	bin := testBinary(t)
	tmp := t.TempDir()
	flags := filepath.Join(tmp, "flags")
	httpPort, agentPort := testenv.FreePort(t), testenv.FreePort(t)

	daemonLog := &testenv.LogBuffer{}
	startProcess(t, daemonLog, bin, "--dir", flags, "--ip", "127.0.0.1",
		"--port", strconv.Itoa(httpPort), "--agent-port", strconv.Itoa(agentPort),
		"--vips=false", "--log-format", "json")
	ctl := func(args ...string) { t.Helper(); binCtl(t, bin, flags, args...) }
	ctl("activate", "x", "--port", "80")
	testenv.PollUntil(t, "daemon answers /status", 15*time.Second, func() (bool, string) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/status?SERVICE=x&PORT=80", httpPort))
		if err != nil {
			return false, err.Error() + "\n" + daemonLog.String()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})

	ha := startHAProxy(t, haproxy, tmp, haproxyTestCfg, []string{"{{HTTP}}", strconv.Itoa(httpPort), "{{AGENT}}", strconv.Itoa(agentPort)}, daemonLog)
	expectServer := func(server, what string, ok func(s haproxyServer) bool) {
		t.Helper()
		s := ha.expect("be", server, what, ok)
		t.Logf("%s: %s: %s", server, what, s)
	}
	expect := func(what string, ok func(s haproxyServer) bool) {
		t.Helper()
		expectServer("s1", what, ok)
	}

	// s2's agent sends nothing: it gets status.html's answer.
	expectServer("s2", "DOWN: no status.html", func(s haproxyServer) bool {
		return strings.HasPrefix(s.Status, "DOWN") && strings.Contains(s.Agent, "no flag file")
	})
	ctl("activate", "status.html")
	expectServer("s2", "UP with status.html", func(s haproxyServer) bool {
		return s.Status == "UP" && strings.Contains(s.Agent, "via agent : up")
	})

	expect("UP at 100%, agent heard", func(s haproxyServer) bool {
		return s.Status == "UP" && s.Weight == 100 && s.Admin == 0 && strings.Contains(s.Agent, "via agent : up")
	})

	ctl("weight", "x.80", "50%")
	expect("UP at 50%", func(s haproxyServer) bool {
		return s.Status == "UP" && s.Weight == 50
	})

	ctl("drain", "x", "--port", "80", "--reason", "deploy 1234")
	expect("DRAIN (agent) and NOLB (httpchk 404)", func(s haproxyServer) bool {
		return (s.Status == "DRAIN" || s.Status == "NOLB") &&
			s.Admin&haAdminForcedDrain != 0 && s.OpState == 3
	})

	ctl("maint", "x", "--port", "80")
	expect("MAINT", func(s haproxyServer) bool {
		return strings.HasPrefix(s.Status, "MAINT") && s.Admin&haAdminForcedMaint != 0 && s.Admin&haAdminForcedDrain == 0
	})

	ctl("down", "x", "--port", "80")
	expect("DOWN, maint lifted", func(s haproxyServer) bool {
		return strings.HasPrefix(s.Status, "DOWN") && s.Admin == 0 && s.OpState == 0
	})

	ctl("activate", "x", "--port", "80")
	expect("UP at 100% again", func(s haproxyServer) bool {
		return s.Status == "UP" && s.Weight == 100 && s.Admin == 0
	})

	ctl("maint", "x", "--port", "80")
	expect("MAINT again", func(s haproxyServer) bool {
		return strings.HasPrefix(s.Status, "MAINT")
	})
	ctl("inactivate", "x", "--port", "80")
	expect("flag removed: DOWN", func(s haproxyServer) bool {
		return strings.HasPrefix(s.Status, "DOWN") && s.Admin == 0
	})

	ctl("activate", "x", "--port", "80")
	expect("UP after the flag came back", func(s haproxyServer) bool {
		return s.Status == "UP" && s.Weight == 100 && s.Admin == 0
	})
}
