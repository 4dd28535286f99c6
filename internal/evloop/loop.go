//go:build linux

package evloop

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// loop is one event loop: an epoll instance, the listening socket it polls,
// and the connections it owns (indexed by fd).
type loop[S any] struct {
	s         *Server[S]
	lfd       int
	exclusive bool // the listening socket is shared: EPOLLEXCLUSIVE
	acceptOne bool // take one connection per wake-up (see accept)
	epfd      int
	evfd      int // eventfd: wakes the loop (stop, inbox)
	conns     []*Conn[S]
	n         int
	live      atomic.Int64 // n, for other loops' balancing
	events    [128]unix.EpollEvent
	rbuf      []byte
	wbuf      []byte
	pool      [][]byte // input buffers
	outPool   [][]byte // output buffers
	free      []*Conn[S]
	now       time.Time
	nowNs     int64 // monoNow at the batch's start

	wheel wheel[S]

	acceptOff   bool  // the listening socket is out of the epoll set
	acceptAgain int64 // re-arm it then (monoNow), unless stopping
	stopping    bool
	stopBy      int64

	inboxMu     sync.Mutex
	inbox       []*Conn[S]
	inboxClosed bool
}

func newLoop[S any](s *Server[S], lfd int, exclusive bool) (*loop[S], error) {
	l := &loop[S]{s: s, lfd: lfd, exclusive: exclusive, epfd: -1, evfd: -1,
		rbuf: make([]byte, max(s.opts.MaxInput, 16<<10)), wbuf: make([]byte, 0, 16<<10)}
	if exclusive {
		deferred, err := unix.GetsockoptInt(lfd, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT)
		l.acceptOne = err != nil || deferred == 0
	}
	l.wheel.init(s.opts.Tick)
	var err error
	if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, errnoErr("epoll_create1", err.(unix.Errno))
	}
	if l.evfd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		l.closeFDs()
		return nil, errnoErr("eventfd", err.(unix.Errno))
	}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(l.evfd)}); err != nil {
		l.closeFDs()
		return nil, errnoErr("epoll_ctl eventfd", err.(unix.Errno))
	}
	if err := l.armListener(); err != nil {
		l.closeFDs()
		return nil, errnoErr("epoll_ctl listener", err.(unix.Errno))
	}
	l.tick()
	return l, nil
}

func (l *loop[S]) closeFDs() {
	if l.epfd >= 0 {
		unix.Close(l.epfd)
		l.epfd = -1
	}
	if l.evfd >= 0 {
		unix.Close(l.evfd)
		l.evfd = -1
	}
}

func (l *loop[S]) wake() {
	one := [8]byte{1}
	_, _ = write(l.evfd, one[:])
}

// wallClock reads the wall clock, for what a handler shows (an HTTP Date);
// a variable so that a test can step it.
var wallClock = time.Now

// monoBase is the origin of the loops' clock. Deadlines are kept on the
// monotonic clock, as nanoseconds since monoBase: on the wall clock a step
// back (NTP, date -s, a VM resumed) would hold every deadline for as long
// as the step (silent connections holding slots, an agent check without a
// line never answered), and a step forward would fire them all at once
// (an agent check whose line is on its way answered as the default
// service).
var monoBase = time.Now()

// monoNow is the loops' clock: nanoseconds since monoBase, monotonic.
func monoNow() int64 { return int64(time.Since(monoBase)) }

func (l *loop[S]) tick() {
	l.now = wallClock()
	l.nowNs = monoNow()
}

func (l *loop[S]) armListener() error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(l.lfd)}
	if l.exclusive {
		// One socket shared by every loop: wake one loop per
		// connection, not all of them.
		ev.Events |= unix.EPOLLEXCLUSIVE
	}
	return unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.lfd, &ev)
}

func (l *loop[S]) pauseAccept(until int64) {
	if !l.acceptOff {
		_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, l.lfd, nil)
		l.acceptOff = true
	}
	l.acceptAgain = until
}

