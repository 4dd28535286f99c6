//go:build linux

package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/check"
)

// agentStore builds a snapshot by hand.
func agentStore(t *testing.T, flags map[string]string, vips ...string) *cache.Store {
	t.Helper()
	st := cache.NewStore()
	agentPublish(t, st, flags, vips...)
	return st
}

func agentPublish(t *testing.T, st *cache.Store, flags map[string]string, vips ...string) {
	t.Helper()
	b := cache.NewBuilder(st.Load())
	b.ClearServices()
	for name, content := range flags {
		e, err := cache.ParseFlag([]byte(content))
		if err != nil {
			t.Fatalf("flag %s: %v", name, err)
		}
		b.Set(name, e)
	}
	m := map[netip.Addr]cache.VIPFlags{}
	for _, v := range vips {
		m[netip.MustParseAddr(v)] = cache.OnOther
	}
	b.SetVIPs(m)
	b.SetDirProblem("")
	b.SetVIPsOK(true)
	st.Publish(b.Snapshot(time.Now()))
}

func newTestAgent(t *testing.T, st *cache.Store, opts Options) *Server {
	t.Helper()
	opts.Checker = check.New(check.Options{Store: st})
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

var agentFlags = map[string]string{
	"status.html": "",
	"squid.80":    "up",
	"web.443":     "up 50%",
	"api.8080":    "drain # deploy 1234",
	"db.5432":     "maint until=2099-01-01T00:00:00Z # kernel",
	"old.80":      "down # disk full",
	"squid":       "drain",
	"canary.80":   "0%",
}

func TestAgentReply(t *testing.T) {
	st := agentStore(t, agentFlags, "192.0.2.10", "2001:db8::10")
	a := newTestAgent(t, st, Options{})
	tests := []struct{ line, want string }{
		{"", "up ready 100%"}, // default service: status.html
		{"squid.80", "up ready 100%"},
		{"squid.80\r", "up ready 100%"},
		{"  squid 80  ", "up ready 100%"},
		{"squid", "up drain"},
		{"web.443", "up ready 50%"},
		{"canary.80", "up ready 0%"},
		{"api.8080", "up drain #deploy 1234"},
		{"db.5432", "maint #kernel"},
		{"old.80", "down ready #disk full"},
		{"gone.80", "down ready #no flag file"},
		{"SERVICE=squid&PORT=80", "up ready 100%"},
		{"service=web&port=443", "up ready 50%"},
		{"/status?SERVICE=squid&PORT=80", "up ready 100%"},
		{"?SERVICE=squid&PORT=80&VIP=192.0.2.10,2001:db8::10", "up ready 100%"},
		{"SERVICE=squid&PORT=80&VIP=192.0.2.99", "down ready #VIP not configured"},
		{"SERVICE=api&PORT=8080&VIP=192.0.2.99", "up drain #deploy 1234"},

		// Garbage.
		{"squid 80 extra", BadRequest},
		{"squid 0", BadRequest},
		{"squid 99999", BadRequest},
		{"../../etc/passwd", BadRequest},
		{".hidden", BadRequest},
		{"a/b", BadRequest},
		{"\x00\x01\x02", BadRequest},
		{"PORT=80", BadRequest},
		{"VIP=192.0.2.10", BadRequest},
		{"squid?80", BadRequest},
		{"SERVICE=../x", BadRequest},
		{"SERVICE=squid&PORT=x", BadRequest},
		{"SERVICE=squid&VIP=nope", BadRequest},
		{"SERVICE=&SERVICE=squid&PORT=80", BadRequest}, // the first SERVICE is the one answered for
		{"service=&PORT=80", BadRequest},
		{"/etc/passwd", BadRequest},
		{"GET /status?SERVICE=squid HTTP/1.0", BadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			if got := a.Reply(tt.line); got != tt.want {
				t.Errorf("Reply(%q) = %q, want %q", tt.line, got, tt.want)
			}
		})
	}
}

func TestAgentDefaultService(t *testing.T) {
	st := agentStore(t, agentFlags)
	a := newTestAgent(t, st, Options{DefaultService: "api.8080"})
	if got, want := a.Reply(""), "up drain #deploy 1234"; got != want {
		t.Errorf("default service reply = %q, want %q", got, want)
	}
	if _, err := New(Options{Checker: check.New(check.Options{Store: st}), DefaultService: "../x"}); err == nil {
		t.Error("New accepted an invalid default service")
	}
}

