// Package watcher mirrors the status directory and the host's addresses into
// a [cache.Store].
//
// # Data flow
//
// inotify (fsnotify) events and netlink address updates are hints, not data:
// each one wakes the loop, which drains whatever else is already queued,
// re-reads just the names those events touched (one open+fstat+read per
// name, or the address delta), builds the next snapshot copy-on-write and
// publishes it. There is no debounce sleep: a touch is visible to the next
// request as soon as the loop has run once.
//
// A full rescan happens on start, on an inotify queue overflow, when the
// status directory is removed and comes back, on [Watcher.Rescan] (SIGHUP),
// and every Resync as a safety net. When the netlink subscription fails the
// watcher resubscribes with backoff and relists every address.
//
// # Concurrency
//
// [Watcher.Run] is the single goroutine that writes the store. The other
// methods are safe to call from any goroutine.
package watcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"

	"github.com/http-status/http_status/cache"
)

// Options configure a [Watcher].
type Options struct {
	// Dir is the status directory holding the flag files.
	Dir string
	// Store receives the snapshots. Required.
	Store *cache.Store
	// Logger gets one line per change of state.
	Logger zerolog.Logger
	// Resync is the period of the safety-net full rescan; 0 means 5 minutes.
	Resync time.Duration
	// Addrs enables VIP tracking through netlink.
	Addrs bool
	// AddrSource overrides the netlink subscription (tests feed canned
	// updates through it). Nil means netlink in the current namespace.
	AddrSource AddrSource
	// CreateDir makes Dir (mode 0755) at start when it does not exist.
	CreateDir bool
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// OnPublish, when set, is called by the loop after each snapshot it
	// publishes in answer to a wake-up (an event, a netlink update, a
	// timer), with the time from the wake-up to the publish. It runs on
	// the loop, so it must be quick (a histogram observation).
	OnPublish func(latency time.Duration)
}

// Watcher keeps a [cache.Store] in step with the status directory and the
// host's addresses.
type Watcher struct {
	opts   Options
	log    zerolog.Logger
	store  *cache.Store
	now    func() time.Time
	rescan chan struct{}
	// waiters of Rescan, closed once the rescan they asked for is published
	rescanMu      sync.Mutex
	rescanWaiters []chan struct{}
	ready         chan struct{}
	once          sync.Once

	// Probe results waiting for the loop (SetProbeResults).
	probeMu      sync.Mutex
	probePending map[string]probeUpdate
	probeWake    chan struct{}

	heartbeat atomic.Int64  // unix nanos of the loop's last turn
	stall     atomic.Int64  // test hook: nanoseconds the loop sleeps once
	unstall   chan struct{} // test hook: ends a stall early

	// Loop-owned state.
	fsw      *fsnotify.Watcher
	dirOK    bool
	parentOK bool
	addrs    *addrTable
	warned   map[string]string // name -> content error already logged
	stats    Stats
	statsMu  sync.Mutex
	lastExp  time.Time // expiries up to here have been logged
}

// Stats count what the watcher did, for metrics.
type Stats struct {
	Events          uint64 // fsnotify events handled
	AddrUpdates     uint64 // netlink updates handled
	Rescans         uint64 // full rescans of the directory
	Overflows       uint64 // inotify queue overflows
	Resubscribes    uint64 // netlink resubscriptions
	Publishes       uint64 // snapshots published
	Transitions     uint64 // flags added, removed or changed, and overrides expired
	ProbeUpdates    uint64 // publications carrying probe results
	LastRescanNanos int64  // duration of the last full rescan
}

