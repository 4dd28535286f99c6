//go:build linux

package httpd

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/http-status/http_status/internal/check"
	"github.com/http-status/http_status/internal/evloop"
)

// ListenReusePort binds n SO_REUSEPORT sockets to addr, one per event loop
// of [ServeFast] (see [evloop.ListenReusePort]).
func ListenReusePort(addr string, n int) (net.Listener, error) {
	return evloop.ListenReusePort(addr, n)
}

// fastConn is the HTTP handler's state of one connection.
type fastConn struct {
	inReq     bool // a request's first bytes are in: its read-header deadline runs
	nodelay   bool // TCP_NODELAY set (once kept alive)
	afterPost bool // the last request was a POST: net/http skips up to 4 CR/LF before the next
}

// fastHandler is the HTTP/1.x fast path on the event loops: it answers what
// it fully understands (see fast_parse.go) and hands the connection to
// net/http for everything else.
type fastHandler struct {
	c       *check.Checker
	codes   *CodeCounts
	opts    FastOptions
	limit   int
	handoff *handoffListener
	hwg     sync.WaitGroup // handoffs in progress
	date    atomic.Pointer[dateValue]
}

// dateValue is the Date header of one second.
type dateValue struct {
	sec int64
	b   []byte
}

// dateFor returns the Date value for now, computed once a second.
func (h *fastHandler) dateFor(now time.Time) []byte {
	sec := now.Unix()
	if d := h.date.Load(); d != nil && d.sec == sec {
		return d.b
	}
	d := &dateValue{sec: sec, b: now.UTC().AppendFormat(make([]byte, 0, len(http.TimeFormat)), http.TimeFormat)}
	h.date.Store(d)
	return d.b
}

func (h *fastHandler) Open(c *evloop.Conn[fastConn]) {
	c.State.inReq = true
	c.SetDeadline(h.opts.ReadHeaderTimeout)
}

