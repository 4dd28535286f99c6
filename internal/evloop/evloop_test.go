//go:build linux

package evloop

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/http-status/http_status/internal/testenv"
)

// lineHandler is a test protocol: each line "x" is answered "got x\n";
// "close" closes, "linger" closes lingering, "detach" hands the connection
// to a goroutine that answers "detached" and closes it, "slow" is not
// answered (the deadline answers "expired"). A connection has idle time
// between lines, then its deadline passes.
type lineHandler struct {
	idle      time.Duration
	maxPend   atomic.Int64 // the most output ever pending after a write
	expired   atomic.Int64
	detached  sync.WaitGroup
	gate      chan struct{} // when set, a detached connection is released only once it is closed
	stopAware bool
	sndbuf    int // SO_SNDBUF for accepted connections, when set
	// "block" holds the loop: it sends on blocked, then waits on block
	// (a loop kept from its events, as a loaded machine does).
	blocked, block chan struct{}
	// greet: Open writes "hi\n" and closes (a server that speaks first).
	greet bool
}

type lineState struct{ lines int }

func (h *lineHandler) Open(c *Conn[lineState]) {
	if h.greet {
		c.WriteString("hi\n")
		c.Close()
		return
	}
	c.SetDeadline(h.idle)
	if h.sndbuf > 0 {
		_ = unix.SetsockoptInt(c.FD(), unix.SOL_SOCKET, unix.SO_SNDBUF, h.sndbuf)
	}
}

func (h *lineHandler) Input(c *Conn[lineState], in []byte) int {
	consumed := 0
	for c.Pending() <= c.OutCap() {
		i := bytes.IndexByte(in[consumed:], '\n')
		if i < 0 {
			break
		}
		line := string(in[consumed : consumed+i])
		consumed += i + 1
		c.State.lines++
		switch line {
		case "close":
			c.WriteString("bye\n")
			c.Close()
			return consumed
		case "linger":
			c.WriteString("bye\n")
			c.CloseLinger(time.Second)
			return consumed
		case "detach":
			fd, pending, release := c.Detach()
			h.detached.Add(1)
			go func() {
				defer h.detached.Done()
				f := os.NewFile(uintptr(fd), "detached")
				_ = unix.SetNonblock(fd, false)
				_, _ = f.Write(pending)
				_, _ = f.WriteString("detached\n")
				f.Close()
				if h.gate != nil {
					<-h.gate
				}
				release()
			}()
			return len(in)
		case "slow":
			continue
		case "block":
			h.blocked <- struct{}{}
			<-h.block
		}
		c.WriteString("got " + line + "\n")
		if p := int64(c.Pending()); p > h.maxPend.Load() {
			h.maxPend.Store(p)
		}
		if h.stopAware && c.Stopping() {
			c.Close()
			return consumed
		}
	}
	if consumed == len(in) {
		c.SetIdle(true)
	}
	c.SetDeadline(h.idle)
	return consumed
}

func (h *lineHandler) EOF(c *Conn[lineState], in []byte) {}

func (h *lineHandler) Expired(c *Conn[lineState], in []byte) {
	h.expired.Add(1)
	c.WriteString("expired\n")
}

// serve runs a server for h on 127.0.0.1 until the test ends and returns
// its address.
func serve(t *testing.T, h *lineHandler, opts Options) (*Server[lineState], string, context.CancelFunc) {
	t.Helper()
	ln, err := ListenReusePort("127.0.0.1:0", max(opts.Loops, 1))
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	fds, err := ListenerFDs(ln, true)
	if err != nil {
		t.Fatal(err)
	}
	s, cancel := serveFDs(t, h, fds, opts)
	return s, addr, cancel
}

// serveFDs runs a server for h on the listening sockets fds until the test
// ends.
func serveFDs(t *testing.T, h *lineHandler, fds []int, opts Options) (*Server[lineState], context.CancelFunc) {
	t.Helper()
	s, err := New[lineState](h, fds, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
		h.detached.Wait()
	})
	return s, cancel
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c.(*net.TCPConn)
}

