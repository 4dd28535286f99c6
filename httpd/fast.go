//go:build linux

package httpd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FastSupported reports whether [ServeFast] runs the epoll engine here
// (Linux); elsewhere it serves with net/http.
const FastSupported = true

// engine is the epoll responder: N loops, each with its own epoll instance,
// its own listening socket (SO_REUSEPORT) or a share of one inherited socket
// (EPOLLEXCLUSIVE), and the connections it accepted.
type engine struct {
	c        *Checker
	opts     FastOptions
	handoff  *handoffListener
	nconns   atomic.Int64
	draining atomic.Bool
	loops    []*loop
	hwg      sync.WaitGroup // handoffs in progress
}

// fconn is one connection owned by a loop.
type fconn struct {
	fd         int
	in         []byte // the start of a request not complete yet (from the loop's pool), or nil
	out        []byte // answer bytes the socket did not take yet, or nil
	deadline   int64  // unix nanoseconds; the sweep closes the connection after it
	served     bool   // answered at least one request (an idle one may close on stop)
	closing    bool   // close once out is flushed
	nodelay    bool   // TCP_NODELAY set (once it is kept alive)
	registered bool   // in the loop's epoll set
}

type loop struct {
	e      *engine
	epfd   int
	lfd    int // listening socket; -1 once closed
	ownLfd bool
	evfd   int // eventfd: wakes the loop to stop
	conns  []*fconn
	n      int // connections owned
	events [128]unix.EpollEvent
	rbuf   []byte
	wbuf   []byte
	pool   [][]byte
	date   httpDate
	now    time.Time
	nowNs  int64
	req    fastReq

	acceptOff   bool  // listening socket removed from epoll (EMFILE pause, or stopping)
	acceptAgain int64 // when to re-arm it after EMFILE
	stopping    bool
	stopBy      int64
	stopped     chan struct{} // closed once the loop no longer uses its listening socket

	live        atomic.Int64 // connections owned (l.n), read by other loops
	inboxMu     sync.Mutex
	inbox       []*fconn // connections other loops pass to this one
	inboxClosed bool
}

// balance passes c, a connection kept alive after its first answer and not
// yet in any epoll set, to the loop with the fewest connections when that
// is at least two fewer than ours. The kernel spreads connections over the
// SO_REUSEPORT sockets by a hash, and one shared socket gives them to
// whichever loop wakes first: both can leave one loop with many more
// keep-alive clients than another, and their requests then wait longer
// (measured: keep-alive p99 of 4-7 ms in some runs, ~1 ms in every run
// once balanced).
// Connection-per-request clients are answered and closed before this and
// never move.
func (l *loop) balance(c *fconn) {
	if len(l.e.loops) < 2 || l.e.draining.Load() {
		return
	}
	var to *loop
	for _, m := range l.e.loops {
		if m != l && (to == nil || m.live.Load() < to.live.Load()) {
			to = m
		}
	}
	if l.live.Load()-to.live.Load() < 2 {
		return
	}
	to.inboxMu.Lock()
	if to.inboxClosed {
		to.inboxMu.Unlock()
		return
	}
	l.conns[c.fd] = nil
	l.n--
	l.live.Add(-1)
	to.live.Add(1)
	to.inbox = append(to.inbox, c)
	to.inboxMu.Unlock()
	one := [8]byte{1}
	_, _ = write(to.evfd, one[:])
}

// takeInbox adopts the connections other loops passed.
func (l *loop) takeInbox() {
	l.inboxMu.Lock()
	in := l.inbox
	l.inbox = nil
	l.inboxMu.Unlock()
	for _, c := range in {
		for c.fd >= len(l.conns) {
			l.conns = append(l.conns, make([]*fconn, len(l.conns)+64)...)
		}
		l.conns[c.fd] = c
		l.n++
		if err := l.setEvents(c, unix.EPOLLIN); err != nil {
			l.close(c)
		}
	}
}

const (
	rbufSize = 16 << 10
	// inBufSize holds one incomplete request: the limit plus a little so
	// that a request just over it is seen as such.
	inBufExtra = 512
)

// limit is the most a request's header block (request line included) may
// take: net/http's rule, MaxHeaderBytes plus the 4096 bytes of slack it
// allows (its bufio.Reader), so both engines answer 431 at the same size.
func (e *engine) limit() int { return e.opts.MaxHeaderBytes + 4096 }