// run is the event loop. It returns once stopped and every connection is
// closed, or on a failure of epoll itself.
func (l *loop[S]) run() error {
	tickMs := max(1, int(l.s.opts.Tick/time.Millisecond))
	for {
		// Poll without blocking first: under load there is work and the
		// goroutine keeps its P; block only when there is none.
		n, errno := epollWaitNow(l.epfd, l.events[:])
		if n == 0 && errno == 0 {
			timeout := -1
			switch {
			case l.acceptOff || l.stopping:
				timeout = tickMs
			case l.wheel.count > 0:
				// Until the next deadline, not a tick at a time: an
				// idle kept-alive connection would wake the loop 100
				// times a second for nothing.
				timeout = int((l.wheel.untilNext(l.nowNs) + int64(time.Millisecond) - 1) / int64(time.Millisecond))
			}
			l.s.waits.Add(1)
			var err error
			n, err = unix.EpollWait(l.epfd, l.events[:], timeout)
			if err != nil {
				errno, n = err.(unix.Errno), 0
			}
		}
		if errno != 0 && errno != unix.EINTR {
			l.closeAll()
			return errnoErr("epoll_wait", errno)
		}
		l.tick()
		served := false // an event of a connection kept open after an answer
		for i := range n {
			ev := &l.events[i]
			fd := int(ev.Fd)
			switch {
			case fd == l.lfd && !l.acceptOff && !l.stopping:
				if err := l.accept(); err != nil {
					l.closeAll()
					return err
				}
			case fd == l.evfd:
				var b [8]byte
				_, _ = read(l.evfd, b[:])
				l.takeInbox()
			default:
				if c := l.get(fd); c != nil {
					served = served || c.kept
					l.event(c, ev.Events)
				}
			}
		}
		if served && !l.s.opts.NoYield {
			// Clients on connections kept open ask again as soon as
			// they have their answer, so a loop serving them always
			// finds more to do and would hold the CPU for whole time
			// slices while those clients (and whatever else runs on
			// the host) wait to run. Give the CPU up after each such
			// batch; with nothing else runnable this returns at once.
			// A batch of new connections only (one connection per
			// check) does not yield, nor does the first request of a
			// connection that arrives after its accept (an agent check
			// whose line follows the handshake): there it only added
			// latency. The measurements behind both are in BENCHMARKS.md.
			l.s.yields.Add(1)
			_, _, _ = unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
		}
		if l.s.stopping.Load() && !l.stopping {
			l.beginStop()
		}
		l.wheel.expire(l.nowNs, l.deadline)
		if l.acceptOff && !l.stopping && l.nowNs >= l.acceptAgain {
			if l.armListener() == nil {
				l.acceptOff = false
			}
		}
		if l.stopping && (l.n == 0 || l.nowNs >= l.stopBy) {
			l.closeAll()
			return nil
		}
	}
}

func (l *loop[S]) get(fd int) *Conn[S] {
	if fd < 0 || fd >= len(l.conns) {
		return nil
	}
	return l.conns[fd]
}

