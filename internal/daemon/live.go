//go:build linux

package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/httpd"
	"github.com/http-status/http_status/internal/conns"
	"github.com/http-status/http_status/internal/pages"
	"github.com/http-status/http_status/watcher"
)

// live wires the connection counts and the /events stream: the sampler
// counts through sock_diag while something needs counts and hands each
// sample to the watcher loop (the snapshot's single writer), as the probes
// do; /events turns each publication into change events.
type live struct {
	counter *conns.Counter // nil when sock_diag cannot be opened
	sampler *conns.Sampler
	events  *pages.Events
}

func newLive(store *cache.Store, w *watcher.Watcher, pr *probes, log zerolog.Logger) *live {
	l := &live{}
	counter, err := conns.NewCounter()
	if err != nil {
		// Not fatal: the flags decide traffic; counts are for people and
		// drains. Pages say why there are none.
		log.Warn().Err(err).Msg("connection counts unavailable")
	}
	l.counter = counter
	count := func(ports []uint16) (map[uint16]int, error) {
		if counter == nil {
			return nil, err
		}
		return counter.Count(ports)
	}
	l.sampler = conns.NewSampler(conns.SamplerOptions{
		Count: count,
		Ports: l.ports(store, pr),
		Report: func(s conns.Sample) <-chan struct{} {
			c := cache.ConnCounts{Live: s.Live, Ports: s.Ports, Config: pr.connPorts()}
			if s.Err != nil {
				c.Err = s.Err.Error()
			}
			return w.SetConnCounts(c)
		},
		Logger: log,
	})
	l.events = pages.NewEvents(pages.EventsOptions{Store: store, Hold: l.sampler.Hold})
	return l
}

// ports is the sampler's Ports: the ports the services need and whether
// one drains. The sampler asks once a second, idle or not, so the answer
// is kept until the snapshot (or the probe file's conn_port) changes: with
// 10,000 flags working it out takes milliseconds (BENCHMARKS.md). An
// expiring drain is a new snapshot too (the watcher republishes then).
func (l *live) ports(store *cache.Store, pr *probes) func() ([]uint16, bool) {
	var (
		gen      uint64
		cfg      *map[string]uint16
		ports    []uint16
		draining bool
	)
	return func() ([]uint16, bool) {
		s, c := store.Load(), pr.conns.Load()
		if s.Generation() != gen || c != cfg || gen == 0 {
			var m map[string]uint16
			if c != nil {
				m = *c
			}
			ports, draining = s.ConnPorts(m, time.Now())
			gen, cfg = s.Generation(), c
		}
		return ports, draining
	}
}

// mount mounts /events on m, where the pages are.
func (l *live) mount(m httpd.Mux) { l.events.Mount(m) }

// run samples and streams until ctx is done.
func (l *live) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { l.sampler.Run(ctx) })
	wg.Go(func() { l.events.Run(ctx) })
	wg.Wait()
}

func (l *live) close() {
	if l.counter != nil {
		l.counter.Close()
	}
}
