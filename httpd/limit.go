//go:build linux

package httpd

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/http-status/http_status/internal/evloop"
)

// DefaultMaxConns bounds the connections the net/http engine ([Serve])
// holds at once, as DefaultFastMaxConns does for the fast engine. net/http
// alone has no such bound: every connection costs a goroutine and its
// buffers, and idle ones are kept for IdleTimeout, so a flood of
// connections could grow the daemon without limit.
const DefaultMaxConns = DefaultFastMaxConns

// limitListener accepts at most max connections at once. A connection over
// the limit gets the same 503 the fast engine sends and is closed at once,
// on the accepting goroutine: no goroutine or buffer is spent on it.
type limitListener struct {
	net.Listener
	max        int64
	open       atomic.Int64
	accepted   atomic.Uint64
	overloaded atomic.Uint64
}

func newLimitListener(ln net.Listener, max int) *limitListener {
	return &limitListener{Listener: ln, max: int64(max)}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.accepted.Add(1)
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			l.overloaded.Add(1)
			refuse(c)
			continue
		}
		return &limitConn{Conn: c, l: l}, nil
	}
}

func (l *limitListener) stats() ConnStats {
	return ConnStats{Open: l.open.Load(), Accepted: l.accepted.Load(), Overloaded: l.overloaded.Load()}
}

// refuse answers c with the overload 503 and closes it without blocking
// the accept loop: a new socket's send buffer takes the answer at once.
// The request already received is read first, so that the close is a FIN
// and not a reset that could destroy the answer.
//
// The answer is one non-blocking write on the raw socket, not a Write with
// a short deadline: on a loaded host the deadline could pass before the
// goroutine ran, and the client got a bare close.
func refuse(c net.Conn) {
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			_ = rc.Write(func(fd uintptr) bool {
				evloop.Write(int(fd), []byte(respOverloaded))
				return true
			})
			_ = rc.Read(func(fd uintptr) bool {
				evloop.Drain(int(fd)) // non-blocking reads, then shutdown(SHUT_WR)
				return true
			})
			_ = c.Close()
			return
		}
	}
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
	_, _ = c.Write([]byte(respOverloaded))
	_ = c.Close()
}

// limitConn gives its place back when net/http closes it.
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}

// CloseWrite lets net/http half-close as it does on its own connections.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
