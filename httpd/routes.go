//go:build linux

package httpd

import (
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// Paths of the read-only pages. /status stays the health-check endpoint;
// these describe the whole host for people and tools.
const (
	PathStatusJSON = "/status.json"
	PathStatusText = "/status.txt"
	PathBoard      = "/board"
	PathHealthz    = "/healthz"
	PathMetrics    = "/metrics"
)

// PathHealth answers like [PathHealthz], under the name FastCGI health
// bridges (fastcgi-healthcheck) served.
const PathHealth = "/health"

// PathIndex is served to browsers only: GET / with Accept: text/html gets
// a small page saying what this port is, with links to the pages. Any other
// request for / keeps the plain-text 404 (and OPTIONS / its health-check
// answer), so a check pointed at / by mistake still fails.
const PathIndex = "/"

// PathEvents streams state changes as Server-Sent Events.
const PathEvents = "/events"

// AcceptsHTML reports whether the request's Accept header asks for
// text/html by name (browsers do; curl's */* and a load balancer's checks
// do not), with a q-value above zero.
func AcceptsHTML(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil || mt != "text/html" {
				continue
			}
			if q, ok := params["q"]; ok {
				if f, err := strconv.ParseFloat(q, 64); err != nil || f <= 0 {
					continue
				}
			}
			return true
		}
	}
	return false
}

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
// hostfix.Conn (internal/hostfix), which adds "Host: " to those requests before net/http
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