// newEngine creates the loops; the listening sockets are fds (one per loop) or
// one fd shared by all.
func newEngine(c *Checker, opts FastOptions, fds []int) (*engine, error) {
	e := &engine{c: c, opts: opts, handoff: newHandoffListener()}
	for i := 0; i < opts.Loops; i++ {
		l := &loop{e: e, lfd: fds[0], stopped: make(chan struct{}), rbuf: make([]byte, rbufSize), wbuf: make([]byte, 0, 16<<10)}
		if len(fds) > 1 {
			l.lfd = fds[i]
			l.ownLfd = true
		}
		var err error
		if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
			e.closeLoops()
			return nil, fmt.Errorf("epoll_create1: %w", err)
		}
		e.loops = append(e.loops, l)
		if l.evfd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
			l.evfd = -1
			e.closeLoops()
			return nil, fmt.Errorf("eventfd: %w", err)
		}
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(l.evfd)}); err != nil {
			e.closeLoops()
			return nil, fmt.Errorf("epoll_ctl eventfd: %w", err)
		}
		if err := l.armListener(); err != nil {
			e.closeLoops()
			return nil, fmt.Errorf("epoll_ctl listener: %w", err)
		}
	}
	return e, nil
}

func (e *engine) closeLoops() {
	for _, l := range e.loops {
		if l.epfd > 0 {
			unix.Close(l.epfd)
		}
		if l.evfd > 0 {
			unix.Close(l.evfd)
		}
	}
}

func (l *loop) armListener() error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(l.lfd)}
	if !l.ownLfd {
		// One socket shared by every loop: wake one loop per connection,
		// not all of them.
		ev.Events |= unix.EPOLLEXCLUSIVE
	}
	return unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.lfd, &ev)
}

// run is the event loop. It returns once stopping and every connection is
// closed.
func (l *loop) run() {
	if l.e.opts.LockOSThread {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	sweepEvery := l.e.sweepInterval().Nanoseconds()
	l.tick()
	nextSweep := l.nowNs + sweepEvery
	timeoutMs := int(sweepEvery / 1e6)
	for {
		// Poll without blocking first: under load there is work and the
		// goroutine keeps its P; block only when there is none.
		n, err := epollWaitNow(l.epfd, l.events[:])
		if n == 0 && err == nil {
			n, err = unix.EpollWait(l.epfd, l.events[:], timeoutMs)
		}
		if err != nil && err != unix.EINTR {
			panic(fmt.Sprintf("http_status fast engine: epoll_wait: %v", err))
		}
		l.tick()
		for i := 0; i < n; i++ {
			ev := &l.events[i]
			fd := int(ev.Fd)
			switch {
			case fd == l.lfd && !l.stopping:
				l.accept()
			case fd == l.evfd:
				var b [8]byte
				_, _ = unix.Read(l.evfd, b[:])
				l.takeInbox()
				if l.e.draining.Load() {
					l.beginStop()
				}
			default:
				c := l.get(fd)
				if c == nil {
					continue
				}
				if c.out != nil {
					if ev.Events&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
						l.flush(c)
					}
					continue
				}
				l.readable(c)
			}
		}
		if n > 0 {
			// Let another runnable thread on this CPU (the clients, the
			// services this host runs) go now rather than at the end
			// of our time slice: a loop that always has work otherwise
			// runs for whole slices while the requests its answers
			// unblock wait. Measured with wrk on 2 CPUs: p99 from ~4-5
			// ms to ~1-2 ms and 10-20% more requests per second. With
			// nothing else runnable it returns at once.
			_, _, _ = unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
		}
		if l.nowNs >= nextSweep || l.stopping {
			l.sweep()
			nextSweep = l.nowNs + sweepEvery
		}
		if l.stopping && (l.n == 0 || l.nowNs >= l.stopBy) {
			l.closeAll()
			return
		}
	}
}

func (l *loop) tick() {
	l.now = time.Now()
	l.nowNs = l.now.UnixNano()
}

func (e *engine) sweepInterval() time.Duration {
	d := time.Second
	for _, t := range []time.Duration{e.opts.ReadHeaderTimeout, e.opts.IdleTimeout, e.opts.WriteTimeout} {
		if t > 0 && t/4 < d {
			d = t / 4
		}
	}
	if d < 5*time.Millisecond {
		d = 5 * time.Millisecond
	}
	return d
}

