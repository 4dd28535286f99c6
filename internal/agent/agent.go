//go:build linux

package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/check"
	"github.com/http-status/http_status/internal/evloop"
)

// Agent limits and defaults.
const (
	// DefaultSendWait is how long a new connection may take to send
	// its first byte before it is answered for the default service.
	// HAProxy sends its agent-send string as soon as it is connected, so on
	// any network it arrives together with the handshake's last ACK.
	DefaultSendWait = 300 * time.Millisecond
	// ReadTimeout bounds reading the whole agent-send line.
	ReadTimeout = time.Second
	// WriteTimeout bounds writing the reply.
	WriteTimeout = time.Second
	// agentLinger is how long the reply's sender waits for the peer to
	// close after the reply, so that closing with unread input does not
	// turn into a reset that could destroy the reply.
	agentLinger = 250 * time.Millisecond
	// MaxLine bounds the agent-send line.
	MaxLine = 512
	// DefaultMaxConns bounds connections served at once. A
	// connection that sends nothing holds its place for the send wait, so
	// the bound is high: thousands of silent connections must not keep a
	// real check out. An open agent connection costs a few hundred bytes
	// (a line buffer of MaxLine only while its line is incomplete).
	DefaultMaxConns = 50000
)

// Agent replies.
const (
	BadRequest     = "down #bad request"
	lameduckReason = "http_status shutting down"
)

// Options configure a [Server].
type Options struct {
	// Checker answers the questions. Required.
	Checker *check.Checker
	// DefaultService is the flag consulted when a connection sends
	// nothing (an agent-check without agent-send). Empty means
	// [cache.DefaultService], status.html.
	DefaultService string
	// SendWait overrides [DefaultSendWait].
	SendWait time.Duration
	// MaxConns overrides [DefaultMaxConns].
	MaxConns int
	// Logger gets accept errors (never one line per connection).
	Logger zerolog.Logger
	// Started, when set, is called by Serve once it can answer (its
	// event loops hold their descriptors); Serve returns an error
	// without calling it when they cannot be set up.
	Started func()
}

// Server answers HAProxy's agent-check: on each TCP connection it may read one
// agent-send line naming the service, writes one reply line from the current
// snapshot (no file access) and closes. See [cache.Entry.AgentReply] for the
// replies.
//
// A connection names its service with its agent-send line, in one of these
// forms (a trailing "\n" or "\r\n" ends the line):
//
//	squid.80                         the flag-file name
//	squid 80                         service and port
//	SERVICE=squid&PORT=80&VIP=a,b    a /status query (also "/status?..." or "?...")
//
// A connection that sends nothing within the send wait is answered for the
// default service. Anything else gets [BadRequest].
//
// # Concurrency
//
// [Server.Listen] then [Server.Serve] run it; [Server.SetDraining] may be called
// from any goroutine.
type Server struct {
	c        *check.Checker
	def      string
	sendWait time.Duration
	started  func()
	sem      chan struct{}
	log      zerolog.Logger
	ln       net.Listener
	draining atomic.Bool

	conns, bad atomic.Uint64
	replies    [nReplyWords]atomic.Uint64
	loopStats  atomic.Pointer[evloop.Server[agentConn]] // the event loops, once serving
}

// Stats count what the agent did, for metrics.
type Stats struct {
	Conns       uint64 // connections answered
	BadRequests uint64 // of which with a line not understood
	// Replies counts answers by their first word: up, drain (an up drain
	// reply), maint, down.
	Replies map[string]uint64
	// Open is how many connections are open now; Overloaded how many were
	// closed at accept for want of room (event loops only).
	Open       int64
	Overloaded uint64
}

// Reply words counted by [Stats].
const (
	replyUp = iota
	replyDrain
	replyMaint
	replyDown
	nReplyWords
)

var replyWords = [nReplyWords]string{"up", "drain", "maint", "down"}

