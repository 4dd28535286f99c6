//go:build linux

package pages

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/httpd"

	"github.com/http-status/http_status/internal/check"
	"github.com/http-status/http_status/internal/testsnap"
)

// eventsServer serves /events (and the pages) over st on a real loopback
// listener, with Events.Run going; it returns the server and the Events.
func eventsServer(t *testing.T, st *cache.Store, hold func() func()) (*httptest.Server, *Events) {
	t.Helper()
	return eventsServerWith(t, EventsOptions{Store: st, Hold: hold})
}

func eventsServerWith(t *testing.T, o EventsOptions) (*httptest.Server, *Events) {
	t.Helper()
	st := o.Store
	h := httpd.NewHandler(check.New(check.Options{Store: st}))
	New(Options{Store: st}).Mount(h)
	ev := NewEvents(o)
	ev.Mount(h)
	srv := httptest.NewUnstartedServer(h)
	srv.Config = httpd.NewServer(h, zerolog.Nop()) // the daemon's timeouts
	srv.Start()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { ev.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait(); srv.Close() })
	return srv, ev
}

// sseEvent is one event as a raw client reads it.
type sseEvent struct {
	id, event, data string
}

// sseClient is a raw Server-Sent Events client on a plain TCP connection:
// it checks the bytes on the wire rather than trusting a library.
type sseClient struct {
	conn net.Conn
	r    *bufio.Reader
	hdr  http.Header
}

func dialSSE(t *testing.T, srv *httptest.Server) *sseClient {
	t.Helper()
	return dialSSEWith(t, srv, &net.Dialer{})
}

func dialSSEWith(t *testing.T, srv *httptest.Server, d *net.Dialer) *sseClient {
	t.Helper()
	c, err := d.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
	r := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /events: %s %v", res.Status, res.Header)
	}
	// The body is chunked: read it through the response's body reader.
	return &sseClient{conn: c, r: bufio.NewReader(res.Body), hdr: res.Header}
}

// next reads the next event (skipping comments and the retry field).
func (c *sseClient) next(t *testing.T) sseEvent {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var ev sseEvent
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v (partial event %+v)", err, ev)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev.event != "" || ev.data != "" {
				return ev
			}
		case strings.HasPrefix(line, ":"), strings.HasPrefix(line, "retry: "):
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			ev.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if ev.data != "" {
				t.Fatalf("two data lines in one event: JSON must be one line")
			}
			ev.data = strings.TrimPrefix(line, "data: ")
		default:
			t.Fatalf("unexpected line %q", line)
		}
	}
}

func (c *sseClient) change(t *testing.T) ChangeJSON {
	t.Helper()
	ev := c.next(t)
	var ch ChangeJSON
	if ev.event != "change" || json.Unmarshal([]byte(ev.data), &ch) != nil {
		t.Fatalf("want a change event, got %+v", ev)
	}
	if ev.id != fmt.Sprint(ch.Generation) {
		t.Errorf("event id %q, generation %d", ev.id, ch.Generation)
	}
	return ch
}

// publisher publishes snapshots as the watcher would.
type publisher struct {
	st *cache.Store
}

func (p publisher) do(f func(b *cache.Builder)) uint64 {
	b := cache.NewBuilder(p.st.Load())
	f(b)
	s := b.Snapshot(time.Now())
	p.st.Publish(s)
	return s.Generation()
}

func entry(t *testing.T, content string) cache.Entry {
	t.Helper()
	e, err := cache.ParseFlag([]byte(content))
	if err != nil {
		t.Fatal(err)
	}
	e.Since = time.Now()
	return e
}