func TestAgentLameduck(t *testing.T) {
	st := agentStore(t, agentFlags)
	a := newTestAgent(t, st, Options{})
	a.SetDraining(true)
	for line, want := range map[string]string{
		"squid.80":  "up drain #" + lameduckReason,
		"web.443":   "up drain #" + lameduckReason,
		"api.8080":  "up drain #deploy 1234",
		"db.5432":   "maint #kernel",
		"old.80":    "down ready #disk full",
		"gone.80":   "down ready #no flag file",
		"squid 0":   BadRequest,
		"":          "up drain #" + lameduckReason,
		"canary.80": "up drain #" + lameduckReason,
	} {
		if got := a.Reply(line); got != want {
			t.Errorf("draining: Reply(%q) = %q, want %q", line, got, want)
		}
	}
	a.SetDraining(false)
	if got, want := a.Reply("squid.80"), "up ready 100%"; got != want {
		t.Errorf("after draining: Reply = %q, want %q", got, want)
	}
}

func TestAgentExpiry(t *testing.T) {
	// An expired override is answered as plain up, "ready" included, with
	// no new snapshot.
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	st := agentStore(t, map[string]string{"x.80": "maint 50% until=2026-11-23T10:00:01Z # k"})
	a, err := New(Options{Checker: check.New(check.Options{Store: st, Now: func() time.Time { return now }})})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := a.Reply("x.80"), "maint #k"; got != want {
		t.Errorf("before expiry: %q, want %q", got, want)
	}
	now = now.Add(time.Second)
	if got, want := a.Reply("x.80"), "up ready 100%"; got != want {
		t.Errorf("at expiry: %q, want %q", got, want)
	}
}

// TestAgentStale: while the watcher is stalled past StaleAfter, every line
// is answered down with the reason, the default service included.
func TestAgentStale(t *testing.T) {
	st := agentStore(t, agentFlags)
	age := time.Duration(0)
	a, err := New(Options{Checker: check.New(check.Options{Store: st, StaleAfter: 10 * time.Second,
		HeartbeatAge: func(time.Time) time.Duration { return age }})})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Reply("squid.80"); got != "up ready 100%" {
		t.Errorf("fresh: %q", got)
	}
	age = time.Minute
	want := "down ready #" + check.ReasonStale
	for _, line := range []string{"squid.80", "", "api.8080", "nope.80"} {
		if got := a.Reply(line); got != want {
			t.Errorf("stale, %q: %q, want %q", line, got, want)
		}
	}
}

// serveAgent runs a on 127.0.0.1:0 until the test ends and checks that Serve
// returns nil when cancelled.
func agentServe(t *testing.T, a *Server) string {
	t.Helper()
	return agentServeWith(t, a, nil)
}

// agentPaths are the two ways Serve runs: event loops (Linux, a TCP
// listener) and a goroutine per connection (elsewhere, or any other
// listener: here the TCP listener behind a wrapper).
var agentPaths = []struct {
	name string
	wrap func(net.Listener) net.Listener
}{
	{"loops", nil},
	{"goroutines", func(ln net.Listener) net.Listener { return wrappedListener{ln} }},
}

type wrappedListener struct{ net.Listener }

// agentServeWith is agentServe with the listener wrapped by wrap (nil: as
// it is).
func agentServeWith(t *testing.T, a *Server, wrap func(net.Listener) net.Listener) string {
	t.Helper()
	if err := a.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		a.UseListener(wrap(a.ln))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return a.Addr().String()
}

// agentAsk connects, sends send (if not empty), and reads until EOF.
func agentAsk(t *testing.T, addr, send string) string {
	t.Helper()
	got, err := agentAskErr(addr, send)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// agentAskErr is agentAsk for use off the test's goroutine.
func agentAskErr(addr, send string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return "", err
	}
	if send != "" {
		if _, err := io.WriteString(c, send); err != nil {
			return "", err
		}
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return string(b), fmt.Errorf("read reply to %q: %w (got %q)", send, err, b)
	}
	return string(b), nil
}

func TestAgentServe(t *testing.T) {
	t.Parallel()
	for _, p := range agentPaths {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			testAgentServe(t, p.wrap)
		})
	}
}

