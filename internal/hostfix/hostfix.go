//go:build linux

// Package hostfix lets HTTP/1.1 health checks without a Host header through
// to net/http, which answers every HTTP/1.1 request without Host with 400
// before any handler runs (old HAProxy configurations send such checks).
// A [Conn] scans the requests as they stream in and adds an empty "Host: "
// line to the ones its [PathOK] names; everything else passes unchanged.
package hostfix

import (
	"bytes"
	"net"

	"github.com/http-status/http_status/internal/check"
)

// PathOK reports whether an HTTP/1.1 request for path (without the query;
// options: the method is OPTIONS) may come without a Host header.
type PathOK func(path []byte, options bool) bool

// Listener wraps every connection ln accepts in a [Conn] that lets the
// requests ok names through without a Host header.
func Listener(ln net.Listener, ok PathOK) net.Listener { return listener{ln, ok} }

type listener struct {
	net.Listener
	ok PathOK
}

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return NewConn(c, l.ok), nil
}

// NewConn wraps c.
func NewConn(c net.Conn, ok PathOK) *Conn { return &Conn{Conn: c, scan: scan{ok: ok}} }

// Conn is a connection whose incoming requests are scanned as they
// pass: an HTTP/1.1 request for a health-check path without a Host header
// gets "Host: " (empty) right before the blank line that ends its headers.
// Bytes are passed on as soon as they are read (nothing is held back, so
// timeouts and errors reach net/http as before); only the inserted line is
// new. After a request with a body, or anything the scan does not follow
// (an obs-fold, a header line without a colon), the rest of the connection
// passes unchanged: our health checks have no bodies, and net/http answers
// the rest exactly as it would have.
type Conn struct {
	net.Conn
	scan scan
	out  []byte // scanned bytes (with an insertion) not yet returned
}

var hostLine = []byte("Host: \r\n")

func (c *Conn) Read(p []byte) (int, error) {
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
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// scan follows the request stream byte by byte with constant memory.
type scan struct {
	ok       PathOK
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
func (s *scan) feed(b []byte, at []int) []int {
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

func (s *scan) requestLineByte(c byte) {
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

func (s *scan) endRequestLine() {
	v := s.version[:min(s.nversion, len(s.version))]
	if len(v) > 0 && v[len(v)-1] == '\r' {
		v = v[:len(v)-1]
	}
	s.eligible = s.sp == 2 && string(v) == "HTTP/1.1" && s.nversion <= len(s.version) &&
		s.npath <= len(s.path) && s.nmethod <= len(s.method) &&
		s.ok(s.path[:s.npath], string(s.method[:s.nmethod]) == "OPTIONS")
}

func (s *scan) nameByte(c byte) {
	if s.nname < len(s.name) {
		s.name[s.nname] = c
	}
	s.nname++
}

func (s *scan) header() int {
	if s.nname > len(s.name) {
		return hdrOther
	}
	n := string(s.name[:s.nname]) // no allocation: compared only
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

func (s *scan) endHeader() {
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
func (s *scan) endRequest() {
	if s.hasBody {
		s.off = true
		return
	}
	*s = scan{ok: s.ok}
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
