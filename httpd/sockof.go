//go:build linux

package httpd

import (
	"context"
	"net"
	"net/http"
	"syscall"
)

type connKey struct{}

// withConn is http.Server.ConnContext for [NewServer]: handlers that watch
// their socket (the /events stream, see [SocketOf]) find it there.
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// SocketOf returns the socket under r's connection, through the wrappers
// of the connection limit and the fast engine's hand-over; false when the
// server was not made by [NewServer] or the connection is not a socket.
func SocketOf(r *http.Request) (syscall.RawConn, bool) {
	c, _ := r.Context().Value(connKey{}).(net.Conn)
	for c != nil {
		if w, ok := c.(interface{ NetConn() net.Conn }); ok {
			c = w.NetConn()
			continue
		}
		sc, ok := c.(syscall.Conn)
		if !ok {
			return nil, false
		}
		rc, err := sc.SyscallConn()
		return rc, err == nil
	}
	return nil, false
}

// NetConn is the connection under the limit's wrapper.
func (c *limitConn) NetConn() net.Conn { return c.Conn }

// NetConn is the connection under the hand-over's wrapper.
func (c *replayConn) NetConn() net.Conn { return c.Conn }
