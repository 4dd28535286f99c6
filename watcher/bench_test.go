//go:build linux

package watcher

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/http-status/http_status/cache"
)

// benchWatcher runs a watcher over a directory of n flags (squid0.80 ...),
// with a channel that receives each published snapshot.
func benchWatcher(b *testing.B, n int) (dir string, pubs <-chan *cache.Snapshot, loop *loopTime) {
	b.Helper()
	dir = filepath.Join(b.TempDir(), "status")
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("squid%d.80", i)), nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	st := cache.NewStore()
	ch := make(chan *cache.Snapshot, 1<<16)
	st.SetOnPublish(func(s *cache.Snapshot) { ch <- s })
	loop = &loopTime{}
	w, err := New(Options{Dir: dir, Store: st, Logger: zerolog.Nop(), OnPublish: loop.observe})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	select {
	case <-w.Ready():
	case <-time.After(30 * time.Second):
		b.Fatal("not ready")
	}
	for len(ch) > 0 {
		<-ch
	}
	loop.reset()
	return dir, ch, loop
}

// loopTime sums the loop's wake-up-to-publish times (Options.OnPublish):
// the daemon's own work per event, without the benchmark's syscalls.
type loopTime struct{ nanos, pubs atomic.Int64 }

func (l *loopTime) observe(d time.Duration) { l.nanos.Add(int64(d)); l.pubs.Add(1) }
func (l *loopTime) reset()                  { l.nanos.Store(0); l.pubs.Store(0) }

// report adds loop-ns/publish and publishes/op.
func (l *loopTime) report(b *testing.B) {
	if p := l.pubs.Load(); p > 0 {
		b.ReportMetric(float64(l.nanos.Load())/float64(p), "loop-ns/publish")
		b.ReportMetric(float64(p)/float64(b.N), "publishes/op")
	}
}

// cpuNanos is the process's user+system CPU time.
func cpuNanos(b *testing.B) int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// waitLen waits for a published snapshot with n flags.
func waitLen(b *testing.B, pubs <-chan *cache.Snapshot, n int) {
	b.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case s := <-pubs:
			if s.Len() == n {
				return
			}
		case <-timeout:
			b.Fatalf("no snapshot with %d flags", n)
		}
	}
}

// BenchmarkFlagChange: one flag removed then created again among 10,000
// (two publications per op), from the syscall to the published snapshot.
// cpu-ns/op is the whole process's CPU (the test's own syscalls included).
func BenchmarkFlagChange(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("flags=%d", n), func(b *testing.B) {
			dir, pubs, loop := benchWatcher(b, n)
			p := filepath.Join(dir, "squid0.80")
			cpu := cpuNanos(b)
			loop.reset()
			b.ResetTimer()
			for b.Loop() {
				if err := os.Remove(p); err != nil {
					b.Fatal(err)
				}
				waitLen(b, pubs, n-1)
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					b.Fatal(err)
				}
				waitLen(b, pubs, n)
			}
			b.ReportMetric(float64(cpuNanos(b)-cpu)/float64(b.N), "cpu-ns/op")
			loop.report(b)
		})
	}
}

// BenchmarkFlagBurst: 1,000 of 10,000 flags removed then created again
// (as fast as the test can, so the loop batches them), until the snapshot
// has them all back.
func BenchmarkFlagBurst(b *testing.B) {
	const n, burst = 10000, 1000
	dir, pubs, loop := benchWatcher(b, n)
	cpu := cpuNanos(b)
	loop.reset()
	b.ResetTimer()
	for b.Loop() {
		for i := range burst {
			if err := os.Remove(filepath.Join(dir, fmt.Sprintf("squid%d.80", i))); err != nil {
				b.Fatal(err)
			}
		}
		waitLen(b, pubs, n-burst)
		for i := range burst {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("squid%d.80", i)), nil, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		waitLen(b, pubs, n)
	}
	b.ReportMetric(float64(cpuNanos(b)-cpu)/float64(b.N), "cpu-ns/op")
	loop.report(b)
}

// heapAfterGC is the live heap.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkMemory reports the live heap a running watcher and its current
// snapshot hold per flag (10,000 flags, names like squid1234.80, half with
// a drain reason) and per VIP (1,000 addresses, fed through a canned
// AddrSource: the netlink library keeps nothing per address). Run with
// -benchtime=1x; what it measures is memory, not time.
func BenchmarkMemory(b *testing.B) {
	const nFlags, nVIPs = 10000, 1000
	start := func(dir string, src AddrSource) (*cache.Store, func()) {
		st := cache.NewStore()
		w, err := New(Options{Dir: dir, Store: st, Logger: zerolog.Nop(), Addrs: src != nil, AddrSource: src})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		select {
		case <-w.Ready():
		case <-time.After(30 * time.Second):
			b.Fatal("not ready")
		}
		return st, func() { cancel(); <-done }
	}
	for b.Loop() {
		empty := b.TempDir()
		flags := b.TempDir()
		for i := range nFlags {
			content := ""
			if i%2 == 0 {
				content = "drain reason=\"kernel upgrade\"\n"
			}
			if err := os.WriteFile(filepath.Join(flags, fmt.Sprintf("squid%d.80", i)), []byte(content), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		var addrs []AddrUpdate
		for i := range nVIPs {
			a := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
			addrs = append(addrs, AddrUpdate{Addr: a, PrefixLen: 32, LinkIndex: 1 + i%2, New: true})
		}
		src := &fakeSource{lists: [][]AddrUpdate{addrs}, current: addrs, subs: make(chan *fakeSub, 8)}

		h0 := heapAfterGC()
		_, stop := start(empty, nil)
		h1 := heapAfterGC()
		st, stopF := start(flags, nil)
		h2 := heapAfterGC()
		stV, stopV := start(empty, src)
		h3 := heapAfterGC()
		if st.Load().Len() != nFlags || stV.Load().NumVIPs() != nVIPs {
			b.Fatalf("loaded %d flags, %d VIPs", st.Load().Len(), stV.Load().NumVIPs())
		}
		base := int64(h1 - h0) // a watcher with nothing to watch
		b.ReportMetric(float64(base), "B/watcher")
		b.ReportMetric(float64(int64(h2-h1)-base)/nFlags, "B/flag")
		b.ReportMetric(float64(int64(h3-h2)-base)/nVIPs, "B/VIP")
		stopV()
		stopF()
		stop()
	}
}
