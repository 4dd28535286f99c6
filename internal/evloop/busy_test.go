//go:build linux

package evloop

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// holdLoop has the loop of addr (Loops: 1) run a "block" line and returns
// once the loop is held; a send on h.block lets it go on.
func holdLoop(t *testing.T, h *lineHandler, addr string) {
	t.Helper()
	a := dial(t, addr)
	fmt.Fprintf(a, "block\nclose\n")
	waitHeld(t, h)
}

func waitHeld(t *testing.T, h *lineHandler) {
	t.Helper()
	select {
	case <-h.blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not take the block line")
	}
}

// acked waits until the peer has acknowledged all that c sent: on loopback,
// until it is in the server's receive queue.
func acked(t *testing.T, c *net.TCPConn) {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := -1
		_ = raw.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) })
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still unacknowledged", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitOpen waits until s holds n connections.
func waitOpen(t *testing.T, s *Server[lineState], n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Open != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections held, want %d", s.Stats().Open, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestDeadlineAnsweredNotExpired: a deadline that passes while the loop is
// busy first reads what came meanwhile; when that was a request, answered
// with a lingering close, Expired must not be called as well (the agent
// would count a second reply and write it, which cut the linger short
// with a close over unread input: a reset).
func TestDeadlineAnsweredNotExpired(t *testing.T) {
	h := &lineHandler{idle: 200 * time.Millisecond, blocked: make(chan struct{}), block: make(chan struct{})}
	s, addr, _ := serve(t, h, Options{Loops: 1})
	var conns [2]*net.TCPConn
	var r *bufio.Reader
	for i := range conns {
		conns[i] = dial(t, addr)
		fmt.Fprintf(conns[i], "x\n") // accepted (TCP_DEFER_ACCEPT), answered, idle deadline 200 ms
		r = bufio.NewReader(conns[i])
		if line, err := r.ReadString('\n'); err != nil || line != "got x\n" {
			t.Fatal(line, err)
		}
	}
	c, b := conns[0], conns[1] // r reads b
	// The loop is held past b's deadline; the batch after it starts past
	// the deadline and is held too (c's line), and b's request comes in
	// then, after that batch's epoll_wait: the deadline finds it in the
	// socket.
	since := time.Now()
	holdLoop(t, h, addr)
	fmt.Fprintf(c, "block\nclose\n")
	for time.Since(since) < 2*h.idle { // a time to pass, not a synchronisation
		time.Sleep(10 * time.Millisecond)
	}
	h.block <- struct{}{}
	waitHeld(t, h)
	fmt.Fprintf(b, "linger\n%s", strings.Repeat("j", DefaultMaxInput+4096))
	acked(t, b) // all of it in the server's socket, so that the close lingers
	h.block <- struct{}{}
	rest, err := io.ReadAll(r)
	if err != nil || string(rest) != "bye\n" {
		t.Fatalf("after the answer: %q %v", rest, err)
	}
	// A round trip on the loop: it is past the batch that answered b.
	d := dial(t, addr)
	fmt.Fprintf(d, "close\n")
	if got, err := io.ReadAll(d); err != nil || string(got) != "bye\n" {
		t.Fatalf("round trip: %q %v", got, err)
	}
	if n := h.expired.Load(); n != 0 || s.Stats().Expired != 0 {
		t.Errorf("Expired called %d times (stats %d) for a connection answered", n, s.Stats().Expired)
	}
	b.Close() // ends the linger
	waitOpen(t, s, 0)
}

// TestStopReadsIdle: on stop an idle connection whose next request came in
// while the loop was busy gets its answer (then a close) rather than a
// close over unread input, which is a reset.
func TestStopReadsIdle(t *testing.T) {
	h := &lineHandler{idle: 10 * time.Second, stopAware: true, blocked: make(chan struct{}), block: make(chan struct{})}
	s, addr, cancel := serve(t, h, Options{Loops: 1, Grace: 5 * time.Second})
	b := dial(t, addr)
	fmt.Fprintf(b, "x\n")
	r := bufio.NewReader(b)
	if line, err := r.ReadString('\n'); err != nil || line != "got x\n" {
		t.Fatal(line, err)
	}
	holdLoop(t, h, addr)
	fmt.Fprintf(b, "y\n")
	acked(t, b)
	cancel()
	for !s.stopping.Load() {
		time.Sleep(time.Millisecond)
	}
	h.block <- struct{}{}
	rest, err := io.ReadAll(r)
	if err != nil || string(rest) != "got y\n" {
		t.Fatalf("idle connection with a request on stop: %q %v", rest, err)
	}
}

// TestInboxOnStop: an idle connection passed by balance to a loop that
// has begun its stop (the passing loop had not seen it yet) is closed as
// beginStop closes idle ones, not kept until Grace, and its place is given
// back. (White-box: the race is between two loops' batches.)
func TestInboxOnStop(t *testing.T) {
	ln, err := ListenReusePort("127.0.0.1:0", 2)
	if err != nil {
		t.Fatal(err)
	}
	fds, err := ListenerFDs(ln, true)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New[lineState](&lineHandler{}, fds, Options{Balance: true, Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.closeLoops()
	defer unix.Close(s.loops[0].lfd) // the loop that does not stop here
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pair[1])
	from, to := s.loops[0], s.loops[1]
	to.beginStop()
	s.nconns.Add(1)
	c := from.newConn(pair[0])
	c.fresh, c.idle = false, true
	from.conns[c.fd], from.n = nil, from.n-1
	from.live.Add(-1)
	to.live.Add(1)
	to.inbox = append(to.inbox, c)
	to.takeInbox()
	if !c.closed || s.nconns.Load() != 0 || to.n != 0 {
		t.Errorf("idle connection passed to a stopping loop: closed %v, %d held, loop holds %d", c.closed, s.nconns.Load(), to.n)
	}
}

// TestOpenWritesAndCloses: what Open writes is sent at once, and a Close
// there closes, without waiting for the client to send (before, the
// answer waited for the client's first bytes, which then made the loop
// spin: a closing connection is not read, and its EPOLLIN stayed armed).
func TestOpenWritesAndCloses(t *testing.T) {
	h := &lineHandler{greet: true}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fds, err := ListenerFDs(ln, false) // accepted before the client sends
	if err != nil {
		t.Fatal(err)
	}
	s, _ := serveFDs(t, h, fds, Options{Loops: 1})
	c := dial(t, ln.Addr().String())
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "hi\n" {
		t.Fatalf("greeting: %q %v", got, err)
	}
	waitOpen(t, s, 0)
}

// TestIdleConnectionLetsTheLoopSleep: a loop whose only connection is idle
// (a balancer's kept-alive check connection between two checks) blocks in
// epoll_wait until that connection's deadline, instead of waking every
// tick: it woke 100 times a second, which with Go's sysmon woken along
// cost an idle daemon about 1.4% of a core per such loop (bench/soak,
// BENCHMARKS.md). The deadline still comes on time.
func TestIdleConnectionLetsTheLoopSleep(t *testing.T) {
	h := &lineHandler{idle: 10 * time.Second}
	s, addr, _ := serve(t, h, Options{Loops: 1})
	c := dial(t, addr)
	r := bufio.NewReader(c)
	fmt.Fprintf(c, "a\n")
	if line, err := r.ReadString('\n'); err != nil || line != "got a\n" {
		t.Fatal(line, err)
	}
	before := s.waits.Load()
	const window = 500 * time.Millisecond // the measurement, not a synchronisation
	time.Sleep(window)
	if n := s.waits.Load() - before; n > 3 {
		t.Errorf("the loop blocked %d times in %s with one idle connection due in 10 s; want it to sleep through (at most 3)", n, window)
	}

	// A deadline still ends the connection in time.
	h2 := &lineHandler{idle: 300 * time.Millisecond}
	_, addr2, _ := serve(t, h2, Options{Loops: 1})
	c2 := dial(t, addr2)
	start := time.Now()
	c2.SetReadDeadline(start.Add(10 * time.Second))
	if _, err := io.ReadAll(c2); err != nil {
		t.Fatal("idle connection not closed by its deadline:", err)
	}
	if took := time.Since(start); took < 300*time.Millisecond || took > 3*time.Second {
		t.Errorf("idle connection closed after %s, want about 300ms", took)
	}
}
