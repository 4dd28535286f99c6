//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/conns"
	"github.com/http-status/http_status/internal/flagfile"
	"github.com/http-status/http_status/probe"
)

// drain --wait: write drain, then wait until the service's connections are
// gone (counted through sock_diag by this process: no daemon needed, no
// privilege), then apply --then. The state is never escalated unless the
// count reached zero: on the deadline, on Ctrl-C, when someone else changes
// the flag, or when the drain expires, the flag is left as it is.

// Defaults of drain --wait.
const (
	// defaultMinWait gives the load balancer time to see the drain before
	// an idle service counts as drained: HAProxy's default check interval
	// is 2 s, so 5 s covers two checks and the agent's interval.
	defaultMinWait = 5 * time.Second
	// drainPoll is how often the connections are counted: a drain ends
	// within about this long of the last connection closing.
	drainPoll = 500 * time.Millisecond
	// idleHint is the idle time shown without --idle, so that a wait on a
	// balancer's pooled connections says what it waits for.
	idleHint = 5 * time.Second
)

// Exit codes of drain --wait beyond 0 (drained), 1 and 2.
const exitInterrupted = 130 // Ctrl-C (SIGINT) or SIGTERM: left in drain

// thenStates are the states --then may apply once drained.
var thenStates = map[string]cache.State{"maint": cache.Maint, "down": cache.Down, "inactivate": cache.Missing, "deactivate": cache.Missing}

func validThen(s string) bool { _, ok := thenStates[s]; return ok }

// drainWait is one drain --wait, with everything it depends on explicit so
// tests can drive it.
type drainWait struct {
	dir, name string
	written   []byte        // the drain content this command wrote
	port      uint16        // local port whose connections are counted
	wait      time.Duration // deadline, from the start
	minWait   time.Duration
	then      string // "" or a key of thenStates
	thenEntry cache.Entry
	// idle is --idle: connections idle for it do not count; 0: all count
	// (and the ones idle for idleHint are shown).
	idle      time.Duration
	count     func(ports []uint16, idle time.Duration) (map[uint16]conns.PortConns, error)
	poll      time.Duration
	interrupt <-chan os.Signal
	out, errw io.Writer
	tty       bool // out is a terminal: one live line
	// beforeThen, when set, runs between the last look at the flag and
	// the --then write: a test's stand-in for an operator's write
	// landing in that window.
	beforeThen func()
}

// checkWaitFlags refuses --then and --min-wait without --wait, and --wait
// on another command than drain.
func checkWaitFlags(cmd string, f ctlFlags) error {
	switch {
	case f.wait != 0 && cmd != "drain":
		return usagef("--wait is for drain only")
	case f.wait < 0:
		return usagef("--wait %s: want a positive duration", f.wait)
	case f.wait == 0 && (f.then != "" || f.minWaitSet || f.idleSet):
		return usagef("--then, --min-wait and --idle need --wait")
	case f.idleSet && f.idle <= 0:
		return usagef("--idle %s: want a positive duration", f.idle)
	case f.then != "" && !validThen(f.then):
		return usagef("--then %q: want maint, down or inactivate", f.then)
	case f.minWait < 0:
		return usagef("--min-wait %s: want 0 or more", f.minWait)
	case f.minWaitSet && f.wait != 0 && f.minWait > f.wait:
		return usagef("--min-wait %s is longer than --wait %s", f.minWait, f.wait)
	case f.connPortSet && (f.connPort < 1 || f.connPort > 65535):
		return usagef("--conn-port %d: want 1..65535", f.connPort)
	case f.config != "" && f.wait == 0:
		return usagef("--config is read by drain --wait only")
	}
	return nil
}

// runDrainWait runs "drain NAME --wait D": it returns the exit code.
func runDrainWait(f ctlFlags, pos []string, stdout, stderr io.Writer, now time.Time) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "http_status drain: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	if len(pos) != 1 {
		return fail(usagef("drain --wait takes exactly one NAME"))
	}
	if f.minWait > f.wait {
		f.minWait = f.wait // the default, with a shorter --wait
	}
	name, err := flagName(pos[0], f.port)
	if err != nil {
		return fail(err)
	}
	ctlStep("read " + filepath.Join(f.dir, name))
	port, err := drainPort(f, name)
	if err != nil {
		return fail(err)
	}
	// Count once before writing anything: a counter that cannot work here
	// is an error before the state changes, not after.
	counter, err := conns.NewCounter()
	if err == nil {
		_, err = counter.CountIdle([]uint16{port}, idleHint)
	}
	if err != nil {
		return fail(fmt.Errorf("cannot count connections (sock_diag): %w; nothing written", err))
	}
	defer counter.Close()
	if listening, err := counter.Listening(port); err == nil && !listening {
		// Not an error (the service may be stopped, its last
		// connections still open), but a count of 0 is then no proof:
		// say so before it is taken as one.
		fmt.Fprintf(stderr, "%s: warning: nothing listens on port %d in this network namespace: the connections of a service in another one (a container with a network of its own) are not seen here, and the drain will look idle\n", name, port)
	}

	f.port = noPort // name has it
	if err := runCtlCmd("drain", f, []string{name}, stdout, stderr, now); err != nil {
		return fail(err)
	}
	ctlStep("read back " + filepath.Join(f.dir, name))
	written, err := os.ReadFile(filepath.Join(f.dir, name))
	if err != nil {
		return fail(fmt.Errorf("read back %s: %w", name, err))
	}
	thenEntry, _ := cache.ParseFlag(written) // the drain as written: keeps reason, expiry, conn port
	thenEntry.State = thenStates[f.then]
	thenEntry.Weight = cache.NoWeight

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	d := &drainWait{
		dir: f.dir, name: name, written: written, port: port,
		wait: f.wait, minWait: f.minWait, then: f.then, thenEntry: thenEntry,
		idle: f.idle, count: counter.CountIdle, poll: drainPoll, interrupt: sig,
		out: stdout, errw: stderr, tty: isTerminal(stdout),
	}
	return d.run()
}