func (l *loop) get(fd int) *fconn {
	if fd < 0 || fd >= len(l.conns) {
		return nil
	}
	return l.conns[fd]
}

// accept takes the connections waiting on the listening socket.
func (l *loop) accept() {
	for i := 0; i < 256; i++ {
		fd, errno := accept4(l.lfd)
		if errno != 0 {
			switch errno {
			case unix.EAGAIN, unix.EINTR, unix.ECONNABORTED:
			case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
				// Out of descriptors: stop polling the socket for a
				// while instead of spinning on it.
				_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, l.lfd, nil)
				l.acceptOff = true
				l.acceptAgain = l.nowNs + int64(100*time.Millisecond)
			}
			return
		}
		if l.e.nconns.Add(1) > int64(l.e.opts.MaxConns) {
			l.e.nconns.Add(-1)
			unix.Close(fd)
			continue
		}
		c := &fconn{fd: fd, deadline: l.nowNs + int64(l.e.opts.ReadHeaderTimeout)}
		for fd >= len(l.conns) {
			l.conns = append(l.conns, make([]*fconn, len(l.conns)+64)...)
		}
		l.conns[fd] = c
		l.n++
		l.live.Add(1)
		// With TCP_DEFER_ACCEPT the request is usually there already:
		// answer it before registering the socket, so that a
		// connection-per-request client costs no epoll_ctl at all.
		l.readable(c)
		if l.conns[fd] == c && !c.registered && c.served && c.in == nil && c.out == nil {
			l.balance(c)
		}
		if l.conns[fd] == c && !c.registered {
			if err := l.setEvents(c, unix.EPOLLIN); err != nil {
				l.close(c)
			}
		}
	}
}

// setEvents registers c with the loop's epoll set for ev, or changes its
// events.
func (l *loop) setEvents(c *fconn, ev uint32) error {
	op := unix.EPOLL_CTL_MOD
	if !c.registered {
		op = unix.EPOLL_CTL_ADD
		c.registered = true
	}
	return unix.EpollCtl(l.epfd, op, c.fd, &unix.EpollEvent{Events: ev, Fd: int32(c.fd)})
}

// readable reads what the client sent and answers every complete request.
func (l *loop) readable(c *fconn) {
	var data []byte
	if c.in != nil {
		n, errno := read(c.fd, c.in[len(c.in):cap(c.in)])
		if errno == unix.EAGAIN {
			return
		}
		if n == 0 && errno == 0 && len(c.in) > 0 {
			// The client ended its side with a request unfinished:
			// net/http decides what that is worth (often a 400).
			l.handoff(c, c.in, nil)
			return
		}
		if errno != 0 || n == 0 {
			l.close(c)
			return
		}
		data = c.in[:len(c.in)+n]
	} else {
		n, errno := read(c.fd, l.rbuf)
		if errno == unix.EAGAIN {
			return
		}
		if errno != 0 || n == 0 {
			l.close(c)
			return
		}
		data = l.rbuf[:n]
		if c.served {
			// The first bytes of a new request on an idle connection.
			c.deadline = l.nowNs + int64(l.e.opts.ReadHeaderTimeout)
		}
	}
	l.process(c, data)
}

// process answers the complete requests at the start of data and keeps the
// rest (an incomplete request) in c.in.
func (l *loop) process(c *fconn, data []byte) {
	out := l.wbuf[:0]
	date := l.date.get(l.now)
	draining := l.stopping
	partial, answered := false, false
	for len(data) > 0 && !c.closing {
		n, outcome := parseRequest(data, l.e.limit(), &l.req)
		switch outcome {
		case reqAnswer:
			var closeAfter bool
			out, closeAfter = fastAnswer(out, l.e.c, &l.req, date, draining)
			c.served = true
			c.closing = closeAfter
			data = data[n:]
			answered = true
			continue
		case reqIncomplete:
			partial = true
			if answered {
				// The next request began in these bytes: its header
				// timeout runs from now, as net/http's would, not from
				// the first byte of an earlier request.
				c.deadline = l.nowNs + int64(l.e.opts.ReadHeaderTimeout)
			}
			if c.in == nil {
				c.in = l.getBuf()
			}
			c.in = c.in[:copy(c.in[:cap(c.in)], data)]
			data = nil
			continue
		case reqBad:
			out = append(out, respBadRequest...)
			c.closing = true
		case reqTooLarge:
			out = append(out, respTooLarge...)
			c.closing = true
		case reqHandoff:
			l.handoff(c, data, out)
			return
		}
		break
	}
	if !partial && c.in != nil {
		l.putBuf(c)
	}
	l.write(c, out)
}

