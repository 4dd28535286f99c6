//go:build linux

package httpd

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The agent on Linux: event loops over non-blocking sockets, like the fast
// engine, instead of a goroutine per connection. An agent check is one
// connection per check, and per connection the goroutine model cost about
// 18 system calls (Go's accept sets five socket options, deadlines, the
// scheduler's wake-ups) against about 7 here; measured with bench/agentload
// it answered 0.88x nginx's connection-per-request rate, the loops ~1.2x.
// The protocol, replies, timeouts, linger and limits are those of
// [Agent.serveConn].

// agentConn is one connection owned by an agent loop.
type agentConn struct {
	fd       int
	n        int // bytes of the line read so far
	start    int64
	deadline int64 // unix ns: answer (reading) or close (lingering) then
	linger   bool  // answered; waiting for the peer to close
	polled   bool  // in the loop's epoll set and conns
	reads    int   // reads while lingering
	buf      [MaxAgentLine]byte
}

type agentLoop struct {
	a           *Agent
	lfd         int
	epfd        int
	evfd        int
	exclusive   bool
	conns       map[int]*agentConn
	free        []*agentConn
	events      [64]unix.EpollEvent
	wbuf        []byte
	acceptOff   bool
	acceptAgain int64
	backoff     time.Duration
	stopping    bool
	err         error
}

// serveLoops serves ln with event loops. It returns false, without doing
// anything, when ln is not a TCP listener it can take the socket of.
func (a *Agent) serveLoops(ctx context.Context, ln net.Listener) (bool, error) {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return false, nil
	}
	raw, err := tl.SyscallConn()
	if err != nil {
		return false, nil
	}
	lfd := -1
	var derr error
	if err := raw.Control(func(s uintptr) { lfd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil || derr != nil {
		return false, nil
	}
	defer ln.Close()
	defer unix.Close(lfd)
	if err := unix.SetNonblock(lfd, true); err != nil {
		return true, fmt.Errorf("agent: %w", err)
	}
	// One loop per P: measured with bench/agentload -c 64, 1.10x nginx
	// with two loops on 2 CPUs against 0.94x with one.
	n := max(1, runtime.GOMAXPROCS(0))
	loops := make([]*agentLoop, 0, n)
	defer func() {
		for _, l := range loops {
			unix.Close(l.epfd)
			unix.Close(l.evfd)
		}
	}()
	for i := 0; i < n; i++ {
		l := &agentLoop{a: a, lfd: lfd, conns: map[int]*agentConn{}, wbuf: make([]byte, 0, 1024), evfd: -1}
		if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
			return true, fmt.Errorf("agent: epoll_create1: %w", err)
		}
		loops = append(loops, l)
		if l.evfd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
			return true, fmt.Errorf("agent: eventfd: %w", err)
		}
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(l.evfd)}); err != nil {
			return true, fmt.Errorf("agent: epoll_ctl: %w", err)
		}
		// One socket shared by the loops: wake one loop per connection.
		l.exclusive = n > 1
		if err := l.armListener(); err != nil {
			return true, fmt.Errorf("agent: epoll_ctl listener: %w", err)
		}
	}
	wakeAll := func() {
		one := [8]byte{1}
		for _, l := range loops {
			_, _ = write(l.evfd, one[:])
		}
	}
	stop := context.AfterFunc(ctx, wakeAll)
	defer stop()
	var wg sync.WaitGroup
	for _, l := range loops {
		wg.Go(func() {
			l.run()
			if l.err != nil {
				wakeAll() // a fatal accept error stops every loop
			}
		})
	}
	wg.Wait()
	for _, l := range loops {
		if l.err != nil {
			return true, l.err
		}
	}
	return true, nil
}

func (l *agentLoop) armListener() error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(l.lfd)}
	if l.exclusive {
		ev.Events |= unix.EPOLLEXCLUSIVE
	}
	return unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.lfd, &ev)
}

// pauseAccept takes the listener out of the loop's set until until (unix
// ns; 0: until a connection closes).
func (l *agentLoop) pauseAccept(until int64) {
	if !l.acceptOff {
		_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, l.lfd, nil)
		l.acceptOff = true
	}
	l.acceptAgain = until
}

