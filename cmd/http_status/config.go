//go:build linux

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/http-status/http_status/internal/daemon"
)

// Config is the command line: the daemon's configuration and what only
// the process does with it (detach, logging, --version).
type Config struct {
	daemon.Config
	Daemon    bool
	LogLevel  string
	LogFormat string
	LogFile   string
	Version   bool
}

// DefaultDir is the original tool's status directory.
const DefaultDir = daemon.DefaultDir

func (c Config) validate() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	switch c.LogFormat {
	case "auto", "console", "json", "journal":
	default:
		return fmt.Errorf("--log-format %q: want auto, console, json or journal", c.LogFormat)
	}
	return nil
}

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
	// The flag package prints a parse error and the whole usage, and the
	// caller prints the error again: a mistyped value was buried in the
	// middle of 70 lines. Only --help prints the usage.
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fs.Usage()
			return c, err
		}
		return c, fmt.Errorf("%w (see --help)", err)
	}
	c.Set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { c.Set[f.Name] = true })
	if fs.NArg() > 0 {
		return c, unexpectedArg(fs.Arg(0))
	}
	return c, c.validate()
}

// unexpectedArg says what to do with a word the daemon's command line does
// not take: a control command given after a flag, or no command at all.
func unexpectedArg(arg string) error {
	if isCtlCommand(arg) {
		return fmt.Errorf("%q is a command: put it first, its flags after it (http_status %s NAME --dir DIR ...)", arg, arg)
	}
	return fmt.Errorf("unexpected argument %q: not a command (%s) nor a flag's value; see \"http_status help\" and --help", arg, strings.Join(ctlCommandList, ", "))
}

// newFlagSet declares the daemon's flags into c. --help and the man page
// (man.go) are both printed from it, so they cannot disagree.
func newFlagSet(c *Config, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("http_status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	decimalVar(fs, &c.Port, "port", 8001, "TCP `port` to listen on for HTTP checks")
	decimalVar(fs, &c.Port, "p", 8001, "short for --`port`")
	fs.StringVar(&c.IP, "ip", "127.0.0.1", "`address` to listen on; load balancers on other hosts need 0.0.0.0 (or ::)")
	fs.StringVar(&c.IP, "i", "127.0.0.1", "short for --ip")
	fs.StringVar(&c.Dir, "dir", DefaultDir, "status `directory` holding the flag files")
	fs.BoolVar(&c.Daemon, "daemon", false, "detach from the terminal and run in the background (for SysV init; not needed under systemd)")
	fs.BoolVar(&c.Daemon, "d", false, "short for --daemon")
	fs.StringVar(&c.PidFile, "pidfile", "", "write the daemon's PID to `file` (mode 0644) once ready and remove it on exit; refuse to start if it names a running http_status")
	fs.BoolVar(&c.VIPs, "vips", true, "track this host's addresses with netlink so VIP= checks work (with --vips=false no address is ever present: every VIP= check fails with --vip-missing-status)")
	fs.BoolVar(&c.LoopbackVIPsOnly, "vip-loopback-only", false, "count a VIP only when it is on a loopback interface (LVS-DR real servers)")
	decimalVar(fs, &c.VIPMissingStatus, "vip-missing-status", 404, "HTTP `code` for a service that is up while a VIP= address is not on this host: 404 (the original's; HAProxy's disable-on-404 then drains the server) or 503 (HAProxy takes it down)")
	fs.DurationVar(&c.Resync, "resync", 5*time.Minute, "`period` of the safety-net full rescan of the directory (at least 1s)")
	fs.DurationVar(&c.StaleAfter, "stale-after", 10*time.Second, "answer every check 503 (agent: down) once the watcher loop has not turned for this `duration`: flag changes would go unseen; and a check naming a VIP as for a missing VIP once the VIP list has not been current (netlink subscription down) this long (0: never; else at least 2s)")
	fs.DurationVar(&c.Grace, "grace", 5*time.Second, "on SIGTERM, how long in-flight requests may take to finish")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log `level`: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", "auto", "log `format`: auto (journal when stderr is the systemd journal, console on a terminal, JSON otherwise), console, json, journal")
	fs.StringVar(&c.LogFile, "log-file", "", "append logs to `file` instead of stderr (with --daemon, the default is to discard them)")
	fs.DurationVar(&c.Lameduck, "lameduck", 0, "on SIGTERM, keep serving unchanged for this `duration` before closing the listeners (the agent port answers drain meanwhile)")
	fs.BoolVar(&c.CreateDir, "create-dir", true, "create the status directory at start if it does not exist")
	fs.StringVar(&c.ConfigFile, "config", "", "probe configuration `file` (TOML; see README \"Probes\"); reloaded on SIGHUP. None: no probes")
	decimalVar(fs, &c.ProbeConcurrency, "probe-concurrency", 32, "at most `n` probe attempts run at once (at least 1)")
	decimalVar(fs, &c.AgentPort, "agent-port", 0, "TCP `port` for HAProxy's agent-check (0: off)")
	fs.StringVar(&c.AgentIP, "agent-ip", "", "`address` for the agent-check listener (default: same as --ip)")
	fs.StringVar(&c.AgentDefault, "agent-default", "status.html", "flag `name` answered when an agent-check connection sends no agent-send line")
	fs.StringVar(&c.Pages, "pages", daemon.PagesPort, "serve the status pages, /events and /metrics on `where`: port (the check port, with /status), HOST:PORT (a listener of their own, such as 127.0.0.1:8003, and not on the check port) or off (nowhere); /healthz and /health stay on the check port")
	fs.StringVar(&c.Engine, "engine", daemon.EngineFast, "HTTP `engine` for /status: fast (epoll event loops answering /status and OPTIONS /, every other request handed to net/http; Linux only) or net/http")
	fs.BoolVar(&c.Version, "version", false, "print the version, the commit and the Go version, and exit")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
	}
	return fs
}