// New checks opts and returns a Watcher; [Watcher.Run] starts it.
func New(opts Options) (*Watcher, error) {
	if opts.Store == nil {
		return nil, errors.New("watcher: Options.Store is nil")
	}
	if opts.Dir == "" {
		return nil, errors.New("watcher: Options.Dir is empty")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("watcher: dir %q: %w", opts.Dir, err)
	}
	opts.Dir = filepath.Clean(dir)
	if opts.Resync <= 0 {
		opts.Resync = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CreateDir {
		if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("watcher: create status directory: %w", err)
		}
	}
	if fi, err := os.Stat(opts.Dir); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("watcher: %s is not a directory", opts.Dir)
	}
	w := &Watcher{
		opts:      opts,
		log:       opts.Logger,
		store:     opts.Store,
		now:       opts.Now,
		rescan:    make(chan struct{}, 1),
		probeWake: make(chan struct{}, 1),
		unstall:   make(chan struct{}, 1),
		ready:     make(chan struct{}),
		warned:    map[string]string{},
	}
	w.heartbeat.Store(w.now().UnixNano())
	return w, nil
}

// Ready is closed once the first full snapshot is published.
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

// Rescan asks the loop for a full rescan of the directory and the addresses.
// It does not wait: the returned channel is closed once a rescan begun after
// this call has been published (it is never closed if the loop stops
// first).
func (w *Watcher) Rescan() <-chan struct{} {
	done := make(chan struct{})
	w.rescanMu.Lock()
	w.rescanWaiters = append(w.rescanWaiters, done)
	w.rescanMu.Unlock()
	select {
	case w.rescan <- struct{}{}:
	default: // one is pending; it takes this waiter too
	}
	return done
}

// Heartbeat is the time of the loop's last turn. The loop turns at least
// every second, so an old heartbeat means the loop is stuck.
func (w *Watcher) Heartbeat() time.Time { return time.Unix(0, w.heartbeat.Load()) }

// StallForTest makes the loop sleep once for d on its next turn, to test that
// a stuck loop stops the systemd watchdog.
func (w *Watcher) StallForTest(d time.Duration) { w.stall.Store(int64(d)) }

// EndStallForTest ends a stall begun by [Watcher.StallForTest] before its
// time is up (a test that bursts events during the stall releases the loop
// when the burst is written, however long writing it took).
func (w *Watcher) EndStallForTest() {
	select {
	case w.unstall <- struct{}{}:
	default:
	}
}

// Stats returns a copy of the counters.
func (w *Watcher) Stats() Stats {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	return w.stats
}

func (w *Watcher) count(f func(*Stats)) {
	w.statsMu.Lock()
	f(&w.stats)
	w.statsMu.Unlock()
}

// tick is how often the loop turns when nothing happens: it bounds how stale
// the heartbeat can be and is how a vanished directory with no parent is
// noticed coming back.
const tick = time.Second