// write sends out; what the socket does not take waits in c.out for EPOLLOUT.
func (l *loop) write(c *fconn, out []byte) {
	if len(out) > 0 {
		n, errno := write(c.fd, out)
		if errno != 0 && errno != unix.EAGAIN {
			l.close(c)
			return
		}
		if n < len(out) {
			c.out = append([]byte(nil), out[max(n, 0):]...)
			c.deadline = l.nowNs + int64(l.e.opts.WriteTimeout)
			if err := l.setEvents(c, unix.EPOLLOUT); err != nil {
				l.close(c)
			}
			return
		}
	}
	l.settle(c)
}

// settle runs after the answers went out: close, or wait for more.
func (l *loop) settle(c *fconn) {
	if c.closing || (l.stopping && c.served && c.in == nil) {
		l.close(c)
		return
	}
	if c.in == nil {
		if c.served {
			c.deadline = l.nowNs + int64(l.e.opts.IdleTimeout)
			if !c.nodelay {
				c.nodelay = true
				_ = unix.SetsockoptInt(c.fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
			}
		}
	}
}

// flush sends c.out once the socket takes more.
func (l *loop) flush(c *fconn) {
	n, errno := write(c.fd, c.out)
	if errno != 0 && errno != unix.EAGAIN {
		l.close(c)
		return
	}
	if n < len(c.out) {
		c.out = c.out[max(n, 0):]
		return
	}
	c.out = nil
	if c.closing {
		l.close(c)
		return
	}
	if c.in != nil {
		// A request was begun behind the answers: we did not read while
		// they waited, so its header timeout starts now (net/http reads
		// the next request only once the answer is written).
		c.deadline = l.nowNs + int64(l.e.opts.ReadHeaderTimeout)
	}
	if err := l.setEvents(c, unix.EPOLLIN); err != nil {
		l.close(c)
		return
	}
	l.settle(c)
}

func (l *loop) getBuf() []byte {
	if n := len(l.pool); n > 0 {
		b := l.pool[n-1]
		l.pool = l.pool[:n-1]
		return b[:0]
	}
	return make([]byte, 0, l.e.limit()+inBufExtra)
}

func (l *loop) putBuf(c *fconn) {
	if c.in != nil && len(l.pool) < 64 {
		l.pool = append(l.pool, c.in[:0])
	}
	c.in = nil
}

func (l *loop) forget(c *fconn) {
	if l.conns[c.fd] == c {
		l.conns[c.fd] = nil
		l.n--
		l.live.Add(-1)
		l.e.nconns.Add(-1)
	}
	l.putBuf(c)
}

func (l *loop) close(c *fconn) {
	l.forget(c)
	unix.Close(c.fd) // also removes it from the epoll set
}

// handoff gives the connection to net/http: the request at the start of
// data (and what follows it) is replayed, after the answers already built
// in out have been sent.
func (l *loop) handoff(c *fconn, data, out []byte) {
	if c.registered {
		_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	}
	replay := append([]byte(nil), data...)
	pending := append(append([]byte(nil), c.out...), out...)
	fd := c.fd
	l.forget(c)
	f := os.NewFile(uintptr(fd), "http")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return
	}
	rc := &replayConn{Conn: nc, replay: replay}
	l.e.hwg.Add(1)
	go func() {
		defer l.e.hwg.Done()
		if len(pending) > 0 {
			_ = nc.SetWriteDeadline(time.Now().Add(l.e.opts.WriteTimeout))
			if _, err := nc.Write(pending); err != nil {
				nc.Close()
				return
			}
			_ = nc.SetWriteDeadline(time.Time{})
		}
		l.e.handoff.deliver(rc)
	}()
}

