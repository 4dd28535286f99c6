//go:build linux

package httpd

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// connTracker counts the connections that are new (accepted, no request
// read yet) or active (a request in progress), so [Serve] can wait for them
// before it calls Shutdown.
type connTracker struct {
	mu    sync.Mutex
	busy  map[net.Conn]struct{}
	empty chan struct{} // closed and replaced whenever busy becomes empty
}

// trackConns installs a ConnState hook on srv (calling any hook already
// there) and returns the tracker. Call it before srv.Serve.
func trackConns(srv *http.Server) *connTracker {
	t := &connTracker{busy: map[net.Conn]struct{}{}, empty: make(chan struct{})}
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		t.mu.Lock()
		switch st {
		case http.StateNew, http.StateActive:
			t.busy[c] = struct{}{}
		default:
			delete(t.busy, c)
			if len(t.busy) == 0 {
				close(t.empty)
				t.empty = make(chan struct{})
			}
		}
		t.mu.Unlock()
		if prev != nil {
			prev(c, st)
		}
	}
	return t
}

// wait returns when no connection is new or active, or at deadline.
func (t *connTracker) wait(deadline time.Time) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		t.mu.Lock()
		n, empty := len(t.busy), t.empty
		t.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-empty:
		case <-timer.C:
			return
		}
	}
}
