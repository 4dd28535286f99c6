//go:build linux

package httpd

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/http-status/http_status/cache"

	"github.com/http-status/http_status/internal/check"
)

// TestServeAnswersAcceptedConnDuringShutdown: a connection accepted before
// the stop whose request arrives after it still gets its answer (plain
// http.Server.Shutdown would close it unanswered), and Serve returns nil.
func TestServeAnswersAcceptedConnDuringShutdown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	// A directory read once, holding no flag (an empty store is not
	// read yet: every check 503).
	st := cache.NewStore()
	b := cache.NewBuilder(cache.Empty())
	b.SetDirProblem("")
	st.Publish(b.Snapshot(time.Now()))
	srv := NewServer(NewHandler(check.New(check.Options{Store: st})), zerolog.Nop())
	accepted := make(chan struct{}, 1)
	srv.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			// Never block: net/http calls this hook from its accept
			// loop, and the probe dials below may be accepted too.
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, srv, ln, 10*time.Second) }()

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("connection not accepted")
	}
	cancel()
	// Wait until the listener is closed: new connections are refused.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c2, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c2.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting after cancel")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := c.Write([]byte("GET /status HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer on a connection accepted before the stop: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("answer %d, want 404 (no status.html)", resp.StatusCode)
	}
	// The server then closes the connection.
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("connection still open after the answer (read %d bytes)", n)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return")
	}
}
