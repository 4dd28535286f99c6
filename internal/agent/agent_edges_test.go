//go:build linux

package agent

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestAgentEdges: the agent protocol's awkward clients on the event loops,
// with raw sockets: a line one byte per write, a line of exactly the most
// allowed, one byte over, NUL bytes, CRLF, a half-close before any byte and
// after a line without its newline, a peer that resets. Every connection is
// answered as the goroutine path would, or closed; none keeps its place.
func TestAgentEdges(t *testing.T) {
	t.Parallel()
	st := agentStore(t, agentFlags)
	a := newTestAgent(t, st, Options{SendWait: 2 * time.Second, Logger: zerolog.Nop()})
	addr := agentServe(t, a)
	ask := func(t *testing.T, chunks []string, halfClose bool) string {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_ = c.(*net.TCPConn).SetNoDelay(true)
		for _, s := range chunks {
			if _, err := io.WriteString(c, s); err != nil {
				t.Fatal(err)
			}
		}
		if halfClose {
			_ = c.(*net.TCPConn).CloseWrite()
		}
		b, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("%q: %q %v", chunks, b, err)
		}
		return string(b)
	}
	bytewise := strings.Split("squid.80\n", "")
	q := "SERVICE=squid&PORT=80&x="
	longest := q + strings.Repeat("y", MaxLine-1-len(q)) // MaxLine-1 bytes, then the newline
	for _, tt := range []struct {
		name      string
		chunks    []string
		halfClose bool
		want      string
	}{
		{"byte per write", bytewise, false, "up ready 100%\n"},
		{"CRLF", []string{"web.443\r\n"}, false, "up ready 50%\n"},
		{"NUL", []string{"squid\x00.80\n"}, false, BadRequest + "\n"},
		{"longest line", []string{longest + "\n"}, false, "up ready 100%\n"},
		{"one over", []string{longest + "y\n"}, false, BadRequest + "\n"},
		{"two lines", []string{"old.80\nsquid.80\n"}, false, "down ready #disk full\n"},
		{"half-close first", nil, true, "up ready 100%\n"}, // status.html
		{"half-close after line", []string{"web.443"}, true, "up ready 50%\n"},
		{"half-close after newline", []string{"web.443\n"}, true, "up ready 50%\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := ask(t, tt.chunks, tt.halfClose); got != tt.want {
				t.Errorf("reply %q, want %q", got, tt.want)
			}
		})
	}
	// Resets: before the line, and mid-line.
	for _, send := range []string{"", "squi"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, send)
		_ = c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for a.Stats().Open != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("connections still held: %+v", a.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
