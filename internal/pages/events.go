//go:build linux

package pages

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/httpd"
)

// Limits of the /events stream.
const (
	// MaxEventSubscribers bounds the open /events streams; more get 503.
	MaxEventSubscribers = 64
	// EventBuffer is how many events may wait for a subscriber; one that
	// falls further behind is dropped (its stream ends; EventSource
	// reconnects and catches up from /status.json).
	EventBuffer = 256
	// MaxChangesPerEvent: a publication that changes more services than
	// this (a rescan, the counts appearing for every service) is sent as
	// one "sync" event (fetch /status.json) instead of a change each.
	MaxChangesPerEvent = 100
	// eventQueue bounds the snapshots waiting to be compared; beyond it
	// the newest replaces the last (changes merge, none is lost).
	eventQueue = 1024
	// eventPing is how often an idle stream gets a comment line, so that
	// a dead client is noticed and proxies keep the stream open.
	eventPing = 15 * time.Second
	// EventStall is how long what was sent on a stream may sit in the
	// daemon's socket with none of it taken by the client (its receive
	// buffer full) before the stream ends and gives its slot back.
	EventStall = 5 * time.Second
	// eventStallCheck is how often a stream with bytes waiting in its
	// socket looks whether the client took any.
	eventStallCheck = time.Second
)

// EventsOptions configure [Events].
type EventsOptions struct {
	Store *cache.Store
	// Hold keeps the connection sampler on while a subscriber listens
	// ([conns.Sampler.Hold]); nil: nothing to hold.
	Hold func() (release func())
	// Stall overrides [EventStall] (tests); 0: EventStall.
	Stall time.Duration
	// Stale and Stopping are [Options.Stale] and [Options.Stopping]: their
	// changes are sent as "daemon" events (neither publishes a snapshot),
	// and each stream's first event carries them; nil: never.
	Stale    func() (age time.Duration, stale bool)
	Stopping func() string
	// Poll overrides daemonPoll (tests); 0: daemonPoll.
	Poll time.Duration
}

// daemonPoll is how often [Events.Run] looks at Stale and Stopping: an open
// board shows the banner within that time (and the stream's write).
const daemonPoll = time.Second

// Events serves /events: one Server-Sent Event per service that a
// published snapshot changes (effective state, weight, reason, probes,
// connection count), in publication order.
//
// # Never blocking the watcher
//
// The store calls [Events] on each publication from the watcher loop; that
// call only appends the snapshot to a bounded queue. [Events.Run] compares
// consecutive snapshots on its own goroutine and offers each event to every
// subscriber without waiting: a subscriber whose buffer is full is dropped.
type Events struct {
	opts EventsOptions

	qmu   sync.Mutex
	queue []*cache.Snapshot
	wake  chan struct{}
	prev  *cache.Snapshot // Run-owned: the last snapshot compared

	mu      sync.Mutex
	subs    map[*subscriber]struct{}
	closed  bool
	dropped atomic.Uint64
	sent    atomic.Uint64
}

type subscriber struct {
	ch   chan []byte   // encoded events
	gone chan struct{} // closed when dropped or when Events stops
	from uint64        // events of generations up to this one are in its sync
}

// NewEvents returns the /events stream over opts.Store, and hooks it to the
// store's publications; [Events.Run] must run for events to flow.
func NewEvents(opts EventsOptions) *Events {
	e := &Events{opts: opts, wake: make(chan struct{}, 1), subs: map[*subscriber]struct{}{}}
	// Every snapshot published from here on is queued and compared with
	// this one, however late Run starts.
	e.prev = opts.Store.Load()
	opts.Store.SetOnPublish(e.published)
	return e
}

// SetDaemonState sets [EventsOptions.Stale] and Stopping; it must be
// called before [Events.Run].
func (e *Events) SetDaemonState(stale func() (time.Duration, bool), stopping func() string) {
	e.opts.Stale, e.opts.Stopping = stale, stopping
}

