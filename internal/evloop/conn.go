//go:build linux

package evloop

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Conn is one connection, owned by one loop. Its methods may only be called
// from the [Handler] methods the loop runs for it.
type Conn[S any] struct {
	// State is the handler's own per-connection state; it is zeroed
	// before Open.
	State S

	l        *loop[S]
	fd       int
	in       []byte // unconsumed input (a pool buffer), or nil
	out      []byte // output the socket has not taken (its own buffer), or nil
	hdl      int64  // the handler's deadline (monoNow); 0: none
	wdl      int64  // the write deadline while output waits; 0: none
	prev     *Conn[S]
	next     *Conn[S]
	slot     int32 // timer-wheel slot, -1: none
	events   uint32
	detached bool // handed over: the loop no longer owns the fd
	closing  bool // close once the output is sent
	linger   time.Duration
	lingerAt int64 // lingering: half-closed, waiting for the peer until then
	reads    int   // reads while lingering
	idle     bool  // between requests: closed on stop, may move to another loop
	kept     bool  // answered and kept open: its client asks again at once
	closed   bool
	inCB     bool  // in a handler call: output goes to the loop's buffer
	fresh    bool  // being accepted: the accept path registers it
	drained  bool  // the last read left the socket empty
	resume   bool  // input left unconsumed while over OutCap: serve it once the output drained
	at       int64 // when the wheel wakes it (monoNow)
}

// FD is the connection's socket (for socket options; the loop owns it).
func (c *Conn[S]) FD() int { return c.fd }

// Now is the loop's clock reading for this batch of events: nanoseconds on
// a monotonic clock with an arbitrary origin, for deadlines
// ([Conn.SetDeadlineAt]); not a time of day.
func (c *Conn[S]) Now() int64 { return c.l.nowNs }

// Time is the wall clock's reading for this batch of events.
func (c *Conn[S]) Time() time.Time { return c.l.now }

// output is where the handler's output goes: the loop's shared buffer
// during a handler call while nothing waits in the connection's own, else
// the connection's own.
func (c *Conn[S]) output() *[]byte {
	if c.out != nil || !c.inCB {
		return &c.out
	}
	return &c.l.wbuf
}

// WriteString queues s to be sent. It never blocks; the loop sends it after
// the handler call.
func (c *Conn[S]) WriteString(s string) {
	out := c.output()
	*out = append(*out, s...)
}

// Buf is the output buffer to append an answer to in place; hand the
// result back with SetBuf. (WriteString copies; Buf and SetBuf let an answer
// be built where it is sent from.)
func (c *Conn[S]) Buf() []byte { return *c.output() }

// SetBuf stores b, which Buf returned with bytes appended, as the output.
func (c *Conn[S]) SetBuf(b []byte) { *c.output() = b }

// Pending is how many bytes wait to be sent.
func (c *Conn[S]) Pending() int { return len(*c.output()) }

// OutCap is the server's Options.OutCap.
func (c *Conn[S]) OutCap() int { return c.l.s.opts.OutCap }

// SetDeadline sets when [Handler.Expired] is called: d from now; 0 clears it.
func (c *Conn[S]) SetDeadline(d time.Duration) {
	if d <= 0 {
		c.hdl = 0
	} else {
		c.hdl = c.l.nowNs + int64(d)
	}
	c.l.schedule(c)
}

// SetDeadlineAt sets the deadline to ns on the clock of [Conn.Now].
func (c *Conn[S]) SetDeadlineAt(ns int64) {
	c.hdl = ns
	c.l.schedule(c)
}

// SetIdle marks the connection as between requests: on stop it is closed at
// once, and after its first answer it may move to a less loaded loop.
func (c *Conn[S]) SetIdle(idle bool) { c.idle = idle }

// Close closes the connection once its output is sent.
func (c *Conn[S]) Close() { c.closing = true }

// CloseLinger closes the connection once its output is sent, without
// letting unread input turn the close into a reset that could destroy the
// answer: when the peer may have sent more than was read (the last read
// filled the buffer, or input is left unconsumed), the loop half-closes and
// reads and drops what comes for at most d (or until the peer closes).
func (c *Conn[S]) CloseLinger(d time.Duration) {
	c.closing = true
	c.linger = d
}

// Closing reports whether Close or CloseLinger was called.
func (c *Conn[S]) Closing() bool { return c.closing }

// Stopping reports whether the server is stopping: answer with a close.
func (c *Conn[S]) Stopping() bool { return c.l.stopping }

// Detach takes the connection out of the loop without closing it, for a
// handler that hands it to another server: the caller owns fd from now on
// and must send pending (output the socket has not taken yet) first. The
// connection still counts against MaxConns until release is called (once,
// when the other server closes it). The handler must not touch c after
// Detach.
func (c *Conn[S]) Detach() (fd int, pending []byte, release func()) {
	l := c.l
	pending = append([]byte(nil), *c.output()...)
	c.detached = true
	fd = c.fd
	if c.events != 0 {
		_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, fd, nil)
		c.events = 0
	}
	l.forget(c)
	s := l.s
	var once sync.Once
	return fd, pending, func() { once.Do(func() { s.nconns.Add(-1) }) }
}