// TestEventsStream reads /events with a raw client: a sync event first,
// then one change per service and publication, in publication order (by
// name within one), with old and new state, weight, reason, connections.
func TestEventsStream(t *testing.T) {
	st := testsnap.Store(t, map[string]string{"squid.80": "up"}, nil)
	var holds sync.WaitGroup
	held := make(chan struct{}, 1)
	srv, ev := eventsServer(t, st, func() func() {
		holds.Add(1)
		held <- struct{}{}
		return holds.Done
	})
	pub := publisher{st}
	c := dialSSE(t, srv)
	if c.hdr.Get("Cache-Control") != "private, no-store" {
		t.Errorf("Cache-Control %q", c.hdr.Get("Cache-Control"))
	}
	first := c.next(t)
	if first.event != "sync" || first.data != fmt.Sprintf(`{"generation":%d,"stale":false}`, st.Load().Generation()) {
		t.Fatalf("first event %+v, want sync at generation %d", first, st.Load().Generation())
	}
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("a subscriber does not hold the connection sampler")
	}

	g1 := pub.do(func(b *cache.Builder) { b.Set("squid.80", entry(t, "drain 50% # deploy 7")) })
	g2 := pub.do(func(b *cache.Builder) {
		b.Set("web.443", entry(t, "maint"))
		b.Set("api.9000", entry(t, "up"))
	})
	g3 := pub.do(func(b *cache.Builder) { b.Delete("squid.80") })
	g4 := pub.do(func(b *cache.Builder) {
		b.SetConns(cache.ConnCounts{Live: true, Ports: map[uint16]int{443: 3, 9000: 0}})
	})
	pub.do(func(b *cache.Builder) {}) // nothing changed: no event

	want := []struct {
		gen       uint64
		name, old string
		state     string
	}{
		{g1, "squid.80", "up", "drain"},
		{g2, "api.9000", "missing", "up"},
		{g2, "web.443", "missing", "maint"},
		{g3, "squid.80", "drain", "missing"},
		{g4, "api.9000", "up", "up"},
		{g4, "web.443", "maint", "maint"},
	}
	var got []ChangeJSON
	for i, w := range want {
		ch := c.change(t)
		got = append(got, ch)
		if ch.Generation != w.gen || ch.Name != w.name || ch.Old != w.old || ch.Effective != w.state {
			t.Fatalf("event %d: %+v, want %+v", i, ch, w)
		}
	}
	if w := got[0].Weight; w == nil || *w != 50 || got[0].Reason != "deploy 7" || got[0].Code != 404 || got[0].Conns != nil {
		t.Errorf("drain event: %+v", got[0])
	}
	if n := got[5].Conns; n == nil || *n != 3 || got[5].ConnPort != 443 {
		t.Errorf("connections event: %+v", got[5])
	}
	if n := got[4].Conns; n == nil || *n != 0 {
		t.Errorf("zero connections must be 0, not absent: %+v", got[4])
	}
	// And the stream goes on: one more change arrives.
	g5 := pub.do(func(b *cache.Builder) { b.Set("web.443", entry(t, "up")) })
	if ch := c.change(t); ch.Generation != g5 || ch.Old != "maint" || ch.Effective != "up" {
		t.Errorf("last event %+v", ch)
	}
	for deadline := time.Now().Add(10 * time.Second); ev.Sent() < 7; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Sent() = %d, want 7", ev.Sent())
		}
	}
	// The client goes away: its slot and its hold are released.
	c.conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for ev.Subscribers() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("subscriber still registered after the client left")
		}
		pub.do(func(b *cache.Builder) { b.Set("web.443", entry(t, "drain")) }) // a write notices the close
		time.Sleep(10 * time.Millisecond)
	}
	holds.Wait()
}

// TestEventsSyncOnBigChange: a publication that changes more services than
// MaxChangesPerEvent is one sync event, not a flood.
func TestEventsSyncOnBigChange(t *testing.T) {
	st := testsnap.Store(t, nil, nil)
	srv, _ := eventsServer(t, st, nil)
	c := dialSSE(t, srv)
	c.next(t) // sync
	g := publisher{st}.do(func(b *cache.Builder) {
		for i := range MaxChangesPerEvent + 1 {
			b.Set(fmt.Sprintf("s%03d.80", i), entry(t, "up"))
		}
	})
	if ev := c.next(t); ev.event != "sync" || ev.data != fmt.Sprintf(`{"generation":%d}`, g) {
		t.Fatalf("got %+v, want one sync at %d", ev, g)
	}
	g = publisher{st}.do(func(b *cache.Builder) { b.Delete("s000.80") })
	if ch := c.change(t); ch.Generation != g || ch.Name != "s000.80" || ch.Effective != "missing" {
		t.Errorf("after the sync: %+v", ch)
	}
}

