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