// published is the store's hook: it runs on the watcher loop and never
// blocks.
func (e *Events) published(s *cache.Snapshot) {
	e.qmu.Lock()
	if len(e.queue) >= eventQueue {
		e.queue[len(e.queue)-1] = s
	} else {
		e.queue = append(e.queue, s)
	}
	e.qmu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Dropped is the number of subscribers dropped for falling behind.
func (e *Events) Dropped() uint64 { return e.dropped.Load() }

// Sent is the number of change events sent to subscribers.
func (e *Events) Sent() uint64 { return e.sent.Load() }

// Subscribers is the number of open streams.
func (e *Events) Subscribers() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.subs)
}

// Run compares each published snapshot with the one before and sends the
// changes, until ctx is done; then every stream ends.
func (e *Events) Run(ctx context.Context) {
	prev := e.prev
	defer func() { e.prev = prev }()
	defer e.stop()
	every := daemonPoll
	if e.opts.Poll > 0 {
		every = e.opts.Poll
	}
	poll := time.NewTicker(every)
	defer poll.Stop()
	last := e.daemonState()
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
			if d := e.daemonState(); d.Stale != last.Stale || d.Stopping != last.Stopping {
				last = d
				b, _ := json.Marshal(d)
				e.dispatchAll(frame("daemon", e.opts.Store.Load().Generation(), b))
			}
			continue
		case <-e.wake:
		}
		e.qmu.Lock()
		q := e.queue
		e.queue = nil
		e.qmu.Unlock()
		for _, next := range q {
			if next.Generation() <= prev.Generation() {
				continue
			}
			if e.Subscribers() > 0 {
				e.dispatch(next.Generation(), encodeChanges(prev, next))
			}
			prev = next
		}
	}
}

func (e *Events) stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	for s := range e.subs {
		delete(e.subs, s)
		close(s.gone)
	}
}

// dispatch offers the events of one publication to every subscriber.
func (e *Events) dispatch(gen uint64, frames [][]byte) {
	if len(frames) == 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for s := range e.subs {
		if gen <= s.from {
			continue // its sync already covers this generation
		}
		for _, f := range frames {
			if !e.offer(s, f) {
				break
			}
		}
	}
}

// offer queues f for s, or drops s, which has fallen that far behind
// (its client reconnects and starts again with a sync); e.mu is held.
func (e *Events) offer(s *subscriber, f []byte) bool {
	select {
	case s.ch <- f:
		e.sent.Add(1)
		return true
	default:
		delete(e.subs, s)
		close(s.gone)
		e.dropped.Add(1)
		return false
	}
}

// daemonState is what the "daemon" event and the sync event say.
func (e *Events) daemonState() DaemonJSON {
	var d DaemonJSON
	if e.opts.Stale != nil {
		if age, stale := e.opts.Stale(); stale {
			d.Stale, d.StaleReason = true, staleReason(age)
		}
	}
	if e.opts.Stopping != nil {
		d.Stopping = e.opts.Stopping()
	}
	return d
}

// dispatchAll offers one event to every subscriber, whatever its
// generation.
func (e *Events) dispatchAll(f []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for s := range e.subs {
		e.offer(s, f)
	}
}

func (e *Events) subscribe() (*subscriber, uint64, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || len(e.subs) >= MaxEventSubscribers {
		return nil, 0, false
	}
	gen := e.opts.Store.Load().Generation()
	s := &subscriber{ch: make(chan []byte, EventBuffer), gone: make(chan struct{}), from: gen}
	e.subs[s] = struct{}{}
	return s, gen, true
}

func (e *Events) unsubscribe(s *subscriber) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.subs[s]; ok {
		delete(e.subs, s)
		close(s.gone)
	}
}

// Mount mounts /events on m.
func (e *Events) Mount(m httpd.Mux) { m.Handle(httpd.PathEvents, e) }

