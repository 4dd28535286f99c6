//go:build linux

// Command http_status tells load balancers whether the services on this host
// should get traffic. It reads the command line, sets up the process
// (--daemon, logging) and runs internal/daemon, which wires the watcher, the
// cache and the responders; or it runs one of the control commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/http-status/http_status/internal/daemon"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && isCtlCommand(args[0]) && args[0] != "help" && !isCtlChild() {
		// See ctlguard.go: bounded however the status directory behaves.
		os.Exit(superviseCtl(args, os.Stdout, os.Stderr, isTerminal(os.Stdout)))
	}
	os.Exit(realMain(args, os.Stdout, os.Stderr))
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
	// A write to stdout or stderr whose reader has gone (a logger that
	// died under runit or s6, `| logger` killed, a journald stream broken
	// under IgnoreSIGPIPE=no) kills a Go program with SIGPIPE unless it
	// asks for the signal: the daemon, and every service's answer with
	// it. Asked for and never read, the write fails instead (the line is
	// lost; nothing can be said where nobody reads). Notify, not Ignore:
	// an ignored signal stays ignored in the probe scripts it execs.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	if isDaemonChild() {
		// The parent pointed stderr at --log-file already.
		if err := daemonChildSetup(&cfg); err != nil {
			tellParent(err)
			return 1
		}
	}
	// logFDs are the descriptors that hold --log-file: the --daemon
	// parent made it the child's stdout and stderr.
	var logFDs []int
	if isDaemonChild() && cfg.LogFile != "" {
		logFDs = []int{1, 2}
	} else if cfg.LogFile != "" {
		f, err := openLogFile(cfg.LogFile)
		if err != nil {
			fmt.Fprintln(stderr, "http_status:", err)
			return 2
		}
		defer f.Close()
		stderr = f
		logFDs = []int{int(f.Fd())}
	}
	// Asked for before the logger exists so that no SIGUSR1 is lost, and
	// so that it never falls to Go's default (ignored without a word).
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	log, closeLog, err := newLogger(cfg, stderr)
	if err != nil {
		tellParent(err)
		fmt.Fprintln(stderr, "http_status:", err)
		return 2
	}
	defer closeLog()
	go reopenLogOn(usr1, cfg.LogFile, logFDs, log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := daemon.New(cfg.Config, daemon.Options{
		Logger:  log,
		Version: indexVersion(buildVersion()),
		Signals: true,
		OnReady: func() { tellParent(nil) },
	})
	if err == nil {
		err = d.Run(ctx)
	}
	if err != nil {
		tellParent(err)
		log.Error().Err(err).Msg("exiting")
		return 1
	}
	return 0
}

// logBuffer is how many log lines wait for a writer that is behind (about
// 1 MiB at most: a line is rarely over a KiB) before the oldest are dropped.
const logBuffer = 1024

// logFlushWait bounds how long the lines still buffered at exit are given
// to reach a writer that may have stopped reading.
const logFlushWait = time.Second

// newLogger returns the daemon's logger and the function that flushes it
// at exit. Lines go through a bounded buffer to the writer (stderr, the
// file, journald) on a goroutine of their own: a writer that stops reading
// (journald hung, a paused terminal, a pipe to a logger that died) must
// not block whatever logs, the watcher loop first of all, which would then
// go stale and take every service out of rotation, nor a stop. When the
// buffer is full the oldest lines are dropped and counted, and a line says
// how many once the writer takes lines again.
func newLogger(cfg Config, w io.Writer) (zerolog.Logger, func(), error) {
	lvl, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil || cfg.LogLevel == "" {
		return zerolog.Logger{}, nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", cfg.LogLevel)
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
	// The alert runs on the buffer's goroutine, which alone writes to out.
	direct := zerolog.New(out).With().Timestamp().Logger()
	buf := newLogBuf(out, logBuffer, func(missed int) {
		direct.Warn().Int("dropped", missed).Msg(strconv.Itoa(missed) + " log lines dropped: the log's reader (journald, the terminal, the file's pipe) was not keeping up")
	}, func(n int, err error) {
		direct.Warn().Int("lost", n).AnErr("write_error", err).Msg(strconv.Itoa(n) + " log lines lost: writing them failed (" + err.Error() + ")")
	})
	closeLog := func() {
		done := make(chan struct{})
		go func() {
			// Close drains what is buffered, then returns; not when
			// the writer has stopped reading for good.
			buf.Close()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(logFlushWait):
		}
	}
	return zerolog.New(buf).Level(lvl).With().Timestamp().Logger(), closeLog, nil
}

// indexVersion is the version line of the index page.
func indexVersion(v versionInfo) string {
	return "http_status " + v.Version + " (commit " + v.Commit + ", " + v.GoVersion + ")"
}
