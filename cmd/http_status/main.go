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
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "http_status:", err)
		return 2
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "http_status:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
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
	if cfg.LogFormat == "auto" {
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			console = true
		}
	}
	if console {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger(), nil
}

// run is the daemon: it returns when ctx is done (nil) or on a startup error.
func run(ctx context.Context, cfg Config, log zerolog.Logger) error {
	store := cache.NewStore()
	w, err := watcher.New(watcher.Options{
		Dir:        cfg.Dir,
		Store:      store,
		Logger:     log.With().Str("component", "watcher").Logger(),
		Resync:     cfg.Resync,
		Addrs:      cfg.VIPs,
		AddrSource: watcher.NetlinkSource{Log: log.With().Str("component", "netlink").Logger()},
		CreateDir:  cfg.CreateDir,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr())
	if err != nil {
		return fmt.Errorf("listen for HTTP checks: %w", err)
	}
	defer ln.Close()

	ctx, cancel := context.WithCancel(ctx)
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
	case <-ctx.Done():
		wg.Wait()
		return nil
	}

	checker := httpd.NewChecker(httpd.CheckerOptions{Store: store, LoopbackVIPsOnly: cfg.LoopbackVIPsOnly})
	h := httpd.NewHandler(checker)
	srv := httpd.NewServer(h, log.With().Str("component", "http").Logger())
	wg.Go(func() {
		if err := httpd.Serve(ctx, srv, ln, cfg.Grace); err != nil {
			errc <- fmt.Errorf("http: %w", err)
		}
	})
	// agent is nil when --agent-port is 0; during a shutdown grace period
	// call agent.SetDraining(true).
	var agent *httpd.Agent
	if cfg.AgentPort != 0 {
		agent, err = startAgent(ctx, cfg, checker, log, &wg, errc)
		if err != nil {
			cancel()
			wg.Wait()
			return err
		}
		log.Info().Str("listen", agent.Addr().String()).Msg("agent-check responder listening")
	}
	log.Info().Str("listen", ln.Addr().String()).Str("dir", cfg.Dir).Str("state", store.Load().Summary(time.Now())).Msg("http_status ready")

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-hup:
			log.Info().Msg("SIGHUP: rescanning")
			w.Rescan()
		case runErr = <-errc:
			break loop
		}
	}
	log.Info().Msg("stopping")
	cancel()
	wg.Wait()
	return runErr
}
