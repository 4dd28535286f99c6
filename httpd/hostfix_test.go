//go:build linux

package httpd

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"testing"

	"github.com/http-status/http_status/internal/hostfix"
)

// FuzzHostlessAgree: both engines decide alike. Every HTTP/1.1 request the
// fast engine answers itself reaches net/http, through the scan, with a
// Host header (the client's, or the empty one the scan adds), so net/http
// would answer it too rather than 400.
func FuzzHostlessAgree(f *testing.F) {
	for _, s := range append(append([]string{}, hostlessChecks...), hostlessStrict...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r fastReq
		n, oc := parseRequest(b, MaxHeaderBytes+4096, &r)
		if oc != reqAnswer || r.http10 {
			return
		}
		out := throughHostFix(string(b[:n]))
		if _, err := http.ReadRequest(bufio.NewReader(strings.NewReader(out))); err != nil {
			t.Fatalf("the fast engine answers %q; net/http cannot read it: %v", b[:n], err)
		}
		// The header block as net/http's server reads it (ReadRequest
		// moves Host out of the header; the server checks the header).
		tp := textproto.NewReader(bufio.NewReader(strings.NewReader(out)))
		if _, err := tp.ReadLine(); err != nil {
			t.Fatal(err)
		}
		hdr, err := tp.ReadMIMEHeader()
		if err != nil {
			t.Fatalf("%q: %v", out, err)
		}
		if len(hdr["Host"]) != 1 {
			t.Fatalf("the fast engine answers %q; net/http would see Host %q (scan gave %q)", b[:n], hdr["Host"], out)
		}
	})
}

// throughHostFix is data as net/http reads it through the Host fix.
func throughHostFix(data string) string {
	c := hostfix.NewConn(&bytesConn{r: bytes.NewReader([]byte(data))}, hostlessOK)
	b, _ := io.ReadAll(c)
	return string(b)
}

// bytesConn is a connection that only reads data.
type bytesConn struct {
	net.Conn
	r *bytes.Reader
}

func (c *bytesConn) Read(p []byte) (int, error) { return c.r.Read(p) }
