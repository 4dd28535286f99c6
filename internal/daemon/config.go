//go:build linux

package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/http-status/http_status/cache"
)

// DefaultDir is the original tool's status directory.
const DefaultDir = "/var/run/http_status"

// Config is everything the daemon is told: the command line's flags,
// which cmd/http_status parses into it.
type Config struct {
	Port             int
	IP               string
	Dir              string
	PidFile          string
	VIPs             bool
	LoopbackVIPsOnly bool
	VIPMissingStatus int
	Resync           time.Duration
	StaleAfter       time.Duration
	Grace            time.Duration
	CreateDir        bool
	ConfigFile       string
	ProbeConcurrency int
	Lameduck         time.Duration
	AgentPort        int
	AgentIP          string
	AgentDefault     string
	Engine           string
	// Pages is where the pages and /metrics are served: PagesPort ("" too),
	// PagesOff or HOST:PORT.
	Pages string
	// Set holds the flags given on the command line (by their name in the
	// flag set: "ip" and "i" are two names), as opposed to defaults.
	Set map[string]bool
}

// set reports whether any of the named flags was given.
func (c Config) set(names ...string) bool {
	for _, n := range names {
		if c.Set[n] {
			return true
		}
	}
	return false
}

// Validate checks the configuration; its errors name the flag.
func (c Config) Validate() error {
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("--port %d: want 0..65535", c.Port)
	}
	if net.ParseIP(strings.Trim(c.IP, "[]")) == nil {
		return fmt.Errorf("--ip %q: not an IP address%s", c.IP, zoneNote(c.IP))
	}
	if c.AgentPort < 0 || c.AgentPort > 65535 {
		return fmt.Errorf("--agent-port %d: want 0..65535", c.AgentPort)
	}
	if c.AgentIP != "" && net.ParseIP(strings.Trim(c.AgentIP, "[]")) == nil {
		return fmt.Errorf("--agent-ip %q: not an IP address%s", c.AgentIP, zoneNote(c.AgentIP))
	}
	// Checked here, not only when the agent starts: a bad name was a
	// runtime failure (exit 1) with --agent-port, and silently kept
	// without it until a systemd agent socket turned the agent on.
	if c.AgentDefault != "" && !cache.ValidName(c.AgentDefault) {
		return fmt.Errorf("--agent-default %q: want a flag-file name such as status.html or squid.80", c.AgentDefault)
	}
	if c.VIPMissingStatus != 404 && c.VIPMissingStatus != 503 {
		return fmt.Errorf("--vip-missing-status %d: want 404 or 503", c.VIPMissingStatus)
	}
	switch c.Engine {
	case EngineFast, EngineNetHTTP:
	default:
		return fmt.Errorf("--engine %q: want fast or net/http", c.Engine)
	}
	if err := c.checkPages(); err != nil {
		return err
	}
	if c.Dir == "" {
		return errors.New("--dir is empty")
	}
	if c.Resync < time.Second {
		return fmt.Errorf("--resync %s: want at least 1s", c.Resync)
	}
	if c.StaleAfter != 0 && c.StaleAfter < 2*time.Second {
		return fmt.Errorf("--stale-after %s: want 0 (never) or at least 2s (the watcher turns every 250 ms)", c.StaleAfter)
	}
	if c.ProbeConcurrency < 1 {
		return fmt.Errorf("--probe-concurrency %d: want at least 1", c.ProbeConcurrency)
	}
	if c.Grace < 0 || c.Lameduck < 0 {
		return errors.New("--grace and --lameduck must not be negative")
	}
	return nil
}

// zoneNote says why an IPv6 address with a zone ("fe80::1%eth0") is
// refused, or "" for anything else: listening on a link-local address is
// not supported; the host's global address, or :: for every one, is.
func zoneNote(s string) string {
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil && a.Zone() != "" {
		return " (a link-local address with a zone is not supported: give a global address, or :: for every address)"
	}
	return ""
}

// Values of --pages besides HOST:PORT.
const (
	PagesPort = "port" // on the check port, with /status
	PagesOff  = "off"  // nowhere
)

// checkPages checks --pages. A HOST:PORT needs an IP address: an empty
// host (":8003", every address) or a name would leave the one thing this
// flag decides, who can read the pages, implicit.
func (c Config) checkPages() error {
	if c.Pages == "" || c.Pages == PagesPort || c.Pages == PagesOff {
		return nil
	}
	bad := func(why string) error {
		return fmt.Errorf("--pages %q: %s; want port (on the check port), off, or HOST:PORT such as 127.0.0.1:8003 or [::1]:8003", c.Pages, why)
	}
	host, port, err := net.SplitHostPort(c.Pages)
	if err != nil {
		return bad("not HOST:PORT")
	}
	if host == "" {
		return bad("no host: name the address, 0.0.0.0 or :: for every one")
	}
	if net.ParseIP(host) == nil {
		return bad("the host is not an IP address" + zoneNote(host))
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || port != strconv.Itoa(n) {
		return bad("the port is not a decimal number 0..65535")
	}
	return nil
}

// Engines for --engine.
const (
	EngineFast    = "fast"
	EngineNetHTTP = "net/http"
)

// Addr is the HTTP listen address.
func (c Config) Addr() string {
	return net.JoinHostPort(strings.Trim(c.IP, "[]"), strconv.Itoa(c.Port))
}

// AgentAddr is the agent-check listen address (--agent-ip, else --ip).
func (c Config) AgentAddr() string {
	ip := c.AgentIP
	if ip == "" {
		ip = c.IP
	}
	return net.JoinHostPort(strings.Trim(ip, "[]"), strconv.Itoa(c.AgentPort))
}
