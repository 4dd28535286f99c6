//go:build linux

package agent

import (
	"bytes"
	"context"
	"net"
	"unsafe"

	"github.com/http-status/http_status/internal/evloop"
)

// The agent on Linux: the protocol as a handler on the event loops
// (internal/evloop), the same loops as the HTTP fast path. The protocol,
// replies, timeouts and linger are those of [Server.serveConn].

// agentConn is the agent's state of one connection.
type agentConn struct {
	start int64 // accepted (Conn.Now)
	got   bool  // the first bytes are in
}

type agentHandler struct{ a *Server }

func (h agentHandler) Open(c *evloop.Conn[agentConn]) {
	c.State.start = c.Now()
	// HAProxy sends its agent-send line as soon as it is connected; a
	// connection that sends nothing gets the default service's answer
	// once the send wait is over.
	c.SetDeadline(h.a.sendWait)
}

func (h agentHandler) Input(c *evloop.Conn[agentConn], in []byte) int {
	if !c.State.got {
		// The first bytes are in: allow the rest of the line time.
		c.State.got = true
		c.SetDeadlineAt(c.State.start + int64(ReadTimeout))
	}
	if i := bytes.IndexByte(in, '\n'); i >= 0 {
		h.answer(c, in[:i], true)
		return len(in)
	}
	if len(in) >= MaxLine {
		h.answer(c, nil, false)
		return len(in)
	}
	return 0
}

// EOF: the peer closed its side; answer what it sent.
func (h agentHandler) EOF(c *evloop.Conn[agentConn], in []byte) {
	h.answer(c, in, true)
}

// Expired: the send wait passed with nothing sent (the default service), or
// the read timeout with a line unfinished (answered as it stands).
func (h agentHandler) Expired(c *evloop.Conn[agentConn], in []byte) {
	h.answer(c, in, true)
}

// answer writes the reply and closes: at once when nothing unread is
// pending (a peer that sent one line and waits, as HAProxy does), else
// after a half-close and a linger, so that unread input does not turn the
// close into a reset that could destroy the reply.
func (h agentHandler) answer(c *evloop.Conn[agentConn], line []byte, ok bool) {
	h.a.conns.Add(1)
	reply := h.a.answerLine(unsafe.String(unsafe.SliceData(line), len(line)), ok) // Reply keeps no part of it
	out := append(c.Buf(), reply...)
	c.SetBuf(append(out, '\n'))
	c.CloseLinger(agentLinger)
}

// serveLoops serves ln with the event loops. It returns false, without doing
// anything, when ln is not a TCP listener it can take the socket of.
func (a *Server) serveLoops(ctx context.Context, ln net.Listener) (bool, error) {
	if _, ok := ln.(*net.TCPListener); !ok {
		return false, nil
	}
	fds, err := evloop.ListenerFDs(ln, false) // silent connections must be accepted to be answered
	if err != nil {
		return false, nil
	}
	defer ln.Close()
	s, err := evloop.New[agentConn](agentHandler{a}, fds, evloop.Options{
		MaxConns: cap(a.sem),
		MaxInput: MaxLine,
		Logger:   a.log,
		Grace:    ReadTimeout + WriteTimeout,
		// A connection the loops cannot hold is closed cleanly with no
		// reply: HAProxy keeps the server's last state when the agent
		// cannot be reached, rather than taking it down.
		StoppedAccepting: func() { ln.Close() },
	})
	if err != nil {
		return true, err
	}
	a.loopStats.Store(s)
	a.ready()
	return true, s.Serve(ctx)
}
