//go:build linux

// Package evloop serves TCP connections from a few epoll event loops, for
// protocols whose every request is answered from memory in microseconds: the
// HTTP /status fast path and the HAProxy agent. It owns the sockets, epoll,
// accept (one SO_REUSEPORT socket per loop, or one inherited socket shared
// with EPOLLEXCLUSIVE), per-connection deadlines, input and output buffers
// with caps, the out-of-descriptors pause, balancing of kept-alive
// connections, and the stop. A [Handler] is the protocol: it is given the
// bytes a connection sent and writes its answers.
//
// # Bounds
//
// A connection holds no buffer while it is idle. While a request is
// incomplete it holds one input buffer of Options.MaxInput bytes (from a
// pool); while the socket does not take its answers it holds at most
// Options.OutCap bytes plus one answer, and the loop stops reading it until
// the client has read them (backpressure): a client that pipelines without
// reading costs at most MaxInput + OutCap + one answer, whatever it sends.
// At most Options.MaxConns connections are held at once, connections
// handed over to another server ([Conn.Detach]) included until they are
// released.
//
// # Concurrency
//
// A loop is one goroutine; a connection belongs to one loop at a time, and
// the Handler's methods for it run on that goroutine, never concurrently for
// one connection. Handler methods for different connections run
// concurrently on different loops.
package evloop

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// Handler is a protocol served by the loops. Its methods run on the loop
// that owns the connection and must not block. S is the per-connection state
// the handler keeps in [Conn.State].
type Handler[S any] interface {
	// Open is called once for each accepted connection, before any input.
	// It sets the first deadline ([Conn.SetDeadline]).
	Open(c *Conn[S])
	// Input is given every byte the connection sent and the handler has
	// not consumed yet. It returns how many it consumed; the rest is
	// given again, with what follows, at the next call. It writes answers
	// with [Conn.WriteString] or [Conn.Buf], and should stop consuming
	// while [Conn.Pending] is over [Conn.OutCap]: the loop then stops
	// reading the connection until the client has read enough.
	Input(c *Conn[S], in []byte) (consumed int)
	// EOF is called when the peer has closed its side; in is what was
	// not consumed. The connection is closed after it (once its answers
	// are sent) unless the handler detached it.
	EOF(c *Conn[S], in []byte)
	// Expired is called when the deadline set with [Conn.SetDeadline]
	// has passed; in is what was not consumed. The connection is closed
	// after it unless the handler set a later deadline.
	Expired(c *Conn[S], in []byte)
}

// Options configure a [Server]. Zero values take the defaults.
type Options struct {
	// Loops is the number of event loops; GOMAXPROCS by default. With a
	// [ReusePortListener] it is the number of its sockets.
	Loops int
	// MaxConns bounds the connections held at once, across loops,
	// detached ones included until released (DefaultMaxConns). Beyond it a
	// new connection is given to Overload and closed.
	MaxConns int
	// MaxInput is the most unconsumed input a connection may hold: the
	// protocol's request limit (DefaultMaxInput). A handler that consumes
	// nothing of a full buffer gets the connection closed.
	MaxInput int
	// OutCap is the unsent output above which a connection is not read
	// until the client has read its answers (DefaultOutCap).
	OutCap int
	// WriteTimeout bounds how long answers may wait for a client that does
	// not read them (DefaultWriteTimeout).
	WriteTimeout time.Duration
	// Tick is the precision of deadlines (DefaultTick).
	Tick time.Duration
	// Grace is how long, on stop, connections with a request in progress
	// may take to get their answer.
	Grace time.Duration
	// Balance moves a connection kept open after its first answer to the
	// loop with the fewest connections (see [Conn.SetIdle]).
	Balance bool
	// NoYield turns off the yield after a batch of events that served
	// connections already open (see [loop.run]).
	NoYield bool
	// Overload, when set, is given a connection the server cannot serve
	// (MaxConns reached, or out of file descriptors) before it is closed:
	// it may write a short answer (non-blocking; the fd is closed
	// cleanly afterwards, its input read first so the close sends no
	// reset).
	Overload func(fd int)
	// StoppedAccepting, when set, is called once no loop accepts any
	// more (on stop): the caller closes its own listener then, so that new
	// connections are refused at once.
	StoppedAccepting func()
	// Logger gets accept errors (rate-limited), never a line per
	// connection.
	Logger zerolog.Logger
}

// Defaults.
const (
	DefaultMaxConns     = 50000
	DefaultMaxInput     = 16 << 10
	DefaultOutCap       = 16 << 10
	DefaultWriteTimeout = 5 * time.Second
	DefaultTick         = 10 * time.Millisecond
	// lingerReads bounds the reads a lingering close spends on a peer
	// that keeps sending.
	lingerReads = 16
	// acceptBatch bounds the connections one loop accepts per wake-up, so
	// that it also serves the ones it has.
	acceptBatch = 64
	// emfilePause is how long accepting pauses when descriptors ran out:
	// short, so that it recovers at once, yet no busy loop.
	emfilePause = 10 * time.Millisecond
)

