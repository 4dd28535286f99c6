//go:build linux

// Package daemon is http_status's lifecycle: it wires the watcher, the
// probes, the HTTP responder (both engines), the agent responder, the
// connection sampler and systemd, runs them until stopped, and stops them in
// order. cmd/http_status parses the command line into a [Config] and calls
// [Daemon.Run]; tests run the same Run in process.
//
// # Lifecycle
//
// Run binds every listener (sockets passed by systemd first), starts the
// watcher and waits for its first snapshot, starts the responders, then
// reports ready: READY=1 to systemd, the pidfile, [Options.OnReady]. A
// reload ([Daemon.Reload], or SIGHUP with [Options.Signals]) re-reads the
// probe file and rescans the directory and the addresses, between
// RELOADING=1 and READY=1. When ctx is done: STOPPING=1, the agent answers
// drain, --lameduck passes with every listener open, then the listeners
// close and in-flight requests get --grace.
//
// # Concurrency
//
// Run is called once. The other methods are safe from any goroutine.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/httpd"
	"github.com/http-status/http_status/internal/agent"
	"github.com/http-status/http_status/internal/check"
	"github.com/http-status/http_status/watcher"
)

// Options are what a program running the daemon gives besides the
// configuration.
type Options struct {
	// Logger gets the daemon's logs (each component a child with a
	// "component" field).
	Logger zerolog.Logger
	// Version is the version line of the index page.
	Version string
	// Signals makes Run handle SIGHUP as a reload (process-wide, for the
	// daemon program; tests call Reload instead).
	Signals bool
	// OnReady is called once the daemon is ready (when READY=1 is sent).
	OnReady func()
	// AddrSource replaces netlink as the source of the host's addresses
	// (tests feed canned changes, as a kernel dropping a subscription
	// would). Nil: netlink in the daemon's network namespace.
	AddrSource watcher.AddrSource
	// OnPublish is called by the watcher loop after each snapshot it
	// publishes, on the loop (a test holds the loop in it to pile up
	// events). Nil: nothing.
	OnPublish func(latency time.Duration)
}

// pagesMaxConns bounds the connections the pages' own listener holds at
// once (--pages HOST:PORT): each is a net/http goroutine and its buffers,
// tens of KB, so tens of MB at most. Beyond it a new connection gets the
// overload 503. A variable for the tests.
var pagesMaxConns = 1024

// watcherStopWait is how long a stop waits for the watcher loop beyond
// --grace: it returns at its next turn, at most a full rescan away, unless
// it is blocked on a filesystem that does not answer.
const watcherStopWait = 2 * time.Second

// firstSnapshotWait bounds the wait for the watcher's first snapshot at
// start: the netlink address list (5 s at most) and the first scan of the
// directory. A variable for the tests.
var firstSnapshotWait = 10 * time.Second

// Daemon is one run of http_status.
type Daemon struct {
	cfg   Config
	opts  Options
	log   zerolog.Logger
	store *cache.Store
	ready chan struct{}
	hup   chan struct{}

	mu              sync.Mutex
	httpAddr, agent net.Addr
	pages           net.Addr
	w               *watcher.Watcher
}

// New checks cfg and returns a Daemon; [Daemon.Run] runs it.
func New(cfg Config, opts Options) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Daemon{cfg: cfg, opts: opts, log: opts.Logger, store: cache.NewStore(),
		ready: make(chan struct{}), hup: make(chan struct{}, 1)}, nil
}

// Ready is closed once the daemon is ready: every listener bound, the first
// snapshot published.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// Store is the snapshot store the responders answer from.
func (d *Daemon) Store() *cache.Store { return d.store }

// HTTPAddr is the HTTP listener's address (nil before Ready).
func (d *Daemon) HTTPAddr() net.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.httpAddr
}

// AgentAddr is the agent listener's address (nil before Ready, or with no
// agent).
func (d *Daemon) AgentAddr() net.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.agent
}

// PagesAddr is the address of the pages' own listener (nil before Ready,
// or with the pages on the check port or off).
func (d *Daemon) PagesAddr() net.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pages
}

