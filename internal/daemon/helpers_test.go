//go:build linux

package daemon

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// testConfig is the shipped default configuration (what cmd/http_status
// runs without flags: the fast engine, VIP tracking) on a loopback port the
// kernel picks, with dir as the status directory.
func testConfig(dir string) Config {
	return Config{
		Port: 0, IP: "127.0.0.1", Dir: dir, VIPs: true, VIPMissingStatus: 404,
		Resync: 5 * time.Minute, Grace: 2 * time.Second, CreateDir: true,
		ProbeConcurrency: 32, AgentDefault: "status.html", Engine: EngineFast,
	}
}

// running is a daemon run in process by [startDaemon].
type running struct {
	d      *Daemon
	base   string // http://127.0.0.1:port
	cancel context.CancelFunc
	done   chan error
	err    error
	ended  bool
}

// startDaemon runs [Daemon.Run] in process until the test ends, and waits
// for it to be ready. Logs at warn and above go to the test log.
func startDaemon(t *testing.T, cfg Config, opts Options) *running {
	t.Helper()
	return startDaemonLog(t, cfg, opts, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel))
}

// startDaemonLog is startDaemon with the daemon's logger.
func startDaemonLog(t *testing.T, cfg Config, opts Options, log zerolog.Logger) *running {
	t.Helper()
	opts.Logger = log
	d, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{d: d, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- d.Run(ctx) }()
	select {
	case <-d.Ready():
	case err := <-r.done:
		cancel()
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(15 * time.Second):
		cancel()
		t.Fatal("daemon not ready after 15s")
	}
	r.base = "http://" + d.HTTPAddr().String()
	t.Cleanup(func() { r.stop() })
	return r
}

// stop stops the daemon and waits for Run to return; safe to call twice.
func (r *running) stop() error {
	if !r.ended {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(30 * time.Second):
			panic("daemon.Run did not return 30s after cancel")
		}
		r.ended = true
	}
	return r.err
}

// stopClean stops the daemon and fails the test when Run returned an error.
func (r *running) stopClean(t *testing.T) {
	t.Helper()
	if err := r.stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
}

// writeFlags writes name -> content into dir.
func writeFlags(t *testing.T, dir string, flags map[string]string) {
	t.Helper()
	for name, content := range flags {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func testLogger(t *testing.T) zerolog.Logger { return zerolog.New(zerolog.NewTestWriter(t)) }