func (o Options) withDefaults() Options {
	if o.Loops <= 0 {
		o.Loops = runtime.GOMAXPROCS(0)
	}
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.MaxInput <= 0 {
		o.MaxInput = DefaultMaxInput
	}
	if o.OutCap <= 0 {
		o.OutCap = DefaultOutCap
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.Tick <= 0 {
		o.Tick = DefaultTick
	}
	return o
}

// Stats are a server's counters.
type Stats struct {
	Open       int64  // connections held now (detached ones included)
	Accepted   uint64 // connections accepted
	Overloaded uint64 // connections closed at accept: MaxConns or out of descriptors
	Expired    uint64 // deadlines passed
	Paused     uint64 // times accepting paused for want of descriptors
}

// Server runs the loops for one handler.
type Server[S any] struct {
	h     Handler[S]
	opts  Options
	loops []*loop[S]
	fds   []int // listening sockets: one per loop, or one shared

	nconns   atomic.Int64
	stopping atomic.Bool
	polling  atomic.Int64 // loops still polling a listening socket
	reserve  atomic.Int64 // a spare descriptor for the EMFILE case; -1 while used

	accepted, overloaded, expired, paused atomic.Uint64
	yields                                atomic.Uint64 // for tests: the loops gave up the CPU
	waits                                 atomic.Uint64 // for tests: the loops blocked in epoll_wait

	logMu   sync.Mutex
	lastLog time.Time

	stopMu sync.Mutex // stop's wake-ups against closeLoops
	closed bool
}

// New prepares a server for h on the listening sockets fds (see
// [ListenerFDs]): one per loop (SO_REUSEPORT, see [ListenReusePort]) or a
// single one that every loop polls. The server owns fds and closes them once
// it stops accepting (or when New fails). The sockets must be non-blocking.
func New[S any](h Handler[S], fds []int, opts Options) (*Server[S], error) {
	opts = opts.withDefaults()
	if len(fds) == 0 {
		return nil, errors.New("evloop: no listening socket")
	}
	if len(fds) > 1 {
		opts.Loops = len(fds)
	}
	s := &Server[S]{h: h, opts: opts, fds: fds}
	s.reserve.Store(-1)
	if fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
		s.reserve.Store(int64(fd))
	}
	for i := range opts.Loops {
		lfd := fds[0]
		if len(fds) > 1 {
			lfd = fds[i]
		}
		l, err := newLoop(s, lfd, len(fds) == 1 && opts.Loops > 1)
		if err != nil {
			s.closeLoops()
			for _, fd := range fds {
				unix.Close(fd)
			}
			if fd := s.reserve.Swap(-1); fd >= 0 {
				unix.Close(int(fd))
			}
			return nil, err
		}
		s.loops = append(s.loops, l)
	}
	s.polling.Store(int64(len(s.loops)))
	return s, nil
}

// stoppedPolling is told by each loop once it no longer polls its listening
// socket. Sockets of ours are closed then, so new connections are refused
// at once rather than queued for nobody (a socket systemd holds keeps
// queuing them for the next process).
func (s *Server[S]) stoppedPolling(l *loop[S]) {
	last := s.polling.Add(-1) == 0
	if last && s.opts.StoppedAccepting != nil {
		defer s.opts.StoppedAccepting()
	}
	// Each loop forgets its socket itself (l.lfd is the loop's own).
	switch {
	case len(s.fds) > 1:
		unix.Close(l.lfd)
	case last:
		unix.Close(s.fds[0])
	}
	l.lfd = -1
}

// Stats returns the counters.
func (s *Server[S]) Stats() Stats {
	return Stats{
		Open: s.nconns.Load(), Accepted: s.accepted.Load(), Overloaded: s.overloaded.Load(),
		Expired: s.expired.Load(), Paused: s.paused.Load(),
	}
}

// Serve runs the loops until ctx is done, then stops: no more accepts (the
// listening sockets are closed if the server owns them; a socket systemd
// holds keeps queuing for the next process), idle connections closed,
// connections with a request in progress given up to Grace for their answer,
// then closed. It returns once every loop has stopped, with an error only
// when a loop failed (epoll itself, or a listening socket that broke).
func (s *Server[S]) Serve(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(s.loops))
	for i, l := range s.loops {
		wg.Go(func() {
			errs[i] = l.run()
			if errs[i] != nil {
				s.stop() // one loop failing stops them all
			}
		})
	}
	stop := context.AfterFunc(ctx, s.stop)
	wg.Wait()
	stop()
	s.closeLoops()
	if fd := s.reserve.Swap(-1); fd >= 0 {
		unix.Close(int(fd))
	}
	return errors.Join(errs...)
}

// stop asks every loop to stop.
func (s *Server[S]) stop() {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	if s.stopping.Swap(true) || s.closed {
		return
	}
	for _, l := range s.loops {
		l.wake()
	}
}

func (s *Server[S]) closeLoops() {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	s.closed = true
	for _, l := range s.loops {
		l.closeFDs()
	}
	s.fds = nil
}

// logAccept logs an accept error at most once a second.
func (s *Server[S]) logAccept(err error, what string) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if time.Since(s.lastLog) < time.Second {
		return
	}
	s.lastLog = time.Now()
	s.opts.Logger.Warn().Err(err).Msg(what)
}

// overload serves fd, a connection the server will not keep: the handler's
// Overload answer, then a clean close.
func (s *Server[S]) overload(fd int) {
	s.overloaded.Add(1)
	if s.opts.Overload != nil {
		s.opts.Overload(fd)
	}
	CloseClean(fd)
}

// CloseClean closes fd, a socket of a connection that is not kept, after
// [Drain].
func CloseClean(fd int) {
	Drain(fd)
	unix.Close(fd)
}

// Drain readies fd for a clean close: it reads what the peer sent (a close
// with unread input sends a reset, which can destroy an answer just
// written) and half-closes.
func Drain(fd int) {
	var buf [4096]byte
	for range 4 {
		if n, errno := read(fd, buf[:]); errno != 0 || n <= 0 {
			break
		}
	}
	_ = unix.Shutdown(fd, unix.SHUT_WR)
}

func errnoErr(op string, errno unix.Errno) error { return fmt.Errorf("evloop: %s: %w", op, errno) }
