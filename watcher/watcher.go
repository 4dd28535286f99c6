//go:build linux

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
	"github.com/http-status/http_status/internal/bounded"
	"github.com/http-status/http_status/internal/flagfile"
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
	conns        connQueue // connection counts waiting (SetConnCounts)

	// The loop's last turn, as monotonic nanoseconds since epoch: a step
	// of the wall clock (date -s, NTP) must neither fake a stall nor hide
	// one, so the heartbeat never reads Options.Now or the wall clock.
	epoch     time.Time
	heartbeat atomic.Int64

	// Loop-owned state.
	fsw         *fsnotify.Watcher
	dir         dirWatch
	readProblem string // why the watched directory could not be listed
	addrs       *addrTable
	addrSrc     AddrSource
	warned      map[string]string        // name -> content error already logged
	linked      map[string]uint64        // flags with more than one hard link -> links
	retry       map[string]struct{}      // flags whose last read failed for want of a descriptor or memory
	mounts      *mounts                  // flags with a mount over them
	hung        map[string]*bounded.Call // flags under a mount whose read has not ended
	scanned     bool                     // the first full scan is published
	wr          *writers                 // which flags may still be open for writing
	held        map[string]holdState     // empty flags that may be a writer's passing state
	stats       Stats
	statsMu     sync.Mutex
	lastExp     time.Time // expiries up to here have been logged
	lines       flagLines // budget of per-flag change lines (loglimit.go)
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

// newDirWait bounds New's look at the status directory (its creation with
// CreateDir). A variable for the tests.
var newDirWait = time.Second

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
	// A directory (or parent) on a filesystem that does not answer must
	// not hold the start: past newDirWait the checks are left to the
	// loop, which reports the directory as it finds it once it answers.
	var prepErr error
	var prep bounded.Call
	if !prep.Do(newDirWait, func() {
		if opts.CreateDir {
			if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
				prepErr = fmt.Errorf("watcher: create status directory: %w", err)
				return
			}
		}
		if fi, err := os.Stat(opts.Dir); err == nil && !fi.IsDir() {
			prepErr = fmt.Errorf("watcher: %s is not a directory", opts.Dir)
		}
	}) {
		opts.Logger.Error().Str("dir", opts.Dir).Dur("waited", newDirWait).
			Msg("status directory: no answer from its filesystem (or its parent's); going on without it, every service out of rotation until it answers")
	} else if prepErr != nil {
		return nil, prepErr
	}
	w := &Watcher{
		opts:      opts,
		log:       opts.Logger,
		store:     opts.Store,
		now:       opts.Now,
		rescan:    make(chan struct{}, 1),
		probeWake: make(chan struct{}, 1),
		ready:     make(chan struct{}),
		warned:    map[string]string{},
		linked:    map[string]uint64{},
		retry:     map[string]struct{}{},
		hung:      map[string]*bounded.Call{},
		held:      map[string]holdState{},
		wr:        &writers{fd: -1, wd: -1},
		dir:       dirWatch{path: opts.Dir, parent: filepath.Dir(opts.Dir), problem: problemNotYet},
	}
	w.lines.now = time.Now
	w.epoch = time.Now()
	w.beat()
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

// HeartbeatAge is how long ago the loop last turned, on the monotonic clock.
// The loop turns at least every [tick] when idle, so an age of seconds means
// it is stuck.
func (w *Watcher) HeartbeatAge() time.Duration { return w.HeartbeatAgeAt(time.Now()) }

func (w *Watcher) beat() { w.heartbeat.Store(int64(time.Since(w.epoch))) }