// agentTick is how often a loop looks at its connections' deadlines, and
// so the precision of the send wait, read timeout and linger.
const agentTick = 5 * time.Millisecond

func (l *agentLoop) run() {
	nextSweep := int64(0)
	for {
		timeout := -1
		if len(l.conns) > 0 || l.acceptOff {
			timeout = int(agentTick / time.Millisecond)
		}
		n, err := epollWaitNow(l.epfd, l.events[:])
		if n == 0 && err == nil {
			n, err = unix.EpollWait(l.epfd, l.events[:], timeout)
		}
		if err != nil && err != unix.EINTR {
			l.err = fmt.Errorf("agent: epoll_wait: %w", err)
			l.stopping = true
		}
		now := time.Now().UnixNano()
		for i := 0; i < n; i++ {
			fd := int(l.events[i].Fd)
			switch {
			case fd == l.lfd:
				if !l.stopping && !l.acceptOff {
					l.accept(now)
				}
			case fd == l.evfd:
				var b [8]byte
				_, _ = read(l.evfd, b[:])
				l.stopping = true
			default:
				if c := l.conns[fd]; c != nil {
					if c.linger {
						l.drain(c)
					} else {
						l.readLine(c, now)
					}
				}
			}
		}
		if n > 0 {
			// As the fast engine does: let the clients this answers run
			// now rather than at the end of our time slice. Measured with
			// bench/agentload -c 64: 1.19x nginx with it, 0.90x without;
			// it costs the tail at low concurrency (-c 16: p99 ~4.7 ms
			// against ~2.8 ms without, nginx ~2.5 ms).
			_, _, _ = unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
		}
		if l.stopping {
			l.pauseAccept(0)
		}
		if now >= nextSweep {
			l.sweep(now)
			nextSweep = now + int64(agentTick)
		}
		if l.acceptOff && !l.stopping && (l.acceptAgain == 0 || now >= l.acceptAgain) &&
			l.a.live.Load() < int64(cap(l.a.sem)) {
			if l.armListener() == nil {
				l.acceptOff = false
			}
		}
		if l.stopping && len(l.conns) == 0 {
			return
		}
	}
}

func (l *agentLoop) accept(now int64) {
	for i := 0; i < 64; i++ {
		if l.a.live.Load() >= int64(cap(l.a.sem)) {
			l.pauseAccept(0) // MaxConns: resume when one closes
			return
		}
		fd, errno := accept4(l.lfd)
		switch errno {
		case 0:
		case unix.EAGAIN:
			l.backoff = 0
			return
		case unix.EINTR, unix.ECONNABORTED:
			continue
		case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
			l.backoff = min(max(2*l.backoff, 5*time.Millisecond), time.Second)
			l.a.log.Warn().Err(errno).Dur("retry_in", l.backoff).Msg("agent: accept failed")
			l.pauseAccept(now + int64(l.backoff))
			return
		default:
			l.err = fmt.Errorf("agent: accept: %w", errno)
			l.stopping = true
			return
		}
		l.a.live.Add(1)
		l.a.conns.Add(1)
		c := l.get()
		c.fd, c.start, c.deadline = fd, now, now+int64(l.a.sendWait)
		// HAProxy sends its agent-send line as soon as it is connected:
		// it is often here already, and then the connection is answered
		// and closed without entering the epoll set.
		l.readLine(c, now)
	}
}

// poll makes the loop wait for c's input (and watch its deadline); false
// when that failed and c is closed.
func (l *agentLoop) poll(c *agentConn) bool {
	if c.polled {
		return true
	}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(c.fd)}); err != nil {
		l.close(c)
		return false
	}
	c.polled = true
	l.conns[c.fd] = c
	return true
}

func (l *agentLoop) get() *agentConn {
	if k := len(l.free); k > 0 {
		c := l.free[k-1]
		l.free = l.free[:k-1]
		return c
	}
	return &agentConn{}
}