// sweep closes connections past their deadline and, when stopping, idle
// keep-alive ones.
func (l *loop) sweep() {
	if l.acceptOff && !l.stopping && l.nowNs >= l.acceptAgain {
		if l.armListener() == nil {
			l.acceptOff = false
		}
	}
	for _, c := range l.conns {
		if c == nil {
			continue
		}
		if c.deadline != 0 && l.nowNs >= c.deadline {
			if len(c.in) > 0 && c.out == nil && indexB(c.in, '\n') < 0 {
				// Part of a request line came, not all of it in
				// time: net/http answers 400 then (and closes silently
				// once the line is complete); so do we (best effort).
				_, _ = write(c.fd, unsafeBytes(respBadRequest))
			}
			l.close(c)
			continue
		}
		if l.stopping && c.served && c.in == nil && c.out == nil {
			l.close(c)
		}
	}
}

// beginStop stops accepting; connections finish their request in progress.
func (l *loop) beginStop() {
	if l.stopping {
		return
	}
	l.stopping = true
	l.stopBy = l.nowNs + int64(l.e.opts.grace)
	if !l.acceptOff {
		_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, l.lfd, nil)
		l.acceptOff = true
	}
	if l.ownLfd {
		unix.Close(l.lfd)
	}
	l.lfd = -1
	close(l.stopped)
}

func (l *loop) closeAll() {
	l.inboxMu.Lock()
	l.inboxClosed = true
	l.inboxMu.Unlock()
	l.takeInbox()
	for _, c := range l.conns {
		if c != nil {
			l.close(c)
		}
	}
	unix.Close(l.epfd)
	unix.Close(l.evfd)
}

// stop asks every loop to stop.
func (e *engine) stop() {
	e.draining.Store(true)
	one := [8]byte{1}
	for _, l := range e.loops {
		_, _ = unix.Write(l.evfd, one[:])
	}
}

// Raw system calls for the non-blocking socket operations: they never block,
// so they skip the scheduler's syscall bookkeeping.

func accept4(lfd int) (int, syscall.Errno) {
	r, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(lfd), 0, 0, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	return int(r), e
}

func read(fd int, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, unix.ENOBUFS
	}
	r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(r), e
}

func write(fd int, p []byte) (int, syscall.Errno) {
	r, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

func epollWaitNow(epfd int, events []unix.EpollEvent) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// listenerFDs returns the listening sockets for the loops: the ones of a
// [ReusePortListener], or a duplicate of ln's socket shared by all loops.
func listenerFDs(ln net.Listener, loops int) ([]int, func(), error) {
	if rp, ok := ln.(*ReusePortListener); ok {
		if len(rp.fds) != loops {
			return nil, nil, fmt.Errorf("fast engine: %d sockets for %d loops", len(rp.fds), loops)
		}
		return rp.takeFDs(), func() {}, nil
	}
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil, nil, fmt.Errorf("fast engine: listener %T has no file descriptor", ln)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, nil, err
	}
	fd := -1
	var derr error
	if err := raw.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, nil, err
	}
	if derr != nil {
		return nil, nil, fmt.Errorf("dup listener: %w", derr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 1)
	return []int{fd}, func() { unix.Close(fd) }, nil
}

// ReusePortListener is one SO_REUSEPORT listening socket per event loop, all
// bound to the same address, so the kernel spreads new connections over the
// loops. Its Accept is not used (it returns an error): [ServeFast] reads the
// sockets itself.
type ReusePortListener struct {
	mu   sync.Mutex
	fds  []int
	addr net.Addr
}

// ListenReusePort binds n SO_REUSEPORT sockets to addr (host:port; port 0
// picks one port for all).
func ListenReusePort(addr string, n int) (net.Listener, error) {
	if n < 1 {
		n = 1
	}
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, err
	}
	if ta.Port != 0 {
		// SO_REUSEPORT would let a second daemon of the same user bind
		// the port too and silently take half the checks. A plain bind
		// first fails, as net.Listen does, when anything holds the port.
		ln, err := net.ListenTCP("tcp", ta)
		if err != nil {
			return nil, err
		}
		ln.Close()
	}
	rp := &ReusePortListener{}
	port := ta.Port
	for i := 0; i < n; i++ {
		fd, bound, err := reusePortSocket(ta.IP, port, ta.Zone)
		if err != nil {
			rp.Close()
			return nil, fmt.Errorf("listen tcp %s: %w", addr, err)
		}
		rp.fds = append(rp.fds, fd)
		if i == 0 {
			rp.addr = bound
			port = bound.Port
		}
	}
	return rp, nil
}