// TestEventsSlowSubscriberDropped: a subscriber that does not keep up is
// dropped once its buffer is full, while one that keeps up is not, and
// publishing never waits for either.
func TestEventsSlowSubscriberDropped(t *testing.T) {
	st := testsnap.Store(t, map[string]string{"a.80": "up"}, nil)
	ev := NewEvents(EventsOptions{Store: st})
	slow, _, ok := ev.subscribe()
	if !ok {
		t.Fatal("subscribe")
	}
	fast, _, _ := ev.subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { ev.Run(ctx) })
	defer wg.Wait()
	defer cancel()
	pub := publisher{st}
	for i := range EventBuffer + 10 {
		g := pub.do(func(b *cache.Builder) { b.Set("a.80", entry(t, fmt.Sprintf("up %d%%", i%200))) })
		// The fast one reads each event as it comes.
		select {
		case f := <-fast.ch:
			if !strings.HasPrefix(string(f), fmt.Sprintf("id: %d\n", g)) {
				t.Fatalf("fast subscriber got %q for generation %d", f, g)
			}
		case <-fast.gone:
			t.Fatalf("the subscriber that keeps up was dropped at event %d", i)
		case <-time.After(10 * time.Second):
			t.Fatalf("no event for generation %d (event %d)", g, i)
		}
	}
	select {
	case <-slow.gone:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow subscriber was not dropped")
	}
	if ev.Dropped() != 1 || ev.Subscribers() != 1 {
		t.Errorf("Dropped() = %d, Subscribers() = %d; want 1, 1", ev.Dropped(), ev.Subscribers())
	}
	// Nobody reads now: a burst of publications still never waits.
	start := time.Now()
	for i := range 10 * EventBuffer {
		pub.do(func(b *cache.Builder) { b.Set("a.80", entry(t, fmt.Sprintf("down %d%%", i%200))) })
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("publishing %d snapshots took %v", 10*EventBuffer, d)
	}
}

// TestEventsLimits: at most MaxEventSubscribers streams; HEAD and other
// methods; when Run stops, every stream ends.
func TestEventsLimits(t *testing.T) {
	st := testsnap.Store(t, nil, nil)
	srv, ev := eventsServer(t, st, nil)
	var cs []*sseClient
	for range MaxEventSubscribers {
		cs = append(cs, dialSSE(t, srv))
	}
	res, err := http.Get(srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 503 || res.Header.Get("Retry-After") == "" {
		t.Errorf("subscriber %d: %s", MaxEventSubscribers+1, res.Status)
	}
	res, err = http.Post(srv.URL+"/events", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 405 {
		t.Errorf("POST /events: %s", res.Status)
	}
	ev.stop()
	for _, c := range cs {
		_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			if _, err := c.r.ReadString('\n'); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatal("stream still open after stop")
				}
				break
			}
		}
	}
}

// TestEventsOutliveServerTimeouts: a stream lasts longer than the server's
// read and write timeouts (which bound ordinary requests).
func TestEventsOutliveServerTimeouts(t *testing.T) {
	st := testsnap.Store(t, map[string]string{"a.80": "up"}, nil)
	h := httpd.NewHandler(check.New(check.Options{Store: st}))
	ev := NewEvents(EventsOptions{Store: st})
	ev.Mount(h)
	srv := httptest.NewUnstartedServer(h)
	srv.Config = httpd.NewServer(h, zerolog.Nop())
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = 100*time.Millisecond, 100*time.Millisecond
	srv.Start()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { ev.Run(ctx) })
	defer func() { cancel(); wg.Wait(); srv.Close() }()
	c := dialSSE(t, srv)
	c.next(t)
	time.Sleep(400 * time.Millisecond) // past both timeouts
	g := publisher{st}.do(func(b *cache.Builder) { b.Set("a.80", entry(t, "drain")) })
	if ch := c.change(t); ch.Generation != g {
		t.Fatalf("after the timeouts: %+v", ch)
	}
}

// smallRcvbuf dials with a small receive buffer (SO_RCVBUF before
// connect, so that the window is small from the handshake on): a client
// that stops reading fills it with a few events.
var smallRcvbuf = &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 2048)
	}); err != nil {
		return err
	}
	return serr
}}

