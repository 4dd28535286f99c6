//go:build linux

package daemon

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/http-status/http_status/httpd"
	"github.com/http-status/http_status/internal/agent"
	"github.com/http-status/http_status/internal/pages"
	"github.com/http-status/http_status/watcher"
)

// observability wires the read-only pages (/status.json, /status.txt,
// /board, /healthz) and /metrics. It is made before the watcher, whose
// OnPublish hook reports into it, and mounted once the watcher and the
// checker exist; publishes before that (the first snapshot) are not timed.
// Probe attempts that end before it (the probes start with the first
// snapshot) are kept and counted at mount: /metrics misses none.
type observability struct {
	version string // the index page's version line
	metrics atomic.Pointer[pages.Metrics]
	early   struct {
		sync.Mutex
		probes []probeObservation // before mount; at most maxEarlyProbes
	}
	// needConns wakes the connection sampler (live.go); set before mount.
	needConns func() <-chan struct{}
	// configProblem says why the probe file was not reloaded; set before mount.
	configProblem func() string
	// stale is the checker's Stale at the time of asking; set before mount.
	stale func() (age time.Duration, stale bool)
	// stopping says what the daemon does while it stops ("" before).
	stopping atomic.Pointer[string]
}

// stop records that the daemon is stopping, for /healthz.
func (o *observability) stop(what string) { o.stopping.Store(&what) }

func (o *observability) stoppingNow() string {
	if s := o.stopping.Load(); s != nil {
		return *s
	}
	return ""
}

// onPublish is the watcher's OnPublish hook.
func (o *observability) onPublish(d time.Duration) {
	if m := o.metrics.Load(); m != nil {
		m.ObservePublish(d)
	}
}

type probeObservation struct {
	service, result string
	d               time.Duration
}

// maxEarlyProbes bounds the attempts kept before mount (each probe's first
// attempts, while the pages are built).
const maxEarlyProbes = 1024

// onProbe is the probe runner's Observe hook.
func (o *observability) onProbe(service string, ok bool, d time.Duration) {
	result := "fail"
	if ok {
		result = "pass"
	}
	if m := o.metrics.Load(); m != nil {
		m.ObserveProbe(service, result, d)
		return
	}
	o.early.Lock()
	defer o.early.Unlock()
	if m := o.metrics.Load(); m != nil { // mounted meanwhile
		m.ObserveProbe(service, result, d)
		return
	}
	if len(o.early.probes) < maxEarlyProbes {
		o.early.probes = append(o.early.probes, probeObservation{service, result, d})
	}
}

// forgetProbe is called for a service whose probes a reload removed, once
// their last attempt has ended: its duration series go (see
// [pages.Metrics.ForgetProbe]).
func (o *observability) forgetProbe(service string) {
	o.early.Lock()
	defer o.early.Unlock()
	if m := o.metrics.Load(); m != nil {
		m.ForgetProbe(service)
		return
	}
	o.early.probes = slices.DeleteFunc(o.early.probes, func(p probeObservation) bool { return p.service == service })
}

// mount builds the pages and the metrics and mounts them on mux (h itself
// with --pages port, nil with --pages off); /healthz and /health stay on
// h wherever the pages are.
func (o *observability) mount(h *httpd.Handler, mux httpd.Mux, w *watcher.Watcher, ag *agent.Server) {
	own := mux != nil && mux != httpd.Mux(h)
	p := pages.New(pages.Options{
		Store:           h.Checker().Store(),
		HeartbeatAge:    w.HeartbeatAge,
		HeartbeatMaxAge: heartbeatMaxAge,
		Stale:           o.stale,
		Version:         o.version,
		NeedConns:       o.needConns,
		ConfigProblem:   o.configProblem,
		Stopping:        o.stoppingNow,
		OwnPort:         own,
	})
	p.MountHealth(h)
	if mux != nil {
		p.MountPages(mux)
	}
	if own {
		p.MountHealth(mux) // a monitoring system may use that port alone
	}
	var agentStats func() agent.Stats
	if ag != nil {
		agentStats = ag.Stats
	}
	m := pages.NewMetrics(pages.MetricsOptions{
		Handler:      h,
		Agent:        agentStats,
		HeartbeatAge: w.HeartbeatAge,
		Watcher: func() pages.WatcherStats {
			s := w.Stats()
			return pages.WatcherStats{
				Events: s.Events, AddrUpdates: s.AddrUpdates, Rescans: s.Rescans,
				Overflows: s.Overflows, Resubscribes: s.Resubscribes, Publishes: s.Publishes,
				Transitions: s.Transitions, LastRescan: time.Duration(s.LastRescanNanos),
			}
		},
		NeedConns: o.needConns,
		Stopping:  o.stoppingNow,
		Stale:     o.stale,
	})
	if mux != nil {
		m.Mount(mux)
	}
	o.early.Lock()
	o.metrics.Store(m)
	for _, p := range o.early.probes {
		m.ObserveProbe(p.service, p.result, p.d)
	}
	o.early.probes = nil
	o.early.Unlock()
}