func isTerminal(w io.Writer) bool {
	if isCtlChild() && w == io.Writer(os.Stdout) {
		return os.Getenv(ctlTTYEnv) != "" // the parent's stdout, behind a pipe
	}
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

// drainPort is the port whose connections count for name: --conn-port, the
// flag's conn= word, the --config file's conn_port, the port in the name.
func drainPort(f ctlFlags, name string) (uint16, error) {
	if f.connPort != 0 {
		return uint16(f.connPort), nil
	}
	if p, err := keptConnPort(f.dir, name); err != nil || p != 0 {
		return p, err
	}
	if f.config != "" {
		cfg, err := probe.LoadFile(f.config)
		if err != nil {
			return 0, err
		}
		if p := cfg.ConnPorts()[name]; p != 0 {
			return p, nil
		}
	}
	if p := cache.NamePort(name); p != 0 {
		return p, nil
	}
	return 0, usagef("drain --wait needs the port to count: a NAME.PORT, --port, --conn-port, or conn=PORT in the flag")
}

// run waits and returns the exit code.
func (d *drainWait) run() int {
	start := time.Now()
	deadline := start.Add(d.wait)
	ticker := time.NewTicker(d.poll)
	defer ticker.Stop()
	atDeadline := time.NewTimer(d.wait)
	defer atDeadline.Stop()
	shown := d.idle
	if shown == 0 {
		shown = idleHint
	}
	last, lastErr := conns.PortConns{Open: -1}, ""
	c := conns.PortConns{Open: -1} // unknown
	for {
		// Someone else's word wins: stop when the flag is no longer the
		// drain this command wrote, or when that drain expired.
		if why := d.changed(); why != "" {
			d.endLine()
			fmt.Fprintf(d.errw, "%s: %s while waiting; --then not applied\n", d.name, why)
			return 1
		}
		got, err := d.count([]uint16{d.port}, shown)
		if err != nil {
			c = conns.PortConns{Open: -1}
			if err.Error() != lastErr {
				d.endLine()
				fmt.Fprintf(d.errw, "%s: cannot count connections: %v (still waiting)\n", d.name, err)
			}
			lastErr = err.Error()
		} else {
			c, lastErr = got[d.port], ""
		}
		now := time.Now()
		elapsed := now.Sub(start)
		d.progress(c, last, elapsed, deadline.Sub(now))
		last = c
		if c.Open >= 0 && d.counted(c) == 0 && elapsed >= d.minWait {
			d.endLine()
			return d.finish(c, elapsed)
		}
		if !now.Before(deadline) {
			d.endLine()
			what := connWord(c.Open) + " still open"
			if c.Open < 0 {
				what = "connections could not be counted"
			}
			fmt.Fprintf(d.errw, "%s: deadline: %s on port %d after %s%s; left in drain\n", d.name, what, d.port, round(elapsed), wrap(" (", d.idleNote(c, true), ")"))
			return 1
		}
		select {
		case <-ticker.C:
		case <-atDeadline.C:
		case s := <-d.interrupt:
			d.endLine()
			fmt.Fprintf(d.errw, "%s: %s: left in drain (%s on port %d after %s%s)\n", d.name, sigName(s), connWord(c.Open), d.port, round(elapsed), wrap("; ", d.idleNote(c, false), ""))
			return exitInterrupted
		}
	}
}

// counted is how many of c keep the drain waiting.
func (d *drainWait) counted(c conns.PortConns) int {
	if d.idle > 0 {
		return c.Busy()
	}
	return c.Open
}

// idleNote says how many of c are idle and whether they count: with
// --idle they do not; without, they do, and at the end (hint) the note
// says where they may come from. "" when none is idle.
func (d *drainWait) idleNote(c conns.PortConns, hint bool) string {
	switch {
	case c.Open < 0 || c.Idle == 0:
		return ""
	case d.idle > 0:
		return fmt.Sprintf("%d idle for %s+ not counted", c.Idle, d.idle)
	case hint:
		return fmt.Sprintf("%d idle for %s+: a balancer's pooled connections? see --idle", c.Idle, idleHint)
	}
	return fmt.Sprintf("%d idle for %s+", c.Idle, idleHint)
}

// wrap is before+s+after, or "" when s is.
func wrap(before, s, after string) string {
	if s == "" {
		return ""
	}
	return before + s + after
}

// changed says why the flag is no longer this command's drain, or "".
func (d *drainWait) changed() string {
	p := filepath.Join(d.dir, d.name)
	ctlStep("read " + p + " (drain --wait)")
	got, err := os.ReadFile(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "the flag was removed"
	case err != nil:
		return "the flag cannot be read (" + err.Error() + ")"
	case !bytes.Equal(got, d.written):
		e, _ := cache.ParseFlag(got)
		return "the flag was changed (now " + e.State.String() + ")"
	}
	if e, _ := cache.ParseFlag(got); e.Effective(time.Now()).State != cache.Drain {
		return "the drain expired (--ttl)"
	}
	return ""
}

// finish applies --then once drained.
func (d *drainWait) finish(c conns.PortConns, elapsed time.Duration) int {
	if c.Open > 0 {
		fmt.Fprintf(d.out, "%s: drained: no busy connection on port %d after %s%s\n", d.name, d.port, round(elapsed), wrap(" (", d.idleNote(c, false), ")"))
	} else {
		fmt.Fprintf(d.out, "%s: drained: no connections on port %d after %s\n", d.name, d.port, round(elapsed))
	}
	if d.then == "" {
		return 0
	}
	// Last look before escalating: still our drain?
	if why := d.changed(); why != "" {
		fmt.Fprintf(d.errw, "%s: %s; --then %s not applied\n", d.name, why, d.then)
		return 1
	}
	if d.beforeThen != nil {
		d.beforeThen()
	}
	// Only over this command's drain: an operator's word that lands
	// between the look above and the write wins all the same.
	ctlStep("--then " + d.then + ": write " + filepath.Join(d.dir, d.name))
	var err error
	content := []byte(d.thenEntry.Format())
	if d.thenEntry.State == cache.Missing {
		err = flagfile.RemoveIf(d.dir, d.name, d.written)
	} else {
		err = flagfile.ReplaceIf(d.dir, d.name, content, d.written)
	}
	if errors.Is(err, flagfile.ErrChanged) {
		fmt.Fprintf(d.errw, "%s: the flag was changed as --then was applied; --then %s not applied, the flag left as the other writer made it\n", d.name, d.then)
		return 1
	}
	if err != nil {
		fmt.Fprintf(d.errw, "http_status drain: %v\n", err)
		return 1
	}
	if d.thenEntry.State == cache.Missing {
		fmt.Fprintf(d.out, "%s: removed, out of rotation\n", d.name)
		return 0
	}
	fmt.Fprintf(d.out, "%s: %s", d.name, content)
	return 0
}

// progress shows the count: a live line on a terminal, otherwise one line
// per change.
func (d *drainWait) progress(c, last conns.PortConns, elapsed, left time.Duration) {
	if d.tty {
		fmt.Fprintf(d.out, "\r\033[K%s: %s on port %d%s, %s elapsed, deadline in %s", d.name, connWord(c.Open), d.port, wrap(", ", d.idleNote(c, false), ""), round(elapsed), round(left))
		return
	}
	if c != last {
		fmt.Fprintf(d.out, "%s: %s on port %d (%s%s elapsed)\n", d.name, connWord(c.Open), d.port, wrap("", d.idleNote(c, false), "; "), round(elapsed))
	}
}

// endLine ends the live line before other output.
func (d *drainWait) endLine() {
	if d.tty {
		fmt.Fprint(d.out, "\n")
	}
}

func connWord(n int) string {
	switch n {
	case -1:
		return "? connections"
	case 1:
		return "1 connection"
	}
	return strconv.Itoa(n) + " connections"
}

func round(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	return d.Round(100 * time.Millisecond)
}

func sigName(s os.Signal) string {
	if s == os.Interrupt {
		return "interrupted"
	}
	return "stopped (" + s.String() + ")"
}

// listConnPort is the port list counts for a flag: its conn=, else the port
// in its name (list reads no probe configuration).
func listConnPort(name string, e cache.Entry) uint16 {
	if e.ConnPort != 0 {
		return e.ConnPort
	}
	return cache.NamePort(name)
}

// countConns counts open connections on ports, once (for list).
func countConns(ports []uint16) (map[uint16]int, error) {
	if len(ports) == 0 {
		return nil, nil
	}
	c, err := conns.NewCounter()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Count(ports)
}