// TestEventsNonReadersLoseTheirSlots: MaxEventSubscribers-1 real sockets
// that never read and one that reads slowly hold every slot while changes
// are published; the non-readers' streams end within the stall bound, so a
// new client gets a stream, and the slow reader that keeps up gets every
// change and keeps its stream.
func TestEventsNonReadersLoseTheirSlots(t *testing.T) {
	const stall = 500 * time.Millisecond
	st := testsnap.Store(t, map[string]string{"a.80": "up"}, nil)
	srv, ev := eventsServerWith(t, EventsOptions{Store: st, Stall: stall})
	slow := dialSSEWith(t, srv, smallRcvbuf)
	if e := slow.next(t); e.event != "sync" {
		t.Fatalf("first event %+v", e)
	}
	for range MaxEventSubscribers - 1 {
		dialSSEWith(t, srv, smallRcvbuf) // and never read
	}
	if n := ev.Subscribers(); n != MaxEventSubscribers {
		t.Fatalf("%d subscribers, want %d", n, MaxEventSubscribers)
	}
	res, err := http.Get(srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 503 {
		t.Fatalf("a stream past the limit: %s", res.Status)
	}

	// Each change is about 500 bytes: 30 of them are far more than a
	// 2 KiB receive buffer holds.
	pub := publisher{st}
	reason := strings.Repeat("r", 190)
	const changes = 30
	var last uint64
	for i := range changes {
		last = pub.do(func(b *cache.Builder) { b.Set("a.80", entry(t, fmt.Sprintf("drain %d%% # %s", i+1, reason))) })
	}
	published := time.Now()

	// The slow reader: one event at a time with a pause, so that its
	// small buffer is full most of the time, yet it takes what is sent.
	slowDone := make(chan error, 1)
	go func() {
		for {
			time.Sleep(10 * time.Millisecond) // the slowness under test, not a synchronisation
			e := slow.next(t)
			if e.id == fmt.Sprint(last) {
				slowDone <- nil
				return
			}
		}
	}()

	// A new client gets its stream once the non-readers are dropped:
	// within the stall bound, with generous slack for a loaded machine.
	deadline := published.Add(stall + 10*time.Second)
	for {
		res, err := http.Get(srv.URL + "/events")
		if err != nil {
			t.Fatal(err)
		}
		code := res.StatusCode
		res.Body.Close()
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d with %d streams open %v after the changes", code, ev.Subscribers(), time.Since(published))
		}
		time.Sleep(20 * time.Millisecond) // poll
	}
	took := time.Since(published)
	select {
	case <-slowDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow reader did not get every change")
	}
	// It still has its stream: one more change reaches it.
	g := pub.do(func(b *cache.Builder) { b.Set("a.80", entry(t, "up")) })
	if c := slow.change(t); c.Generation != g {
		t.Errorf("slow reader got generation %d, want %d", c.Generation, g)
	}
	t.Logf("a new stream %v after the changes (stall %v); %d streams left", took, stall, ev.Subscribers())
}

// TestEventsDaemonState: the watcher loop stalling and turning again, and
// the daemon starting to stop, publish no snapshot; an open stream hears
// of each as a "daemon" event, and a new stream's sync says the state.
func TestEventsDaemonState(t *testing.T) {
	st := testsnap.Store(t, map[string]string{"a.80": "up"}, nil)
	var stale atomic.Bool
	var stopping atomic.Pointer[string]
	none := ""
	stopping.Store(&none)
	srv, _ := eventsServerWith(t, EventsOptions{
		Store:    st,
		Stale:    func() (time.Duration, bool) { return 7 * time.Second, stale.Load() },
		Stopping: func() string { return *stopping.Load() },
		Poll:     20 * time.Millisecond,
	})
	c := dialSSE(t, srv)
	if e := c.next(t); e.event != "sync" || !strings.Contains(e.data, `"stale":false`) {
		t.Fatalf("first event %+v", e)
	}
	daemon := func(want DaemonJSON) {
		t.Helper()
		e := c.next(t) // within next's 10 s deadline; Poll is 20 ms
		var d DaemonJSON
		if e.event != "daemon" || json.Unmarshal([]byte(e.data), &d) != nil || d != want {
			t.Fatalf("got %+v, want a daemon event %+v", e, want)
		}
	}
	stale.Store(true)
	reason := "watcher loop stalled: last turn 7s ago: /status and the agent answer every service down"
	daemon(DaemonJSON{Stale: true, StaleReason: reason})
	stale.Store(false)
	daemon(DaemonJSON{})
	what := "lameduck: the listeners close soon"
	stopping.Store(&what)
	daemon(DaemonJSON{Stopping: what})

	stale.Store(true)
	d := dialSSE(t, srv)
	e := d.next(t)
	var s struct {
		Generation uint64 `json:"generation"`
		DaemonJSON
	}
	if e.event != "sync" || json.Unmarshal([]byte(e.data), &s) != nil || !s.Stale || s.StaleReason != reason || s.Stopping != what {
		t.Errorf("a new stream's sync while stale and stopping: %+v", e)
	}
}
