package httpd

import (
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"
)

// DefaultFastMaxConns bounds the connections the fast engine holds at once
// (handed-over connections are net/http's and not counted). Beyond it a new
// connection is accepted and closed at once. Each idle connection costs
// about 100 bytes plus the kernel's socket buffers; one with an incomplete
// request borrows a read buffer of MaxHeaderBytes+4.5 KiB until the request
// is complete (12.5 KiB by default), so 50,000 slow clients would hold about
// 640 MB; they are closed after the read-header timeout. The process's
// RLIMIT_NOFILE (Go raises the soft limit to the hard one at start) may be
// the tighter bound.
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
	// LockOSThread pins each loop to its own thread.
	LockOSThread bool

	grace time.Duration
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
// come first.
type replayConn struct {
	net.Conn
	replay []byte
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