// Input answers every complete request at the start of in, as long as the
// client takes the answers (at most OutCap waiting), and keeps an incomplete
// one for later.
func (h *fastHandler) Input(c *evloop.Conn[fastConn], in []byte) int {
	st := &c.State
	consumed := 0
	var r fastReq
	for consumed < len(in) && !c.Closing() {
		if c.Pending() > c.OutCap() {
			// Backpressure: the loop stops reading until the client
			// has read its answers; the write timeout bounds that wait.
			c.SetDeadline(0)
			return consumed
		}
		b := in[consumed:]
		if st.afterPost {
			// net/http: "RFC 7230 section 3 tolerance for old buggy
			// clients", after a POST only: it peeks 4 bytes and drops
			// the CR and LF among them.
			if len(b) < 4 && leadingCRorLF(b) == len(b) {
				break // not enough to decide yet
			}
			k := leadingCRorLF(b[:min(4, len(b))])
			consumed += k
			b = b[k:]
			st.afterPost = false
			if len(b) == 0 {
				break
			}
		}
		if !st.inReq {
			// The first bytes of a new request: its header block has
			// ReadHeaderTimeout from now, whatever came before it in
			// the same read.
			st.inReq = true
			c.SetDeadline(h.opts.ReadHeaderTimeout)
		}
		n, outcome := parseRequest(b, h.limit, &r)
		switch outcome {
		case reqAnswer:
			out, closeAfter := fastAnswer(c.Buf(), h.c, h.codes, &r, h.dateFor(c.Time()), c.Stopping())
			c.SetBuf(out)
			consumed += n
			st.inReq = false
			st.afterPost = r.post
			if closeAfter {
				c.Close()
				return consumed
			}
			continue
		case reqIncomplete:
			c.SetIdle(false)
			return consumed
		case reqBad:
			// As net/http: the answer, then a half-close and a wait
			// for the peer, so that what it still sends does not turn
			// the close into a reset that destroys the answer.
			c.WriteString(respBadRequest)
			c.CloseLinger(rstAvoidanceDelay)
			return len(in)
		case reqTooLarge:
			c.WriteString(respTooLarge)
			c.CloseLinger(rstAvoidanceDelay)
			return len(in)
		case reqHandoff:
			h.handOff(c, b)
			return len(in)
		}
	}
	if consumed == len(in) && !c.Closing() {
		// Between requests: idle until the next one starts.
		c.SetIdle(true)
		c.SetDeadline(h.opts.IdleTimeout)
		if !st.nodelay {
			st.nodelay = true
			_ = unix.SetsockoptInt(c.FD(), unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		}
	}
	return consumed
}

// rstAvoidanceDelay is how long net/http waits after the half-close that
// follows an error answer (its rstAvoidanceDelay).
const rstAvoidanceDelay = 500 * time.Millisecond

func leadingCRorLF(b []byte) int {
	n := 0
	for _, c := range b {
		if c != '\r' && c != '\n' {
			break
		}
		n++
	}
	return n
}

// EOF: the client ended its side with a request unfinished: net/http
// decides what that is worth (often a 400).
func (h *fastHandler) EOF(c *evloop.Conn[fastConn], in []byte) {
	if len(in) > 0 {
		h.handOff(c, in)
	}
}

// Expired: the read-header timeout (a request unfinished), the idle
// timeout, or the stop's deadline. net/http answers 400 when what came of
// a request line is not a request line (see [cutLineIsBad]), and closes
// silently otherwise; so do we.
func (h *fastHandler) Expired(c *evloop.Conn[fastConn], in []byte) {
	if len(in) > 0 && bytes.IndexByte(in, '\n') < 0 && cutLineIsBad(in) {
		c.WriteString(respBadRequest)
	}
}

// handOff gives the connection to net/http: the request at the start of
// in (and what follows it) is replayed there, after the answers already
// written on it. It keeps counting against MaxConns until net/http closes
// it. When no descriptor is left for net/http's copy of the socket, the
// request gets a 503 rather than no answer.
func (h *fastHandler) handOff(c *evloop.Conn[fastConn], in []byte) {
	replay := append([]byte(nil), in...)
	fd, pending, release := c.Detach()
	h.hwg.Go(func() {
		f := os.NewFile(uintptr(fd), "http")
		nc, err := net.FileConn(f) // a dup of fd
		if err != nil {
			// Out of descriptors (EMFILE) for net/http's copy: the
			// request gets a 503 and a clean close rather than nothing.
			evloop.Write(fd, []byte(respOverloaded))
			evloop.Drain(fd)
		}
		f.Close()
		if err != nil {
			release()
			return
		}
		rc := &replayConn{Conn: nc, replay: replay, release: release}
		if len(pending) > 0 {
			_ = nc.SetWriteDeadline(time.Now().Add(h.opts.WriteTimeout))
			if _, err := nc.Write(pending); err != nil {
				rc.Close()
				return
			}
			_ = nc.SetWriteDeadline(time.Time{})
		}
		h.handoff.deliver(rc)
	})
}

// ServeFast serves health checks on ln with the event loops until ctx is
// done, handing every request it does not answer itself to srv (whose
// Handler is normally h). See [FastOptions] for the limits. On ctx done it
// stops accepting, closes idle keep-alive connections, lets each accepted
// connection get its answer (with "Connection: close"), then stops srv like
// [Serve], all within grace.
func ServeFast(ctx context.Context, hh *Handler, srv *http.Server, ln net.Listener, grace time.Duration, opts FastOptions) error {
	opts = opts.withDefaults(srv)
	h := &fastHandler{c: hh.c, codes: &hh.codes, opts: opts, limit: opts.MaxHeaderBytes + 4096, handoff: newHandoffListener()}
	var lnErr error // from closing ln, written before Serve returns
	fds, err := evloop.ListenerFDs(ln, true)
	if err != nil {
		return err
	}
	loops := opts.Loops
	if _, ok := ln.(*evloop.ReusePortListener); ok {
		loops = len(fds)
	}
	s, err := evloop.New[fastConn](h, fds, evloop.Options{
		Loops:        loops,
		MaxConns:     opts.MaxConns,
		MaxInput:     h.limit + inBufExtra,
		OutCap:       opts.OutCap,
		WriteTimeout: opts.WriteTimeout,
		Grace:        grace,
		Balance:      true,
		NoYield:      opts.NoYield,
		Overload:     func(fd int) { evloop.Write(fd, []byte(respOverloaded)) },
		// Once no loop polls the listening socket, close it: new
		// connections are refused, or, on a socket systemd holds, wait
		// in its queue for the next process.
		StoppedAccepting: func() { lnErr = ln.Close() },
	})
	if err != nil {
		return err
	}
	stats := func() ConnStats {
		st := s.Stats()
		return ConnStats{Open: st.Open, Accepted: st.Accepted, Overloaded: st.Overloaded}
	}
	hh.engine.Store(&stats)
	if opts.Started != nil {
		opts.Started()
	}
	// net/http serves the connections handed over; it starts stopping
	// once the loops are done, within what is left of grace.
	var stopAt atomic.Pointer[time.Time] // a reading with the monotonic clock
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	herr := make(chan error, 1)
	go func() {
		herr <- serveUntil(hctx, srv, h.handoff, func() time.Time {
			if at := stopAt.Load(); at != nil {
				return at.Add(grace)
			}
			return time.Now().Add(grace)
		})
	}()
	lctx, lcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer lcancel()
	serr := make(chan error, 1)
	go func() { serr <- s.Serve(lctx) }()
	var loopErr error
	select {
	case <-ctx.Done():
	case loopErr = <-serr:
		serr = nil
	}
	now := time.Now()
	stopAt.Store(&now)
	lcancel()
	if serr != nil {
		loopErr = <-serr
	}
	if errors.Is(lnErr, net.ErrClosed) {
		lnErr = nil
	}
	h.hwg.Wait()
	hcancel()
	return errors.Join(loopErr, <-herr, lnErr)
}

// inBufExtra lets a request just over the header limit be seen as such.
const inBufExtra = 512

// respOverloaded answers a connection the engine cannot hold (MaxConns, or
// out of file descriptors): a failed check, said plainly.
const respOverloaded = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: 47\r\n\r\nService Unavailable - too many connections now\n"
