//go:build linux

package httpd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// Tests for defects found in the fast engine by an audit; each failed
// before its fix.

// serveFastOpts serves the test handler with the fast engine and opts.
func serveFastOpts(t *testing.T, opts FastOptions, tweak func(*http.Server)) string {
	t.Helper()
	ln, err := ListenReusePort("127.0.0.1:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	h := fastTestHandler(t)
	srv := NewServer(h, zerolog.Nop())
	if tweak != nil {
		tweak(srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeFast(ctx, h, srv, ln, time.Second, opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeFast: %v", err)
		}
	})
	return ln.Addr().String()
}

// TestFastDeadlineStraddle: a kept-alive client whose reads end mid-request
// (the rest of one request and the start of the next in each write) is
// served as long as each request's own header block comes within the
// read-header timeout, as net/http does. The deadline used to be reset only
// when nothing was buffered: such a client got a 400 after the timeout.
func TestFastDeadlineStraddle(t *testing.T) {
	const rht = 400 * time.Millisecond
	addr := serveFastOpts(t, FastOptions{ReadHeaderTimeout: rht}, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := "GET /status?SERVICE=squid&PORT=80 HTTP/1.1\r\nHost: x\r\n\r\n"
	half := len(req) / 2
	r := bufio.NewReader(c)
	_, _ = io.WriteString(c, req[:half])
	const n = 8 // 8 x 150 ms: three times the timeout
	for i := range n {
		time.Sleep(150 * time.Millisecond) // the client's pace, the case under test
		next := req[:half]
		if i == n-1 {
			next = ""
		}
		if _, err := io.WriteString(c, req[half:]+next); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		res, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("request %d straddling two reads: %d, want 200", i, res.StatusCode)
		}
	}
}

// TestFastBadRequestLineAtOnce: a malformed request line is answered 400 as
// soon as the line is in, as net/http does, not when the header block ends
// or the read-header timeout passes.
func TestFastBadRequestLineAtOnce(t *testing.T) {
	for _, e := range testEngines {
		t.Run(e.name, func(t *testing.T) {
			addr, _ := serveEngine(t, e, fastTestHandler(t), func(s *http.Server) { s.ReadHeaderTimeout = 10 * time.Second })
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _ = io.WriteString(c, "GARBAGE\r\nHost: x\r\n") // no end of headers
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			b, err := io.ReadAll(c)
			if !strings.HasPrefix(string(b), "HTTP/1.1 400 Bad Request\r\n") {
				t.Fatalf("got %q, %v; want a 400 at once", b, err)
			}
		})
	}
}

// TestFastBadMethodByteAtOnce: bytes that cannot start a request line (a
// TLS ClientHello, binary noise) are answered 400 as soon as they arrive,
// with no line end and the read-header timeout far away, by the fast
// engine only: net/http waits for the line (its answer at the end is the
// same 400, TestFastPartialRequests).
func TestFastBadMethodByteAtOnce(t *testing.T) {
	addr := serveFastOpts(t, FastOptions{}, func(s *http.Server) { s.ReadHeaderTimeout = 10 * time.Second })
	for _, req := range []string{"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "GE\x00", "G\x7fT /status HTTP/1.1\r\nHost: x\r\n"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, req) // no line end, or no end of headers
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		b, err := io.ReadAll(c)
		c.Close()
		if !strings.HasPrefix(string(b), "HTTP/1.1 400 Bad Request\r\n") {
			t.Fatalf("%q: got %q, %v; want a 400 at once", req, b, err)
		}
	}
	// A request line still coming in (a method, CR/LF of a previous
	// request) is waited for: nothing is answered before its end.
	for _, req := range []string{"GET", "\r", "GET /sta"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, req)
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		b, err := io.ReadAll(c)
		c.Close()
		if len(b) != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%q: got %q, %v; want nothing yet", req, b, err)
		}
	}
}

// TestFast431NoReset: a client whose header block is over the limit and
// who keeps sending gets the whole 431 and a clean close: the server
// half-closes and drains first, as net/http does, instead of a reset that
// can destroy the answer.
func TestFast431NoReset(t *testing.T) {
	for _, e := range testEngines {
		t.Run(e.name, func(t *testing.T) {
			addr, _ := serveEngine(t, e, fastTestHandler(t), nil)
			for range 5 {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				wdone := make(chan struct{})
				go func() {
					defer close(wdone)
					_, _ = io.WriteString(c, "GET /status HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 40<<10))
					_, _ = io.WriteString(c, strings.Repeat("b", 64<<10))
				}()
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				b, err := io.ReadAll(c)
				c.Close()
				<-wdone
				if errors.Is(err, syscall.ECONNRESET) || !strings.HasSuffix(string(b), "431 Request Header Fields Too Large") {
					t.Fatalf("got %q, %v; want the whole 431 and a clean close", b, err)
				}
			}
		})
	}
}

// TestFastHandoffsCountAgainstMaxConns: connections handed over to net/http
// (any request the fast path does not answer) still count against
// MaxConns until net/http closes them; beyond the limit a new connection
// gets the overload answer. They used to leave the count at once.
func TestFastHandoffsCountAgainstMaxConns(t *testing.T) {
	addr := serveFastOpts(t, FastOptions{MaxConns: 2}, nil)
	held := holdConns(t, addr, "GET /extra HTTP/1.1\r\nHost: x\r\n\r\n", 2) // handed to net/http, kept alive
	if got := exchange(t, addr, "GET /status HTTP/1.0\r\n\r\n"); got != respOverloaded {
		t.Fatalf("a third connection while two handed-over ones are open: %q, want the overload answer", got)
	}
	held[0].Close() // net/http closes its side, the count drops
	servedAgain(t, addr, "after a handed-over connection closed")
}

// TestFastOverloadAnswer is the byte count of the overload answer.
func TestFastOverloadAnswer(t *testing.T) {
	i := strings.Index(respOverloaded, "\r\n\r\n")
	body := respOverloaded[i+4:]
	if want := fmt.Sprintf("Content-Length: %d\r\n", len(body)); !strings.Contains(respOverloaded, want) {
		t.Fatalf("overload answer's Content-Length is not %d", len(body))
	}
}
