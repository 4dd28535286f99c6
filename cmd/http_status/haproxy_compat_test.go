//go:build linux

package main

import (
	"fmt"
	"github.com/http-status/http_status/internal/testenv"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// missingVIP is a documentation address (RFC 5737) no test host has.
const missingVIP = "192.0.2.99"

const haproxyCompatCfg = `global
    stats socket {{SOCK}} mode 600 level admin

defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    timeout check 1s

# Old configurations: HTTP/1.1 checks and no Host line (HAProxy adds none).
backend nohost
    option httpchk GET /status?SERVICE=web&PORT=80 HTTP/1.1
    server fast 127.0.0.1:{{FAST}} check inter 100ms
    server nethttp 127.0.0.1:{{NETHTTP}} check inter 100ms

backend nohost_options
    option httpchk OPTIONS / HTTP/1.1
    server fast 127.0.0.1:{{FAST}} check inter 100ms
    server nethttp 127.0.0.1:{{NETHTTP}} check inter 100ms

backend nohost_healthz
    option httpchk GET /healthz HTTP/1.1
    server fast 127.0.0.1:{{FAST}} check inter 100ms
    server nethttp 127.0.0.1:{{NETHTTP}} check inter 100ms

# A VIP that is not on this host, behind disable-on-404: the 404 daemon
# (the default) drains the server, the 503 one takes it down, and an agent
# that names the VIP takes it down whatever the HTTP code.
backend vip
    option httpchk GET /status?SERVICE=web&PORT=80&VIP={{MISSING}}
    http-check disable-on-404
    server d404 127.0.0.1:{{FAST}} check inter 100ms
    server d503 127.0.0.1:{{NETHTTP}} check inter 100ms
    server d404agent 127.0.0.1:{{FAST}} check inter 100ms agent-check agent-port {{AGENT}} agent-inter 100ms agent-send "SERVICE=web&PORT=80&VIP={{MISSING}}\n"

backend vip_present
    option httpchk GET /status?SERVICE=web&PORT=80&VIP=127.0.0.1
    http-check disable-on-404
    server d503 127.0.0.1:{{NETHTTP}} check inter 100ms
`

// TestHAProxyCompat runs a real HAProxy with the checks of old
// configurations against both engines: HTTP/1.1 checks without a Host line
// (GET /status, OPTIONS /, GET /healthz) must bring servers UP, and a VIP
// missing from this host must drain the server with the default
// --vip-missing-status 404 and take it down with 503 (or with an agent that
// names the VIP).
func TestHAProxyCompat(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts HAProxy; skipped with -short")
	}
	haproxy := haproxyPath(t)
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if strings.HasPrefix(a.String(), missingVIP+"/") {
				t.Skipf("this host has %s, the address the test needs missing", missingVIP)
			}
		}
	}
	bin := testBinary(t)
	tmp := t.TempDir()
	flags := filepath.Join(tmp, "flags")
	fastPort, netPort, agentPort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	fastLog, netLog := &testenv.LogBuffer{}, &testenv.LogBuffer{}
	startProcess(t, fastLog, bin, "--dir", flags, "--port", strconv.Itoa(fastPort), "--engine", "fast",
		"--agent-port", strconv.Itoa(agentPort), "--log-format", "json")
	startProcess(t, netLog, bin, "--dir", flags, "--port", strconv.Itoa(netPort), "--engine", "net/http",
		"--vip-missing-status", "503", "--log-format", "json")
	for _, p := range []int{fastPort, netPort} {
		testenv.PollUntil(t, "daemon up", 15*time.Second, func() (bool, string) {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", p))
			if err != nil {
				return false, err.Error()
			}
			resp.Body.Close()
			return resp.StatusCode == 200, resp.Status
		})
	}
	ctl := func(args ...string) { t.Helper(); binCtl(t, bin, flags, args...) }

	ha := startHAProxy(t, haproxy, tmp, haproxyCompatCfg, []string{"{{FAST}}", strconv.Itoa(fastPort), "{{NETHTTP}}", strconv.Itoa(netPort),
		"{{AGENT}}", strconv.Itoa(agentPort), "{{MISSING}}", missingVIP}, fastLog, netLog)
	up := func(s haproxyServer) bool { return s.Status == "UP" }
	down := func(s haproxyServer) bool { return strings.HasPrefix(s.Status, "DOWN") }

	// No flag yet: the checks are answered (404), not refused (400).
	for _, srv := range []string{"fast", "nethttp"} {
		ha.expect("nohost", srv, "DOWN on 404 (no flag), not on 400", func(s haproxyServer) bool {
			return down(s) && strings.Contains(s.Check, "L7STS Not Found")
		})
		ha.expect("nohost_healthz", srv, "UP", up)
	}
	ctl("activate", "web", "--port", "80")
	ctl("activate", "status.html")
	for _, srv := range []string{"fast", "nethttp"} {
		ha.expect("nohost", srv, "UP once the flag is there", up)
		ha.expect("nohost_options", srv, "UP (status.html)", up)
	}
	if strings.Contains(ha.log.String(), "Bad Request") {
		t.Errorf("HAProxy saw a 400:\n%s", ha.log)
	}

	ha.expect("vip_present", "d503", "UP: 127.0.0.1 is here", up)
	ha.expect("vip", "d404", "NOLB: 404 with disable-on-404 drains", func(s haproxyServer) bool { return s.Status == "NOLB" })
	ha.expect("vip", "d503", "DOWN: 503", down)
	ha.expect("vip", "d404agent", "DOWN: the agent names the VIP", func(s haproxyServer) bool {
		return down(s) && strings.Contains(s.Agent, "VIP not configured")
	})

	// A drain flag is still a drain (404) with --vip-missing-status 503.
	ctl("drain", "web", "--port", "80")
	ha.expect("vip_present", "d503", "NOLB: the flag drains", func(s haproxyServer) bool { return s.Status == "NOLB" })
}
