//go:build linux

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/flagfile"
)

// The control command writes and lists flag files directly; it does not talk
// to the daemon, so it works whether the daemon runs or not. The daemon picks
// each change up through inotify.

const ctlUsage = `Usage: http_status COMMAND [flags] NAME...

Commands (they edit flag files; the daemon need not run):
  activate NAME      put NAME in rotation (flag file says "up")
  inactivate NAME    take NAME out of rotation (removes the flag file);
                     "deactivate" is the same
  drain NAME         finish current sessions, take no new ones
  maint NAME         out of rotation for maintenance
  down NAME          out of rotation: down
  weight NAME N%     in rotation with weight N% (0..256) of the configured one
  list               show every flag file: state, weight, connections, expiry,
                     reason, as the daemon reads it ("absent": it cannot;
                     "?" or "drain?": not known, see the warning)
  help               this text

NAME is a service ("squid") or a flag-file name ("squid.80"); with --port P
the flag is NAME.P.

Flags (before or after NAME):
  --dir DIR          status directory (default ` + DefaultDir + `)
  -p, --port P       service port: the flag file is NAME.P
  --reason TEXT      why; shown by /status, the agent and list
  --ttl DURATION     the state holds for DURATION (90s, 10m, 2h), then the
                     service is plain up again: the file gets until=TIME
  --weight N%        weight to write with the state
  --conn-port P      the service's connections arrive on port P (written as
                     conn=P; kept on later writes when not given)
  --io-timeout D     give up (exit 1, saying which step) when the status
                     directory does not answer for D (default 10s): a hung
                     NFS or FUSE mount

drain --wait (waits until the service has no connections left):
  --wait DURATION    after writing drain, wait until no open TCP connection
                     (ESTABLISHED or CLOSE-WAIT) has the service's port as
                     its local port (--conn-port, else the flag's conn=,
                     else --config's conn_port, else the port of
                     NAME.PORT); exit 0 once drained, 1 at the deadline
                     (left in drain), 130 on Ctrl-C (left in drain)
  --min-wait D       drained only after at least D (default 5s), so the load
                     balancer has seen the drain
  --idle D           a connection idle for D (no data either way, its last
                     request answered, nothing queued) does not count: a
                     balancer's pooled idle connection. Default: every
                     connection counts
  --then STATE       once drained: maint, down or inactivate
  --config FILE      probe configuration whose conn_port to use

Examples:
  http_status drain squid --port 80 --reason "deploy 1234" --ttl 15m
  http_status drain squid --port 80 --wait 5m --then maint
  http_status weight squid.80 50%
  http_status activate squid -p 80
  http_status inactivate squid -p 80
`

// ctlCommandList are the subcommand names realMain dispatches here.
var ctlCommandList = []string{"activate", "inactivate", "deactivate", "drain", "maint", "down", "weight", "list", "help"}

func isCtlCommand(s string) bool { return slices.Contains(ctlCommandList, s) }

type ctlFlags struct {
	dir    string
	port   int
	reason string
	ttl    time.Duration
	weight string
	// drain --wait (drainwait.go) and conn=
	wait, minWait, idle time.Duration
	minWaitSet          bool
	// ttlSet and connPortSet tell "--ttl 0s" and "--conn-port 0" (refused)
	// from the flag not given.
	ttlSet, connPortSet, idleSet bool
	then, config                 string
	connPort                     int
	ioTimeout                    time.Duration // read by superviseCtl; checked here
}

