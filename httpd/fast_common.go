//go:build linux

package httpd

// The fast engine ([ServeFast]).
//
// The HTTP/1.x fast path is a handler on the event loops of
// internal/evloop, which own the sockets, accept, deadlines, buffers,
// backpressure, balancing and the stop (see that package). When we bind the
// port ourselves ([ListenReusePort]) each loop has its own SO_REUSEPORT
// socket; with a socket inherited from systemd every loop polls it with
// EPOLLEXCLUSIVE. TCP_DEFER_ACCEPT is set on the listening socket: a
// connection is accepted once its request is there and answered before it
// is even registered with epoll, so a client that opens one connection per
// check costs accept4, read, write and close.
//
// Per request: a parse of the request line and headers that allocates
// nothing, [Checker.Check], the answer appended in place to the loop's
// output buffer, one write for every request of a read (pipelining). A
// connection holds an input buffer only while a request is incomplete, and
// at most OutCap of unsent answers: past that it is not read until its
// client has read them.
//
// The engine answers GET and HEAD /status, OPTIONS / and OPTIONS /status,
// and 405 for other methods, with the bytes net/http sends for [Handler]'s
// answers: same status line, headers in net/http's order (sorted, then Date,
// then Connection), same body, same keep-alive rules for HTTP/1.0 and 1.1
// (Connection tokens as net/http reads them), same 431 limit (MaxHeaderBytes
// plus net/http's 4096 bytes of slack), same "400 Bad Request" for a
// malformed request line (answered as soon as the line is in) or header
// line, same 400 or silent close for a request cut off by the read-header
// timeout, same tolerance of CR/LF after a POST, and the same half-close
// and wait after a 400 or 431. Everything else (other paths, escaped paths, absolute
// targets, bodies, Transfer-Encoding, Expect, a repeated Host, a missing
// Host on HTTP/1.1 except for the health-check paths (see hostfix.go),
// invalid header names or values, other HTTP versions, a request cut short
// by the client's half-close) is handed to net/http with the bytes already
// read, and net/http answers it exactly as before; the connection stays with
// net/http from then on, and counts against MaxConns until net/http closes
// it. The known differences: the Date value is computed once a second;
// WriteTimeout counts from when the socket first refuses bytes rather than
// from the request; TCP_NODELAY is set only on connections kept alive (an
// answer is always one write); a connection over MaxConns, or one accepted
// when no file descriptor is left, gets a 503 "too many connections now"
// instead of no answer.
//
// Counting: [Checker.Check] counts its answers; the engine counts its 405s
// with Codes().Inc, as [Handler] does; handed-over requests are counted by
// [Handler]. Protocol errors (400 for a malformed request, 431) are not
// counted, by either engine.
//
// Timeouts: the read-header timeout runs from the first byte of each
// request (from accept for the first); the idle timeout between requests;
// the write timeout while answers wait for the socket.
//
// Stop: on ctx done every loop stops polling its listening socket, which is
// then closed (a socket systemd holds keeps queuing connections for the
// next process), closes idle keep-alive connections, lets each accepted
// connection get its answer (with "Connection: close") and close; after
// grace the rest are closed. net/http then stops likewise within what is
// left of grace for the connections it was handed.

import (
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"
)

// DefaultFastMaxConns bounds the connections the fast engine holds at once,
// those handed over to net/http included until net/http closes them. Beyond
// it a new connection gets a 503 and is closed. An idle connection costs a
// few hundred bytes plus the kernel's socket buffers; one with an
// incomplete request borrows an input buffer of MaxHeaderBytes+4.5 KiB
// until the request is complete (12.5 KiB by default), and one whose client
// does not read its answers holds at most OutCap (16 KiB) of them; so
// 50,000 slow clients would hold at most about 1.4 GB, and they are closed
// after the read-header or write timeout. The process's RLIMIT_NOFILE (Go
// raises the soft limit to the hard one at start) may be the tighter bound.
const DefaultFastMaxConns = 50000

// FastOptions tune [ServeFast]. Zero values take the defaults.
type FastOptions struct {
	// Loops is the number of event loops (GOMAXPROCS by default). With a
	// [ReusePortListener] it is the number of its sockets.
	Loops int
	// MaxConns bounds the connections held at once (DefaultFastMaxConns).
	MaxConns int
	// Timeouts and header limit; by default those of the http.Server
	// passed to ServeFast, else the package's constants.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	WriteTimeout      time.Duration
	MaxHeaderBytes    int
	// OutCap is the unsent output above which a connection is not read
	// until its client has read its answers (evloop.DefaultOutCap).
	OutCap int
	// NoYield turns off the loops' yield after serving kept-alive
	// connections (for benchmarks; see internal/evloop).
	NoYield bool
	// Started, when set, is called once the event loops are set up (each
	// holds its epoll and eventfd descriptors) and about to serve;
	// ServeFast returns an error without calling it when they cannot be.
	Started func()
}

func (o FastOptions) withDefaults(srv *http.Server) FastOptions {
	if o.Loops <= 0 {
		o.Loops = runtime.GOMAXPROCS(0)
	}
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultFastMaxConns
	}
	pick := func(v, fromSrv, def time.Duration) time.Duration {
		switch {
		case v > 0:
			return v
		case fromSrv > 0:
			return fromSrv
		}
		return def
	}
	var s http.Server
	if srv != nil {
		s.ReadHeaderTimeout, s.IdleTimeout, s.WriteTimeout, s.MaxHeaderBytes = srv.ReadHeaderTimeout, srv.IdleTimeout, srv.WriteTimeout, srv.MaxHeaderBytes
	}
	o.ReadHeaderTimeout = pick(o.ReadHeaderTimeout, s.ReadHeaderTimeout, ReadHeaderTimeout)
	o.IdleTimeout = pick(o.IdleTimeout, s.IdleTimeout, IdleTimeout)
	o.WriteTimeout = pick(o.WriteTimeout, s.WriteTimeout, WriteTimeout)
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = s.MaxHeaderBytes
		if o.MaxHeaderBytes <= 0 {
			o.MaxHeaderBytes = MaxHeaderBytes
		}
	}
	return o
}

// handoffListener is the net.Listener net/http's Server consumes for the
// connections the fast engine hands over.
type handoffListener struct {
	ch        chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func newHandoffListener() *handoffListener {
	return &handoffListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

// deliver passes c to Accept, or closes it once the listener is closed.
func (h *handoffListener) deliver(c net.Conn) {
	select {
	case h.ch <- c:
	case <-h.done:
		c.Close()
	}
}

func (h *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-h.ch:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoffListener) Close() error {
	h.closeOnce.Do(func() { close(h.done) })
	return nil
}

func (h *handoffListener) Addr() net.Addr { return handoffAddr{} }

type handoffAddr struct{}

func (handoffAddr) Network() string { return "tcp" }
func (handoffAddr) String() string  { return "fast-engine-handoff" }

// replayConn is a handed-over connection: the bytes the engine already read
// come first. It counts against the engine's MaxConns until closed.
type replayConn struct {
	net.Conn
	replay  []byte
	release func()
	once    sync.Once
}

// Close closes the connection and releases its place in MaxConns.
func (c *replayConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		if c.release != nil {
			c.release()
		}
	})
	return err
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.replay) > 0 {
		n := copy(p, c.replay)
		c.replay = c.replay[n:]
		if len(c.replay) == 0 {
			c.replay = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite lets net/http half-close as it does on its own connections.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