// Run watches until ctx is done. It returns an error only when it cannot
// start (no inotify); afterwards runtime errors are logged and the last good
// snapshot stays.
func (w *Watcher) Run(ctx context.Context) error {
	fsw, err := fsnotify.NewBufferedWatcher(4096)
	if err != nil {
		return fmt.Errorf("watcher: inotify: %w", err)
	}
	w.fsw = fsw
	w.lastExp = w.now()
	defer fsw.Close()

	var addrC <-chan addrEvent
	if w.opts.Addrs {
		src := w.opts.AddrSource
		if src == nil {
			src = netlinkSource{}
		}
		w.addrs = newAddrTable()
		ac := make(chan addrEvent, 1024)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			runAddrSource(ctx, src, ac, w.log)
		}()
		defer wg.Wait()
		addrC = ac
	}

	w.watchDir()
	entries := w.fullRescan("start")
	if w.addrs != nil {
		// Publish the first snapshot only once the address list is in
		// (ListExisting), so a VIP check never fails just after start.
		w.waitFirstAddrs(ctx, addrC)
	}
	w.publish(nil, entries, true)
	w.once.Do(func() { close(w.ready) })

	resync := time.NewTicker(w.opts.Resync)
	defer resync.Stop()
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	expiry := time.NewTimer(time.Hour)
	defer expiry.Stop()
	w.armExpiry(expiry)

	for {
		w.heartbeat.Store(w.now().UnixNano())
		if d := w.stall.Swap(0); d > 0 {
			select {
			case <-time.After(time.Duration(d)):
			case <-w.unstall:
			}
		}
		touched := map[string]struct{}{}
		full, addrsChanged := false, false
		var rescanned []chan struct{}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fsw.Events:
			if !ok {
				return nil
			}
			full = w.handleEvent(ev, touched) || full
		case err, ok := <-fsw.Errors:
			if !ok {
				return nil
			}
			full = w.handleError(err) || full
		case ae, ok := <-addrC:
			if !ok {
				addrC = nil
				continue
			}
			addrsChanged = w.handleAddr(ae) || addrsChanged
		case <-w.rescan:
			w.log.Info().Msg("rescan requested")
			full, addrsChanged = true, w.addrs != nil
			w.rescanMu.Lock()
			rescanned, w.rescanWaiters = w.rescanWaiters, nil
			w.rescanMu.Unlock()
		case <-resync.C:
			full = true
		case <-ticker.C:
			if !w.dirOK {
				// No parent to watch either: poll for the directory.
				if w.watchDir() {
					full = true
				}
			}
		case <-w.probeWake:
			// Probe results are pending; publish applies them.
		case <-expiry.C:
			// An override expired: republish so the change is logged
			// and the snapshot's generation moves. Responders already
			// answer Up at the expiry instant (Entry.Effective).
		}
		woke := time.Now() // for OnPublish: wake-up to publish
		// Drain whatever else is queued without blocking.
	drain:
		for i := 0; i < 100000; i++ {
			select {
			case ev, ok := <-fsw.Events:
				if !ok {
					break drain
				}
				full = w.handleEvent(ev, touched) || full
			case err, ok := <-fsw.Errors:
				if !ok {
					break drain
				}
				full = w.handleError(err) || full
			case ae, ok := <-addrC:
				if !ok {
					addrC = nil
					break drain
				}
				addrsChanged = w.handleAddr(ae) || addrsChanged
			default:
				break drain
			}
		}
		var entries map[string]cache.Entry
		if full {
			entries = w.fullRescan("")
		}
		if w.publish(touched, entries, addrsChanged) && w.opts.OnPublish != nil {
			w.opts.OnPublish(time.Since(woke))
		}
		for _, done := range rescanned {
			close(done)
		}
		w.armExpiry(expiry)
	}
}

func (w *Watcher) armExpiry(t *time.Timer) {
	now := w.now()
	next := w.store.Load().NextExpiry(now)
	d := time.Hour
	if !next.IsZero() {
		d = next.Sub(now)
	}
	t.Reset(d)
}

// handleEvent records which name an event touched; it returns true when a
// full rescan is needed (the directory itself went away or came back).
func (w *Watcher) handleEvent(ev fsnotify.Event, touched map[string]struct{}) bool {
	w.count(func(s *Stats) { s.Events++ })
	name := filepath.Clean(ev.Name)
	if name == w.opts.Dir {
		// Events on the directory itself come from its own watch (deleted,
		// moved away) or, while it is missing, from the parent's watch
		// (created, moved into place).
		switch {
		case ev.Has(fsnotify.Create) && !w.dirOK:
			if w.watchDir() {
				w.log.Info().Str("dir", w.opts.Dir).Msg("status directory is back")
				return true
			}
		case (ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename)) && w.dirOK:
			w.log.Warn().Str("dir", w.opts.Dir).Msg("status directory removed; all services out of rotation until it comes back")
			_ = w.fsw.Remove(w.opts.Dir) // a moved directory keeps its watch otherwise
			w.dirOK = false
			w.watchDir()
			return true
		}
		return false
	}
	if filepath.Dir(name) != w.opts.Dir {
		return false // another name in the parent directory
	}
	if ev.Op == fsnotify.Chmod {
		// Permissions don't change a flag's meaning; ignore.
		return false
	}
	touched[filepath.Base(name)] = struct{}{}
	return false
}

