//go:build linux

package httpd

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestFastHeaderLimit: both engines draw the 431 line at the same byte:
// MaxHeaderBytes plus net/http's 4096 bytes of slack for the whole header
// block.
func TestFastHeaderLimit(t *testing.T) {
	t.Parallel()
	var addrs []string
	for _, e := range testEngines {
		a, _ := serveEngine(t, e, fastTestHandler(t), nil)
		addrs = append(addrs, a)
	}
	head := "GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX: "
	limit := MaxHeaderBytes + 4096
	for _, tc := range []struct {
		total int
		want  string
	}{{limit - 1, "HTTP/1.1 200 "}, {limit, "HTTP/1.1 200 "}, {limit + 1, "HTTP/1.1 431 "}, {2 * limit, "HTTP/1.1 431 "}} {
		req := head + strings.Repeat("a", tc.total-len(head)-4) + "\r\n\r\n"
		for i, e := range testEngines {
			if got := exchange(t, addrs[i], req); !strings.HasPrefix(got, tc.want) {
				t.Errorf("%s: %d-byte header block: got %.40q, want %q", e.name, tc.total, got, tc.want)
			}
		}
	}
}

// TestNetHTTPMaxConns: the net/http engine holds at most its limit of
// connections too; beyond it a new connection gets the fast engine's 503
// and a clean close, and a closed connection gives its place back. Without
// the limit net/http kept every connection (a goroutine and buffers each)
// for as long as its client kept it idle.
func TestNetHTTPMaxConns(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := fastTestHandler(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- serveMax(ctx, NewServer(h, zerolog.Nop()), ln, time.Second, 2) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	addr := ln.Addr().String()
	held := holdConns(t, addr, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n", 2)
	if got := exchange(t, addr, "GET /status HTTP/1.0\r\n\r\n"); got != respOverloaded {
		t.Fatalf("third connection: %q, want the overload answer", got)
	}
	if st := h.EngineStats(); st.Open != 2 || st.Overloaded != 1 || st.Accepted != 3 {
		t.Fatalf("stats %+v, want 2 open, 3 accepted, 1 overloaded", st)
	}
	held[0].Close() // net/http sees EOF and closes its side: the place is free again
	servedAgain(t, addr, "after a connection closed")
}
