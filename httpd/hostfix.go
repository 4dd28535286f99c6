//go:build linux

package httpd

import (
	"bytes"
	"net"

	"github.com/http-status/http_status/internal/check"
)

// Health checks without a Host header.
//
// Old HAProxy configurations send "option httpchk GET /status?... HTTP/1.1"
// with no Host line (HAProxy adds none), and net/http answers every
// HTTP/1.1 request without Host with 400 before any handler runs: the
// backend would stay DOWN after switching to this daemon. For the health
// check paths only (/status, /healthz, /health, and OPTIONS /) such a
// request is answered as if it had an empty Host; every other path stays
// strict.
//
// The fast engine answers the /status and OPTIONS ones itself
// ([parseRequest]); everything net/http reads goes through a
// [hostFixConn], which adds "Host: " to those requests before net/http
// sees them. Both engines decide with [hostlessOK], so they send the same
// bytes.

// hostlessOK reports whether an HTTP/1.1 request for path (without the
// query) may come without a Host header.
func hostlessOK(path []byte, options bool) bool {
	switch string(path) {
	case "/status", PathHealthz, PathHealth:
		return true
	case "/":
		return options
	}
	return false
}

// hostFixListener wraps every connection it accepts in a [hostFixConn].
type hostFixListener struct{ net.Listener }

func (l hostFixListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &hostFixConn{Conn: c}, nil
}

// hostFixConn is a connection whose incoming requests are scanned as they
// pass: an HTTP/1.1 request for a health-check path without a Host header
// gets "Host: " (empty) right before the blank line that ends its headers.
// Bytes are passed on as soon as they are read (nothing is held back, so
// timeouts and errors reach net/http as before); only the inserted line is
// new. After a request with a body, or anything the scan does not follow
// (an obs-fold, a header line without a colon), the rest of the connection
// passes unchanged: our health checks have no bodies, and net/http answers
// the rest exactly as it would have.
type hostFixConn struct {
	net.Conn
	scan hostScan
	out  []byte // scanned bytes (with an insertion) not yet returned
}

var hostLine = []byte("Host: \r\n")

func (c *hostFixConn) Read(p []byte) (int, error) {
	if len(c.out) > 0 {
		n := copy(p, c.out)
		c.out = c.out[n:]
		return n, nil
	}
	n, err := c.Conn.Read(p)
	if n <= 0 || c.scan.off {
		return n, err
	}
	var at [4]int
	ins := c.scan.feed(p[:n], at[:0])
	if len(ins) == 0 {
		return n, err
	}
	// Rare (only Host-less health checks): build the stream with the
	// insertions and return what fits.
	buf := make([]byte, 0, n+len(ins)*len(hostLine))
	prev := 0
	for _, i := range ins {
		buf = append(buf, p[prev:i]...)
		buf = append(buf, hostLine...)
		prev = i
	}
	buf = append(buf, p[prev:n]...)
	k := copy(p, buf)
	c.out = buf[k:]
	if len(c.out) > 0 {
		// The error (if any) comes with the next Read, after the bytes.
		return k, nil
	}
	return k, err
}

