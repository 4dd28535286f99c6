// Package fcgi is a minimal FastCGI client, enough for health checks: one
// responder request per connection (FastCGI 1.0), no multiplexing, no
// keep-alive.
package fcgi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// A minimal FastCGI responder client (FastCGI 1.0 specification): one
// request per connection, no multiplexing, no keep-alive.
//
// Sent: FCGI_BEGIN_REQUEST (role RESPONDER, flags 0), FCGI_PARAMS carrying
// the CGI variables, an empty FCGI_PARAMS, an empty FCGI_STDIN. Read:
// FCGI_STDOUT and FCGI_STDERR until FCGI_END_REQUEST. The STDOUT stream is a
// CGI response: header lines ("Status: 404 Not Found"), a blank line, the
// body.

const (
	fcgiVersion      = 1
	fcgiBeginRequest = 1
	fcgiEndRequest   = 3
	fcgiParams       = 4
	fcgiStdin        = 5
	fcgiStdout       = 6
	fcgiStderr       = 7
	fcgiResponder    = 1
	fcgiRequestID    = 1
	fcgiMaxContent   = 65535
	// fcgiMaxResponse bounds STDOUT+STDERR kept from one answer.
	fcgiMaxResponse = 1 << 20
)

var protocolStatus = [...]string{0: "request complete", 1: "cannot multiplex connections", 2: "overloaded", 3: "unknown role"}

// Response is a parsed FastCGI answer: the CGI response on STDOUT
// (status, headers, body), what came on STDERR, and the application's
// status from FCGI_END_REQUEST.
type Response struct {
	Status    int
	Header    textproto.MIMEHeader
	Body      []byte
	Stderr    []byte
	AppStatus uint32
}

// Do sends one responder request with params (the CGI environment) and
// reads the whole answer; ctx bounds it all.
func Do(ctx context.Context, network, addr string, params [][2]string) (*Response, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	w := bufio.NewWriter(c)
	// FCGI_BeginRequestBody: role (2 bytes), flags, 5 reserved bytes.
	begin := [8]byte{0, fcgiResponder, 0}
	if err := writeRecord(w, fcgiBeginRequest, begin[:]); err != nil {
		return nil, err
	}
	var pb []byte
	for _, kv := range params {
		pb = appendLen(pb, len(kv[0]))
		pb = appendLen(pb, len(kv[1]))
		pb = append(pb, kv[0]...)
		pb = append(pb, kv[1]...)
	}
	for len(pb) > 0 { // a stream may span several records
		n := min(len(pb), fcgiMaxContent)
		if err := writeRecord(w, fcgiParams, pb[:n]); err != nil {
			return nil, err
		}
		pb = pb[n:]
	}
	if err := writeRecord(w, fcgiParams, nil); err != nil { // end of PARAMS
		return nil, err
	}
	if err := writeRecord(w, fcgiStdin, nil); err != nil { // end of STDIN
		return nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("send request: %w", err)
	}

	r := bufio.NewReader(c)
	var stdout, stderr []byte
	var hdr [8]byte
	content := make([]byte, 0, fcgiMaxContent) // a record holds at most 65535 bytes
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, errors.New("connection closed before FCGI_END_REQUEST")
			}
			return nil, fmt.Errorf("read record: %w", err)
		}
		if hdr[0] != fcgiVersion {
			return nil, fmt.Errorf("not a FastCGI peer (record version %d)", hdr[0])
		}
		typ := hdr[1]
		id := binary.BigEndian.Uint16(hdr[2:4])
		clen := int(binary.BigEndian.Uint16(hdr[4:6]))
		plen := int(hdr[6])
		content = content[:clen]
		if _, err := io.ReadFull(r, content); err != nil {
			return nil, fmt.Errorf("read record body: %w", err)
		}
		if _, err := r.Discard(plen); err != nil {
			return nil, fmt.Errorf("read record padding: %w", err)
		}
		if id != fcgiRequestID {
			continue // management records (id 0) or stray ids: not ours
		}
		switch typ {
		case fcgiStdout:
			if len(stdout)+len(stderr) < fcgiMaxResponse {
				stdout = append(stdout, content...)
			}
		case fcgiStderr:
			if len(stdout)+len(stderr) < fcgiMaxResponse {
				stderr = append(stderr, content...)
			}
		case fcgiEndRequest:
			if clen < 8 {
				return nil, errors.New("short FCGI_END_REQUEST")
			}
			app := binary.BigEndian.Uint32(content[0:4])
			if ps := content[4]; ps != 0 {
				msg := "protocol status " + strconv.Itoa(int(ps))
				if int(ps) < len(protocolStatus) {
					msg = protocolStatus[ps]
				}
				return nil, fmt.Errorf("request refused: %s", msg)
			}
			resp, err := parseCGI(stdout)
			if err != nil {
				return nil, err
			}
			resp.Stderr = stderr
			resp.AppStatus = app
			return resp, nil
		}
	}
}

// writeRecord writes one record, padded to a multiple of 8 bytes.
func writeRecord(w *bufio.Writer, typ byte, content []byte) error {
	pad := (8 - len(content)%8) % 8
	hdr := [8]byte{fcgiVersion, typ, 0, fcgiRequestID, byte(len(content) >> 8), byte(len(content)), byte(pad), 0}
	if _, err := w.Write(hdr[:]); err != nil {
		return fmt.Errorf("send record: %w", err)
	}
	if _, err := w.Write(content); err != nil {
		return fmt.Errorf("send record: %w", err)
	}
	var zero [8]byte
	if _, err := w.Write(zero[:pad]); err != nil {
		return fmt.Errorf("send record: %w", err)
	}
	return nil
}

// appendLen encodes a name-value pair length: one byte below 128, else
// four bytes with the top bit set.
func appendLen(b []byte, n int) []byte {
	if n < 128 {
		return append(b, byte(n))
	}
	return binary.BigEndian.AppendUint32(b, uint32(n)|1<<31)
}

// parseCGI splits a CGI response into status, headers and body. A missing
// Status header means 200 (CGI 1.1, RFC 3875 section 6.3.3).
func parseCGI(out []byte) (*Response, error) {
	resp := &Response{Status: 200, Header: textproto.MIMEHeader{}}
	if len(out) == 0 {
		return nil, errors.New("empty response (no CGI headers)")
	}
	tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(out)))
	h, err := tr.ReadMIMEHeader()
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("bad CGI headers: %w", err)
	}
	resp.Header = h
	if s := h.Get("Status"); s != "" {
		code, _, _ := strings.Cut(strings.TrimSpace(s), " ")
		n, err := strconv.Atoi(code)
		if err != nil || n < 100 || n > 599 {
			return nil, fmt.Errorf("bad CGI Status header %q", s)
		}
		resp.Status = n
	}
	body, _ := io.ReadAll(tr.R)
	resp.Body = body
	return resp, nil
}
