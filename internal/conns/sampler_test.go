//go:build linux

package conns

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
)

// fakeHost stands in for the counter and the watcher: the sampler's logic
// (when it samples) is what these tests check; counting itself is tested
// against real sockets in diag_linux_test.go.
type fakeHost struct {
	mu       sync.Mutex
	counts   int // Count calls
	draining bool
	fail     error
	reports  []Sample
	n        atomic.Int64
}

func (f *fakeHost) opts() SamplerOptions {
	return SamplerOptions{
		Count: func(ports []uint16) (map[uint16]int, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.counts++
			if f.fail != nil {
				return nil, f.fail
			}
			return map[uint16]int{80: int(f.n.Load())}, nil
		},
		Ports: func() ([]uint16, bool) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return []uint16{80}, f.draining
		},
		Report: func(s Sample) <-chan struct{} {
			f.mu.Lock()
			f.reports = append(f.reports, s)
			f.mu.Unlock()
			done := make(chan struct{})
			close(done)
			return done
		},
		Linger: 10 * time.Second,
		Logger: zerolog.Nop(),
	}
}

func (f *fakeHost) state() (int, []Sample) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts, append([]Sample(nil), f.reports...)
}

func start(t *testing.T, f *fakeHost) *Sampler {
	s := NewSampler(f.opts())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return s
}

// Nothing needs counts: no syscall, ever.
func TestSamplerIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeHost{}
		start(t, f)
		time.Sleep(time.Hour)
		synctest.Wait()
		if n, r := f.state(); n != 0 || len(r) != 0 {
			t.Fatalf("idle sampler counted %d times, reported %d", n, len(r))
		}
	})
}

// A request wakes the sampler at once; its channel closes once the first
// sample is published; sampling goes on once a second for Linger, then
// stops and says so.
func TestSamplerTouch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeHost{}
		f.n.Store(4)
		s := start(t, f)
		ch := s.Touch()
		<-ch
		if n, r := f.state(); n != 1 || len(r) != 1 || !r[0].Live || r[0].Ports[80] != 4 {
			t.Fatalf("after Touch: %d counts, reports %+v", n, r)
		}
		if !s.Live() {
			t.Error("not live after a sample")
		}
		select {
		case <-s.Touch():
		default:
			t.Error("Touch while live should not make the caller wait")
		}
		time.Sleep(5*time.Second + time.Millisecond)
		synctest.Wait()
		if n, _ := f.state(); n != 6 {
			t.Errorf("%d counts after 5 s, want 6 (once a second)", n)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		n, r := f.state()
		if last := r[len(r)-1]; last.Live || s.Live() {
			t.Errorf("still live after Linger: %+v", last)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if n2, _ := f.state(); n2 != n {
			t.Errorf("counted %d more times after stopping", n2-n)
		}
	})
}

// A subscriber keeps it on for as long as it holds; a drain too.
func TestSamplerHoldAndDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeHost{}
		s := start(t, f)
		release := s.Hold()
		time.Sleep(time.Hour)
		synctest.Wait()
		if n, _ := f.state(); n < 3600 {
			t.Errorf("%d counts in an hour of a subscriber, want one a second", n)
		}
		release()
		release() // twice is harmless
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if s.Live() {
			t.Fatal("live after the subscriber left")
		}
		f.mu.Lock()
		f.draining = true
		f.mu.Unlock()
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		if !s.Live() {
			t.Fatal("a drain does not start the sampler within a second")
		}
		f.mu.Lock()
		f.draining = false
		f.mu.Unlock()
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		if s.Live() {
			t.Fatal("still live after the drain ended")
		}
	})
}

// A failed count keeps the last counts and says why.
func TestSamplerError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeHost{}
		f.n.Store(2)
		s := start(t, f)
		<-s.Touch()
		f.mu.Lock()
		f.fail = errors.New("boom")
		f.mu.Unlock()
		time.Sleep(time.Second)
		synctest.Wait()
		_, r := f.state()
		last := r[len(r)-1]
		if !last.Live || last.Err == nil || last.Ports[80] != 2 {
			t.Errorf("after a failure: %+v", last)
		}
	})
}