func reusePortSocket(ip net.IP, port int, zone string) (int, *net.TCPAddr, error) {
	family := unix.AF_INET
	var sa unix.Sockaddr
	if ip4 := ip.To4(); ip == nil || ip4 != nil {
		s := &unix.SockaddrInet4{Port: port}
		if ip4 != nil {
			copy(s.Addr[:], ip4)
		}
		sa = s
	} else {
		family = unix.AF_INET6
		s := &unix.SockaddrInet6{Port: port}
		copy(s.Addr[:], ip.To16())
		if zone != "" {
			if ifi, err := net.InterfaceByName(zone); err == nil {
				s.ZoneId = uint32(ifi.Index)
			}
		}
		sa = s
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, nil, os.NewSyscallError("socket", err)
	}
	fail := func(op string, err error) (int, *net.TCPAddr, error) {
		unix.Close(fd)
		return -1, nil, os.NewSyscallError(op, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("setsockopt", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return fail("setsockopt", err)
	}
	// Wake us only when the request has arrived.
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 1)
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	if err := unix.Listen(fd, 4096); err != nil {
		return fail("listen", err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	a := &net.TCPAddr{}
	switch s := got.(type) {
	case *unix.SockaddrInet4:
		a.IP, a.Port = net.IP(append([]byte(nil), s.Addr[:]...)), s.Port
	case *unix.SockaddrInet6:
		a.IP, a.Port, a.Zone = net.IP(append([]byte(nil), s.Addr[:]...)), s.Port, zone
	}
	return fd, a, nil
}

// Accept is not supported: the engine reads the sockets itself.
func (rp *ReusePortListener) Accept() (net.Conn, error) {
	return nil, errors.New("ReusePortListener: use httpd.ServeFast")
}

// Addr is the bound address.
func (rp *ReusePortListener) Addr() net.Addr { return rp.addr }

// Close closes the sockets the engine has not taken.
func (rp *ReusePortListener) Close() error {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	for _, fd := range rp.fds {
		unix.Close(fd)
	}
	rp.fds = nil
	return nil
}

func (rp *ReusePortListener) takeFDs() []int {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	fds := rp.fds
	rp.fds = nil
	return fds
}

// Loops is the number of sockets (one per loop).
func (rp *ReusePortListener) Loops() int {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return len(rp.fds)
}

// ServeFast serves health checks on ln with the epoll engine until ctx is
// done, handing every request it does not answer itself to srv (whose
// Handler is normally h). See [FastOptions] for the limits. On ctx done it
// stops accepting, lets accepted connections get their answer, closes idle
// keep-alive connections, then stops srv like [Serve], all within grace.
func ServeFast(ctx context.Context, c *Checker, srv *http.Server, ln net.Listener, grace time.Duration, opts FastOptions) error {
	opts = opts.withDefaults(srv)
	if rp, ok := ln.(*ReusePortListener); ok {
		opts.Loops = rp.Loops()
	}
	opts.grace = grace
	fds, closeShared, err := listenerFDs(ln, opts.Loops)
	if err != nil {
		return err
	}
	var closeOnce sync.Once
	closeFDs := func() { closeOnce.Do(closeShared) }
	defer closeFDs()
	e, err := newEngine(c, opts, fds)
	if err != nil {
		if len(fds) > 1 {
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
		return err
	}
	// net/http serves the connections handed over; it starts stopping
	// once the loops are done, within what is left of grace.
	var stopAt atomic.Int64
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	herr := make(chan error, 1)
	go func() {
		herr <- serveUntil(hctx, srv, e.handoff, func() time.Time { return time.Unix(0, stopAt.Load()).Add(grace) })
	}()
	var wg sync.WaitGroup
	for _, l := range e.loops {
		wg.Go(l.run)
	}
	<-ctx.Done()
	stopAt.Store(time.Now().UnixNano())
	e.stop()
	// Once no loop polls the listening socket, close it: new connections
	// are refused, or, on a socket systemd holds, wait in its queue for
	// the next process.
	for _, l := range e.loops {
		<-l.stopped
	}
	closeFDs()
	lnErr := ln.Close()
	if errors.Is(lnErr, net.ErrClosed) {
		lnErr = nil
	}
	wg.Wait()
	e.hwg.Wait()
	hcancel()
	return errors.Join(<-herr, lnErr)
}
