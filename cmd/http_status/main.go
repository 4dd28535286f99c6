// Command http_status tells load balancers whether the services on this host
// should get traffic. It is the only package that reads flags and wires the
// watcher, the cache and the responders together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/httpd"
	"github.com/http-status/http_status/watcher"
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && isCtlCommand(args[0]) {
		return runCtl(args, stdout, stderr, time.Now())
	}
	if len(args) == 1 && args[0] == helpManFlag {
		return printManPage(stdout, stderr)
	}
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "http_status:", err)
		return 2
	}
	if cfg.Version {
		fmt.Fprint(stdout, buildVersion())
		return 0
	}
	if cfg.Daemon && !isDaemonChild() {
		return daemonize(args, cfg, stderr)
	}
	if isDaemonChild() {
		// The parent pointed stderr at --log-file already.
		if err := daemonChildSetup(&cfg); err != nil {
			tellParent(err)
			return 1
		}
	} else if cfg.LogFile != "" {
		f, err := openLogFile(cfg.LogFile)
		if err != nil {
			fmt.Fprintln(stderr, "http_status:", err)
			return 2
		}
		defer f.Close()
		stderr = f
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		tellParent(err)
		fmt.Fprintln(stderr, "http_status:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		tellParent(err)
		log.Error().Err(err).Msg("exiting")
		return 1
	}
	return 0
}

func newLogger(cfg Config, w io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil || cfg.LogLevel == "" {
		return zerolog.Logger{}, fmt.Errorf("--log-level %q: want debug, info, warn or error", cfg.LogLevel)
	}
	out := w
	console := cfg.LogFormat == "console"
	journal := cfg.LogFormat == "journal"
	if cfg.LogFormat == "auto" {
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			console = true
		}
		journal = w == io.Writer(os.Stderr) && stderrIsJournal()
	}
	if console {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	if journal {
		out = newJournalWriter(w)
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger(), nil
}

// run is the daemon: it returns when ctx is done (nil) or on a startup error.
// Under systemd it reports READY=1 once the first snapshot is in and every
// listener is bound, RELOADING=1/READY=1 around a SIGHUP rescan and
// STOPPING=1 when ctx is done (see systemd.go).
func run(ctx context.Context, cfg Config, log zerolog.Logger) error {
	// From the start, so that an early SIGHUP is a rescan once ready
	// rather than the default action (exit).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	pid, err := claimPidFile(cfg.PidFile)
	if err != nil {
		return err
	}
	defer pid.remove(log)
	store := cache.NewStore()
	obs := &observability{}
	w, err := watcher.New(watcher.Options{
		Dir:        cfg.Dir,
		Store:      store,
		Logger:     log.With().Str("component", "watcher").Logger(),
		Resync:     cfg.Resync,
		Addrs:      cfg.VIPs,
		AddrSource: watcher.NetlinkSource{Log: log.With().Str("component", "netlink").Logger()},
		CreateDir:  cfg.CreateDir,
		OnPublish:  obs.onPublish,
	})
	if err != nil {
		return err
	}
	pr, err := newProbes(cfg.ConfigFile, cfg.ProbeConcurrency, cfg.LoopbackVIPsOnly, store, w, obs.onProbe, log.With().Str("component", "probe").Logger())
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
	if cfg.Engine == engineFast {
		bindHTTP = func(addr string) (net.Listener, error) { return httpd.ListenReusePort(addr, runtime.GOMAXPROCS(0)) }
	}
	ln, err := lns.listenWith(listenerHTTP, cfg.Addr(), log, bindHTTP)
	if err != nil {
		lns.closeUnused(log)
		return fmt.Errorf("listen for HTTP checks: %w", err)
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
			return fmt.Errorf("listen for agent checks: %w", err)
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
	}
	lns.closeUnused(log)

	// Workers stop on ctx's own cancel, not on the signal: after SIGTERM the
	// responders keep serving through --lameduck.
	sig := ctx
	ctx, cancel := context.WithCancel(context.WithoutCancel(sig))
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	wg.Go(func() {
		if err := w.Run(ctx); err != nil {
			errc <- err
		}
	})
	select {
	case <-w.Ready():
	case err := <-errc:
		cancel()
		wg.Wait()
		return err
	case <-sig.Done():
		cancel()
		wg.Wait()
		return nil
	}

	checker := httpd.NewChecker(httpd.CheckerOptions{Store: store, LoopbackVIPsOnly: cfg.LoopbackVIPsOnly, VIPMissingCode: cfg.VIPMissingStatus})
	var agent *httpd.Agent
	if agentLn != nil {
		if agent, err = newAgent(cfg, checker, agentLn, log); err != nil {
			cancel()
			wg.Wait()
			return err
		}
	}
	lv := newLive(store, w, pr, log.With().Str("component", "conns").Logger()) // connection counts, /events
	defer lv.close()
	obs.needConns = lv.sampler.Touch
	h := httpd.NewHandler(checker)
	obs.mount(h, checker, w) // read-only pages and /metrics
	lv.mount(h)
	wg.Go(func() { lv.run(ctx) })
	srv := httpd.NewServer(h, log.With().Str("component", "http").Logger())
	wg.Go(func() {
		var err error
		if cfg.Engine == engineFast {
			// /status and OPTIONS / on the epoll engine; pages,
			// /metrics, /healthz and the rest through srv.
			err = httpd.ServeFast(ctx, checker, srv, ln, cfg.Grace, httpd.FastOptions{})
		} else {
			err = httpd.Serve(ctx, srv, ln, cfg.Grace)
		}
		if err != nil {
			errc <- fmt.Errorf("http: %w", err)
		}
	})
	if agent != nil {
		wg.Go(func() {
			if err := agent.Serve(ctx); err != nil {
				errc <- fmt.Errorf("agent: %w", err)
			}
		})
		log.Info().Str("listen", agent.Addr().String()).Msg("agent-check responder listening")
	}

	// Ready: every listener is bound and the first snapshot is published.
	sd := newNotifier(log.With().Str("component", "systemd").Logger())
	sd.warn(strings.Join(sockWarnings, "; "))
	runErr := pid.write()
	if runErr == nil {
		log.Info().Str("listen", ln.Addr().String()).Str("engine", cfg.Engine).Str("dir", cfg.Dir).Str("state", store.Load().Summary(time.Now())).Msg("http_status ready")
		sd.ready(store)
		tellParent(nil)
		wd := watchdogInterval(log)
		wg.Go(func() { sd.supervise(ctx, store, w.HeartbeatAge, wd, heartbeatMaxAge) })
	}

	for runErr == nil && sig.Err() == nil {
		select {
		case <-sig.Done():
		case <-hup:
			log.Info().Msg("SIGHUP: rescanning")
			pr.reload() // the probe file first, so READY=1 follows both
			sd.reload(sig, w, store)
		case runErr = <-errc:
		}
	}
	if agent != nil {
		// From here on the agent answers "up drain" for services that are
		// up, so HAProxy moves new traffic away while we stop.
		agent.SetDraining(true)
	}
	sd.stopping()
	log.Info().Dur("lameduck", cfg.Lameduck).Dur("grace", cfg.Grace).Msg("stopping")
	if runErr == nil && cfg.Lameduck > 0 {
		// Lameduck: /status keeps answering from the flags and every
		// listener stays open while the agent says drain.
		time.Sleep(cfg.Lameduck)
	}
	// Stop accepting, give in-flight requests up to --grace, stop the
	// watcher and the systemd supervisor.
	cancel()
	wg.Wait()
	for len(errc) > 0 {
		log.Warn().Err(<-errc).Msg("while stopping")
	}
	return runErr
}