func (l *agentLoop) put(c *agentConn) {
	c.n, c.linger, c.reads, c.polled = 0, false, 0, false
	if len(l.free) < 256 {
		l.free = append(l.free, c)
	}
}

func (l *agentLoop) close(c *agentConn) {
	unix.Close(c.fd) // leaves the epoll set too
	if c.polled {
		delete(l.conns, c.fd)
	}
	l.a.live.Add(-1)
	l.put(c)
}

// readLine reads the agent-send line, as readAgentLine does, and answers
// once it is whole, the peer closed, or it is too long.
func (l *agentLoop) readLine(c *agentConn, now int64) {
	for {
		m, errno := read(c.fd, c.buf[c.n:])
		if errno == unix.EAGAIN {
			l.poll(c)
			return
		}
		if errno == unix.EINTR {
			continue
		}
		if m > 0 {
			if c.n == 0 {
				// The first bytes are in: allow the rest of the line time.
				c.deadline = c.start + int64(AgentReadTimeout)
			}
			c.n += m
		}
		if i := bytes.IndexByte(c.buf[:c.n], '\n'); i >= 0 {
			l.answer(c, string(c.buf[:i]), true, i == c.n-1, now)
			return
		}
		if m <= 0 {
			// EOF or an error: answer what we have.
			l.answer(c, string(c.buf[:c.n]), true, false, now)
			return
		}
		if c.n == len(c.buf) {
			l.answer(c, "", false, false, now)
			return
		}
	}
}

// answer writes the reply, half-closes and lingers, as serveConn does. With
// clean (the line ended with its newline and nothing followed it) and no
// more input waiting, it closes at once: a peer that sent one line and
// waits for the reply, as HAProxy does, sends nothing more, so there is
// nothing a reset could come from, and the linger would only cost the
// peer's FIN a wake-up of its own. A peer that closed already (EOF) is
// closed at once too, as serveConn's linger read would.
func (l *agentLoop) answer(c *agentConn, line string, ok, clean bool, now int64) {
	a := l.a
	reply := AgentBadRequest
	if ok {
		reply = a.Reply(line)
	}
	if reply == AgentBadRequest {
		a.bad.Add(1)
	}
	out := append(append(l.wbuf[:0], reply...), '\n')
	l.wbuf = out[:0]
	// One short line (a reason is at most cache.MaxReasonLen bytes) into a
	// fresh connection's empty send buffer (at least 4 KiB): it is taken
	// whole or the connection is broken.
	if m, errno := write(c.fd, out); errno != 0 || m != len(out) {
		l.close(c)
		return
	}
	if clean {
		var b [1]byte
		m, errno := read(c.fd, b[:])
		if errno == unix.EAGAIN || (errno == 0 && m == 0) {
			// Nothing more pending, or the peer closed already.
			l.close(c)
			return
		}
		if m > 0 {
			c.reads++
		}
	}
	// Half-close, then wait briefly for the peer to close: closing with
	// unread input would send a reset, which may discard the reply.
	_ = unix.Shutdown(c.fd, unix.SHUT_WR)
	c.linger = true
	c.deadline = now + int64(agentLinger)
	if l.poll(c) {
		l.drain(c)
	}
}

// drain reads and drops what the peer still sends while lingering, and
// closes on its close, an error, or after 16 reads (as serveConn).
func (l *agentLoop) drain(c *agentConn) {
	var buf [256]byte
	for c.reads < 16 {
		m, errno := read(c.fd, buf[:])
		if errno == unix.EAGAIN {
			return
		}
		if errno == unix.EINTR {
			continue
		}
		if m <= 0 {
			break
		}
		c.reads++
	}
	l.close(c)
}

// sweep acts on the deadlines: a connection still reading is answered with
// what it sent (nothing: the default service), one lingering is closed.
func (l *agentLoop) sweep(now int64) {
	for _, c := range l.conns {
		if now < c.deadline {
			continue
		}
		if c.linger {
			l.close(c)
		} else {
			l.answer(c, string(c.buf[:c.n]), true, false, now)
		}
	}
}
