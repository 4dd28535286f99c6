//go:build linux

package conns

import (
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"

	"github.com/http-status/http_status/internal/nstest"
	"github.com/http-status/http_status/internal/testenv"
)

// server accepts connections on ln and keeps each open until its client
// closes it (as a service does: a connection it left in CLOSE-WAIT would
// still count) or the test ends.
func server(t *testing.T, ln net.Listener) {
	t.Helper()
	testenv.AcceptEach(t, ln, func(c net.Conn) {
		t.Cleanup(func() { c.Close() })
		io.Copy(io.Discard, c)
		c.Close()
	})
}

// dialN opens n connections to addr (through dial) and returns them; they
// are closed when the test ends.
func dialN(t *testing.T, n int, dial func() (net.Conn, error)) []net.Conn {
	t.Helper()
	var cs []net.Conn
	for range n {
		c, err := dial()
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
		t.Cleanup(func() { c.Close() })
	}
	return cs
}

// waitCount polls c until port has want connections.
func waitCount(t *testing.T, c *Counter, port uint16, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := c.Count([]uint16{port})
		if err != nil {
			t.Fatal(err)
		}
		if got[port] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("port %d: %d connections, want %d", port, got[port], want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ssCount is what ss says: the command of the README.
func ssCount(t *testing.T, port uint16) int {
	t.Helper()
	ss, err := exec.LookPath("ss")
	if err != nil {
		t.Log("ss not installed (iproute2): not comparing with it")
		return -1
	}
	out, err := exec.Command(ss, "-Htn", "state", "established", "state", "close-wait", fmt.Sprintf("( sport = :%d )", port)).Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	return strings.Count(string(out), "\n")
}

// TestCountLoopback counts IPv4 and IPv6 connections on loopback, apart
// from another port's, agrees with ss, follows closes, and gives the same
// answer without the in-kernel filter (more ports than it takes).
func TestCountLoopback(t *testing.T) {
	c, err := NewCounter()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, l4, l6 := testenv.ListenBoth(t)
	port := uint16(p)
	server(t, l4)
	server(t, l6)
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	server(t, other)
	oport := uint16(other.Addr().(*net.TCPAddr).Port)

	v4 := dialN(t, 3, func() (net.Conn, error) { return net.Dial("tcp4", l4.Addr().String()) })
	dialN(t, 2, func() (net.Conn, error) { return net.Dial("tcp6", l6.Addr().String()) })
	dialN(t, 4, func() (net.Conn, error) { return net.Dial("tcp", other.Addr().String()) })

	waitCount(t, c, port, 5)
	got, err := c.Count([]uint16{port, oport})
	if err != nil || got[port] != 5 || got[oport] != 4 || len(got) != 2 {
		t.Fatalf("Count = %v, %v; want %d:5 %d:4", got, err, port, oport)
	}
	if n := ssCount(t, port); n >= 0 && n != 5 {
		t.Errorf("ss counts %d on port %d, we count 5", n, port)
	}
	// The kernel applied the filter: it sent only the sockets asked for
	// (not the 9 client ends, nor the other port's).
	if _, err := c.Count([]uint16{port}); err != nil || c.seen != 5 {
		t.Errorf("kernel sent %d sockets for a filtered count of 5 (%v)", c.seen, err)
	}

	// Beyond maxFilterPorts the kernel sends every established socket and
	// the ports are picked out here: same answer.
	many := []uint16{port, oport}
	for p := uint16(1); len(many) <= maxFilterPorts+5; p++ {
		if p != port && p != oport {
			many = append(many, p)
		}
	}
	got, err = c.Count(many)
	if c.seen < 18 {
		t.Errorf("unfiltered dump saw %d sockets, want at least the test's 18", c.seen)
	}
	if err != nil || got[port] != 5 || got[oport] != 4 || len(got) != len(many) {
		t.Fatalf("Count(%d ports) = %d:%d %d:%d (%d keys), %v", len(many), port, got[port], oport, got[oport], len(got), err)
	}
	// A full filter (maxFilterPorts tests) is accepted by the kernel.
	got, err = c.Count(many[:maxFilterPorts])
	if err != nil || got[port] != 5 || got[oport] != 4 || c.noFilter {
		t.Fatalf("Count(%d ports, filtered) = %d:%d, %v (filter refused: %v)", maxFilterPorts, port, got[port], err, c.noFilter)
	}

	for _, conn := range v4[:2] {
		conn.Close()
	}
	waitCount(t, c, port, 3)
	if n := ssCount(t, port); n >= 0 && n != 3 {
		t.Errorf("ss counts %d on port %d after closes, we count 3", n, port)
	}
	if got, err := c.Count(nil); err != nil || len(got) != 0 {
		t.Errorf("Count(nil) = %v, %v", got, err)
	}
}

// TestCountNamespace counts connections in a namespace of the test's own,
// reached over a veth pair from another namespace (IPv4 and IPv6), plus a
// loopback one inside it; a counter in the host's namespace does not see
// them.
func TestCountNamespace(t *testing.T) {
	srv := nstest.New(t)
	cli := nstest.New(t)
	nstest.Veth(t, srv, "hs0", []string{"10.199.0.1/24", "fd99::1/64"}, cli, "hs1", []string{"10.199.0.2/24", "fd99::2/64"})

	ln4 := nstest.Listen(t, srv, "tcp4", "10.199.0.1:0")
	port := ln4.Addr().(*net.TCPAddr).Port
	ln6 := nstest.Listen(t, srv, "tcp6", fmt.Sprintf("[fd99::1]:%d", port))
	lnLo := nstest.Listen(t, srv, "tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	for _, ln := range []net.Listener{ln4, ln6, lnLo} {
		server(t, ln)
	}
	dialN(t, 2, func() (net.Conn, error) { return nstest.Dial(cli, "tcp4", ln4.Addr().String()) })
	dialN(t, 3, func() (net.Conn, error) { return nstest.Dial(cli, "tcp6", ln6.Addr().String()) })
	dialN(t, 1, func() (net.Conn, error) { return nstest.Dial(srv, "tcp4", lnLo.Addr().String()) })

	c, err := NewCounterAt(srv)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitCount(t, c, uint16(port), 6)

	// The client namespace has the other ends (local port ephemeral).
	cc, err := NewCounterAt(cli)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if got, err := cc.Count([]uint16{uint16(port)}); err != nil || got[uint16(port)] != 0 {
		t.Errorf("client namespace counts %v, %v; want 0 (its sockets' local ports are ephemeral)", got, err)
	}
	host, err := NewCounterAt(netns.None())
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	if got, err := host.Count([]uint16{uint16(port)}); err != nil || got[uint16(port)] >= 6 {
		t.Errorf("host namespace counts %v, %v: it sees the test namespace's connections", got, err)
	}
	// The listeners: in the server's namespace, not in the client's.
	if ok, err := c.Listening(uint16(port)); err != nil || !ok {
		t.Errorf("Listening(%d) in the server's namespace: %v, %v; want true", port, ok, err)
	}
	if ok, err := cc.Listening(uint16(port)); err != nil || ok {
		t.Errorf("Listening(%d) in the client's namespace: %v, %v; want false", port, ok, err)
	}
	if ok, err := cc.Listening(uint16(port + 1)); err != nil || ok {
		t.Errorf("Listening(%d), a port nothing listens on: %v, %v; want false", port+1, ok, err)
	}
}

func TestPortFilterShape(t *testing.T) {
	b := portFilter([]uint16{80, 443, 8080})
	if len(b) != 3*12+2*4 {
		t.Fatalf("len %d", len(b))
	}
	// Every yes and no lands on an op or at the end (accept) or 4 past
	// it (reject), as the kernel's audit requires.
	ops := map[int]bool{0: true}
	for off := 0; off < len(b); {
		size := 4
		if b[off] == inetDiagBcSCond {
			size = 12
		}
		off += size
		ops[off] = true
	}
	for off := 0; off < len(b); {
		code, yes, no := b[off], int(b[off+1]), int(nl.NativeEndian().Uint16(b[off+2:off+4]))
		if !ops[off+yes] || (!ops[off+no] && off+no != len(b)+4) {
			t.Errorf("op %d at %d: yes %d no %d lands nowhere", code, off, yes, no)
		}
		if code == inetDiagBcSCond {
			off += 12
		} else {
			off += 4
		}
	}
}

// counterAndListener is a Counter (the test skips where sock_diag is not
// there) and a listener on 127.0.0.1, both closed when tb ends.
func counterAndListener(tb testing.TB) (*Counter, net.Listener) {
	tb.Helper()
	c, err := NewCounter()
	if err != nil {
		tb.Skipf("no sock_diag here: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	return c, ln
}

// TestCountIdle: of real loopback connections silent for longer than the
// idle time, only the one whose last request was answered is idle; a
// first request and a later request that the service is still working
// on (read, not answered) keep theirs busy however long they are silent.
func TestCountIdle(t *testing.T) {
	c, ln := counterAndListener(t)
	// The service answers "ping" and works forever on "slow", reading
	// exactly one request at a time so nothing is left unread.
	testenv.AcceptEach(t, ln, func(s net.Conn) {
		t.Cleanup(func() { s.Close() })
		req := make([]byte, 5)
		for {
			if _, err := io.ReadFull(s, req); err != nil || string(req) != "ping\n" {
				return
			}
			if _, err := io.WriteString(s, "pong\n"); err != nil {
				return
			}
		}
	})
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	dial := func() (net.Conn, error) { return net.Dial("tcp4", ln.Addr().String()) }
	ping := func(cl net.Conn) {
		t.Helper()
		if _, err := io.WriteString(cl, "ping\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(cl, make([]byte, 5)); err != nil {
			t.Fatal(err)
		}
	}
	cs := dialN(t, 3, dial)
	first, second, answered := cs[0], cs[1], cs[2]
	if _, err := io.WriteString(first, "slow\n"); err != nil { // in the tick of the accept, likely
		t.Fatal(err)
	}
	ping(second)
	ping(answered)
	// The next request on second must come in a later tick than the
	// answer went out: a tick is 10 ms at most.
	time.Sleep(20 * time.Millisecond)
	if _, err := io.WriteString(second, "slow\n"); err != nil {
		t.Fatal(err)
	}
	waitCount(t, c, port, 3)
	if got, err := c.CountIdle([]uint16{port}, time.Hour); err != nil || got[port] != (PortConns{Open: 3}) {
		t.Fatalf("idle for an hour: %+v, %v; want 3 open, none idle", got, err)
	}

	const idle = 200 * time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := c.CountIdle([]uint16{port}, idle)
		if err != nil {
			t.Fatal(err)
		}
		if got[port].Idle > 0 {
			// answered was the last to speak: the others have been
			// silent for idle too.
			if got[port] != (PortConns{Open: 3, Idle: 1}) || got[port].Busy() != 2 {
				t.Fatalf("after %v of silence: %+v, want 3 open, 1 idle", idle, got[port])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the answered connection never counted idle: %+v", got[port])
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A second look, well past idle: the requests in progress stay busy.
	time.Sleep(idle)
	if got, err := c.CountIdle([]uint16{port}, idle); err != nil || got[port] != (PortConns{Open: 3, Idle: 1}) {
		t.Fatalf("later: %+v, %v; want 3 open, 1 idle", got[port], err)
	}
	// Count agrees on what is open.
	if got, err := c.Count([]uint16{port}); err != nil || got[port] != 3 {
		t.Fatalf("Count: %v, %v", got, err)
	}
}

// TestCountHalfClosed: a client that sends its request and then closes its
// side (shutdown SHUT_WR: its socket FIN-WAIT-2, the service's CLOSE-WAIT)
// is still waiting for the answer, and the connection counts, busy, until
// the service closes it. Once the service has answered, a CLOSE-WAIT
// connection whose end of stream the service never read is idle by
// --idle's rule (the FIN is not an unread request).
func TestCountHalfClosed(t *testing.T) {
	c, ln := counterAndListener(t)
	answer, done := make(chan struct{}), make(chan struct{})
	testenv.AcceptEach(t, ln, func(s net.Conn) {
		defer s.Close()
		// Exactly the request: the end of stream stays unread.
		if _, err := io.ReadFull(s, make([]byte, 5)); err != nil {
			return
		}
		<-answer
		io.WriteString(s, "pong\n")
		<-done
	})
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	cl, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := io.WriteString(cl, "ping\n"); err != nil {
		t.Fatal(err)
	}
	if err := cl.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	waitCount(t, c, port, 1)
	if n := ssCount(t, port); n >= 0 && n != 1 {
		t.Errorf("ss counts %d on port %d, we count 1", n, port)
	}
	const idle = 100 * time.Millisecond
	time.Sleep(2 * idle)
	if got, err := c.CountIdle([]uint16{port}, idle); err != nil || got[port] != (PortConns{Open: 1}) {
		t.Fatalf("request in flight on a half-closed connection: %+v, %v; want 1 open, busy", got[port], err)
	}
	close(answer)
	if _, err := io.ReadFull(cl, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := c.CountIdle([]uint16{port}, idle)
		if err != nil {
			t.Fatal(err)
		}
		if got[port] == (PortConns{Open: 1, Idle: 1}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("answered, end of stream unread: %+v, want 1 open, idle", got[port])
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(done)
	waitCount(t, c, port, 0)
}

// BenchmarkCountIdle compares one count with and without tcp_info on 1,000
// established loopback connections (drain --wait counts with it).
func BenchmarkCountIdle(b *testing.B) {
	c, ln := counterAndListener(b)
	testenv.AcceptEach(b, ln, func(s net.Conn) { b.Cleanup(func() { s.Close() }) })
	for range 1000 {
		cl, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cl.Close() })
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	b.Run("Count", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.Count([]uint16{port}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CountIdle", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.CountIdle([]uint16{port}, time.Second); err != nil {
				b.Fatal(err)
			}
		}
	})
}
