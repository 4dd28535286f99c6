//go:build linux

package httpd

import (
	"strings"
	"testing"
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
