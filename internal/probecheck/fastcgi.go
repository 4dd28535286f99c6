package probecheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/http-status/http_status/internal/fcgi"
)

// FastCGI asks a FastCGI responder (php-fpm's ping page, say) for a
// script with internal/fcgi, and judges the status and the body.
type FastCGI struct {
	Network string // "tcp" or "unix", as [FastCGINetwork] says
	Address string // host:port or a socket's path
	Script  string // absolute, such as /ping
	// ExpectStatus lists the statuses that pass; empty: 200.
	ExpectStatus []int
	// ExpectBody, when set, must be in the body.
	ExpectBody string
}

// fastCGIMethod is the method of every FastCGI request.
const fastCGIMethod = "GET"

// FastCGINetwork maps a FastCGI address to a network and address:
// "unix:/path" or "/path" is a unix socket, anything else host:port over
// TCP.
func FastCGINetwork(addr string) (string, string, error) {
	switch {
	case strings.HasPrefix(addr, "unix:"):
		p := strings.TrimPrefix(addr, "unix:")
		if !filepath.IsAbs(p) {
			return "", "", fmt.Errorf("address %q: want unix:/absolute/path", addr)
		}
		return "unix", p, nil
	case strings.HasPrefix(addr, "/"):
		return "unix", addr, nil
	case addr == "":
		return "", "", errors.New("address is required: host:port, unix:/path or /path")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", "", fmt.Errorf("address %q: want host:port, unix:/path or /path", addr)
	}
	return "tcp", addr, nil
}

// Check makes one request.
func (f *FastCGI) Check(ctx context.Context) (Outcome, error) {
	timeout := deadlineOf(ctx)
	resp, err := fcgi.Do(ctx, f.Network, f.Address, fcgiParamsFor(f.Script))
	if err != nil {
		return Outcome{}, ctxErr(ctx, err, timeout)
	}
	want := f.ExpectStatus
	if len(want) == 0 {
		want = []int{200}
	}
	if !statusOK(resp.Status, want) {
		msg := fmt.Sprintf("status %d, want %s", resp.Status, wantStatuses(want))
		if line := firstLine(resp.Stderr); line != "" {
			msg += " (stderr: " + line + ")"
		}
		return Outcome{}, errors.New(msg)
	}
	if f.ExpectBody != "" && !bytes.Contains(resp.Body, []byte(f.ExpectBody)) {
		return Outcome{}, fmt.Errorf("status %d but body lacks %q (got %q)", resp.Status, f.ExpectBody, clipBytes(resp.Body, 40))
	}
	if f.ExpectBody != "" {
		return Outcome{Msg: strconv.Itoa(resp.Status) + " " + f.ExpectBody}, nil
	}
	return Outcome{Msg: "status " + strconv.Itoa(resp.Status)}, nil
}

func clipBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

// fcgiParamsFor is the CGI environment of a GET for script, in the form
// php-fpm's ping and status pages (and PHP scripts) expect.
func fcgiParamsFor(script string) [][2]string {
	return [][2]string{
		{"GATEWAY_INTERFACE", "CGI/1.1"},
		{"SERVER_SOFTWARE", "http_status"},
		{"SERVER_PROTOCOL", "HTTP/1.1"},
		{"SERVER_NAME", "localhost"},
		{"SERVER_ADDR", "127.0.0.1"},
		{"SERVER_PORT", "80"},
		{"REMOTE_ADDR", "127.0.0.1"},
		{"REMOTE_PORT", "0"},
		{"REQUEST_METHOD", fastCGIMethod},
		{"REQUEST_URI", script},
		{"DOCUMENT_URI", script},
		{"SCRIPT_NAME", script},
		{"SCRIPT_FILENAME", script},
		{"QUERY_STRING", ""},
		{"CONTENT_LENGTH", ""},
		{"CONTENT_TYPE", ""},
	}
}