func testAgentServe(t *testing.T, wrap func(net.Listener) net.Listener) {
	st := agentStore(t, agentFlags)
	// SendWait long enough that a client starved by a busy machine still
	// sends its line in time: the cases run at once, so waiting costs little.
	a := newTestAgent(t, st, Options{SendWait: 500 * time.Millisecond, Logger: zerolog.Nop()})
	addr := agentServeWith(t, a, wrap)

	var wg sync.WaitGroup
	for _, tt := range []struct{ send, want string }{
		{"squid.80\n", "up ready 100%\n"},
		{"squid 80\r\n", "up ready 100%\n"},
		{"web.443\n", "up ready 50%\n"},
		{"SERVICE=api&PORT=8080\n", "up drain #deploy 1234\n"},
		{"", "up ready 100%\n"},                       // nothing sent: status.html
		{"old.80", "down ready #disk full\n"},         // no newline: answered at the read deadline
		{"\x16\x03\x01\x02\x00\n", BadRequest + "\n"}, // a TLS hello
		{strings.Repeat("a", MaxLine+10), BadRequest + "\n"},
		{"squid.80\nmore junk after the line\n", "up ready 100%\n"},
	} {
		// At once: several cases wait out a read deadline.
		wg.Go(func() {
			if got, err := agentAskErr(addr, tt.send); err != nil || got != tt.want {
				t.Errorf("send %q: reply %q (%v), want %q", tt.send, got, err, tt.want)
			}
		})
	}
	wg.Wait()
	if s := a.Stats(); s.Conns < 9 || s.BadRequests != 2 {
		t.Errorf("stats %+v, want at least 9 connections and 2 bad requests", s)
	}
}

// TestAgentBackToUp: after drain, maint and down, the reply that puts the
// service back says "ready", so HAProxy lifts what the earlier replies set.
func TestAgentBackToUp(t *testing.T) {
	st := agentStore(t, map[string]string{"x.80": "up"})
	a := newTestAgent(t, st, Options{})
	addr := agentServe(t, a)
	for _, step := range []struct{ content, want string }{
		{"up", "up ready 100%\n"},
		{"drain", "up drain\n"},
		{"up", "up ready 100%\n"},
		{"maint", "maint\n"},
		{"down", "down ready\n"},
		{"up 50%", "up ready 50%\n"},
		{"maint", "maint\n"},
		{"up", "up ready 100%\n"},
	} {
		agentPublish(t, st, map[string]string{"x.80": step.content})
		if got := agentAsk(t, addr, "x.80\n"); got != step.want {
			t.Errorf("flag %q: reply %q, want %q", step.content, got, step.want)
		}
	}
}

// TestAgentSilentClient: a client that connects and neither sends nor
// closes still gets an answer and then the connection is closed.
func TestAgentSilentClient(t *testing.T) {
	t.Parallel()
	for _, p := range agentPaths {
		t.Run(p.name, func(t *testing.T) { testAgentSilentClient(t, p.wrap) })
	}
}

func testAgentSilentClient(t *testing.T, wrap func(net.Listener) net.Listener) {
	st := agentStore(t, agentFlags)
	a := newTestAgent(t, st, Options{SendWait: 50 * time.Millisecond})
	addr := agentServeWith(t, a, wrap)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil || line != "up ready 100%\n" {
		t.Fatalf("reply %q, %v", line, err)
	}
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the reply: %v, want EOF (the agent closes)", err)
	}
}

// TestAgentSplitLine: a line that arrives in pieces is answered once whole;
// a client that sends nothing at first and its line after the default
// answer still reads that answer whole (the agent lingers, no reset).
func TestAgentSplitLine(t *testing.T) {
	t.Parallel()
	for _, p := range agentPaths {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			st := agentStore(t, agentFlags)
			// SendWait leaves a starved client room to send its first
			// bytes; the second case waits past it on purpose.
			a := newTestAgent(t, st, Options{SendWait: 300 * time.Millisecond})
			addr := agentServeWith(t, a, p.wrap)
			for _, tt := range []struct {
				first, second string
				pause         time.Duration
				want          string
			}{
				{"squi", "d.80\n", 20 * time.Millisecond, "up ready 100%\n"},
				{"", "web.443\n", 700 * time.Millisecond, "up ready 100%\n"}, // answered for status.html first
			} {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if tt.first != "" {
					if _, err := io.WriteString(c, tt.first); err != nil {
						t.Fatal(err)
					}
				}
				time.Sleep(tt.pause)
				_, _ = io.WriteString(c, tt.second)
				b, err := io.ReadAll(c)
				c.Close()
				if string(b) != tt.want || err != nil {
					t.Errorf("%q, %v, then %q: reply %q, %v; want %q", tt.first, tt.pause, tt.second, b, err, tt.want)
				}
			}
		})
	}
}

