package probecheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
)

// HTTP asks an HTTP server for a path and judges the status and,
// optionally, the body.
type HTTP struct {
	Method  string // GET, HEAD...
	Address string // host:port
	Path    string // absolute
	// Host, when set, is the request's Host header.
	Host string
	// ExpectStatus lists the statuses that pass; empty: 200..399.
	ExpectStatus []int
	// ExpectBody, when set, must be in the first 64 KiB of the body.
	ExpectBody string
}

// ValidMethod reports whether s may be an HTTP method (a token of letters,
// digits, - and _).
func ValidMethod(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// httpClient serves every HTTP check: with keep-alives off it holds no
// connection between attempts, so probes share nothing but its settings.
var httpClient = &http.Client{
	Transport: &http.Transport{
		Proxy:              nil, // never a proxy from the environment
		DisableKeepAlives:  true,
		DisableCompression: true,
		DialContext:        (&net.Dialer{}).DialContext,
		// net/http's default is 10 MiB per answer, with up to
		// --probe-concurrency answers read at once.
		MaxResponseHeaderBytes: maxResponseHeader,
	},
	// A redirect is an answer to judge, not to follow.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// maxResponseHeader bounds the status line and headers of an answer; more
// fails the attempt.
const maxResponseHeader = 64 << 10

// Check makes one request.
func (h *HTTP) Check(ctx context.Context) (Outcome, error) {
	timeout := deadlineOf(ctx)
	req, err := http.NewRequestWithContext(ctx, h.Method, "http://"+h.Address+h.Path, nil)
	if err != nil {
		return Outcome{}, err
	}
	if h.Host != "" {
		req.Host = h.Host
	}
	req.Header.Set("User-Agent", "http_status-probe")
	resp, err := httpClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Outcome{}, ctxErr(ctx, err, timeout)
	}
	defer resp.Body.Close()
	if !statusOK(resp.StatusCode, h.ExpectStatus) {
		return Outcome{}, fmt.Errorf("HTTP %d, want %s", resp.StatusCode, wantStatuses(h.ExpectStatus))
	}
	if h.ExpectBody != "" {
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		if err != nil {
			return Outcome{}, ctxErr(ctx, fmt.Errorf("read body: %w", err), timeout)
		}
		if !bytes.Contains(b, []byte(h.ExpectBody)) {
			return Outcome{}, fmt.Errorf("HTTP %d but body lacks %q", resp.StatusCode, h.ExpectBody)
		}
	}
	return Outcome{Msg: "HTTP " + strconv.Itoa(resp.StatusCode)}, nil
}