// ServeHTTP streams events. The stream starts with a "sync" event naming
// the current generation (a client whose view is older fetches
// /status.json), then one "change" event per changed service.
func (e *Events) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !readOnlyMethod(w, r) {
		return
	}
	hdr := w.Header()
	hdr.Set("Cache-Control", "private, no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	sub, gen, ok := e.subscribe()
	if !ok {
		hdr.Set("Retry-After", "5")
		http.Error(w, "Service Unavailable - too many /events subscribers", http.StatusServiceUnavailable)
		return
	}
	defer e.unsubscribe(sub)
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("X-Accel-Buffering", "no") // nginx in front: do not buffer the stream
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	if e.opts.Hold != nil {
		release := e.opts.Hold()
		defer release()
	}
	rc := http.NewResponseController(w)
	// The request is read: the server's read deadline would otherwise end
	// a stream that lasts longer than ReadTimeout. Each write gets its own
	// deadline, so a client that stops reading is dropped after
	// httpd.WriteTimeout.
	_ = rc.SetReadDeadline(time.Time{})
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(httpd.WriteTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	w.WriteHeader(http.StatusOK)
	if !write(append([]byte("retry: 2000\n\n"), syncFrameWith(gen, e.daemonState())...)) {
		return
	}
	ping := time.NewTicker(eventPing)
	defer ping.Stop()
	stall := newStallWatch(r, e.opts.Stall)
	check := time.NewTicker(e.stallCheck())
	defer check.Stop()
	for {
		select {
		case f := <-sub.ch:
			buf := append([]byte(nil), f...)
			for more := true; more && len(buf) < 64<<10; {
				select {
				case f := <-sub.ch:
					buf = append(buf, f...)
				default:
					more = false
				}
			}
			if !write(buf) || stall.stuck(time.Now()) {
				return
			}
		case <-ping.C:
			if !write([]byte(": ping\n\n")) || stall.stuck(time.Now()) {
				return
			}
		case now := <-check.C:
			if stall.stuck(now) {
				return
			}
		case <-sub.gone:
			return
		case <-r.Context().Done():
			return
		}
	}
}

func (e *Events) stallCheck() time.Duration {
	if e.opts.Stall > 0 && e.opts.Stall < 4*eventStallCheck {
		return e.opts.Stall / 4
	}
	return eventStallCheck
}

// stallWatch tells a stream whose client takes nothing: the write deadline
// alone notices it only once the kernel's buffers on both ends are full,
// which at a low change rate takes hours (megabytes on loopback) while the
// stream holds one of the MaxEventSubscribers slots. Here the daemon's own
// send queue is watched: bytes waiting in it (SIOCOUTQ) while the count
// the client's kernel acknowledged (TCP_INFO bytes_acked) does not move for
// the stall time mean the client's receive buffer is full and it does not
// read.
type stallWatch struct {
	sock  syscall.RawConn // nil: not a socket, the write deadline alone
	limit time.Duration
	acked uint64
	since time.Time // zero: nothing waiting at the last look
}

func newStallWatch(r *http.Request, limit time.Duration) *stallWatch {
	if limit <= 0 {
		limit = EventStall
	}
	w := &stallWatch{limit: limit}
	if rc, ok := httpd.SocketOf(r); ok {
		w.sock = rc
	}
	return w
}

// stuck reports whether bytes have waited in the socket with no progress
// for longer than the limit.
func (w *stallWatch) stuck(now time.Time) bool {
	if w.sock == nil {
		return false
	}
	var queued int
	var acked uint64
	var err error
	cerr := w.sock.Control(func(fd uintptr) {
		queued, err = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
		if err != nil {
			return
		}
		var ti *unix.TCPInfo
		ti, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if err == nil {
			acked = ti.Bytes_acked
		}
	})
	if cerr != nil || err != nil {
		// Closed, or not TCP: the write deadline still applies.
		return false
	}
	if queued == 0 {
		w.since = time.Time{}
		return false
	}
	if w.since.IsZero() || acked != w.acked {
		w.since, w.acked = now, acked
		return false
	}
	return now.Sub(w.since) > w.limit
}

// ChangeJSON is the data of a "change" event: a service as /status.json
// shows it after the change, the generation that changed it, and its
// effective state before ("missing": it had no flag file; a service whose
// flag was removed has effective_state "missing").
type ChangeJSON struct {
	Generation uint64 `json:"generation"`
	Old        string `json:"old"`
	ServiceJSON
}

// SyncJSON is the data of a "sync" event: the client should hold the state
// of this generation (fetch /status.json when it does not). The first
// event of a stream also says whether the daemon is stale or stopping.
type SyncJSON struct {
	Generation uint64 `json:"generation"`
	*DaemonJSON
}

// DaemonJSON is the data of a "daemon" event, sent when the watcher loop
// stalls or turns again (stale) or the daemon starts stopping: neither
// publishes a snapshot. The fields are those of /status.json.
type DaemonJSON struct {
	Stale       bool   `json:"stale"`
	StaleReason string `json:"stale_reason,omitempty"`
	Stopping    string `json:"stopping,omitempty"`
}

func syncFrame(gen uint64) []byte {
	b, _ := json.Marshal(SyncJSON{Generation: gen})
	return frame("sync", gen, b)
}

func syncFrameWith(gen uint64, d DaemonJSON) []byte {
	b, _ := json.Marshal(SyncJSON{Generation: gen, DaemonJSON: &d})
	return frame("sync", gen, b)
}

func frame(event string, gen uint64, data []byte) []byte {
	out := make([]byte, 0, len(data)+64)
	out = append(out, "id: "...)
	out = strconv.AppendUint(out, gen, 10)
	out = append(out, "\nevent: "...)
	out = append(out, event...)
	out = append(out, "\ndata: "...)
	out = append(out, data...) // JSON: one line
	return append(out, "\n\n"...)
}

// encodeChanges compares two consecutive snapshots, each at the instant it
// was built (an override that expired in between is a change), and encodes
// one event per changed service, sorted by name.
func encodeChanges(prev, next *cache.Snapshot) [][]byte {
	var names []string
	for name := range next.Services() {
		if serviceChanged(prev, next, name) {
			names = append(names, name)
		}
	}
	for name := range prev.Services() {
		if _, ok := next.Lookup(name); !ok {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	if len(names) > MaxChangesPerEvent {
		return [][]byte{syncFrame(next.Generation())}
	}
	slices.Sort(names)
	frames := make([][]byte, 0, len(names))
	for _, name := range names {
		c := ChangeJSON{Generation: next.Generation(), Old: cache.Missing.String()}
		if pv, had := prev.Effective(name, prev.Built()); had {
			c.Old = pv.State.String()
		}
		if e, ok := next.Lookup(name); ok {
			c.ServiceJSON = serviceView(next, name, e, next.Built())
		} else {
			c.ServiceJSON = ServiceJSON{Name: name, State: cache.Missing.String(), Effective: cache.Missing.String(), Code: cache.Missing.HTTPCode(), Since: next.Built()}
		}
		b, err := json.Marshal(c)
		if err != nil {
			continue
		}
		frames = append(frames, frame("change", next.Generation(), b))
	}
	return frames
}

// serviceChanged reports whether anything a change event carries differs
// for name between prev and next; it does not allocate.
func serviceChanged(prev, next *cache.Snapshot, name string) bool {
	pe, had := prev.Lookup(name)
	ne, _ := next.Lookup(name)
	if !had || !pe.SameAs(ne) || !pe.Since.Equal(ne.Since) {
		return true
	}
	pv, _ := prev.Effective(name, prev.Built())
	nv, _ := next.Effective(name, next.Built())
	if pv.State != nv.State || pv.Weight != nv.Weight || pv.Reason != nv.Reason || !pv.Expires.Equal(nv.Expires) {
		return true
	}
	pp, pok := prev.Probe(name)
	np, nok := next.Probe(name)
	if pok != nok || !pp.Same(np) {
		return true
	}
	pc, pok := prev.Conns(name)
	nc, nok := next.Conns(name)
	return pok != nok || pc != nc || prev.ConnPort(name) != next.ConnPort(name)
}