// runCtl runs one control command; the exit code is 0 on success, 1 when a
// file could not be written, 2 for a usage error.
func runCtl(args []string, stdout, stderr io.Writer, now time.Time) int {
	cmd := args[0]
	if cmd == "help" {
		fmt.Fprint(stdout, ctlUsage)
		return 0
	}
	var f ctlFlags
	fset := flag.NewFlagSet("http_status "+cmd, flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	fset.StringVar(&f.dir, "dir", DefaultDir, "")
	decimalVar(fset, &f.port, "port", noPort, "")
	decimalVar(fset, &f.port, "p", noPort, "")
	fset.StringVar(&f.reason, "reason", "", "")
	durationVar(fset, &f.ttl, "ttl", 0, "")
	fset.StringVar(&f.weight, "weight", "", "")
	durationVar(fset, &f.wait, "wait", 0, "")
	durationVar(fset, &f.minWait, "min-wait", defaultMinWait, "")
	durationVar(fset, &f.idle, "idle", 0, "")
	fset.StringVar(&f.then, "then", "", "")
	fset.StringVar(&f.config, "config", "", "")
	decimalVar(fset, &f.connPort, "conn-port", 0, "")
	durationVar(fset, &f.ioTimeout, "io-timeout", defaultIOTimeout, "")
	pos, err := parseInterspersed(fset, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, ctlUsage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "http_status %s: %v (see \"http_status help\")\n", cmd, err)
		return 2
	}
	fset.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "min-wait":
			f.minWaitSet = true
		case "idle":
			f.idleSet = true
		case "ttl":
			f.ttlSet = true
		case "conn-port":
			f.connPortSet = true
		}
	})
	if f.ioTimeout < minIOTimeout {
		fmt.Fprintf(stderr, "http_status %s: --io-timeout %s: want %s or more\n", cmd, f.ioTimeout, minIOTimeout)
		return 2
	}
	if err := checkWaitFlags(cmd, f); err != nil {
		fmt.Fprintf(stderr, "http_status %s: %v\n", cmd, err)
		return 2
	}
	if f.wait > 0 {
		return runDrainWait(f, pos, stdout, stderr, now)
	}
	if err := runCtlCmd(cmd, f, pos, stdout, stderr, now); err != nil {
		fmt.Fprintf(stderr, "http_status %s: %v\n", cmd, err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg + ` (see "http_status help")` }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// parseInterspersed parses flags anywhere among the arguments (the flag
// package stops at the first non-flag), returning the positional ones.
func parseInterspersed(fset *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fset.Parse(args); err != nil {
			return nil, err
		}
		args = fset.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func runCtlCmd(cmd string, f ctlFlags, pos []string, stdout, stderr io.Writer, now time.Time) error {
	if cmd == "list" {
		if len(pos) > 0 {
			return usagef("list takes no NAME")
		}
		ctlStep("list " + f.dir)
		return listFlags(f.dir, stdout, now)
	}
	var e cache.Entry
	e.Weight = cache.NoWeight
	switch cmd {
	case "activate", "weight":
		e.State = cache.Up
	case "drain":
		e.State = cache.Drain
	case "maint":
		e.State = cache.Maint
	case "down":
		e.State = cache.Down
	case "inactivate", "deactivate":
		if f.reason != "" || f.ttlSet || f.weight != "" || f.connPortSet {
			return usagef("%s removes the flag file; --reason, --ttl, --weight and --conn-port do not apply", cmd)
		}
	}
	if cmd == "weight" {
		// The weight is the positional argument ending in %.
		var rest []string
		for _, p := range pos {
			if strings.HasSuffix(p, "%") && f.weight == "" {
				f.weight = p
			} else {
				rest = append(rest, p)
			}
		}
		pos = rest
		if f.weight == "" {
			return usagef("weight needs a weight such as 50%%")
		}
	}
	if f.weight != "" {
		w, err := strconv.Atoi(strings.TrimSuffix(f.weight, "%"))
		if err != nil || w < 0 || w > cache.MaxWeight {
			return usagef("weight %q: want 0%%..%d%%", f.weight, cache.MaxWeight)
		}
		e.Weight = w
	}
	if f.ttlSet && f.ttl <= 0 {
		// --ttl 0s used to write the state with no until=: an override
		// meant to end at once stayed until someone removed it.
		return usagef("--ttl %s: want a positive duration such as 90s or 15m", f.ttl)
	}
	if f.ttl > 0 {
		e.Expires = ceilSecond(now.Add(f.ttl)).UTC()
	}
	e.Reason = strings.TrimSpace(f.reason)
	e.ConnPort = uint16(f.connPort)
	if len(pos) == 0 {
		return usagef("%s needs a NAME", cmd)
	}
	names := make([]string, 0, len(pos))
	for _, p := range pos {
		name, err := flagName(p, f.port)
		if err != nil {
			return err
		}
		names = append(names, name)
	}
	var content []byte
	if e.State != cache.Missing {
		content = []byte(e.Format())
		// What we write must read back as what was asked (a reason with a
		// line break, or too long, would not).
		back, err := cache.ParseFlag(content)
		if err != nil || !back.SameAs(e) {
			return usagef("--reason %q: want at most %d bytes of printable text on one line", f.reason, cache.MaxReasonLen)
		}
	}
	for _, name := range names {
		if e.State == cache.Missing {
			ctlStep("remove " + filepath.Join(f.dir, name))
			removed, err := flagfile.Remove(f.dir, name)
			if err != nil {
				return err
			}
			if removed {
				fmt.Fprintf(stdout, "%s: removed, out of rotation\n", name)
			} else {
				fmt.Fprintf(stdout, "%s: no flag file, already out of rotation\n", name)
			}
			continue
		}
		content := content
		if e.ConnPort == 0 {
			ctlStep("read " + filepath.Join(f.dir, name))
			// conn= is the service's, not the state's: a rewrite keeps it.
			keep, err := keptConnPort(f.dir, name)
			if err != nil {
				return err
			}
			if keep != 0 {
				e2 := e
				e2.ConnPort = keep
				content = []byte(e2.Format())
			}
		}
		ctlStep("write " + filepath.Join(f.dir, name))
		links, err := flagfile.WriteReplacing(f.dir, name, content)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %s", name, content)
		if links > 1 {
			fmt.Fprintf(stderr, "%s: note: it had %d hard links; it is a new file now, so writing through the other names no longer changes it\n", name, links)
		}
	}
	return nil
}

// keptConnPort is the conn= port a rewrite of dir/name keeps: the current
// flag's, 0 when it has none or there is no flag the daemon counts (a
// symlink or a FIFO is replaced, and the daemon ignored it). A flag that
// cannot be read is an error: writing without its conn= would drop it
// silently, and connection counts and drain --wait would then look at
// another port.
func keptConnPort(dir, name string) (uint16, error) {
	old, present, problem := flagfile.Read(filepath.Join(dir, name))
	if present {
		// Content partly not understood still has the conn= it says.
		return old.ConnPort, nil
	}
	if errors.Is(problem, flagfile.ErrUnreadable) {
		return 0, fmt.Errorf("%s: cannot read the current flag to keep its conn= (%s); unchanged: give --conn-port P to write anyway, or run as a user who may read it",
			name, callerReadError(problem))
	}
	return 0, nil
}

// callerReadError says why this process could not read a flag, as the
// caller's problem: flagfile's errors speak for the daemon, which may read
// what the caller cannot.
func callerReadError(problem error) string {
	var errno syscall.Errno
	if errors.As(problem, &errno) {
		if errno == syscall.EACCES || errno == syscall.EPERM {
			return fmt.Sprintf("%v: you are uid %d", errno, os.Geteuid())
		}
		return errno.Error()
	}
	return problem.Error()
}

// noPort is --port not given (0 and -1 are ports given wrongly).
const noPort = math.MinInt

// flagName builds the flag-file name from NAME and --port.
func flagName(name string, port int) (string, error) {
	if port != noPort {
		if port < 1 || port > 65535 {
			return "", usagef("--port %d: want 1..65535", port)
		}
		name += "." + strconv.Itoa(port)
	}
	if !cache.ValidName(name) {
		return "", usagef("name %q: want 1-%d bytes of A-Z a-z 0-9 . _ - @ + :, not starting with a dot, not ending in .tmp or ~", name, cache.MaxNameLen)
	}
	return name, nil
}

func ceilSecond(t time.Time) time.Time {
	s := t.Truncate(time.Second)
	if s.Equal(t) {
		return s
	}
	return s.Add(time.Second)
}

// listFlags prints every flag file as the daemon reads it: where the
// daemon's reading may differ from this process's (permissions), as the
// running daemon reads it when one is found, else marked as not known
// (listperm.go).
func listFlags(dir string, w io.Writer, now time.Time) error {
	des, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	var warnings []string
	type row struct {
		name string
		e    cache.Entry
		// state is what STATE shows in place of the entry's: "absent"
		// (the daemon cannot read it), "?" (not known), or the entry's
		// state with "?" (this process read it; the daemon may not).
		state string
	}
	var rows []row
	daemon := findDaemon(dir)
	dirOK, dirWhy := daemon.dirAccess(dir)
	if dirOK != accessYes {
		who := "the daemon"
		if daemon != nil {
			who = daemon.String()
		}
		if dirOK == accessNo {
			warnings = append(warnings, fmt.Sprintf("%s cannot list %s (%s): it answers every service out of rotation (STATE absent)", who, dir, dirWhy))
		} else {
			warnings = append(warnings, fmt.Sprintf("%s may not be able to list %s (%s): it then answers every service out of rotation; %s", who, dir, dirWhy, noDaemonNote(daemon)))
		}
	}
	for _, de := range des {
		name := de.Name()
		if !cache.ValidName(name) {
			continue // dot-files and temp files: the daemon ignores them too
		}
		p := filepath.Join(dir, name)
		e, present, problem := flagfile.Read(p)
		var st syscall.Stat_t
		statErr := syscall.Lstat(p, &st)
		mine := statErr == nil && st.Mode&syscall.S_IFMT == syscall.S_IFREG
		fileOK := accessUnknown
		if mine {
			fileOK = worse(dirOK, daemon.may(&st, 4, hasACL(p)))
		}
		perm := func() string { return fmt.Sprintf("mode %04o, owner %d, group %d", st.Mode&0o7777, st.Uid, st.Gid) }
		switch {
		case !present && errors.Is(problem, flagfile.ErrUnreadable) && errIsPermission(problem):
			// This process cannot read it: the daemon may.
			switch {
			case fileOK == accessNo:
				rows = append(rows, row{name, e, "absent"})
				if dirOK != accessNo {
					warnings = append(warnings, fmt.Sprintf("%s: %s cannot read it either (%s): counted as absent, out of rotation", name, daemon, perm()))
				}
			default:
				rows = append(rows, row{name, e, "?"})
				warnings = append(warnings, fmt.Sprintf("%s: you (uid %d) cannot read it (%s): what it says is not known here; %s",
					name, os.Geteuid(), perm(), daemonReads(daemon, fileOK)))
			}
			continue
		case problem != nil:
			warnings = append(warnings, name+": "+problem.Error())
			if !present {
				continue
			}
		}
		switch {
		case !mine || fileOK == accessYes:
			rows = append(rows, row{name, e, ""})
		case fileOK == accessNo:
			rows = append(rows, row{name, e, "absent"})
			if dirOK != accessNo {
				warnings = append(warnings, fmt.Sprintf("%s: says %s, but %s cannot read it (%s): counted as absent, out of rotation", name, e.Effective(now).State, daemon, perm()))
			}
		default:
			rows = append(rows, row{name, e, e.Effective(now).State.String() + "?"})
			if dirOK == accessYes {
				warnings = append(warnings, fmt.Sprintf("%s: %s, read here as uid %d: a daemon whose user may not read it counts it as absent, out of rotation; %s",
					name, perm(), os.Geteuid(), noDaemonNote(daemon)))
			}
		}
	}
	var ports []uint16
	for _, r := range rows {
		if p := listConnPort(r.name, r.e); p != 0 && r.state != "?" {
			ports = append(ports, p)
		}
	}
	counts, cerr := countConns(ports)
	if cerr != nil {
		warnings = append(warnings, "connections not counted: "+cerr.Error())
	}
	n := 0
	for _, r := range rows {
		name, e := r.name, r.e
		if n == 0 {
			fmt.Fprintln(tw, "NAME\tSTATE\tWEIGHT\tCONNS\tEXPIRES\tREASON")
		}
		n++
		conns := "-"
		if c, ok := counts[listConnPort(name, e)]; ok && r.state != "?" {
			conns = strconv.Itoa(c)
		}
		if r.state == "?" || r.state == "absent" {
			fmt.Fprintf(tw, "%s\t%s\t-\t%s\t-\t-\n", name, r.state, conns)
			continue
		}
		eff := e.Effective(now)
		weight, expires, reason := "-", "-", "-"
		if eff.Weight != cache.NoWeight {
			weight = strconv.Itoa(eff.Weight) + "%"
		}
		if eff.Reason != "" {
			reason = eff.Reason
		}
		switch {
		case e.Expires.IsZero():
		case eff.State != e.State || !now.Before(e.Expires):
			expires = "expired " + e.Expires.UTC().Format(time.RFC3339) + " (was " + e.State.String() + ")"
		default:
			expires = e.Expires.UTC().Format(time.RFC3339) + " (in " + e.Expires.Sub(now).Round(time.Second).String() + ")"
		}
		state := eff.State.String()
		if r.state != "" {
			state = r.state
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, state, weight, conns, expires, reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintf(w, "no flag files in %s: every service is out of rotation\n", dir)
	}
	for _, s := range warnings {
		fmt.Fprintln(w, "warning: "+s)
	}
	return nil
}

// noDaemonNote says why list could not tell what the daemon makes of it.
func noDaemonNote(d *reader) string {
	if d != nil {
		return d.String() + " may or may not (an ACL): STATE ends in ?; its /status.json says"
	}
	return "no running daemon on this directory found to tell (STATE ends in ?); when it runs, its /status.json says"
}

// daemonReads says what the daemon makes of a flag this process cannot read.
func daemonReads(d *reader, a access) string {
	if d != nil && a == accessYes {
		return d.String() + " can read it: its /status.json says what it answers"
	}
	return "the daemon answers it as it reads it (absent, out of rotation, if it cannot either); its /status.json says"
}