// accept takes the connections waiting on the listening socket. It returns
// an error only when the socket itself is broken.
func (l *loop[S]) accept() error {
	s := l.s
	batch := acceptBatch
	if l.acceptOne {
		// A socket every loop polls, without TCP_DEFER_ACCEPT (the
		// agent's: a connection is accepted before its line comes, so
		// an accept mostly registers it): take one connection and
		// leave the next to whichever loop epoll wakes for it (nginx's
		// multi_accept off). Draining the queue would end each wake-up
		// on an accept that finds nothing. With TCP_DEFER_ACCEPT each
		// connection brings its request and is answered at accept:
		// there the batch serves more per wake-up.
		batch = 1
	}
	for range batch {
		fd, errno := accept4(l.lfd)
		switch errno {
		case 0:
		case unix.EAGAIN:
			return nil
		case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
			// Out of descriptors (or kernel memory). Give the waiting
			// connection an answer with the spare descriptor rather
			// than leaving it in the queue, then pause accepting
			// briefly instead of spinning on the socket.
			s.paused.Add(1)
			s.logAccept(errno, "accept: out of file descriptors; answering with the spare one and pausing accept")
			if r := s.reserve.Swap(-1); r >= 0 {
				unix.Close(int(r))
				if fd, e := accept4(l.lfd); e == 0 {
					s.overload(fd)
				}
				if nfd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
					s.reserve.Store(int64(nfd))
				}
			}
			l.pauseAccept(l.nowNs + int64(emfilePause))
			return nil
		case unix.EBADF, unix.EINVAL, unix.ENOTSOCK, unix.EOPNOTSUPP, unix.EFAULT:
			if l.stopping || s.stopping.Load() {
				return nil
			}
			return errnoErr("accept4", errno)
		default:
			// ECONNABORTED, EINTR, and the network errors accept(2)
			// passes on from the new socket (EPROTO, EPERM from a
			// firewall, ENETDOWN, EHOSTUNREACH...): that connection is
			// lost, the next one is not.
			s.logAccept(errno, "accept: connection lost")
			continue
		}
		s.accepted.Add(1)
		if s.nconns.Add(1) > int64(s.opts.MaxConns) {
			s.nconns.Add(-1)
			s.overload(fd)
			continue
		}
		c := l.newConn(fd)
		s.h.Open(c)
		if c.out != nil || c.closing {
			// Open wrote or closed (a protocol that speaks first):
			// send that now rather than after the client's first
			// bytes; settle registers what it waits for.
			l.send(c)
		} else {
			// With TCP_DEFER_ACCEPT the request is usually here
			// already: serve it before registering the socket, so
			// that a connection-per-request client costs no
			// epoll_ctl at all.
			l.readable(c)
		}
		c.fresh = false
		if !c.closed && !c.detached && c.events == 0 {
			if s.opts.Balance && c.idle && c.in == nil && c.out == nil && l.balance(c) {
				continue
			}
			l.setEvents(c, unix.EPOLLIN)
		}
	}
	return nil
}

func (l *loop[S]) newConn(fd int) *Conn[S] {
	var c *Conn[S]
	if k := len(l.free); k > 0 {
		c = l.free[k-1]
		l.free = l.free[:k-1]
		*c = Conn[S]{}
	} else {
		c = &Conn[S]{}
	}
	c.l, c.fd, c.slot, c.fresh = l, fd, -1, true
	l.own(c)
	return c
}

func (l *loop[S]) own(c *Conn[S]) {
	for c.fd >= len(l.conns) {
		l.conns = append(l.conns, make([]*Conn[S], len(l.conns)+64)...)
	}
	c.l = l
	l.conns[c.fd] = c
	l.n++
	l.live.Add(1)
}

// setEvents sets the epoll events of c (0: out of the set).
func (l *loop[S]) setEvents(c *Conn[S], ev uint32) {
	if c.events == ev {
		return
	}
	var err error
	switch {
	case ev == 0:
		err = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	case c.events == 0:
		err = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, c.fd, &unix.EpollEvent{Events: ev, Fd: int32(c.fd)})
	default:
		err = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: ev, Fd: int32(c.fd)})
	}
	if err != nil {
		l.close(c)
		return
	}
	c.events = ev
}

// event handles what epoll reported for c.
func (l *loop[S]) event(c *Conn[S], ev uint32) {
	if c.lingerAt != 0 {
		l.drainLinger(c)
		return
	}
	if c.out != nil && ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		l.send(c)
		if c.closed || c.out != nil {
			return
		}
	}
	if ev&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP) != 0 && !c.closed {
		l.readable(c)
	}
}

// call kinds.
const (
	callInput = iota
	callEOF
	callExpired
)

// readable reads what the client sent and gives it to the handler.
func (l *loop[S]) readable(c *Conn[S]) {
	limit := l.s.opts.MaxInput
	for range 4 { // then let the other connections have their turn
		if c.closing || c.closed || c.detached || len(c.out) > l.s.opts.OutCap {
			return
		}
		if c.resume && c.in != nil {
			// Input left over when the output cap was reached:
			// serve it before reading more.
			c.resume = false
			l.invoke(c, c.in, callInput)
			continue
		}
		buf, have := l.rbuf[:limit], 0
		if c.in != nil {
			buf, have = c.in[:cap(c.in)], len(c.in)
		}
		if have >= len(buf) {
			// A full buffer the handler consumed nothing of: it
			// should have answered it (a 431, say). Do not spin.
			l.close(c)
			return
		}
		n, errno := read(c.fd, buf[have:])
		switch {
		case errno == unix.EAGAIN:
			return
		case errno == unix.EINTR:
			continue
		case errno != 0:
			l.close(c)
			return
		case n == 0:
			l.invoke(c, buf[:have], callEOF)
			if !c.closed && !c.detached {
				c.closing = true
				l.send(c)
			}
			return
		}
		c.drained = have+n < len(buf)
		l.invoke(c, buf[:have+n], callInput)
		if have+n < len(buf) {
			return // the socket is most likely drained
		}
	}
}