func TestLinesAndPipelining(t *testing.T) {
	h := &lineHandler{idle: 5 * time.Second}
	_, addr, _ := serve(t, h, Options{Loops: 2})
	c := dial(t, addr)
	var want strings.Builder
	var send strings.Builder
	for i := range 500 {
		fmt.Fprintf(&send, "l%d\n", i)
		fmt.Fprintf(&want, "got l%d\n", i)
	}
	// In pieces that split lines.
	b := []byte(send.String())
	go func() {
		for len(b) > 0 {
			n := min(len(b), 37)
			_, _ = c.Write(b[:n])
			b = b[n:]
		}
	}()
	got := make([]byte, want.Len())
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != want.String() {
		t.Fatalf("answers differ")
	}
	_, _ = c.Write([]byte("close\n"))
	rest, err := io.ReadAll(c)
	if err != nil || string(rest) != "bye\n" {
		t.Fatalf("after close: %q %v", rest, err)
	}
}

// TestBackpressure: a client that pipelines a megabyte of requests without
// reading makes the server hold at most OutCap plus one answer; once it
// reads, every answer comes, in order.
func TestBackpressure(t *testing.T) {
	t.Parallel()
	h := &lineHandler{idle: 10 * time.Second}
	const outCap = 4 << 10
	h.sndbuf = 4 << 10 // so that the kernel does not take it all
	_, addr, _ := serve(t, h, Options{Loops: 1, OutCap: outCap, MaxInput: 4 << 10})
	c := dial(t, addr)
	const n = 100000
	var send bytes.Buffer
	for i := range n {
		fmt.Fprintf(&send, "%06d\n", i)
	}
	werr := make(chan error, 1)
	go func() { _, err := c.Write(send.Bytes()); werr <- err }()
	// Not reading: wait until the server stopped reading us.
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := h.maxPend.Load()
		time.Sleep(50 * time.Millisecond)
		if p > 0 && p == h.maxPend.Load() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("server never stopped")
		}
	}
	if p := h.maxPend.Load(); p > int64(outCap+len("got 000000\n")) {
		t.Fatalf("server held %d bytes of output for a client that does not read (cap %d)", p, outCap)
	}
	r := bufio.NewReader(c)
	for i := range n {
		// The deadline (dial's, 10 s) is renewed as answers come: it
		// catches answers that stop, not the pace, which on one busy core
		// under -race left 100,000 answers unfinished at 10 s.
		if i%1000 == 0 {
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		}
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if want := fmt.Sprintf("got %06d\n", i); line != want {
			t.Fatalf("answer %d = %q, want %q", i, line, want)
		}
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if p := h.maxPend.Load(); p > int64(outCap+len("got 000000\n")) {
		t.Fatalf("server held %d bytes of output (cap %d)", p, outCap)
	}
}

func TestDeadline(t *testing.T) {
	h := &lineHandler{idle: 100 * time.Millisecond}
	s, addr, _ := serve(t, h, Options{Loops: 1})
	c := dial(t, addr)
	start := time.Now()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "expired\n" {
		t.Fatalf("silent client: %q %v", got, err)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > 2*time.Second {
		t.Fatalf("expired after %s, want ~100ms", d)
	}
	if s.Stats().Expired != 1 || h.expired.Load() != 1 {
		t.Fatalf("stats %+v", s.Stats())
	}
	// A deadline moved by each line keeps a talking client.
	c2 := dial(t, addr)
	r := bufio.NewReader(c2)
	for i := range 5 {
		time.Sleep(60 * time.Millisecond)
		fmt.Fprintf(c2, "x%d\n", i)
		if line, err := r.ReadString('\n'); err != nil || line != fmt.Sprintf("got x%d\n", i) {
			t.Fatalf("line %d: %q %v", i, line, err)
		}
	}
}

// TestMaxConns: beyond MaxConns a connection gets the Overload answer and a
// clean close (EOF, not a reset); once one closes, new ones are served.
func TestMaxConns(t *testing.T) {
	h := &lineHandler{idle: 10 * time.Second}
	s, addr, _ := serve(t, h, Options{Loops: 1, MaxConns: 2, Overload: func(fd int) { Write(fd, []byte("busy\n")) }})
	a, b := dial(t, addr), dial(t, addr)
	for _, c := range []*net.TCPConn{a, b} {
		fmt.Fprintf(c, "hi\n")
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "got hi\n" {
			t.Fatalf("%q %v", line, err)
		}
	}
	c := dial(t, addr)
	fmt.Fprintf(c, "hi\n")
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "busy\n" {
		t.Fatalf("over the limit: %q %v (want the overload answer and a clean close)", got, err)
	}
	if s.Stats().Overloaded != 1 {
		t.Fatalf("stats %+v", s.Stats())
	}
	a.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d := dial(t, addr)
		fmt.Fprintf(d, "again\n")
		line, _ := bufio.NewReader(d).ReadString('\n')
		if line == "got again\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not served again after a connection closed: %q", line)
		}
	}
}

