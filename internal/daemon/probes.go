//go:build linux

package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/bounded"
	"github.com/http-status/http_status/probe"
	"github.com/http-status/http_status/watcher"
)

// probes wires the probe runner to the watcher: results go to the watcher
// loop (the store's single writer), only_if_vip reads the current snapshot.
type probes struct {
	path   string
	runner *probe.Runner
	log    zerolog.Logger
	conns  atomic.Pointer[map[string]uint16] // conn_port per service
	// problem is why the last reload was refused ("": it was applied):
	// the old probes keep running, which /healthz must say, or a SIGHUP
	// whose file was broken would look like one that took.
	problem atomic.Pointer[string]
	// loading, owned by the main loop, is the read of the file; one that
	// outlasts configReadWait is left running, and no other starts
	// until it ends.
	loading bounded.Call
}

// configReadWait bounds how long a SIGHUP waits for the probe file to be
// read. It is read on the main loop, which a file on a filesystem that has
// stopped answering (NFS, FUSE) would otherwise hold, and SIGTERM after it.
// A variable for the tests.
var configReadWait = 5 * time.Second

// errStopped is a start given up for a stop (SIGTERM) that came during it.
var errStopped = errors.New("stopped during the start")

// load reads the probe file, for configReadWait at most, or until stop is
// closed (errStopped); a read that does not end by then goes on in the
// background, and until it ends no new one starts (each reload fails at
// once, saying so).
func (p *probes) load(stop <-chan struct{}) (*probe.Config, error) {
	if p.loading.Busy() {
		return nil, fmt.Errorf("read %s: an earlier read has not ended (its filesystem does not answer?)", p.path)
	}
	var cfg *probe.Config
	var err error
	if !p.loading.DoUntil(stop, configReadWait, func() { cfg, err = probe.LoadFile(p.path) }) {
		select {
		case <-stop:
			return nil, errStopped
		default:
		}
		return nil, fmt.Errorf("read %s: no answer within %s (its filesystem does not answer?)", p.path, configReadWait)
	}
	return cfg, err
}

// configProblem says why the probe file on disk is not the one running
// ("" when it is).
func (p *probes) configProblem() string {
	if s := p.problem.Load(); s != nil {
		return *s
	}
	return ""
}

// connPorts maps the services whose probes set conn_port to it.
func (p *probes) connPorts() map[string]uint16 {
	if m := p.conns.Load(); m != nil {
		return *m
	}
	return nil
}

func (p *probes) setConnPorts(cfg *probe.Config) {
	m := cfg.ConnPorts()
	p.conns.Store(&m)
}

// newProbes loads path (empty: no probes) and starts the runner. A bad file
// is a startup error, and so is one that does not answer within
// configReadWait (a start must not hang on it until systemd's timeout);
// stop closed meanwhile (SIGTERM) gives errStopped. Call before the watcher runs, so the first snapshot
// already holds every probed service as pending. observe gets each
// attempt's duration; forget (when not nil) a service whose probes a
// reload removed, after their last attempt.
func newProbes(stop <-chan struct{}, path string, concurrency int, loopbackOnly bool, store *cache.Store, w *watcher.Watcher, observe func(string, bool, time.Duration), forget func(string), log zerolog.Logger) (*probes, error) {
	p := &probes{path: path, log: log}
	p.runner = probe.NewRunner(probe.Options{
		Logger:           log,
		Concurrency:      concurrency,
		HasVIP:           func(a netip.Addr) bool { return store.Load().HasVIP(a, loopbackOnly) },
		LoopbackVIPsOnly: loopbackOnly,
		Report:           w.SetProbeResults,
		Clear: func(service string) {
			if forget != nil {
				forget(service)
			}
			w.ClearProbeResults(service)
		},
		Ready:   w.Ready(),
		Observe: observe,
	})
	if path == "" {
		return p, nil
	}
	cfg, err := p.load(stop)
	if err != nil {
		p.runner.Close()
		return nil, err
	}
	if err := p.runner.Apply(cfg); err != nil {
		p.runner.Close()
		return nil, err
	}
	p.setConnPorts(cfg)
	log.Info().Str("config", path).Int("probes", len(cfg.Probes)).Msg("probes configured")
	return p, nil
}

// reload re-reads the file (SIGHUP); an invalid file is logged and the
// running configuration kept. A stop (stop closed) ends the wait for the
// read at once.
func (p *probes) reload(stop <-chan struct{}) {
	if p.path == "" {
		return
	}
	cfg, err := p.load(stop)
	if errors.Is(err, errStopped) {
		return
	}
	if err == nil {
		err = p.runner.Apply(cfg)
	}
	if err != nil {
		// /healthz says so before the log does: whoever reads the log
		// line finds /healthz degraded.
		msg := "probe config " + p.path + " not reloaded, the previous probes still run: " + strings.Join(strings.Fields(err.Error()), " ")
		p.problem.Store(&msg)
		p.log.Error().Err(err).Str("config", p.path).Msg("probe config not reloaded; keeping the running one")
		return
	}
	p.problem.Store(nil)
	p.setConnPorts(cfg)
	p.log.Info().Str("config", p.path).Int("probes", len(cfg.Probes)).Msg("probe config reloaded")
}

// close stops every probe and waits for them.
func (p *probes) close() { p.runner.Close() }
