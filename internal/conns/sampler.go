//go:build linux

// Package conns counts the host's open (ESTABLISHED or CLOSE-WAIT) TCP connections by local port
// (through sock_diag, as ss does) and samples them for the daemon, once a
// second, only while something needs them.
//
// # Who needs counts
//
// A service in drain (the board and the metrics show it emptying), a
// subscriber to the live board ([Sampler.Hold]), and a request for the
// pages or the metrics within the last [SamplerOptions.Linger]
// ([Sampler.Touch]). With none of these the sampler makes no syscall.
//
// # Concurrency
//
// [Sampler.Run] is the only goroutine that counts; it hands each sample to
// [SamplerOptions.Report] (the watcher loop, the snapshot's single writer),
// so requests read counts from the snapshot and make no syscall.
// [Sampler.Touch] and [Sampler.Hold] are safe from any goroutine and never
// block.
package conns

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Sample is one measurement for the snapshot.
type Sample struct {
	// Live is false when the sampler stops: there are no current counts.
	Live bool
	// Ports maps every port asked to its count of open connections.
	// After a failed count it holds the previous sample's counts.
	Ports map[uint16]int
	// Err is why this count failed, or nil.
	Err error
}

// SamplerOptions configure a [Sampler].
type SamplerOptions struct {
	// Count counts open connections on ports ([Counter.Count]).
	Count func(ports []uint16) (map[uint16]int, error)
	// Ports lists the ports to count now, and whether a service is
	// draining (a drain keeps the sampler on).
	Ports func() (ports []uint16, draining bool)
	// Report hands a sample to the snapshot's writer; the channel it
	// returns is closed once the sample is published.
	Report func(Sample) <-chan struct{}
	// Interval between samples; 0 means 1 s.
	Interval time.Duration
	// Linger is how long a request ([Sampler.Touch]) keeps the sampler
	// on; 0 means 2 minutes, so a Prometheus scraping every minute finds
	// live counts.
	Linger time.Duration
	Logger zerolog.Logger
}

// Sampler samples connection counts while something needs them.
type Sampler struct {
	opts SamplerOptions
	wake chan struct{}
	// lastTouch is when Touch was last called, as ns since base (0:
	// never): on the monotonic clock, as a wall clock stepped back would
	// keep the sampler on for as long as the step.
	base      time.Time
	lastTouch atomic.Int64
	holds     atomic.Int64
	live      atomic.Bool
	samples   atomic.Uint64

	mu      sync.Mutex
	waiters []chan struct{} // Touch callers waiting for the first sample
}

// NewSampler returns a sampler; [Sampler.Run] starts it.
func NewSampler(opts SamplerOptions) *Sampler {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Linger <= 0 {
		opts.Linger = 2 * time.Minute
	}
	return &Sampler{opts: opts, wake: make(chan struct{}, 1), base: time.Now()}
}

// Samples is the number of counts taken so far.
func (s *Sampler) Samples() uint64 { return s.samples.Load() }

// Live reports whether the sampler is sampling.
func (s *Sampler) Live() bool { return s.live.Load() }

var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Touch records that a request needs counts: the sampler runs for Linger
// from now. When it was idle, the returned channel is closed once the first
// sample is published (a page can wait for it, with a bound, instead of
// showing no counts); otherwise it is already closed.
func (s *Sampler) Touch() <-chan struct{} {
	s.lastTouch.Store(max(1, int64(time.Since(s.base))))
	if s.live.Load() {
		return closedCh
	}
	ch := make(chan struct{})
	s.mu.Lock()
	s.waiters = append(s.waiters, ch)
	s.mu.Unlock()
	s.poke()
	return ch
}

// Hold keeps the sampler on until release is called (a live-board
// subscriber). release may be called more than once.
func (s *Sampler) Hold() (release func()) {
	s.holds.Add(1)
	s.poke()
	var once sync.Once
	return func() { once.Do(func() { s.holds.Add(-1) }) }
}

// touchedWithin reports whether Touch was called in the last d.
func (s *Sampler) touchedWithin(d time.Duration) bool {
	t := s.lastTouch.Load()
	return t != 0 && time.Since(s.base)-time.Duration(t) < d
}

func (s *Sampler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Sampler) takeWaiters() []chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.waiters
	s.waiters = nil
	return w
}

// Run samples until ctx is done.
func (s *Sampler) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	var prev map[uint16]int
	lastErr := ""
	defer func() {
		for _, ch := range s.takeWaiters() {
			close(ch)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
		ports, draining := s.opts.Ports()
		waiters := s.takeWaiters()
		need := draining || s.holds.Load() > 0 || len(waiters) > 0 ||
			s.touchedWithin(s.opts.Linger)
		if !need {
			if s.live.Load() {
				s.live.Store(false)
				prev = nil
				s.opts.Logger.Debug().Msg("connection sampler stopped: nothing needs counts")
				s.wait(ctx, s.opts.Report(Sample{}))
			}
			continue
		}
		if !s.live.Load() {
			s.opts.Logger.Debug().Bool("draining", draining).Int64("subscribers", s.holds.Load()).Msg("connection sampler started")
		}
		counts, err := s.opts.Count(ports)
		s.samples.Add(1)
		if err != nil {
			if err.Error() != lastErr {
				s.opts.Logger.Warn().Err(err).Msg("cannot count connections; keeping the last counts")
			}
			lastErr = err.Error()
			counts = prev
		} else {
			lastErr = ""
			prev = counts
		}
		s.live.Store(true)
		s.wait(ctx, s.opts.Report(Sample{Live: true, Ports: counts, Err: err}))
		for _, ch := range waiters {
			close(ch)
		}
	}
}

func (s *Sampler) wait(ctx context.Context, done <-chan struct{}) {
	select {
	case <-done:
	case <-ctx.Done():
	}
}
