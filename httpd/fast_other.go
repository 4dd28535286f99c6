//go:build !linux

package httpd

import (
	"context"
	"net"
	"net/http"
	"time"
)

// FastSupported reports whether [ServeFast] runs the epoll engine here
// (Linux); elsewhere it serves with net/http.
const FastSupported = false

// ServeFast serves with net/http ([Serve]) where the epoll engine does not
// exist.
func ServeFast(ctx context.Context, c *Checker, srv *http.Server, ln net.Listener, grace time.Duration, opts FastOptions) error {
	return Serve(ctx, srv, ln, grace)
}

// ListenReusePort is net.Listen where the epoll engine does not exist.
func ListenReusePort(addr string, n int) (net.Listener, error) {
	return net.Listen("tcp", addr)
}