func (w *Watcher) handleError(err error) bool {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		w.count(func(s *Stats) { s.Overflows++ })
		w.log.Warn().Msg("inotify queue overflow; full rescan")
		return true
	}
	w.log.Error().Err(err).Msg("inotify error; full rescan")
	return true
}

// watchDir (re)establishes the inotify watch on the directory, or on its
// parent while the directory is missing. It reports whether the directory
// is watched.
func (w *Watcher) watchDir() bool {
	fi, err := os.Stat(w.opts.Dir)
	if err == nil && fi.IsDir() {
		if err := w.fsw.Add(w.opts.Dir); err != nil {
			w.log.Error().Err(err).Str("dir", w.opts.Dir).Msg("cannot watch status directory")
			w.dirOK = false
			return false
		}
		if w.parentOK {
			_ = w.fsw.Remove(filepath.Dir(w.opts.Dir))
			w.parentOK = false
		}
		w.dirOK = true
		return true
	}
	w.dirOK = false
	if !w.parentOK {
		if err := w.fsw.Add(filepath.Dir(w.opts.Dir)); err == nil {
			w.parentOK = true
			// It may have appeared between the Stat and the Add.
			if fi, err := os.Stat(w.opts.Dir); err == nil && fi.IsDir() {
				return w.watchDir()
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			w.log.Debug().Err(err).Msg("cannot watch parent of status directory")
		}
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		w.log.Error().Err(err).Str("dir", w.opts.Dir).Msg("status directory")
	}
	return false
}

// fullRescan reads every flag file; publish applies the result.
func (w *Watcher) fullRescan(why string) map[string]cache.Entry {
	start := time.Now()
	w.count(func(s *Stats) { s.Rescans++ })
	entries := map[string]cache.Entry{}
	if w.dirOK {
		des, err := os.ReadDir(w.opts.Dir)
		if err != nil {
			w.log.Error().Err(err).Str("dir", w.opts.Dir).Msg("read status directory")
			if errors.Is(err, fs.ErrNotExist) {
				w.dirOK = false
				w.watchDir()
			}
		}
		for _, de := range des {
			name := de.Name()
			if !cache.ValidName(name) {
				continue
			}
			if e, ok := w.readFlag(name); ok {
				entries[name] = e
			}
		}
	}
	w.count(func(s *Stats) { s.LastRescanNanos = int64(time.Since(start)) })
	if why != "" {
		w.log.Debug().Str("why", why).Int("flags", len(entries)).Dur("took", time.Since(start)).Msg("full rescan")
	}
	return entries
}

// readFlag reads one flag file. ok is false when there is no regular file of
// that name. Symlinks are not followed and do not count (O_NOFOLLOW); FIFOs
// and devices do not count either (O_NONBLOCK, then fstat).
func (w *Watcher) readFlag(name string) (cache.Entry, bool) {
	p := filepath.Join(w.opts.Dir, name)
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			w.warnOnce(name, "symlink", "flag is a symlink; symlinks are ignored, use a regular file")
		} else if !errors.Is(err, fs.ErrNotExist) {
			w.warnOnce(name, err.Error(), "cannot read flag file; counted as absent")
		}
		return cache.Entry{}, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		w.warnOnce(name, "notregular", "flag is not a regular file; ignored")
		return cache.Entry{}, false
	}
	buf := make([]byte, cache.MaxFlagSize)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		w.warnOnce(name, err.Error(), "cannot read flag file; counted as up")
	}
	e, perr := cache.ParseFlag(buf[:n])
	if perr != nil {
		w.warnOnce(name, perr.Error(), "flag file content not understood; counted as up")
	} else {
		delete(w.warned, name)
	}
	return e, true
}

func (w *Watcher) warnOnce(name, key, msg string) {
	if w.warned[name] == key {
		return
	}
	w.warned[name] = key
	w.log.Warn().Str("flag", name).Str("detail", key).Msg(msg)
}