// answerLine is the reply to the line a connection sent (ok false: none
// could be read, BadRequest), counted by what it tells HAProxy.
func (a *Server) answerLine(line string, ok bool) string {
	reply := BadRequest
	if ok {
		reply = a.Reply(line)
	}
	if reply == BadRequest {
		a.bad.Add(1)
	}
	switch {
	case strings.HasPrefix(reply, "up drain"):
		a.replies[replyDrain].Add(1)
	case strings.HasPrefix(reply, "up"):
		a.replies[replyUp].Add(1)
	case strings.HasPrefix(reply, "maint"):
		a.replies[replyMaint].Add(1)
	default:
		a.replies[replyDown].Add(1)
	}
	return reply
}

// New checks opts and returns an Agent.
func New(opts Options) (*Server, error) {
	if opts.Checker == nil {
		return nil, errors.New("agent: Options.Checker is nil")
	}
	if opts.DefaultService == "" {
		opts.DefaultService = cache.DefaultService
	}
	if !cache.ValidName(opts.DefaultService) {
		return nil, fmt.Errorf("agent: default service %q is not a valid flag-file name", opts.DefaultService)
	}
	if opts.SendWait <= 0 {
		opts.SendWait = DefaultSendWait
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	return &Server{
		c:        opts.Checker,
		def:      opts.DefaultService,
		sendWait: opts.SendWait,
		started:  opts.Started,
		sem:      make(chan struct{}, opts.MaxConns),
		log:      opts.Logger,
	}, nil
}

// Listen binds the agent's TCP listener on addr ("127.0.0.1:8002").
func (a *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("agent: listen on %s: %w", addr, err)
	}
	a.ln = ln
	return nil
}

// UseListener makes the agent serve ln (a socket-activated listener, say)
// instead of calling [Server.Listen].
func (a *Server) UseListener(ln net.Listener) { a.ln = ln }

// Addr is the listener's address, or nil before Listen.
func (a *Server) Addr() net.Addr {
	if a.ln == nil {
		return nil
	}
	return a.ln.Addr()
}

// SetDraining turns the lameduck mode on or off. While on, a service that is
// up is answered "up drain #http_status shutting down", so HAProxy sends it
// no new connections during the daemon's shutdown; other answers (drain,
// maint, down) already take no new connections and are left as they are.
func (a *Server) SetDraining(on bool) { a.draining.Store(on) }

// Stats returns the counters.
func (a *Server) Stats() Stats {
	st := Stats{Conns: a.conns.Load(), BadRequests: a.bad.Load(), Replies: map[string]uint64{}}
	for i, w := range replyWords {
		st.Replies[w] = a.replies[i].Load()
	}
	if s := a.loopStats.Load(); s != nil {
		ls := s.Stats()
		st.Open, st.Overloaded = ls.Open, ls.Overloaded
	}
	return st
}

// Serve answers connections until ctx is done, then closes the listener,
// waits for the connections in progress, and returns nil. It returns an error
// only when accepting fails for good.
func (a *Server) Serve(ctx context.Context) error {
	if a.ln == nil {
		return errors.New("agent: Serve before Listen")
	}
	// Linux, TCP: event loops (agent_linux.go); elsewhere a goroutine per
	// connection.
	if ok, err := a.serveLoops(ctx, a.ln); ok {
		return err
	}
	return a.serveGoroutines(ctx, a.ln)
}

// ready calls Options.Started, if set.
func (a *Server) ready() {
	if a.started != nil {
		a.started()
	}
}

// serveGoroutines is [Server.Serve] with a goroutine per connection.
func (a *Server) serveGoroutines(ctx context.Context, ln net.Listener) error {
	a.ready()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer ln.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	backoff := time.Duration(0)
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			// Whatever it is (out of descriptors, or a network error
			// the kernel passes on from one connection: EPROTO, EPERM,
			// ENETDOWN), that connection is lost, not the agent: log,
			// back off, go on.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			a.log.Warn().Err(err).Dur("retry_in", backoff).Msg("agent: accept failed")
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		select {
		case a.sem <- struct{}{}:
		default:
			// MaxConns: no room. Close it cleanly with no reply
			// (HAProxy keeps the server's state when the agent cannot
			// answer) rather than let it wait behind silent ones.
			if tc, ok := conn.(interface{ CloseWrite() error }); ok {
				_ = tc.CloseWrite()
			}
			conn.Close()
			continue
		}
		wg.Go(func() {
			defer func() { <-a.sem }()
			a.serveConn(conn)
		})
	}
}