// TestDetachCounts: a detached connection gets its pending output first,
// and counts against MaxConns until it is released.
func TestDetachCounts(t *testing.T) {
	h := &lineHandler{idle: 10 * time.Second, gate: make(chan struct{})}
	s, addr, _ := serve(t, h, Options{Loops: 1, MaxConns: 1, Overload: func(fd int) { Write(fd, []byte("busy\n")) }})
	c := dial(t, addr)
	fmt.Fprintf(c, "a\ndetach\n")
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "got a\ndetached\n" {
		t.Fatalf("detached: %q %v", got, err)
	}
	// Not released yet: it still counts.
	c2 := dial(t, addr)
	fmt.Fprintf(c2, "b\n")
	if got, err := io.ReadAll(c2); err != nil || string(got) != "busy\n" {
		t.Fatalf("while a detached connection is held: %q %v", got, err)
	}
	close(h.gate)
	h.detached.Wait()
	if s.Stats().Open != 0 {
		t.Fatalf("released connection still counted: %+v", s.Stats())
	}
	c3 := dial(t, addr)
	fmt.Fprintf(c3, "c\n")
	if line, err := bufio.NewReader(c3).ReadString('\n'); err != nil || line != "got c\n" {
		t.Fatalf("after the release: %q %v", line, err)
	}
}

// TestLingerNoReset: an answer followed by a close while the client still
// sends arrives whole: the server half-closes and drains instead of
// resetting.
func TestLingerNoReset(t *testing.T) {
	h := &lineHandler{idle: 10 * time.Second}
	_, addr, _ := serve(t, h, Options{Loops: 1})
	for range 20 {
		c := dial(t, addr)
		fmt.Fprintf(c, "linger\n%s\n", strings.Repeat("x", 64<<10))
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "bye\n" {
			t.Fatalf("%q %v", got, err)
		}
	}
}

