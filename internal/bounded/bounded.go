// Package bounded waits a bounded time for a call that may block for good
// (a system call on a filesystem that has stopped answering: a hung NFS or
// FUSE mount), leaves it running when it does not end in time, and tells
// its owner when it has ended, so that no second such call starts beside
// it.
package bounded

import "time"

// Call is one call at a time that may be left running. Its zero value is
// ready; it belongs to one goroutine (the one that calls Do and Busy).
type Call struct {
	running chan struct{} // closed when a call left running ends; nil: none
}

// Do runs f and waits for it at most d. It reports whether f ended in
// time: only then may the caller read what f wrote. When it did not, f
// goes on, and Busy reports true until it ends. Do must not be called
// while Busy.
func (c *Call) Do(d time.Duration, f func()) (ended bool) {
	return c.DoUntil(nil, d, f)
}

// DoUntil is Do that also stops waiting once stop is closed (a SIGTERM
// must not wait out the bound); f is then left running as when d passes.
func (c *Call) DoUntil(stop <-chan struct{}, d time.Duration, f func()) (ended bool) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
	case <-stop:
	}
	c.running = done
	return false
}

// Busy reports whether a call that Do left running has not ended yet.
func (c *Call) Busy() bool {
	if c.running == nil {
		return false
	}
	select {
	case <-c.running:
		c.running = nil
		return false
	default:
		return true
	}
}
