//go:build linux

package daemon

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/faulttest"
	"github.com/http-status/http_status/internal/testenv"
	"github.com/http-status/http_status/watcher"
)

// recorder stands in for the notify socket in tests that run the
// supervisor in process: the messages, in order, on a channel.
func recorder(n *notifier) <-chan string {
	msgs := make(chan string, 1024)
	n.notify = func(state string) (bool, error) {
		select {
		case msgs <- state:
		default: // a test that stopped reading does not block the supervisor
		}
		return true, nil
	}
	return msgs
}

// TestWatchdogStopsWhenLoopStalls drives the supervisor with a real watcher
// loop: pings flow while the loop turns, stop while it is stuck (held in
// its publish hook, as a slow hook or a deadlock would hold it) and resume
// once it turns again. The messages go to a
// recorder; TestNotifyLifecycle sees WATCHDOG=1 on a real NOTIFY_SOCKET,
// and TestSuperviseClock checks the timing on a fake clock.
func TestWatchdogStopsWhenLoopStalls(t *testing.T) {
	t.Parallel()
	store := cache.NewStore()
	dir := t.TempDir()
	var stall atomic.Bool
	release := make(chan struct{})
	w, err := watcher.New(watcher.Options{Dir: dir, Store: store, Logger: zerolog.Nop(), OnPublish: func(time.Duration) {
		if stall.Load() {
			select {
			case <-release:
			case <-time.After(60 * time.Second): // only bounds a broken test
			}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = w.Run(ctx) })
	select {
	case <-w.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("watcher not ready")
	}
	n := newNotifier(zerolog.Nop())
	msgs := recorder(n)
	// The loop turns at least once a second, so maxAge must exceed that.
	const interval, maxAge = 200 * time.Millisecond, 1500 * time.Millisecond
	wg.Go(func() { n.supervise(ctx, store, w.HeartbeatAge, interval, maxAge) })

	ping := func(m string) bool { return m == "WATCHDOG=1" }
	for range 3 {
		faulttest.ExpectNotify(t, msgs, 5*time.Second, "WATCHDOG=1", ping)
	}
	// A flag written while stall is set makes the loop publish, and it is
	// held in the hook until released below.
	stall.Store(true)
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	if err := os.WriteFile(filepath.Join(dir, "x.80"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Pings come every 100ms while the loop is alive; a silence of half a
	// second (5 periods) means they stopped.
	const silence = 500 * time.Millisecond
	deadline := time.After(30 * time.Second)
	for stopped := false; !stopped; {
		select {
		case <-msgs:
		case <-time.After(silence):
			stopped = true
		case <-deadline:
			t.Fatal("watchdog pings did not stop while the watcher loop was stalled")
		}
	}
	if age := w.HeartbeatAge(); age < maxAge {
		t.Fatalf("pings stopped but heartbeat age is %s (< %s)", age, maxAge)
	}
	// Once the loop turns again, pings resume.
	stall.Store(false)
	releaseOnce.Do(func() { close(release) })
	faulttest.ExpectNotify(t, msgs, 10*time.Second, "WATCHDOG=1 after the stall", ping)
}

// TestSuperviseClock runs the supervisor on synctest's fake clock with a
// heartbeat the test controls: WATCHDOG=1 every half interval while the
// heartbeat is younger than maxAge, none while it is older, pings again
// once it is fresh, and STATUS= only when the summary changed.
func TestSuperviseClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := &testenv.LogBuffer{}
		n := newNotifier(zerolog.New(logs))
		msgs := recorder(n)
		store := cache.NewStore()
		var beat atomic.Int64
		beat.Store(time.Now().UnixNano())
		heartbeatAge := func() time.Duration { return time.Since(time.Unix(0, beat.Load())) }
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		const watchdog, maxAge = 10 * time.Second, 3 * time.Second
		go n.supervise(ctx, store, heartbeatAge, watchdog, maxAge)

		drain := func() []string {
			synctest.Wait()
			var got []string
			for len(msgs) > 0 {
				got = append(got, <-msgs)
			}
			return got
		}
		// live is a loop turning every second for d.
		live := func(d time.Duration) {
			for end := time.Now().Add(d); time.Now().Before(end); {
				time.Sleep(time.Second)
				beat.Store(time.Now().UnixNano())
			}
		}
		pings := func(n int) string { return strings.TrimSuffix(strings.Repeat("WATCHDOG=1 ", n), " ") }
		// Alive: a ping every watchdog/2.
		live(20 * time.Second)
		if got := strings.Join(drain(), " "); got != pings(4) {
			t.Fatalf("20 s of a live loop: %q, want 4 pings", got)
		}
		// Stuck: from the first tick that finds the heartbeat older than
		// maxAge on, no ping for as long as it lasts.
		time.Sleep(time.Minute)
		if got := drain(); len(got) != 0 {
			t.Fatalf("stuck loop: %q, want no message", got)
		}
		if n := strings.Count(logs.String(), "watcher loop stuck"); n != 1 {
			t.Errorf("stuck logged %d times, want once:\n%s", n, logs)
		}
		// Alive again: pings resume at the next tick.
		live(10 * time.Second)
		if got := strings.Join(drain(), " "); got != pings(2) {
			t.Fatalf("10 s after the stall: %q, want 2 pings", got)
		}
		if !strings.Contains(logs.String(), "watchdog pings resume") {
			t.Errorf("resume not logged:\n%s", logs)
		}
		// STATUS= follows a new generation with a new summary, within a
		// second, and only then.
		statuses := func() []string {
			var st []string
			for _, m := range drain() {
				if m != "WATCHDOG=1" {
					st = append(st, m)
				}
			}
			return st
		}
		b := cache.NewBuilder(store.Load())
		b.Set("squid.80", cache.Entry{State: cache.Up})
		store.Publish(b.Snapshot(time.Now()))
		live(time.Second)
		if got := statuses(); len(got) != 1 || !strings.HasPrefix(got[0], "STATUS=1/1 services up") {
			t.Fatalf("after a change: %q, want STATUS=1/1 services up", got)
		}
		live(5 * time.Second)
		if got := statuses(); len(got) != 0 {
			t.Fatalf("no change: %q, want nothing", got)
		}
		// A new generation with the same summary sends nothing either.
		store.Publish(cache.NewBuilder(store.Load()).Snapshot(time.Now()))
		live(2 * time.Second)
		if got := statuses(); len(got) != 0 {
			t.Fatalf("same summary: %q, want nothing", got)
		}
		cancel()
	})
}

// TestNotifyMessage: sd_notify messages are one assignment per line, with
// no empty line (MONOTONIC_USEC= comes with its own newline).
func TestNotifyMessage(t *testing.T) {
	for _, tc := range []struct {
		parts []string
		want  string
	}{
		{[]string{"RELOADING=1", "MONOTONIC_USEC=123\n", "STATUS=reloading"}, "RELOADING=1\nMONOTONIC_USEC=123\nSTATUS=reloading"},
		{[]string{"RELOADING=1", "", "STATUS=reloading"}, "RELOADING=1\nSTATUS=reloading"}, // no monotonic clock
		{[]string{"READY=1", "STATUS=0/0 services up"}, "READY=1\nSTATUS=0/0 services up"},
	} {
		if got := notifyMessage(tc.parts...); got != tc.want {
			t.Errorf("notifyMessage(%q) = %q, want %q", tc.parts, got, tc.want)
		}
	}
}

// TestListenFallback: without LISTEN_FDS, listen binds the address; with a
// socket under another name, "http" still takes the only one.
func TestListenFallback(t *testing.T) {
	t.Setenv("LISTEN_FDS", "")
	lns, err := inheritListeners()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := lns.listen(listenerHTTP, "127.0.0.1:0", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if a := ln.Addr().(*net.TCPAddr); !a.IP.IsLoopback() || a.Port == 0 {
		t.Fatalf("fallback listener on %s, want 127.0.0.1:port", a)
	}

	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	lns = &listeners{byName: map[string]net.Listener{"http_status.socket": held}}
	got, err := lns.listen(listenerHTTP, "127.0.0.1:1", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if got != held {
		t.Fatalf("listen(http) with one socket named http_status.socket: got %s, want the inherited one", got.Addr())
	}
	// The agent never takes a socket that is not named for it.
	lns = &listeners{byName: map[string]net.Listener{"http": held}}
	agent, err := lns.listen(listenerAgent, "127.0.0.1:0", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	if agent == held {
		t.Fatal("listen(agent) took the socket named http")
	}
}

// TestSuperviseTinyWatchdog gives the supervisor a watchdog interval of a
// microsecond (WATCHDOG_USEC=1): it must ping at most every minPingEvery,
// not spin flooding systemd, and say that the interval cannot be honoured.
func TestSuperviseTinyWatchdog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := &testenv.LogBuffer{}
		n := newNotifier(zerolog.New(logs))
		var count atomic.Int64
		n.notify = func(string) (bool, error) { count.Add(1); return true, nil }
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go n.supervise(ctx, cache.NewStore(), func() time.Duration { return 0 }, time.Microsecond, heartbeatMaxAge)
		time.Sleep(time.Second)
		synctest.Wait()
		if got, most := count.Load(), int64(time.Second/minPingEvery); got > most || got == 0 {
			t.Errorf("%d pings in a second, want 1 to %d", got, most)
		}
		if !strings.Contains(logs.String(), "too short to honour") {
			t.Errorf("no warning about the interval:\n%s", logs)
		}
	})
}

// TestNotifyNeverBlocks: a NOTIFY_SOCKET whose reader stopped reading (a
// supervisor that took READY=1 and no more, or a stalled one) fills up
// after a few messages (net.unix.max_dgram_qlen, 10 by default), and a
// blocking send then held the daemon's main loop for good: every later
// SIGHUP went unhandled and SIGTERM never got past STOPPING=1 (found by
// bench/soak). Each send must give up within notifyWriteTimeout, say so once,
// and say when sending works again.
func TestNotifyNeverBlocks(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	logs := &testenv.LogBuffer{}
	nc := newNotifyConn(sock) // newNotifier with NOTIFY_SOCKET=sock, without the environment
	defer nc.close()
	n := &notifier{log: zerolog.New(logs), notify: nc.send, conn: nc}
	done := make(chan time.Duration)
	go func() {
		// Past the queue's limit whatever the host's max_dgram_qlen
		// (at most 1,000 here), with a slow send at the end.
		slow := 0
		for i := 0; i < 1000 && slow < 1; i++ {
			start := time.Now()
			n.send("STATUS=message " + strings.Repeat("x", i%7))
			if time.Since(start) >= notifyWriteTimeout/2 {
				slow++
			}
		}
		start := time.Now()
		n.send("STATUS=one more")
		done <- time.Since(start)
	}()
	select {
	case took := <-done:
		if took > 2*notifyWriteTimeout+time.Second {
			t.Errorf("a send to a full notify socket took %s, want about %s", took, notifyWriteTimeout)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a send to a notify socket nobody reads blocked for 15 s")
	}
	if c := strings.Count(logs.String(), "sd_notify failed"); c != 1 {
		t.Errorf("%d \"sd_notify failed\" lines, want 1:\n%s", c, logs)
	}
	// The reader catches up: the next send goes through and says so.
	buf := make([]byte, 4096)
	for {
		conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := conn.Read(buf); err != nil {
			break
		}
	}
	n.send("STATUS=back")
	if !strings.Contains(logs.String(), "sd_notify works again") {
		t.Errorf("no \"sd_notify works again\" after the reader caught up:\n%s", logs)
	}
}
