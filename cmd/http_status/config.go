package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/http-status/http_status/httpd"
)

// Config is everything the daemon is told on its command line.
type Config struct {
	Port             int
	IP               string
	Dir              string
	Daemon           bool
	PidFile          string
	VIPs             bool
	LoopbackVIPsOnly bool
	VIPMissingStatus int
	Resync           time.Duration
	Grace            time.Duration
	LogLevel         string
	LogFormat        string
	CreateDir        bool
	ConfigFile       string
	ProbeConcurrency int
	LogFile          string
	Lameduck         time.Duration
	AgentPort        int
	AgentIP          string
	AgentDefault     string
	Engine           string
	Version          bool
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

// DefaultDir is the original tool's status directory.
const DefaultDir = "/var/run/http_status"

const usageHead = `Usage: http_status [flags]
       http_status COMMAND [args]   (run "http_status help" for commands)

Answers load balancers' health checks: GET /status?SERVICE=name&PORT=80&VIP=addr,...
is 200 when the flag file DIR/name.80 says up and every VIP is on this host.
Flag files are watched with inotify and addresses with netlink; no request
touches the disk.

Flags (both -flag and --flag work):
`

// parseFlags reads the daemon's flags. The original tool's -p/--port,
// -i/--ip, -d/--daemon and --pidfile keep their meaning.
func parseFlags(args []string, stderr io.Writer) (Config, error) {
	c := Config{}
	fs := newFlagSet(&c, stderr)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.Set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { c.Set[f.Name] = true })
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	return c, c.validate()
}

// newFlagSet declares the daemon's flags into c. --help and the man page
// (man.go) are both printed from it, so they cannot disagree.
func newFlagSet(c *Config, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("http_status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.Port, "port", 8001, "TCP `port` to listen on for HTTP checks")
	fs.IntVar(&c.Port, "p", 8001, "short for --port")
	fs.StringVar(&c.IP, "ip", "127.0.0.1", "`address` to listen on; load balancers on other hosts need 0.0.0.0 (or ::)")
	fs.StringVar(&c.IP, "i", "127.0.0.1", "short for --ip")
	fs.StringVar(&c.Dir, "dir", DefaultDir, "status `directory` holding the flag files")
	fs.BoolVar(&c.Daemon, "daemon", false, "detach from the terminal and run in the background (for SysV init; not needed under systemd)")
	fs.BoolVar(&c.Daemon, "d", false, "short for --daemon")
	fs.StringVar(&c.PidFile, "pidfile", "", "write the daemon's PID to `file` (mode 0644) and remove it on exit")
	fs.BoolVar(&c.VIPs, "vips", true, "track this host's addresses with netlink so VIP= checks work (--vips=false turns VIP checks into 404s)")
	fs.BoolVar(&c.LoopbackVIPsOnly, "vip-loopback-only", false, "count a VIP only when it is on a loopback interface (LVS-DR real servers)")
	fs.IntVar(&c.VIPMissingStatus, "vip-missing-status", 404, "HTTP `code` for a service that is up while a VIP= address is not on this host: 404 (the original's; HAProxy's disable-on-404 then drains the server) or 503 (HAProxy takes it down)")
	fs.DurationVar(&c.Resync, "resync", 5*time.Minute, "`period` of the safety-net full rescan of the directory")
	fs.DurationVar(&c.Grace, "grace", 5*time.Second, "on SIGTERM, how long in-flight requests may take to finish")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log `level`: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", "auto", "log `format`: auto (journal when stderr is the systemd journal, console on a terminal, JSON otherwise), console, json, journal")
	fs.StringVar(&c.LogFile, "log-file", "", "append logs to `file` instead of stderr (with --daemon, the default is to discard them)")
	fs.DurationVar(&c.Lameduck, "lameduck", 0, "on SIGTERM, keep serving unchanged for this `long` before closing the listeners (the agent port answers drain meanwhile)")
	fs.BoolVar(&c.CreateDir, "create-dir", true, "create the status directory at start if it does not exist")
	fs.StringVar(&c.ConfigFile, "config", "", "probe configuration `file` (TOML; see README \"Probes\"); reloaded on SIGHUP. None: no probes")
	fs.IntVar(&c.ProbeConcurrency, "probe-concurrency", 32, "at most `n` probe attempts run at once")
	fs.IntVar(&c.AgentPort, "agent-port", 0, "TCP `port` for HAProxy's agent-check (0: off)")
	fs.StringVar(&c.AgentIP, "agent-ip", "", "`address` for the agent-check listener (default: same as --ip)")
	fs.StringVar(&c.AgentDefault, "agent-default", "status.html", "flag `name` answered when an agent-check connection sends no agent-send line")
	fs.StringVar(&c.Engine, "engine", defaultEngine(), "HTTP `engine` for /status: fast (epoll event loops answering /status and OPTIONS /, every other request handed to net/http; Linux only) or net/http")
	fs.BoolVar(&c.Version, "version", false, "print the version, the commit and the Go version, and exit")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
	}
	return fs
}

func (c Config) validate() error {
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("--port %d: want 0..65535", c.Port)
	}
	if net.ParseIP(strings.Trim(c.IP, "[]")) == nil {
		return fmt.Errorf("--ip %q: not an IP address", c.IP)
	}
	if c.AgentPort < 0 || c.AgentPort > 65535 {
		return fmt.Errorf("--agent-port %d: want 0..65535", c.AgentPort)
	}
	if c.AgentIP != "" && net.ParseIP(strings.Trim(c.AgentIP, "[]")) == nil {
		return fmt.Errorf("--agent-ip %q: not an IP address", c.AgentIP)
	}
	if c.VIPMissingStatus != 404 && c.VIPMissingStatus != 503 {
		return fmt.Errorf("--vip-missing-status %d: want 404 or 503", c.VIPMissingStatus)
	}
	switch c.Engine {
	case engineFast, engineNetHTTP:
	default:
		return fmt.Errorf("--engine %q: want fast or net/http", c.Engine)
	}
	if c.Dir == "" {
		return errors.New("--dir is empty")
	}
	if c.Resync < time.Second {
		return fmt.Errorf("--resync %s: want at least 1s", c.Resync)
	}
	if c.ProbeConcurrency < 1 {
		return fmt.Errorf("--probe-concurrency %d: want at least 1", c.ProbeConcurrency)
	}
	switch c.LogFormat {
	case "auto", "console", "json", "journal":
	default:
		return fmt.Errorf("--log-format %q: want auto, console, json or journal", c.LogFormat)
	}
	if c.Grace < 0 || c.Lameduck < 0 {
		return errors.New("--grace and --lameduck must not be negative")
	}
	return nil
}

// Engines for --engine.
const (
	engineFast    = "fast"
	engineNetHTTP = "net/http"
)

// defaultEngine is fast where the epoll engine exists (Linux).
func defaultEngine() string {
	if httpd.FastSupported {
		return engineFast
	}
	return engineNetHTTP
}

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
