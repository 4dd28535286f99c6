//go:build linux

// Package testserve serves an [httpd.Handler] on a loopback port with each
// of the daemon's engines, for tests of what sits on top of the handler.
package testserve

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/http-status/http_status/httpd"
)

// Engine is one way to serve a handler: net/http alone, or the fast engine
// with its own SO_REUSEPORT sockets or with one shared (inherited) socket.
type Engine struct {
	Name   string
	Fast   bool
	Listen func(addr string) (net.Listener, error)
}

// Engines are the three ways the daemon serves HTTP.
var Engines = []Engine{
	{"net-http", false, func(a string) (net.Listener, error) { return net.Listen("tcp", a) }},
	{"fast-reuseport", true, func(a string) (net.Listener, error) { return httpd.ListenReusePort(a, 2) }},
	{"fast-shared", true, func(a string) (net.Listener, error) { return net.Listen("tcp", a) }},
}

// ServeEngine serves h with engine e on a loopback port until the test
// ends, and returns the address.
func ServeEngine(t *testing.T, e Engine, h *httpd.Handler) string {
	t.Helper()
	ln, err := e.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpd.NewServer(h, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		defer ln.Close()
		if e.Fast {
			done <- httpd.ServeFast(ctx, h, srv, ln, 2*time.Second, httpd.FastOptions{Loops: 2})
		} else {
			done <- httpd.Serve(ctx, srv, ln, 2*time.Second)
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("serve did not return")
		}
	})
	return ln.Addr().String()
}
