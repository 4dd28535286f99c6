//go:build linux

package evloop

import (
	"net"
	"sync"
	"testing"
	"time"
)

// TestListenReusePortConcurrent: two binds of one port at the same moment
// (two daemons started together) never both succeed. Without the port lock
// both passed the plain-bind check before either listened in about one
// round in ten, and then shared the port.
func TestListenReusePortConcurrent(t *testing.T) {
	t.Parallel()
	for round := range 300 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		var wg sync.WaitGroup
		var lns [2]*ReusePortListener
		var errs [2]error
		for i := range lns {
			wg.Go(func() { lns[i], errs[i] = ListenReusePort(addr, 2) })
		}
		wg.Wait()
		bound := 0
		for _, ln := range lns {
			if ln != nil {
				bound++
				ln.Close()
			}
		}
		// Neither may be the case too: another test took the free port.
		if bound == 2 {
			t.Fatalf("round %d: both binds of %s succeeded: two daemons would share the port", round, addr)
		}
	}
}

// TestLockPortWaits: a held lock makes another taker wait, then fail;
// released, it can be taken again.
func TestLockPortWaits(t *testing.T) {
	t.Parallel()
	const port = 1 // no test binds it
	unlock, err := lockPort(port, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockPort(port, 50*time.Millisecond); err == nil {
		t.Fatal("second lockPort succeeded while the lock is held")
	}
	unlock()
	unlock2, err := lockPort(port, time.Second)
	if err != nil {
		t.Fatalf("lockPort after unlock: %v", err)
	}
	unlock2()
}
