//go:build linux

package hostfix

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
)

// chunkConn hands out its data at most chunk bytes per Read.
type chunkConn struct {
	net.Conn
	data  []byte
	chunk int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), c.chunk, len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// throughHostFix reads data through a Conn whose peer sends chunk
// bytes at a time, into reads of readSize bytes.
func throughHostFix(data string, chunk, readSize int) string {
	c := NewConn(&chunkConn{data: []byte(data), chunk: chunk}, healthPaths)
	var out bytes.Buffer
	buf := make([]byte, readSize)
	for {
		n, err := c.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			return out.String()
		}
	}
}

func TestHostFixConn(t *testing.T) {
	tests := []struct{ in, want string }{
		{"GET /status?SERVICE=a HTTP/1.1\r\nconnection: close\r\n\r\n", "GET /status?SERVICE=a HTTP/1.1\r\nconnection: close\r\nHost: \r\n\r\n"},
		{"GET /status HTTP/1.1\r\n\r\n", "GET /status HTTP/1.1\r\nHost: \r\n\r\n"},
		{"GET /status HTTP/1.1\n\n", "GET /status HTTP/1.1\nHost: \r\n\n"},
		{"OPTIONS / HTTP/1.1\r\n\r\n", "OPTIONS / HTTP/1.1\r\nHost: \r\n\r\n"},
		{"GET /healthz HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\n\r\n", "GET /healthz HTTP/1.1\r\nHost: \r\n\r\nGET /health HTTP/1.1\r\nHost: \r\n\r\n"},
		// Left alone: a Host, HTTP/1.0, another path, GET /.
		{"GET /status HTTP/1.1\r\nHOST: x\r\n\r\n", ""},
		{"GET /status HTTP/1.0\r\n\r\n", ""},
		{"GET /status.json HTTP/1.1\r\n\r\n", ""},
		{"GET / HTTP/1.1\r\n\r\n", ""},
		{"GET /status HTTP/1.1 x\r\n\r\n", ""},
		// A body: the rest passes unchanged.
		{"POST /status HTTP/1.1\r\nContent-Length: 4\r\n\r\nGET /status HTTP/1.1\r\n\r\n", "POST /status HTTP/1.1\r\nContent-Length: 4\r\nHost: \r\n\r\nGET /status HTTP/1.1\r\n\r\n"},
		{"GET /status HTTP/1.1\r\nContent-Length: 0\r\n\r\nGET /status HTTP/1.1\r\n\r\n", "GET /status HTTP/1.1\r\nContent-Length: 0\r\nHost: \r\n\r\nGET /status HTTP/1.1\r\nHost: \r\n\r\n"},
		{"GET /status HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /status HTTP/1.1\r\n\r\n", ""},
	}
	for _, tc := range tests {
		want := tc.want
		if want == "" {
			want = tc.in
		}
		for _, chunk := range []int{1, 2, 3, 7, 1 << 10} {
			for _, rs := range []int{1, 5, 4096} {
				if got := throughHostFix(tc.in, chunk, rs); got != want {
					t.Errorf("%q (chunks of %d, reads of %d):\n got %q\nwant %q", tc.in, chunk, rs, got, want)
				}
			}
		}
	}
}

// FuzzHostFixConn: however the bytes are split, the scan inserts the same
// lines, and removing them gives back exactly what the client sent.
func FuzzHostFixConn(f *testing.F) {
	for _, s := range []string{
		"GET /status?SERVICE=web&PORT=80 HTTP/1.1\r\n\r\n",
		"OPTIONS / HTTP/1.1\r\nConnection: close\r\n\r\n",
		"GET /healthz HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\n\r\n",
		"GET /other HTTP/1.1\r\n\r\n",
		"POST /status HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
	} {
		f.Add(s, uint8(3))
	}
	f.Add("GET /status HTTP/1.1\r\nHost: x\r\n\r\n", uint8(1))
	f.Fuzz(func(t *testing.T, in string, chunk uint8) {
		whole := throughHostFix(in, 1<<20, 1<<20)
		split := throughHostFix(in, int(chunk%16)+1, int(chunk%7)+1)
		if whole != split {
			t.Fatalf("%q: whole %q, split %q", in, whole, split)
		}
		if len(whole) < len(in) || (len(whole)-len(in))%len(hostLine) != 0 {
			t.Fatalf("%q became %q", in, whole)
		}
		// Every insertion is a whole Host line; taking them out (leftmost
		// first, where the input has none) restores the input.
		got := whole
		for got != in {
			i := 0
			for i < len(got) && i < len(in) && got[i] == in[i] {
				i++
			}
			if !strings.HasPrefix(got[i:], string(hostLine)) {
				t.Fatalf("%q became %q: not an insertion at %d", in, whole, i)
			}
			got = got[:i] + got[i+len(hostLine):]
		}
	})
}

// BenchmarkHostFixRead is the scan's cost per request on the net/http
// path: one HAProxy-style check with a Host (nothing inserted) and one
// without (a Host line inserted), each read whole.
func BenchmarkHostFixRead(b *testing.B) {
	for _, req := range []string{
		"GET /status?SERVICE=squid&PORT=80 HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n",
		"GET /status?SERVICE=squid&PORT=80 HTTP/1.1\r\nconnection: close\r\n\r\n",
	} {
		name := "with-host"
		if !strings.Contains(req, "Host") {
			name = "without-host"
		}
		data := []byte(req)
		b.Run(name, func(b *testing.B) {
			cc := &chunkConn{}
			c := NewConn(cc, healthPaths)
			buf := make([]byte, 4096)
			b.ReportAllocs()
			for b.Loop() {
				cc.data, cc.chunk = data, len(data) // Read only reslices it
				c.scan = scan{ok: healthPaths}
				for {
					if _, err := c.Read(buf); err != nil {
						break
					}
				}
			}
		})
	}
}

// healthPaths is the daemon's rule (httpd's hostlessOK) for these tests.
func healthPaths(path []byte, options bool) bool {
	switch string(path) {
	case "/status", "/healthz", "/health":
		return true
	case "/":
		return options
	}
	return false
}