// TestAgentMaxConns: with MaxConns connections open, the next one is closed
// at once with no reply (HAProxy keeps the server's state when the agent
// cannot answer), and once one of them ends new ones are served.
func TestAgentMaxConns(t *testing.T) {
	t.Parallel()
	for _, p := range agentPaths {
		t.Run(p.name, func(t *testing.T) {
			st := agentStore(t, agentFlags)
			// A send wait far longer than the test: on a loaded machine
			// the two silent connections must not be answered (and
			// make room) before the third is tried.
			a := newTestAgent(t, st, Options{SendWait: time.Minute, MaxConns: 2})
			addr := agentServeWith(t, a, p.wrap)
			var silent []net.Conn
			for i := 0; i < 2; i++ {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				silent = append(silent, c)
			}
			// Both taken by the agent: a third is closed with no reply.
			deadline := time.Now().Add(5 * time.Second)
			for {
				b, err := agentAskErr(addr, "squid.80\n")
				if err != nil {
					t.Fatalf("third connection: %v (want a clean close)", err)
				}
				if len(b) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("third connection answered %q while two are open with MaxConns 2; stats %+v, event loops %v", b, a.Stats(), a.loopStats.Load() != nil)
				}
			}
			silent[0].Close() // the agent sees EOF, answers, closes: room for one
			deadline = time.Now().Add(5 * time.Second)
			for {
				b, _ := agentAskErr(addr, "squid.80\n")
				if b == "up ready 100%\n" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no answer after one closed: %q", b)
				}
			}
		})
	}
}

// TestAgentCancel: cancelling the context closes the listener and Serve
// returns nil, even with a connection in progress.
func TestAgentCancel(t *testing.T) {
	t.Parallel()
	st := agentStore(t, agentFlags)
	a := newTestAgent(t, st, Options{SendWait: 200 * time.Millisecond})
	if err := a.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	addr := a.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	// The connection in progress was still answered.
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if b, _ := io.ReadAll(c); string(b) != "up ready 100%\n" {
		t.Errorf("in-flight reply %q", b)
	}
	if c2, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c2.Close()
		t.Error("listener still accepting after cancel")
	}
}

func TestAgentServeWithoutListen(t *testing.T) {
	a := newTestAgent(t, cache.NewStore(), Options{})
	if err := a.Serve(context.Background()); err == nil {
		t.Error("Serve without Listen returned nil")
	}
}

// FuzzAgentReply: any agent-send line gets one well-formed reply line.
func FuzzAgentReply(f *testing.F) {
	for _, s := range []string{"", "squid.80", "squid 80", "SERVICE=squid&PORT=80&VIP=192.0.2.10",
		"/status?SERVICE=api&PORT=8080", "../x", "\x00", "SERVICE=%2e%2e%2fx", "a b c", "?", "&&=="} {
		f.Add(s)
	}
	st := cache.NewStore()
	b := cache.NewBuilder(st.Load())
	for name, content := range agentFlags {
		e, _ := cache.ParseFlag([]byte(content))
		b.Set(name, e)
	}
	st.Publish(b.Snapshot(time.Now()))
	a, err := New(Options{Checker: check.New(check.Options{Store: st})})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r := a.Reply(line)
		if strings.ContainsAny(r, "\r\n\x00") {
			t.Fatalf("Reply(%q) = %q: not one line", line, r)
		}
		w := strings.Fields(r)
		if len(w) == 0 {
			t.Fatalf("Reply(%q) is empty", line)
		}
		switch w[0] {
		case "up", "down", "maint":
		default:
			t.Fatalf("Reply(%q) = %q: unexpected first word", line, r)
		}
	})
}

// TestAgentSilentConnectionsDoNotStarve: thousands of connections that send
// nothing (each holds its place for the send wait) must not keep a real
// check waiting. With the old bound of 1,024 connections the accept paused
// and a real check waited for the silent ones' send wait.
func TestAgentSilentConnectionsDoNotStarve(t *testing.T) {
	const silent = 1500
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < 2*silent+200 {
		t.Skipf("needs %d file descriptors, RLIMIT_NOFILE is %d", 2*silent+200, lim.Cur)
	}
	st := agentStore(t, agentFlags)
	a := newTestAgent(t, st, Options{SendWait: 5 * time.Second})
	addr := agentServeWith(t, a, nil)
	for range silent {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	for i := range 5 {
		start := time.Now()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, "squid.80\n")
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(b) != "up ready 100%\n" {
			t.Fatalf("real check %d: %q %v", i, b, err)
		}
		// The silent ones' send wait is 5 s: an answer well before it
		// means the real check did not wait behind them.
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("real check %d took %s with %d silent connections open", i, d, silent)
		}
	}
}