func (a *Server) serveConn(conn net.Conn) {
	defer conn.Close()
	a.conns.Add(1)
	reply := a.answerLine(readAgentLine(conn, time.Now(), a.sendWait))
	_ = conn.SetWriteDeadline(time.Now().Add(WriteTimeout))
	if _, err := conn.Write([]byte(reply + "\n")); err != nil {
		return
	}
	// Half-close, then wait briefly for the peer to close: closing with
	// unread input would send a reset, which may discard the reply.
	if tc, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
		_ = conn.SetReadDeadline(time.Now().Add(agentLinger))
		var buf [256]byte
		for i := 0; i < 16; i++ {
			if _, err := conn.Read(buf[:]); err != nil {
				break
			}
		}
	}
}

// readAgentLine reads the agent-send line. It returns "" and true when
// nothing arrived within sendWait, and ok false for a line too long.
func readAgentLine(conn net.Conn, start time.Time, sendWait time.Duration) (string, bool) {
	var buf [MaxLine]byte
	n := 0
	_ = conn.SetReadDeadline(start.Add(sendWait))
	for {
		m, err := conn.Read(buf[n:])
		if m > 0 && n == 0 {
			// The first bytes are in: allow the rest of the line time.
			_ = conn.SetReadDeadline(start.Add(ReadTimeout))
		}
		n += m
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			return string(buf[:i]), true
		}
		if err != nil {
			// EOF, the send wait without a byte, or a line with no
			// newline by the read deadline: answer what we have.
			return string(buf[:n]), true
		}
		if n == len(buf) {
			return "", false
		}
	}
}

// Reply is the agent's answer (without the newline) to one agent-send line.
func (a *Server) Reply(line string) string {
	line = strings.TrimRight(line, "\r")
	line = strings.TrimSpace(line)
	var res check.Result
	switch {
	case line == "":
		res = a.c.CheckName(a.def, nil)
	case strings.ContainsAny(line, "=?&") || strings.HasPrefix(line, "/"):
		q := strings.TrimPrefix(line, "/status")
		q = strings.TrimPrefix(q, "?")
		if !hasService(q) {
			return BadRequest
		}
		res = a.c.Check(q)
	default:
		name, ok := agentName(line)
		if !ok {
			return BadRequest
		}
		res = a.c.CheckName(name, nil)
	}
	return agentReply(res, a.draining.Load())
}

// hasService reports whether a query names a SERVICE: an agent must say
// which service it asks about, or get a bad request. The first SERVICE is
// the one [check.Checker.Check] answers for, so it is the one that must be set:
// "SERVICE=&SERVICE=x" would otherwise be answered for status.html.
func hasService(q string) bool {
	for kv := range strings.SplitSeq(q, "&") {
		k, v, _ := strings.Cut(kv, "=")
		if check.EqualFoldASCII(k, "SERVICE") {
			return v != ""
		}
	}
	return false
}

// agentName turns "squid.80" or "squid 80" into a flag-file name.
func agentName(line string) (string, bool) {
	f := strings.Fields(line)
	var name string
	switch len(f) {
	case 1:
		name = f[0]
	case 2:
		if _, ok := cache.PortNumber(f[1]); !ok {
			return "", false
		}
		name = f[0] + "." + f[1]
	default:
		return "", false
	}
	return name, cache.ValidName(name)
}

// agentReply maps a [check.Result] to an agent reply.
func agentReply(r check.Result, draining bool) string {
	if r.Code == 400 {
		return BadRequest
	}
	e := cache.Entry{State: r.State, Weight: r.Weight, Reason: r.Reason}
	if r.State == cache.Up && r.Code != 200 {
		e.State = cache.Down // the flag is up but a VIP is missing
	}
	if draining && e.State == cache.Up {
		return "up drain #" + lameduckReason
	}
	return e.AgentReply()
}