// HeartbeatAgeAt is HeartbeatAge at now, a reading of time.Now (its
// monotonic clock is used): a request that already read the clock asks
// without reading it again.
func (w *Watcher) HeartbeatAgeAt(now time.Time) time.Duration {
	return now.Sub(w.epoch) - time.Duration(w.heartbeat.Load())
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

// tick is how often the loop turns when nothing happens. It bounds how stale
// the heartbeat can be, and how long a mount over the status directory (which
// makes no inotify event) goes unnoticed: one stat of the directory and one
// of its parent per tick.
const tick = 250 * time.Millisecond

// inotifyInitAdvice says which limit an inotify_init1 that failed with
// EMFILE hit: the process's descriptors or the user's inotify instances
// (both give EMFILE). It tells them apart by asking for one more
// descriptor. "" for any other error.
func inotifyInitAdvice(err error) string {
	if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) {
		return ""
	}
	fd, oerr := syscall.Open(os.DevNull, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if errors.Is(oerr, syscall.EMFILE) || errors.Is(oerr, syscall.ENFILE) {
		return "out of file descriptors (raise ulimit -n, or LimitNOFILE= under systemd): "
	}
	if oerr == nil {
		syscall.Close(fd)
	}
	return "out of inotify instances (raise sysctl fs.inotify.max_user_instances): "
}

// Run watches until ctx is done. It returns an error only when it cannot
// start (no inotify); afterwards runtime errors are logged and the last good
// snapshot stays.
func (w *Watcher) Run(ctx context.Context) error {
	fsw, err := fsnotify.NewBufferedWatcher(4096)
	if err != nil {
		return fmt.Errorf("watcher: inotify: %s%w", inotifyInitAdvice(err), err)
	}
	w.fsw = fsw
	w.lastExp = w.now()
	defer fsw.Close()
	defer w.lines.flush(w.log, true) // what a burst held back is counted, even at exit
	if wr, err := newWriters(); err != nil {
		w.log.Warn().Err(err).Msg("inotify: cannot tell when a flag file is closed after writing: an empty flag counts as up at once, even while its writer is still writing")
	} else {
		w.wr = wr
		defer wr.close()
	}

	var addrC <-chan addrEvent
	if w.opts.Addrs {
		src := w.opts.AddrSource
		if src == nil {
			src = netlinkSource{}
		}
		w.addrs = newAddrTable()
		w.addrSrc = src
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

	w.checkDir()
	m, err := newMounts()
	if err != nil {
		w.log.Warn().Err(err).Msg("cannot watch the mount table: a file mounted over a flag, and writes through its source, are seen only at the periodic resync")
	}
	defer m.close()
	w.mounts = m
	w.checkMounts(map[string]struct{}{})
	entries := w.fullRescan("start")
	if w.addrs != nil {
		// Publish the first snapshot only once the address list is in
		// (ListExisting), so a VIP check never fails just after start.
		w.waitFirstAddrs(ctx, addrC)
	}
	// The first scan may have taken long (10,000 flags, a slow disk):
	// the loop turns now, so a check answered before its first turn must
	// not read the time since New as a stall (--stale-after).
	w.beat()
	w.publish(nil, entries, true)
	w.scanned = true
	w.once.Do(func() { close(w.ready) })

	resync := time.NewTicker(w.opts.Resync)
	defer resync.Stop()
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	expiry := time.NewTimer(time.Hour)
	defer expiry.Stop()
	w.armExpiry(expiry)
	hold := time.NewTimer(time.Hour)
	hold.Stop()
	defer hold.Stop()
	var holdC <-chan time.Time // nil while no flag is held
	if len(w.held) > 0 {       // held by the first scan
		hold.Reset(holdPoll)
		holdC = hold.C
	}
	w.wr.turned(len(w.held) > 0)

	for {
		w.beat()
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
			full = true
			addrsChanged = w.relist(ctx) || addrsChanged
			w.rescanMu.Lock()
			rescanned, w.rescanWaiters = w.rescanWaiters, nil
			w.rescanMu.Unlock()
		case <-resync.C:
			full = true
			addrsChanged = w.relist(ctx) || addrsChanged
		case <-ticker.C:
			// Mounts and unmounts make no inotify event: compare what
			// the path leads to with what is watched.
			if w.checkDir() || w.readProblem != "" || w.pollDue() {
				full = true
				w.mounts.dirty = true // the path may lead elsewhere now
			}
			w.checkMounts(touched)
			w.lines.flush(w.log, false) // changes held back by a burst that ended
			// A write through another hard link of a flag makes no
			// event here: re-read such flags every tick.
			for name := range w.linked {
				touched[name] = struct{}{}
			}
			// A flag read while the process was out of file
			// descriptors (or memory) counted as absent; no event
			// will come once they are free again, so look again.
			for name := range w.retry {
				touched[name] = struct{}{}
			}
			// A hung read of a mounted flag may end after the
			// unmount, which made the last event for the name.
			for name := range w.hung {
				touched[name] = struct{}{}
			}
		case <-w.probeWake:
			// Probe results are pending; publish applies them.
		case <-holdC:
			// Look again at empty flags whose writer had not closed
			// them yet (or that must stay empty for settle).
			for name := range w.held {
				touched[name] = struct{}{}
			}
		case <-w.wr.ready:
			// Events for the writers' instance while a flag is held:
			// most likely the close that ends the hold.
			for name := range w.held {
				touched[name] = struct{}{}
			}
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
		// Keep the second instance's queue short (it only grows
		// between turns), so that it does not overflow.
		losses := w.wr.losses
		w.wr.drain("")
		if w.wr.losses != losses {
			w.log.Warn().Msg("inotify queue overflow (writers): every emptied flag waits " + settle.String() + " before it counts as up")
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
		holdC = nil
		if len(w.held) > 0 {
			hold.Reset(holdPoll)
			holdC = hold.C
		}
		w.wr.turned(len(w.held) > 0)
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
// full rescan is needed (the directory itself went away, came back, was
// re-pointed or changed mode).
func (w *Watcher) handleEvent(ev fsnotify.Event, touched map[string]struct{}) bool {
	w.count(func(s *Stats) { s.Events++ })
	name := filepath.Clean(ev.Name)
	if w.isDirName(name) {
		// The directory's own watch (deleted, moved, chmod), or the
		// parent's (the name created, removed, renamed over: a symlink
		// swap). Whatever it was, look at what the path leads to now.
		switched := w.checkDir()
		// A mode change of the directory can make every flag readable
		// or unreadable to an unprivileged daemon.
		return switched || (name == w.dir.path && ev.Has(fsnotify.Chmod))
	}
	if filepath.Dir(name) != w.dir.path {
		return false // another name in the parent directory
	}
	// Every operation counts, Chmod too: a mode change can make a flag
	// readable or unreadable to the daemon.
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

// fullRescan reads every flag file; publish applies the result.
func (w *Watcher) fullRescan(why string) map[string]cache.Entry {
	start := time.Now()
	w.count(func(s *Stats) { s.Rescans++ })
	entries := map[string]cache.Entry{}
	readProblem := ""
	if w.dir.watched {
		des, err := os.ReadDir(w.opts.Dir)
		if err != nil {
			// Fail closed: a directory that cannot be listed counts as
			// empty, and the snapshot says why.
			des = nil
			if errors.Is(err, fs.ErrNotExist) {
				w.checkDir()
			} else {
				readProblem = "cannot be listed: " + listProblem(err)
			}
		}
		old := w.store.Load()
		for _, de := range des {
			name := de.Name()
			if !cache.ValidName(name) {
				continue
			}
			e, ok, held := w.readFlag(name)
			if held {
				e, ok = old.Lookup(name)
			}
			if ok {
				entries[name] = e
			}
		}
	}
	if readProblem != w.readProblem {
		if readProblem != "" {
			w.log.Error().Str("dir", w.opts.Dir).Str("problem", readProblem).Msg("status directory " + readProblem + ": every service is out of rotation")
		} else {
			w.log.Info().Str("dir", w.opts.Dir).Msg("status directory can be listed again")
		}
		w.readProblem = readProblem
	}
	w.count(func(s *Stats) { s.LastRescanNanos = int64(time.Since(start)) })
	if why != "" {
		w.log.Debug().Str("why", why).Int("flags", len(entries)).Dur("took", time.Since(start)).Msg("full rescan")
	}
	return entries
}

// readFlag reads one flag file (see [flagfile.Read]). ok is false when the
// file does not count as a flag. Each problem is logged once per name.
//
// held is true when the file reads as up in a way that may be a writer's
// passing state (see [Watcher.passing], [writers] and [settle]): the caller then
// keeps the previous state, and the loop looks again every holdPoll, for at
// most maxHold.
func (w *Watcher) readFlag(name string) (e cache.Entry, ok, held bool) {
	path := filepath.Join(w.opts.Dir, name)
	var info flagfile.Info
	var problem error
	active, busy := false, false
	for try := 0; ; try++ {
		e, ok, info, problem = w.readInfo(name, path)
		if !w.passing(e, ok, info) {
			break
		}
		// Maybe half-written. An event for the name still queued may be
		// from after the read: read again.
		if !w.wr.drain(name) {
			break
		}
		active = true
		if try == 2 {
			busy = true // written to without pause: hold
			break
		}
	}
	if problem != nil {
		w.warnOnce(name, problem.Error())
	} else {
		delete(w.warned, name)
	}
	if problem != nil && outOfResources(problem) {
		w.retry[name] = struct{}{}
	} else {
		delete(w.retry, name)
	}
	w.noteLinks(name, info.Links)
	if !w.passing(e, ok, info) || w.wr.fd < 0 {
		delete(w.held, name)
		return e, ok, false
	}
	now := time.Now()
	h, was := w.held[name]
	if !was {
		h = holdState{since: now, quiet: now}
	}
	if active {
		h.quiet = now
	}
	prev, had := w.store.Load().Lookup(name)
	settling := had && prev.State != cache.Up && now.Sub(h.quiet) < settle
	// Before the first scan is published the writers' instance has seen
	// nothing: an existing file emptied within settle of now (the daemon
	// restarted while `echo drain > FILE` was between its truncation and
	// its write) is held as a new file is, absent, until settle has passed
	// since the change or an event ends the hold. A file created empty
	// (touch) is up at once, as ever: its change is its birth.
	if (!w.scanned || h.startup) && now.Sub(info.Changed) < settle && emptiedAfterBirth(info) {
		h.startup = true
	} else {
		h.startup = false
	}
	if !settling && !busy && !h.startup && !w.wr.mayBeWriting(name) {
		delete(w.held, name)
		return e, ok, false
	}
	if now.Sub(h.since) >= maxHold {
		delete(w.held, name)
		w.log.Warn().Str("flag", name).Msg("flag file " + name + " is empty or holds no state word and may still be being written after " + maxHold.String() + ": counted as up")
		return e, ok, false
	}
	w.held[name] = h
	return e, ok, true
}

// mountReadBound is how long the loop waits for the read of a flag that
// something is mounted over. Such a flag lives on another filesystem than
// the status directory (NFS or FUSE bind-mounted over it), which may stop
// answering; the loop decides every other service too, so it must not
// block on one.
const mountReadBound = time.Second

// errMountHung is the problem of a flag whose mounted filesystem did not
// answer within mountReadBound.
var errMountHung = errors.New("cannot be read: the filesystem mounted over it did not answer within " + mountReadBound.String() + ": counted as absent (out of rotation) until it does")

// readInfo is [flagfile.ReadInfo], bounded for a flag with a mount over
// it: a read that does not end within mountReadBound goes on in the
// background, the flag counts as absent, and no new read starts until that
// one has ended (each tick looks, as it re-reads mounted flags anyway).
func (w *Watcher) readInfo(name, path string) (cache.Entry, bool, flagfile.Info, error) {
	if w.mounts == nil {
		return flagfile.ReadInfo(path)
	}
	if _, mounted := w.mounts.names[name]; !mounted {
		if _, was := w.hung[name]; !was {
			return flagfile.ReadInfo(path)
		}
	}
	absent := cache.Entry{State: cache.Missing, Weight: cache.NoWeight}
	if c, ok := w.hung[name]; ok {
		if c.Busy() {
			return absent, false, flagfile.Info{}, errMountHung
		}
		delete(w.hung, name)
		w.log.Info().Str("flag", name).Msg("flag file " + name + ": the filesystem mounted over it answers again")
	}
	var (
		c       bounded.Call
		e       cache.Entry
		ok      bool
		info    flagfile.Info
		problem error
	)
	if !c.Do(mountReadBound, func() { e, ok, info, problem = flagfile.ReadInfo(path) }) {
		w.hung[name] = &c
		return absent, false, flagfile.Info{}, errMountHung
	}
	return e, ok, info, problem
}

// outOfResources reports whether a flag could not be read for want of
// something the process gets back on its own (a file descriptor, kernel
// memory) rather than because of the file itself: such a read is retried
// every tick until it succeeds.
func outOfResources(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM, syscall.ENOBUFS, syscall.EINTR, syscall.EAGAIN} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// passing reports whether a flag read as up may be a writer's passing
// state rather than what it means to say. An empty file is the moment
// between a truncation and the write (`echo drain > FILE`). A writer that
// writes its line in several calls (dd bs=1, or over the old content with
// conv=notrunc) leaves a word cut short or mixed with the old one ("dr",
// "mown"), which holds no state word and so reads as up; one cut inside an
// expiry ("drain until=17" of until=1770000000) reads as an override that
// has passed. A line that says up in words is taken at once: no writer
// passes through an up word on its way to an out-of-rotation one.
func (w *Watcher) passing(e cache.Entry, ok bool, info flagfile.Info) bool {
	if !ok || e.Effective(w.now()).State != cache.Up {
		return false
	}
	return !info.Stated || e.State != cache.Up // the second: expired
}

// holdState is when an empty flag was first held, and when an event for it
// was last seen.
type holdState struct {
	since, quiet time.Time
	// startup: held because the file was emptied shortly before the
	// watcher began, when no event could say whether its writer is done.
	startup bool
}

// noteLinks keeps the set of flags with more than one hard link. inotify
// reports a write to the directory the file was opened through, so a write
// through a name elsewhere (`ln /etc/x squid.80`, then `echo drain >
// /etc/x`) makes no event here; such flags are re-read every tick instead.
func (w *Watcher) noteLinks(name string, links uint64) {
	was, had := w.linked[name]
	switch {
	case links > 1 && (!had || was != links):
		w.linked[name] = links
		w.log.Warn().Str("flag", name).Uint64("links", links).Msg("flag file " + name + " has more than one hard link: a write through another link makes no inotify event here, so it is re-read every 250 ms")
	case links <= 1 && had:
		delete(w.linked, name)
		w.log.Info().Str("flag", name).Msg("flag file " + name + " has one link again")
	}
}

func (w *Watcher) warnOnce(name, problem string) {
	if w.warned[name] == problem {
		return
	}
	w.warned[name] = problem
	w.log.Warn().Str("flag", name).Str("problem", problem).Msg("flag file " + name + ": " + problem)
}

// checkMounts follows the mounts over flags (see [mounts]): names that
// became or stopped being mount points, and every name that is one, go in
// touched to be read again.
func (w *Watcher) checkMounts(touched map[string]struct{}) {
	m := w.mounts
	if m.changed() {
		changed, ok := m.update(w.dir.path)
		if !ok {
			m.dirty = true
		}
		for _, name := range changed {
			touched[name] = struct{}{}
			if _, is := m.names[name]; is {
				w.log.Warn().Str("flag", name).Msg("flag file " + name + " has a mount over it: writes through the mount's source make no inotify event here, so it is re-read every 250 ms")
			} else {
				w.log.Info().Str("flag", name).Msg("flag file " + name + " has no mount over it any more")
			}
		}
	}
	for name := range m.names {
		touched[name] = struct{}{}
	}
}

// emptiedAfterBirth reports whether an empty file was changed well after it
// was created (a truncation of a file that existed), not at its creation
// (touch creates, then sets its times: microseconds apart). Unknown birth
// (a filesystem without it): false.
func emptiedAfterBirth(info flagfile.Info) bool {
	return !info.Born.IsZero() && info.Changed.Sub(info.Born) > 50*time.Millisecond
}