// invoke runs a handler method with in, c's unconsumed input, keeps what it
// did not consume and sends what it wrote.
func (l *loop[S]) invoke(c *Conn[S], in []byte, kind int) {
	c.inCB = true
	l.wbuf = l.wbuf[:0]
	consumed := 0
	switch kind {
	case callInput:
		consumed = l.s.h.Input(c, in)
	case callEOF:
		l.s.h.EOF(c, in)
		consumed = len(in)
	case callExpired:
		l.s.h.Expired(c, in)
	}
	c.inCB = false
	if c.detached {
		l.wbuf = l.wbuf[:0]
		l.putIn(c)
		l.free = append(l.free, c)
		return
	}
	if c.closed {
		return
	}
	if !c.closing && len(l.wbuf)+len(c.out) > 0 {
		c.kept = true
	}
	rest := in[min(max(consumed, 0), len(in)):]
	c.resume = len(rest) > 0 && len(c.out)+len(l.wbuf) > l.s.opts.OutCap
	switch {
	case len(rest) == 0:
		l.putIn(c)
	case c.in == nil:
		c.in = l.getIn()
		c.in = c.in[:copy(c.in[:cap(c.in)], rest)]
	default:
		c.in = c.in[:copy(c.in[:cap(c.in)], rest)]
	}
	l.send(c)
}

// send writes what the handler wrote, keeps what the socket did not take,
// and settles c.
func (l *loop[S]) send(c *Conn[S]) {
	if len(l.wbuf) > 0 {
		n, errno := write(c.fd, l.wbuf)
		if errno != 0 && errno != unix.EAGAIN {
			l.wbuf = l.wbuf[:0]
			l.close(c)
			return
		}
		if n < len(l.wbuf) {
			if c.out == nil {
				c.out = l.getOut()
			}
			c.out = append(c.out, l.wbuf[max(n, 0):]...)
		}
		l.wbuf = l.wbuf[:0]
	} else if c.out != nil {
		n, errno := write(c.fd, c.out)
		if errno != 0 && errno != unix.EAGAIN {
			l.close(c)
			return
		}
		if n >= len(c.out) {
			l.putOut(c)
		} else if n > 0 {
			c.out = c.out[:copy(c.out, c.out[n:])]
		}
	}
	l.settle(c)
}

// settle decides what c waits for next.
func (l *loop[S]) settle(c *Conn[S]) {
	if c.out != nil {
		// The client does not take its answers as fast as it asks:
		// wait for the socket, and stop reading while over the cap.
		if c.wdl == 0 {
			c.wdl = l.nowNs + int64(l.s.opts.WriteTimeout)
		}
		ev := uint32(unix.EPOLLOUT)
		if !c.closing && len(c.out) <= l.s.opts.OutCap {
			ev |= unix.EPOLLIN
		}
		l.setEvents(c, ev)
		l.schedule(c)
		return
	}
	c.wdl = 0
	switch {
	case c.closing:
		l.finish(c)
		return
	case l.stopping && c.idle && c.in == nil:
		l.close(c)
		return
	}
	if c.events != 0 || !c.fresh {
		l.setEvents(c, unix.EPOLLIN)
	}
	l.schedule(c)
	// Input left over from before the cap was reached: serve it now,
	// without waiting for more to arrive.
	if c.resume && c.in != nil && !c.closed {
		c.resume = false
		l.invoke(c, c.in, callInput)
	}
}