// TestStop: on stop idle connections are closed at once, a request in
// progress still gets its answer within Grace, and new connections are
// refused.
func TestStop(t *testing.T) {
	h := &lineHandler{idle: 10 * time.Second, stopAware: true}
	_, addr, cancel := serve(t, h, Options{Loops: 2, Grace: 5 * time.Second})
	idle := dial(t, addr)
	fmt.Fprintf(idle, "a\n")
	r := bufio.NewReader(idle)
	if line, err := r.ReadString('\n'); err != nil || line != "got a\n" {
		t.Fatal(line, err)
	}
	busy := dial(t, addr)
	fmt.Fprintf(busy, "par") // half a line
	time.Sleep(50 * time.Millisecond)
	cancel()
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Fatalf("idle connection on stop: %q %v", rest, err)
	}
	fmt.Fprintf(busy, "tial\n")
	got, err := io.ReadAll(busy)
	if err != nil || string(got) != "got partial\n" {
		t.Fatalf("request in progress on stop: %q %v", got, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting after stop")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBalance: kept-alive connections end up spread over the loops.
func TestBalance(t *testing.T) {
	h := &lineHandler{idle: 10 * time.Second}
	ln, err := ListenReusePort("127.0.0.1:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	fds, _ := ListenerFDs(ln, true)
	s, _ := serveFDs(t, h, fds, Options{Loops: 4, Balance: true}) // one shared socket, 4 loops
	var conns []*net.TCPConn
	for i := range 40 {
		c := dial(t, addr)
		fmt.Fprintf(c, "k%d\n", i)
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != fmt.Sprintf("got k%d\n", i) {
			t.Fatal(line, err)
		}
		conns = append(conns, c)
	}
	lo, hi := int64(1<<62), int64(0)
	for _, l := range s.loops {
		n := l.live.Load()
		lo, hi = min(lo, n), max(hi, n)
	}
	if hi-lo > 2 {
		t.Errorf("loops hold %d to %d connections", lo, hi)
	}
	for _, c := range conns {
		fmt.Fprintf(c, "again\n")
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "got again\n" {
			t.Fatal("moved connection not served:", line, err)
		}
	}
}

// TestYieldOnlyForKeptConnections: a loop gives up the CPU after serving
// connections kept open after an answer (their clients ask again at once),
// not after the first request of a new connection, even one that arrives
// after the accept, as an agent check's line follows the handshake.
func TestYieldOnlyForKeptConnections(t *testing.T) {
	h := &lineHandler{idle: 10 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fds, err := ListenerFDs(ln, false) // no TCP_DEFER_ACCEPT: accepted before the line comes
	if err != nil {
		t.Fatal(err)
	}
	s, _ := serveFDs(t, h, fds, Options{Loops: 1})
	addr := ln.Addr().String()

	for i := range 20 {
		c := dial(t, addr)
		// Send once the loop has taken the connection, so that the
		// line is (almost always) an event of an open connection.
		for deadline := time.Now().Add(10 * time.Second); s.Stats().Accepted < uint64(i+1); {
			if time.Now().After(deadline) {
				t.Fatalf("connection %d not accepted in 10 s", i)
			}
			runtime.Gosched()
		}
		fmt.Fprintf(c, "close\n")
		if b, err := io.ReadAll(c); err != nil || string(b) != "bye\n" {
			t.Fatalf("connection %d: %q, %v", i, b, err)
		}
	}
	if y := s.yields.Load(); y != 0 {
		t.Errorf("the loop yielded %d times for 20 connections of one request each; want 0", y)
	}

	c := dial(t, addr)
	r := bufio.NewReader(c)
	for i := range 6 { // the answer to the 6th shows the loop has yielded after the 5th
		fmt.Fprintf(c, "k%d\n", i)
		if line, err := r.ReadString('\n'); err != nil || line != fmt.Sprintf("got k%d\n", i) {
			t.Fatal(line, err)
		}
	}
	if y := s.yields.Load(); y < 4 {
		t.Errorf("the loop yielded %d times for requests 2 to 5 on a kept-alive connection; want one each", y)
	}
}

// TestOutOfDescriptors runs a server in a child process whose descriptor
// limit is low, and opens more connections than it can hold: each gets an
// answer or a clean close (the spare descriptor), the server does not spin
// meanwhile, and serves again as soon as connections close.
func TestOutOfDescriptors(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("the child runs TestChildServer only")
	}
	t.Parallel() // its server is a child process: it waits, alongside TestBackpressure
	runChildServer(t)
}

const childEnv = "EVLOOP_CHILD"

func runChildServer(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildServer$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	testenv.DieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	r := bufio.NewReader(out)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	addr := strings.TrimSpace(strings.TrimPrefix(line, "addr "))

	ask := func(c net.Conn) (string, error) {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(c, "q\n"); err != nil {
			return "", err
		}
		return bufio.NewReader(c).ReadString('\n')
	}
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	served, busy := 0, 0
	for range 100 {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ask(c)
		switch {
		case got == "got q\n":
			served++
			held = append(held, c) // keep it open: it holds a descriptor
		case got == "busy\n" || (got == "" && errors.Is(err, io.EOF)):
			busy++
			c.Close()
		default:
			t.Fatalf("connection %d: %q %v (want an answer or a clean close, never a reset or a hang)", served+busy, got, err)
		}
	}
	if busy == 0 || served == 0 {
		t.Fatalf("served %d, busy %d: the limit did not bite", served, busy)
	}
	// Out of descriptors: the child must not spin.
	cpu0 := childCPU(t, cmd.Process.Pid)
	time.Sleep(500 * time.Millisecond)
	c, _ := net.DialTimeout("tcp", addr, 5*time.Second) // one more, while exhausted
	if c != nil {
		_, _ = ask(c)
		c.Close()
	}
	time.Sleep(500 * time.Millisecond)
	if d := childCPU(t, cmd.Process.Pid) - cpu0; d > 300*time.Millisecond {
		t.Errorf("the server used %s of CPU in 1s while out of descriptors", d)
	}
	// Free some: the next connection is served at once.
	for _, c := range held[:5] {
		c.Close()
	}
	held = held[5:]
	deadline := time.Now().Add(2 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := ask(c)
		c.Close()
		if got == "got q\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not serving again after descriptors were freed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("served %d, answered busy or closed cleanly %d", served, busy)
}

// childCPU is the user+system CPU time of pid.
func childCPU(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * time.Second / 100 // USER_HZ
}

// TestChildServer is the child of TestOutOfDescriptors.
func TestChildServer(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("runs as a child of TestOutOfDescriptors")
	}
	h := &lineHandler{idle: 30 * time.Second}
	ln, err := ListenReusePort("127.0.0.1:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	fds, _ := ListenerFDs(ln, true)
	s, err := New[lineState](h, fds, Options{Loops: 1, Overload: func(fd int) { Write(fd, []byte("busy\n")) }})
	if err != nil {
		t.Fatal(err)
	}
	// Leave room for the runtime and the test framework, then not much.
	var open int
	if des, err := os.ReadDir("/proc/self/fd"); err == nil {
		open = len(des)
	}
	lim := uint64(open + 30)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: lim, Max: lim}); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("addr %s\n", ln.Addr())
	_ = s.Serve(context.Background()) // until the parent kills us
}

// TestDeadlinesAcrossClockSteps: the wall clock steps (an NTP step, `date
// -s`, a VM resumed) while connections wait on deadlines. Stepped back an
// hour, a deadline must still come after its own wait, not an hour later: a
// silent agent connection is answered after the send wait, a slow client
// is cut off, idle ones are closed, or slots fill. Stepped forward, a
// deadline must not come early: an agent check whose line is on its way
// would be answered as the default service. The wall clock is stepped
// through the loops' reading of it (stepping the host's clock is not
// something a test may do; no namespace separates CLOCK_REALTIME).
func TestDeadlinesAcrossClockSteps(t *testing.T) {
	var step atomic.Int64
	wallClock = func() time.Time { return time.Now().Add(time.Duration(step.Load())) }
	t.Cleanup(func() { wallClock = time.Now })
	h := &lineHandler{idle: 300 * time.Millisecond}
	_, addr, _ := serve(t, h, Options{Loops: 1})

	// Back an hour, with one connection waiting and one that comes after.
	before := dial(t, addr)
	roundTrip(t, before, "a")
	step.Store(int64(-time.Hour))
	start := time.Now()
	after := dial(t, addr)
	for name, c := range map[string]*net.TCPConn{"connected before the step": before, "connected after": after} {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != "expired\n" {
			t.Fatalf("clock stepped back an hour, %s: %q %v after %s; want its deadline to pass after 300ms", name, line, err, time.Since(start).Round(time.Millisecond))
		}
	}

	// Forward an hour: a connection whose deadline is still 10 s off is
	// served. (Not the 300ms server's: the round trips below can take
	// longer than that on a loaded machine, and the deadline would then
	// pass rightly.)
	step.Store(0)
	s, addr, _ := serve(t, &lineHandler{idle: 10 * time.Second}, Options{Loops: 1})
	c := dial(t, addr)
	roundTrip(t, c, "b") // the loop has its deadline
	step.Store(int64(time.Hour))
	// The loop must have read the stepped clock before c's next line. A
	// batch that began before the step (the loop was awake) can answer
	// the other connection too, so one answer does not show it: wait
	// for the loop to block after the step, then have one more answer.
	other := dial(t, addr)
	for w := s.waits.Load(); s.waits.Load() == w; {
		roundTrip(t, other, "c")
	}
	roundTrip(t, other, "c")
	roundTrip(t, c, "d")
}

// roundTrip sends line on c and wants "got line" back.
func roundTrip(t *testing.T, c *net.TCPConn, line string) {
	t.Helper()
	fmt.Fprintf(c, "%s\n", line)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if got := string(buf[:n]); err != nil || got != "got "+line+"\n" {
		t.Fatalf("%s: got %q %v, want %q", line, got, err, "got "+line+"\n")
	}
}