// CloseWrite lets net/http half-close as it does on its own connections.
func (c *hostFixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// hostScan follows the request stream byte by byte with constant memory.
type hostScan struct {
	st       int
	off      bool // stopped following: everything passes unchanged
	sp       int  // spaces seen in the request line
	method   [8]byte
	nmethod  int
	path     [10]byte
	npath    int
	inQuery  bool
	version  [10]byte
	nversion int
	eligible bool // HTTP/1.1, health-check path
	hasHost  bool
	hasBody  bool
	name     [18]byte
	nname    int
	hdr      int // which header the current line is
	val      [24]byte
	nval     int
}

const (
	scanReqLine = iota
	scanLineStart
	scanName
	scanValue
	scanEndCR
)

const (
	hdrOther = iota
	hdrHost
	hdrContentLength
	hdrTransferEncoding
)

// feed scans b and appends to at the offsets in b where a Host line must be
// inserted.
func (s *hostScan) feed(b []byte, at []int) []int {
	for i := 0; i < len(b) && !s.off; i++ {
		c := b[i]
		switch s.st {
		case scanReqLine:
			if c == '\n' {
				s.endRequestLine()
				s.st = scanLineStart
				continue
			}
			if s.sp == 1 && s.inQuery && c != ' ' {
				// The query does not matter: skip to its end.
				if j := indexAny2(b[i:], ' ', '\n'); j > 0 {
					i += j - 1
					continue
				} else if j < 0 {
					i = len(b)
					continue
				}
			}
			s.requestLineByte(c)
		case scanLineStart:
			switch c {
			case '\r', '\n':
				if s.eligible && !s.hasHost {
					at = append(at, i)
				}
				if c == '\r' {
					s.st = scanEndCR
				} else {
					s.endRequest()
				}
			case ' ', '\t':
				s.off = true // obs-fold: net/http decides
			default:
				s.st = scanName
				s.nname = 0
				s.nameByte(c)
			}
		case scanName:
			switch c {
			case ':':
				s.hdr = s.header()
				s.nval = 0
				s.st = scanValue
			case '\n':
				s.off = true // no colon: net/http answers 400
			default:
				s.nameByte(c)
			}
		case scanValue:
			if c == '\n' {
				s.endHeader()
				s.st = scanLineStart
				continue
			}
			if s.hdr != hdrContentLength {
				// Only Content-Length's value matters: skip to the
				// line's end.
				j := bytes.IndexByte(b[i:], '\n')
				if j < 0 {
					i = len(b)
				} else {
					i += j - 1
				}
				continue
			}
			if s.nval < len(s.val) {
				s.val[s.nval] = c
			}
			s.nval++
		case scanEndCR:
			if c != '\n' {
				s.off = true
				continue
			}
			s.endRequest()
		}
	}
	return at
}

func (s *hostScan) requestLineByte(c byte) {
	if c == ' ' {
		s.sp++
		return
	}
	switch s.sp {
	case 0:
		if s.nmethod < len(s.method) {
			s.method[s.nmethod] = c
		}
		s.nmethod++
	case 1:
		if c == '?' {
			s.inQuery = true
		}
		if !s.inQuery {
			if s.npath < len(s.path) {
				s.path[s.npath] = c
			}
			s.npath++
		}
	default:
		// net/http splits at the first two spaces: any further space is
		// part of the version, which then is not HTTP/1.1.
		if s.sp > 2 {
			s.nversion = len(s.version) + 1
		}
		if s.nversion < len(s.version) {
			s.version[s.nversion] = c
		}
		s.nversion++
	}
}

func (s *hostScan) endRequestLine() {
	v := s.version[:min(s.nversion, len(s.version))]
	if len(v) > 0 && v[len(v)-1] == '\r' {
		v = v[:len(v)-1]
	}
	s.eligible = s.sp == 2 && string(v) == "HTTP/1.1" && s.nversion <= len(s.version) &&
		s.npath <= len(s.path) && s.nmethod <= len(s.method) &&
		hostlessOK(s.path[:s.npath], string(s.method[:s.nmethod]) == "OPTIONS")
}

func (s *hostScan) nameByte(c byte) {
	if s.nname < len(s.name) {
		s.name[s.nname] = c
	}
	s.nname++
}

func (s *hostScan) header() int {
	if s.nname > len(s.name) {
		return hdrOther
	}
	n := unsafeString(s.name[:s.nname])
	switch {
	case check.EqualFoldASCII(n, "HOST"):
		return hdrHost
	case check.EqualFoldASCII(n, "CONTENT-LENGTH"):
		return hdrContentLength
	case check.EqualFoldASCII(n, "TRANSFER-ENCODING"):
		return hdrTransferEncoding
	}
	return hdrOther
}

func (s *hostScan) endHeader() {
	switch s.hdr {
	case hdrHost:
		s.hasHost = true
	case hdrContentLength:
		v := s.val[:min(s.nval, len(s.val))]
		if s.nval > len(s.val) || string(bytes.Trim(trimCR(v), " \t")) != "0" {
			s.hasBody = true
		}
	case hdrTransferEncoding:
		s.hasBody = true
	}
}

// endRequest is the blank line after the headers: a body ends the scan,
// otherwise the next request starts.
func (s *hostScan) endRequest() {
	if s.hasBody {
		s.off = true
		return
	}
	*s = hostScan{}
}

// indexAny2 is the index of the first x or y in b, or -1.
func indexAny2(b []byte, x, y byte) int {
	i, j := bytes.IndexByte(b, x), bytes.IndexByte(b, y)
	if i < 0 || (j >= 0 && j < i) {
		return j
	}
	return i
}

func trimCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}