// finish closes c, whose answers are all sent: at once when no unread
// input could turn the close into a reset, else after a lingering
// half-close.
func (l *loop[S]) finish(c *Conn[S]) {
	if c.linger <= 0 || (c.drained && c.in == nil) {
		// Nothing unread: the last read left the socket empty and
		// the handler took all of it. (A look at the socket now would
		// only narrow the window for a peer that sends after its
		// answer was written, not close it.)
		l.close(c)
		return
	}
	var b [512]byte
	n, errno := read(c.fd, b[:])
	if errno == unix.EAGAIN || (errno == 0 && n == 0) || (errno != 0 && errno != unix.EINTR) {
		l.close(c) // nothing unread, or the peer closed already
		return
	}
	_ = unix.Shutdown(c.fd, unix.SHUT_WR)
	c.lingerAt = l.nowNs + int64(c.linger)
	c.reads = 1
	l.setEvents(c, unix.EPOLLIN)
	l.schedule(c)
	if !c.closed {
		l.drainLinger(c)
	}
}

// drainLinger reads and drops what the peer still sends after the
// half-close, and closes on its close, an error, or after lingerReads reads.
func (l *loop[S]) drainLinger(c *Conn[S]) {
	var buf [4096]byte
	for c.reads < lingerReads {
		n, errno := read(c.fd, buf[:])
		if errno == unix.EAGAIN {
			return
		}
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 || n == 0 {
			break
		}
		c.reads++
	}
	l.close(c)
}

// schedule puts c in the timer wheel at its earliest deadline.
func (l *loop[S]) schedule(c *Conn[S]) {
	at := c.hdl
	if c.closing {
		at = 0 // answered and closing: the handler's deadline is moot
	}
	for _, d := range [...]int64{c.wdl, c.lingerAt} {
		if d != 0 && (at == 0 || d < at) {
			at = d
		}
	}
	l.wheel.set(c, at)
}

// deadline runs when c's earliest deadline has passed.
func (l *loop[S]) deadline(c *Conn[S]) {
	now := l.nowNs
	switch {
	case c.lingerAt != 0 && now >= c.lingerAt:
		l.close(c)
	case c.wdl != 0 && now >= c.wdl:
		l.close(c) // the client has not read its answers in time
	case c.hdl != 0 && now >= c.hdl && !c.closing:
		was := c.hdl
		if c.out == nil && !c.closing {
			// Bytes that arrived while the loop was busy (a loaded
			// machine can keep it from its events for longer than a
			// deadline) are served before the deadline is held
			// against the client: a request that is complete in the
			// socket is answered, not cut off.
			l.readable(c)
			if c.closed || c.detached || c.closing || c.hdl != was {
				// Answered and closing (perhaps lingering), or the
				// deadline moved: the deadline no longer stands.
				return
			}
		}
		l.s.expired.Add(1)
		in := c.in
		if in == nil {
			in = l.rbuf[:0]
		}
		l.invoke(c, in, callExpired)
		if !c.closed && !c.detached && !c.closing && c.hdl == was {
			// Not extended: close, once what it wrote is sent.
			c.closing = true
			l.send(c)
		}
	default:
		l.schedule(c)
	}
}

// getOut is a buffer for the output a connection's socket did not take: its
// capacity holds OutCap and an answer more, so that it does not grow while
// the handler fills it to the cap.
func (l *loop[S]) getOut() []byte {
	if k := len(l.outPool); k > 0 {
		b := l.outPool[k-1]
		l.outPool = l.outPool[:k-1]
		return b[:0]
	}
	return make([]byte, 0, l.s.opts.OutCap+outSlack)
}

// outSlack is room for the answer that takes the output over the cap.
const outSlack = 4096

func (l *loop[S]) putOut(c *Conn[S]) {
	if c.out != nil && cap(c.out) == l.s.opts.OutCap+outSlack && len(l.outPool) < 64 {
		l.outPool = append(l.outPool, c.out[:0])
	}
	c.out = nil
}

func (l *loop[S]) getIn() []byte {
	if k := len(l.pool); k > 0 {
		b := l.pool[k-1]
		l.pool = l.pool[:k-1]
		return b[:0]
	}
	return make([]byte, 0, l.s.opts.MaxInput)
}

