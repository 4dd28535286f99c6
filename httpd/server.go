//go:build linux

package httpd

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/http-status/http_status/internal/check"
	"github.com/http-status/http_status/internal/hostfix"
)

// Server limits. A slow or huge client cannot hold the daemon: headers must
// arrive within ReadHeaderTimeout and fit in MaxHeaderBytes.
const (
	ReadHeaderTimeout = 2 * time.Second
	ReadTimeout       = 5 * time.Second
	WriteTimeout      = 5 * time.Second
	IdleTimeout       = 60 * time.Second
	MaxHeaderBytes    = 8 << 10
)

// ServerName is sent in the Server header.
const ServerName = "http_status"

const allowed = "GET, HEAD, OPTIONS"

// HTTP-only answers (the others come from [check.Checker]).
const (
	BodyNotFound  = "Not Found - unknown path; health checks use /status\n"
	BodyBadMethod = "Method Not Allowed - use GET or HEAD\n"
)

// ConnStats are the HTTP port's connection counters (either engine).
type ConnStats struct {
	Open       int64  // connections held now (handed-over ones included)
	Accepted   uint64 // connections accepted
	Overloaded uint64 // answered "too many connections" at accept
}

// Handler serves /status from a [check.Checker]. Extra handlers (status
// pages, metrics) can be mounted with [Handler.Handle]; they are read-only.
type Handler struct {
	c      *check.Checker
	codes  CodeCounts                       // HTTP answers by code, both engines
	engine atomic.Pointer[func() ConnStats] // the engine's counters, once it serves
	extra  map[string]http.Handler
	index  http.Handler // GET / for browsers; nil: none
}

// NewHandler returns the HTTP handler for health checks.
func NewHandler(c *check.Checker) *Handler {
	return &Handler{c: c, extra: map[string]http.Handler{}}
}

// Checker is the checker the handler asks.
func (h *Handler) Checker() *check.Checker { return h.c }

// EngineStats are the connection counters of the engine serving h (zero
// before it serves).
func (h *Handler) EngineStats() ConnStats {
	if f := h.engine.Load(); f != nil {
		return (*f)()
	}
	return ConnStats{}
}

// Codes counts the HTTP answers by status code: /status, OPTIONS and the
// handler's own 404 and 405, from both engines (not the mounted pages).
func (h *Handler) Codes() *CodeCounts { return &h.codes }

// Handle mounts hh at the exact path p for GET, HEAD and OPTIONS; hh
// answers 405 itself for what it does not serve. Call it before serving.
func (h *Handler) Handle(p string, hh http.Handler) { h.extra[p] = hh }

// HandleIndex mounts hh for GET and HEAD / from browsers (Accept:
// text/html); every other request for / keeps its answer. Call it before
// serving.
func (h *Handler) HandleIndex(hh http.Handler) { h.index = hh }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr["Server"] = serverHdr
	path := r.URL.Path
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		// HAProxy's bare "option httpchk" sends "OPTIONS / HTTP/1.0". We
		// answer it like GET /status (the host-wide status.html flag) so
		// that such a check follows the host's main flag instead of
		// always passing.
		if path == "/" || path == "/status" {
			hdr["Allow"] = allowHdr
			h.status(w, r, "")
			return
		}
	default:
		hdr["Allow"] = allowHdr
		h.codes.Inc(http.StatusMethodNotAllowed)
		writeText(w, http.StatusMethodNotAllowed, BodyBadMethod, "")
		return
	}
	if path == "/status" {
		h.status(w, r, r.URL.RawQuery)
		return
	}
	if path == PathIndex && h.index != nil && AcceptsHTML(r) {
		h.index.ServeHTTP(w, r)
		return
	}
	if x, ok := h.extra[path]; ok {
		// Every mounted page refuses what is not GET or HEAD itself, OPTIONS
		// included, with its own Allow.
		x.ServeHTTP(w, r)
		return
	}
	h.codes.Inc(http.StatusNotFound)
	writeText(w, http.StatusNotFound, BodyNotFound, "")
}

var (
	serverHdr   = []string{ServerName}
	allowHdr    = []string{allowed}
	cacheHdr    = []string{"private, no-store"}
	ctypeHdr    = []string{"text/plain; charset=utf-8"}
	stateHdrs   = map[string][]string{}
	weightHdrs  = map[int][]string{}
	contentLens = map[int][]string{}
)