// Watcher is the daemon's watcher (nil before Ready), for its counters.
func (d *Daemon) Watcher() *watcher.Watcher {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.w
}

// Reload does what SIGHUP does: re-read the probe file, rescan the
// directory and the addresses. It does not wait.
func (d *Daemon) Reload() {
	select {
	case d.hup <- struct{}{}:
	default:
	}
}

// Run runs the daemon until ctx is done (it then stops in order and
// returns nil) or it fails (a startup error, or a responder failing).
// Under systemd it reports READY=1 once the first snapshot is in and every
// listener is bound, RELOADING=1/READY=1 around a reload, and STOPPING=1
// when ctx is done (see systemd.go).
func (d *Daemon) Run(ctx context.Context) error {
	cfg, log := d.cfg, d.log
	var hupSig chan os.Signal // nil (never ready) without Signals
	if d.opts.Signals {
		// From the start, so that an early SIGHUP is a rescan once
		// ready rather than the default action (exit); the channel
		// keeps one, as Reload does.
		hupSig = make(chan os.Signal, 1)
		signal.Notify(hupSig, syscall.SIGHUP)
		defer signal.Stop(hupSig)
	}
	pid, err := claimPidFile(cfg.PidFile)
	if err != nil {
		return err
	}
	// The systemd socket first: its descriptor is held for the daemon's
	// life, so READY=1 and the watchdog pings never need a new one.
	sd := newNotifier(log.With().Str("component", "systemd").Logger())
	defer sd.close()
	defer pid.remove(log)
	store := d.store
	obs := &observability{version: d.opts.Version}
	src := d.opts.AddrSource
	if src == nil {
		src = watcher.NetlinkSource{Log: log.With().Str("component", "netlink").Logger()}
	}
	w, err := watcher.New(watcher.Options{
		Dir:        cfg.Dir,
		Store:      store,
		Logger:     log.With().Str("component", "watcher").Logger(),
		Resync:     cfg.Resync,
		Addrs:      cfg.VIPs,
		AddrSource: src,
		CreateDir:  cfg.CreateDir,
		OnPublish: func(lat time.Duration) {
			obs.onPublish(lat)
			if d.opts.OnPublish != nil {
				d.opts.OnPublish(lat)
			}
		},
	})
	if err != nil {
		return err
	}
	pr, err := newProbes(ctx.Done(), cfg.ConfigFile, cfg.ProbeConcurrency, cfg.LoopbackVIPsOnly, store, w, obs.onProbe, obs.forgetProbe, log.With().Str("component", "probe").Logger())
	if errors.Is(err, errStopped) {
		log.Info().Str("config", cfg.ConfigFile).Msg("stopping: SIGTERM during the start, while the probe file was being read")
		return nil
	}
	if err != nil {
		return err
	}
	defer pr.close()
	// Sockets passed by systemd (socket activation) come first; each
	// responder falls back to binding its flag's address.
	lns, err := inheritListeners()
	if err != nil {
		return err
	}
	// The fast engine binds one SO_REUSEPORT socket per event loop; a
	// socket from systemd is shared by its loops instead.
	var bindHTTP func(string) (net.Listener, error)
	if cfg.Engine == EngineFast {
		bindHTTP = func(addr string) (net.Listener, error) { return httpd.ListenReusePort(addr, runtime.GOMAXPROCS(0)) }
	}
	ln, err := lns.listenWith(listenerHTTP, cfg.Addr(), log, bindHTTP)
	if err != nil {
		lns.closeUnused(log)
		return fmt.Errorf("listen for HTTP checks: %w", fdAdvice(err))
	}
	defer ln.Close()
	// A passed socket wins over -i/-p; say so when they disagree.
	var sockWarnings []string
	sockWarn := func(warning, short string) {
		if warning != "" {
			log.Warn().Msg(warning)
			sockWarnings = append(sockWarnings, short)
		}
	}
	if lns.passed(ln) {
		sockWarn(flagsVsSocket(listenerHTTP, ln.Addr(), cfg.IP, cfg.set("ip", "i"), "--ip", cfg.Port, cfg.set("port", "p"), "--port"))
	}
	// The agent responder takes its socket the same way; it is off unless
	// --agent-port is set or systemd passes a socket named "agent".
	var agentLn net.Listener
	if cfg.AgentPort != 0 || lns.has(listenerAgent) {
		agentLn, err = lns.listen(listenerAgent, cfg.AgentAddr(), log)
		if err != nil {
			lns.closeUnused(log)
			return fmt.Errorf("listen for agent checks: %w", fdAdvice(err))
		}
		defer agentLn.Close()
		if lns.passed(agentLn) {
			ipFlag, ipSet := "--agent-ip", cfg.set("agent-ip")
			if cfg.AgentIP == "" {
				ipFlag, ipSet = "--ip", cfg.set("ip", "i")
			}
			ip := cfg.AgentIP
			if ip == "" {
				ip = cfg.IP
			}
			sockWarn(flagsVsSocket(listenerAgent, agentLn.Addr(), ip, ipSet, ipFlag, cfg.AgentPort, cfg.set("agent-port"), "--agent-port"))
		}
	} else if cfg.set("agent-ip") || cfg.set("agent-default") {
		// "--agent-ip 0.0.0.0" alone looks like it turns the agent on;
		// it does not, and HAProxy's agent checks would just fail.
		log.Warn().Msg("--agent-ip and --agent-default have no effect: the agent check is off (turn it on with --agent-port, or a systemd socket named agent)")
	}
	// The pages and /metrics: on the check port (--pages port), on a
	// listener of their own (--pages ADDR, or a systemd socket named
	// "pages"), or nowhere (--pages off).
	pagesMode := cfg.Pages
	if pagesMode == "" {
		pagesMode = PagesPort
	}
	var pagesLn net.Listener
	if pagesMode != PagesOff && (pagesMode != PagesPort || lns.has(listenerPages)) {
		pagesLn, err = lns.listen(listenerPages, pagesMode, log)
		if err != nil {
			lns.closeUnused(log)
			return fmt.Errorf("listen for the pages (--pages %s)%s: %w", pagesMode, pagesClash(pagesMode, err, ln, agentLn), fdAdvice(err))
		}
		defer pagesLn.Close()
		if lns.passed(pagesLn) && cfg.set("pages") {
			sockWarn(pagesVsSocket(pagesLn.Addr(), pagesMode))
		}
	}
	lns.closeUnused(log)

	// Workers stop on ctx's own cancel, not on the signal: after SIGTERM the
	// responders keep serving through --lameduck.
	sig := ctx
	ctx, cancel := context.WithCancel(context.WithoutCancel(sig))
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 5)
	// The watcher is waited for apart from the others: its loop may be
	// blocked in a system call on a status directory whose filesystem
	// has stopped answering, and a stop must not wait for that.
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		if err := w.Run(ctx); err != nil {
			errc <- err
		}
	}()
	waitWatcher := func(by time.Time) {
		select {
		case <-watcherDone:
		case <-time.After(time.Until(by)):
			log.Error().Dur("since_last_turn", w.HeartbeatAge()).Str("dir", cfg.Dir).
				Msg("stopping without the watcher loop: it is blocked, most likely in a system call on a status directory (or its parent) whose filesystem does not answer")
		}
	}
	// The first snapshot, for firstSnapshotWait at most: a status
	// directory (or parent) whose filesystem does not answer holds the
	// loop's first scan for as long as it hangs. Past the bound the
	// daemon starts anyway, every check answered 503 (not read yet)
	// until the loop gets through: like a directory that hangs later,
	// and it recovers by itself, where an exit could not even complete
	// (a thread in a FUSE request does not die) and would leave the
	// balancers and the operator with a refused port and no reason.
	notRead := w.Ready() // nil once the first snapshot is in
	firstWait := time.NewTimer(firstSnapshotWait)
	defer firstWait.Stop()
	select {
	case <-w.Ready():
		notRead = nil
	case err := <-errc:
		cancel()
		wg.Wait()
		waitWatcher(time.Now().Add(watcherStopWait))
		return err
	case <-sig.Done():
		log.Info().Str("dir", cfg.Dir).Msg("stopping: SIGTERM during the start, before the status directory was read")
		cancel()
		wg.Wait()
		waitWatcher(time.Now().Add(watcherStopWait))
		return nil
	case <-firstWait.C:
		log.Error().Str("dir", cfg.Dir).Dur("waited", firstSnapshotWait).
			Msg("status directory not read yet: its first scan has not ended (its filesystem, or its parent's, does not answer?); starting anyway, every check answered 503 (" + check.ReasonNotRead + ") until it is read")
	}

	checker := check.New(check.Options{Store: store, LoopbackVIPsOnly: cfg.LoopbackVIPsOnly, VIPMissingCode: cfg.VIPMissingStatus,
		HeartbeatAge: w.HeartbeatAgeAt, StaleAfter: cfg.StaleAfter})
	// Each responder says when it can answer: the event loops take
	// descriptors of their own (epoll, eventfd), and a daemon that cannot
	// get them must fail before it reports ready, not just after.
	started := make(chan struct{}, 2)
	responders := 1
	onStarted := func() { started <- struct{}{} }
	var ag *agent.Server
	if agentLn != nil {
		responders++
		if ag, err = newAgent(cfg, checker, agentLn, log, onStarted); err != nil {
			cancel()
			wg.Wait()
			return err
		}
	}
	lv := newLive(store, w, pr, log.With().Str("component", "conns").Logger()) // connection counts, /events
	// The board's stale and stopping banners come and go with no snapshot.
	stale := func() (time.Duration, bool) { return checker.Stale(time.Now()) }
	lv.events.SetDaemonState(stale, obs.stoppingNow)
	defer lv.close()
	obs.needConns = lv.sampler.Touch
	obs.configProblem = pr.configProblem
	obs.stale = stale
	h := httpd.NewHandler(checker)
	var pagesMux httpd.Mux // nil: --pages off
	var ownPages *httpd.PageMux
	if pagesLn != nil {
		ownPages = httpd.NewPageMux()
		pagesMux = ownPages
	} else if pagesMode == PagesPort {
		pagesMux = h
	}
	obs.mount(h, pagesMux, w, ag) // read-only pages and /metrics
	if pagesMux != nil {
		lv.mount(pagesMux)
	}
	wg.Go(func() { lv.run(ctx) })
	srv := httpd.NewServer(h, log.With().Str("component", "http").Logger())
	wg.Go(func() {
		var err error
		if cfg.Engine == EngineFast {
			// /status and OPTIONS / on the event loops; pages,
			// /metrics, /healthz and the rest through srv.
			err = httpd.ServeFast(ctx, h, srv, ln, cfg.Grace, httpd.FastOptions{Started: onStarted})
		} else {
			onStarted() // net/http holds no descriptor of its own before a connection
			err = httpd.Serve(ctx, srv, ln, cfg.Grace)
		}
		if err != nil {
			errc <- fmt.Errorf("http: %w", err)
		}
	})
	if ownPages != nil {
		// Plain net/http: people and scrapers, not balancers. The check
		// port's timeouts, header limit and stop (--grace), and far fewer
		// connections: a flood here must not take the memory and file
		// descriptors the check port needs.
		psrv := httpd.NewServer(ownPages, log.With().Str("component", "pages").Logger())
		wg.Go(func() {
			if err := httpd.ServeMax(ctx, psrv, pagesLn, cfg.Grace, pagesMaxConns); err != nil {
				errc <- fmt.Errorf("pages: %w", err)
			}
		})
		log.Info().Str("listen", pagesLn.Addr().String()).Msg("status pages and /metrics listening")
	}
	if ag != nil {
		wg.Go(func() {
			if err := ag.Serve(ctx); err != nil {
				errc <- fmt.Errorf("agent: %w", err)
			}
		})
		log.Info().Str("listen", ag.Addr().String()).Msg("agent-check responder listening")
	}

	// Ready: every listener is bound and the first snapshot is published.
	sd.warn(strings.Join(sockWarnings, "; "))
	var runErr error
	for ; responders > 0 && runErr == nil; responders-- {
		select {
		case <-started:
		case runErr = <-errc:
			if a := fdAdvice(runErr); a != runErr {
				runErr = fmt.Errorf("start the responders: %w", a)
			}
		}
	}
	if runErr == nil {
		runErr = checkFreeFDs()
	}
	if runErr == nil {
		runErr = pid.write()
	}
	if runErr == nil {
		d.mu.Lock()
		d.httpAddr, d.w = ln.Addr(), w
		if ag != nil {
			d.agent = ag.Addr()
		}
		if pagesLn != nil {
			d.pages = pagesLn.Addr()
		}
		d.mu.Unlock()
		log.Info().Str("listen", ln.Addr().String()).Str("engine", cfg.Engine).Str("dir", cfg.Dir).Str("state", store.Load().Summary(time.Now())).Msg("http_status ready")
		sd.ready(store)
		close(d.ready)
		if d.opts.OnReady != nil {
			d.opts.OnReady()
		}
		wd := watchdogInterval(log)
		wg.Go(func() { sd.supervise(ctx, store, w.HeartbeatAge, wd, heartbeatMaxAge) })
	}

	for runErr == nil && sig.Err() == nil {
		reload := false
		select {
		case <-sig.Done():
		case <-d.hup:
			reload = true
		case <-hupSig:
			reload = true
		case runErr = <-errc:
		case <-notRead:
			notRead = nil
			log.Warn().Str("dir", cfg.Dir).Str("state", store.Load().Summary(time.Now())).Msg("status directory read at last: answering from the flags")
		}
		if reload {
			log.Info().Msg("SIGHUP: rescanning")
			pr.reload(sig.Done()) // the probe file first, so READY=1 follows both
			sd.reload(sig, w, store)
		}
	}
	if ag != nil {
		// From here on the agent answers "up drain" for services that are
		// up, so HAProxy moves new traffic away while we stop.
		ag.SetDraining(true)
	}
	sd.stopping()
	if runErr == nil && cfg.Lameduck > 0 {
		what := fmt.Sprintf("lameduck: the listeners close at %s (--lameduck %s)", time.Now().Add(cfg.Lameduck).UTC().Format(time.RFC3339), cfg.Lameduck)
		if ag != nil {
			what += "; the agent answers drain meanwhile"
		}
		obs.stop(what)
	} else {
		obs.stop("the listeners are closing")
	}
	log.Info().Dur("lameduck", cfg.Lameduck).Dur("grace", cfg.Grace).Msg("stopping")
	if runErr == nil && cfg.Lameduck > 0 {
		// Lameduck: /status keeps answering from the flags and every
		// listener stays open while the agent says drain.
		time.Sleep(cfg.Lameduck)
	}
	// Stop accepting, give in-flight requests up to --grace, stop the
	// watcher and the systemd supervisor.
	cancel()
	stopBy := time.Now().Add(cfg.Grace + watcherStopWait)
	// The probes stop beside the responders and the watcher: an attempt
	// blocked on a hung mount (2 s at most) then overlaps a watcher loop
	// blocked on one, instead of adding to it. Their last results stay in
	// the snapshot the in-flight requests are answered from.
	probesStopped := make(chan struct{})
	go func() {
		defer close(probesStopped)
		pr.close()
	}()
	wg.Wait()
	waitWatcher(stopBy)
	<-probesStopped
	for len(errc) > 0 {
		log.Warn().Err(<-errc).Msg("while stopping")
	}
	return runErr
}

// pagesClash names the daemon's own listener that the pages' address
// could not be bound beside: "address already in use" alone sent the
// operator looking for another program.
func pagesClash(pages string, err error, check, agent net.Listener) string {
	if !errors.Is(err, syscall.EADDRINUSE) {
		return ""
	}
	_, port, perr := net.SplitHostPort(pages)
	if perr != nil {
		return ""
	}
	for _, l := range []struct {
		ln   net.Listener
		what string
	}{{check, "check port (--ip, --port)"}, {agent, "agent port (--agent-ip, --agent-port)"}} {
		if l.ln == nil {
			continue
		}
		if a, ok := l.ln.Addr().(*net.TCPAddr); ok && strconv.Itoa(a.Port) == port {
			return fmt.Sprintf(" clashes with the %s on %s, give the pages a port of their own", l.what, a)
		}
	}
	return ""
}
