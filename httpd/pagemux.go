//go:build linux

package httpd

import "net/http"

// Mux is where the pages are mounted: the check port's [Handler] (--pages
// port), or a [PageMux] on a listener of their own (--pages ADDR).
type Mux interface {
	// Handle mounts hh at the exact path p; hh answers 405 itself for
	// the methods it does not serve.
	Handle(p string, hh http.Handler)
	// HandleIndex mounts hh for GET and HEAD / from browsers.
	HandleIndex(hh http.Handler)
}

// BodyPagesNotFound is the pages listener's 404: a health check pointed
// at it by mistake is told where /status is.
const BodyPagesNotFound = "Not Found - unknown path; this port serves the status pages, health checks use /status on the check port\n"

// PageMux serves the pages on a listener of their own. Unlike [Handler] it
// answers no /status (that stays on the check port, the one port the load
// balancers are told about) and counts nothing: http_status_requests_total
// is the check port's.
type PageMux struct {
	paths map[string]http.Handler
	index http.Handler
}

// NewPageMux returns an empty PageMux; mount the pages on it before serving.
func NewPageMux() *PageMux { return &PageMux{paths: map[string]http.Handler{}} }

// Handle mounts hh at the exact path p. Call it before serving.
func (m *PageMux) Handle(p string, hh http.Handler) { m.paths[p] = hh }

// HandleIndex mounts hh for GET and HEAD / from browsers (Accept:
// text/html). Call it before serving.
func (m *PageMux) HandleIndex(hh http.Handler) { m.index = hh }

func (m *PageMux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header()["Server"] = serverHdr
	path := r.URL.Path
	if path == PathIndex && m.index != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) && AcceptsHTML(r) {
		m.index.ServeHTTP(w, r)
		return
	}
	if x, ok := m.paths[path]; ok {
		x.ServeHTTP(w, r)
		return
	}
	writeText(w, http.StatusNotFound, BodyPagesNotFound, "")
}