func init() {
	for _, s := range []string{"missing", "up", "drain", "maint", "down"} {
		stateHdrs[s] = []string{s}
	}
	for i := 0; i <= 256; i++ {
		weightHdrs[i] = []string{strconv.Itoa(i) + "%"}
	}
	for i := 0; i < 1024; i++ {
		contentLens[i] = []string{strconv.Itoa(i)}
	}
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request, rawQuery string) {
	res := h.c.Check(rawQuery)
	h.codes.Inc(res.Code)
	hdr := w.Header()
	if res.Code != http.StatusBadRequest {
		hdr["X-Status-State"] = stateHdrs[res.State.String()]
		if res.Weight >= 0 {
			hdr["X-Status-Weight"] = weightHdrs[res.Weight]
		}
	}
	writeText(w, res.Code, res.Body, res.Reason)
}

// writeText writes body, and "reason: ..." when there is a reason.
func writeText(w http.ResponseWriter, code int, body, reason string) {
	hdr := w.Header()
	hdr["Cache-Control"] = cacheHdr
	hdr["Content-Type"] = ctypeHdr
	n := len(body)
	if reason != "" {
		hdr["X-Status-Reason"] = []string{reason}
		n += len("reason: ") + len(reason) + 1
	}
	if cl, ok := contentLens[n]; ok {
		hdr["Content-Length"] = cl
	} else {
		hdr["Content-Length"] = []string{strconv.Itoa(n)}
	}
	w.WriteHeader(code)
	if reason == "" {
		_, _ = w.Write(unsafeBytes(body))
		return
	}
	_, _ = w.Write([]byte(body + "reason: " + reason + "\n"))
}

// NewServer returns an http.Server with the daemon's timeouts and limits.
func NewServer(h http.Handler, log zerolog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          newStdLogger(log),
		ConnContext:       withConn,
	}
}

// Serve runs srv on ln until ctx is done, then stops gracefully: it closes
// ln (stop accepting), lets every connection already accepted get its answer
// and close, then shuts srv down, all within grace. It returns nil on a clean
// stop.
//
// net/http's Shutdown alone drops a request read after shutdown began, even
// on a connection accepted before it, with no answer; a load balancer would
// count that check as failed. With systemd holding the socket, connections
// not yet accepted stay queued for the next process, so a restart fails no
// check.
//
// At most [DefaultMaxConns] connections are held at once; beyond that a new
// connection gets a 503 and is closed. When srv's Handler is a [Handler],
// its EngineStats count these connections.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	return serveMax(ctx, srv, ln, grace, DefaultMaxConns)
}

// ServeMax is [Serve] holding at most maxConns connections at once.
func ServeMax(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration, maxConns int) error {
	return serveMax(ctx, srv, ln, grace, maxConns)
}

func serveMax(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration, maxConns int) error {
	lim := newLimitListener(ln, maxConns)
	if h, ok := srv.Handler.(*Handler); ok {
		stats := lim.stats
		h.engine.Store(&stats)
	}
	return serveUntil(ctx, srv, lim, func() time.Time { return time.Now().Add(grace) })
}

// serveUntil is [Serve] with the stop deadline computed when ctx is done.
func serveUntil(ctx context.Context, srv *http.Server, ln net.Listener, deadlineAt func() time.Time) error {
	// Health checks without a Host header (see hostfix.go).
	ln = hostfix.Listener(ln, hostlessOK)
	busy := trackConns(srv)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	deadline := deadlineAt()
	// Each connection closes after its current or next answer
	// ("Connection: close"); idle keep-alive connections close now.
	srv.SetKeepAlivesEnabled(false)
	lnErr := ln.Close()
	serr := <-errc // Serve returns once Accept fails; every accepted conn is tracked by then
	if errors.Is(serr, net.ErrClosed) || errors.Is(serr, http.ErrServerClosed) {
		serr = nil
	}
	busy.wait(deadline)
	sctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(lnErr, net.ErrClosed) {
		lnErr = nil
	}
	return errors.Join(serr, err, lnErr)
}
