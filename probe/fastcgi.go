package probe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/http-status/http_status/internal/fcgi"
)

// The fastcgi kind asks a FastCGI responder (php-fpm's ping page, say)
// with internal/fcgi.

type fcgiCheck struct {
	network, addr string
	script        string
	statuses      []int
	body          string
}

func (f *fcgiCheck) check(ctx context.Context) (string, error) {
	timeout := deadlineOf(ctx)
	resp, err := fcgi.Do(ctx, f.network, f.addr, fcgiParamsFor(f.script))
	if err != nil {
		return "", ctxErr(ctx, err, timeout)
	}
	want := f.statuses
	if len(want) == 0 {
		want = []int{200}
	}
	if !statusOK(resp.Status, want) {
		msg := fmt.Sprintf("status %d, want %s", resp.Status, wantStatuses(want))
		if line := firstLine(resp.Stderr); line != "" {
			msg += " (stderr: " + line + ")"
		}
		return "", errors.New(msg)
	}
	if f.body != "" && !bytes.Contains(resp.Body, []byte(f.body)) {
		return "", fmt.Errorf("status %d but body lacks %q (got %q)", resp.Status, f.body, clipBytes(resp.Body, 40))
	}
	if f.body != "" {
		return strconv.Itoa(resp.Status) + " " + f.body, nil
	}
	return "status " + strconv.Itoa(resp.Status), nil
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
		{"REQUEST_METHOD", defaultFastCGIMethod},
		{"REQUEST_URI", script},
		{"DOCUMENT_URI", script},
		{"SCRIPT_NAME", script},
		{"SCRIPT_FILENAME", script},
		{"QUERY_STRING", ""},
		{"CONTENT_LENGTH", ""},
		{"CONTENT_TYPE", ""},
	}
}