func (l *loop[S]) putIn(c *Conn[S]) {
	if c.in != nil && len(l.pool) < 64 {
		l.pool = append(l.pool, c.in[:0])
	}
	c.in = nil
}

// forget takes c out of the loop's books.
func (l *loop[S]) forget(c *Conn[S]) {
	l.wheel.remove(c)
	if c.fd < len(l.conns) && l.conns[c.fd] == c {
		l.conns[c.fd] = nil
		l.n--
		l.live.Add(-1)
	}
	if !c.detached {
		l.s.nconns.Add(-1)
	}
}

func (l *loop[S]) close(c *Conn[S]) {
	if c.closed {
		return
	}
	c.closed = true
	l.forget(c)
	l.putIn(c)
	l.putOut(c)
	unix.Close(c.fd) // also leaves the epoll set
	if !c.inCB && len(l.free) < 1024 {
		l.free = append(l.free, c)
	}
}

// balance passes c, a connection kept open after its first answer and not
// yet in any epoll set, to the loop with the fewest connections when that
// has at least two fewer than this one. The kernel spreads new connections
// over the SO_REUSEPORT sockets by a hash, and a shared socket gives them to
// whichever loop wakes first: both can leave one loop with many more
// kept-alive clients than another, whose requests then wait longer.
func (l *loop[S]) balance(c *Conn[S]) bool {
	loops := l.s.loops
	if len(loops) < 2 || l.stopping {
		return false
	}
	var to *loop[S]
	for _, m := range loops {
		if m != l && (to == nil || m.live.Load() < to.live.Load()) {
			to = m
		}
	}
	if l.live.Load()-to.live.Load() < 2 {
		return false
	}
	to.inboxMu.Lock()
	if to.inboxClosed {
		to.inboxMu.Unlock()
		return false
	}
	l.wheel.remove(c)
	l.conns[c.fd] = nil
	l.n--
	l.live.Add(-1)
	to.live.Add(1)
	to.inbox = append(to.inbox, c)
	to.inboxMu.Unlock()
	to.wake()
	return true
}

// takeInbox adopts the connections other loops passed.
func (l *loop[S]) takeInbox() {
	l.inboxMu.Lock()
	in := l.inbox
	l.inbox = nil
	l.inboxMu.Unlock()
	for _, c := range in {
		l.live.Add(-1) // own counts it again
		l.own(c)
		c.fresh = false
		l.setEvents(c, unix.EPOLLIN)
		if !c.closed {
			l.schedule(c)
		}
		if l.stopping && !c.closed {
			// Passed by a loop that had not seen the stop yet: an
			// idle connection is closed as at beginStop, not kept
			// until Grace.
			l.closeIdle(c)
		}
	}
}

// beginStop stops accepting and closes idle connections; the others get
// until Grace for their answer.
func (l *loop[S]) beginStop() {
	l.stopping = true
	l.stopBy = l.nowNs + int64(l.s.opts.Grace)
	l.pauseAccept(0)
	l.s.stoppedPolling(l)
	for _, c := range l.conns {
		if c != nil {
			l.closeIdle(c)
		}
	}
}

// closeIdle closes c, on stop, if it is between requests. A request that
// came in since the last epoll_wait is served first (the handler sees
// Stopping and answers with a close): closing over unread input would send
// a reset instead of its answer.
func (l *loop[S]) closeIdle(c *Conn[S]) {
	if !c.idle || c.in != nil || c.out != nil || c.lingerAt != 0 || c.closing {
		return
	}
	l.readable(c)
	if !c.closed && !c.detached && c.idle && c.in == nil && c.out == nil && c.lingerAt == 0 && !c.closing {
		l.close(c)
	}
}

func (l *loop[S]) closeAll() {
	l.inboxMu.Lock()
	l.inboxClosed = true
	l.inboxMu.Unlock()
	l.takeInbox()
	for _, c := range l.conns {
		if c != nil {
			l.close(c)
		}
	}
	if !l.stopping {
		l.stopping = true
		l.s.stoppedPolling(l)
	}
}
