//go:build linux

// Package nstest makes throwaway network namespaces joined by a veth pair,
// for tests that need real addresses and real connections away from the
// host's own: nothing is named (no /run/netns entry), and a namespace
// disappears when its last handle and socket are closed.
package nstest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// New makes a network namespace, with lo up, and returns a handle to it
// (closed when the test ends); the test's own namespace is untouched. It
// skips when not root.
func New(t testing.TB) netns.NsHandle {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (CI runs as root)")
	}
	var ns netns.NsHandle
	var err error
	// On a thread of its own that is thrown away if it cannot go back.
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		orig, gerr := netns.Get()
		if gerr != nil {
			err = gerr
			runtime.UnlockOSThread()
			return
		}
		defer orig.Close()
		ns, err = netns.New() // switches this thread into it
		if err != nil {
			runtime.UnlockOSThread()
			return
		}
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
	}()
	<-done
	if err != nil {
		t.Skipf("cannot create a network namespace here: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("nstest: lo up: %v", err)
	}
	return ns
}

// Veth joins a and b with a veth pair (nameA in a, nameB in b), sets both
// up and gives them the addresses ([Addr]).
func Veth(t testing.TB, a netns.NsHandle, nameA string, addrsA []string, b netns.NsHandle, nameB string, addrsB []string) {
	t.Helper()
	ha, err := netlink.NewHandleAt(a)
	if err != nil {
		t.Fatal(err)
	}
	defer ha.Close()
	hb, err := netlink.NewHandleAt(b)
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: nameA}, PeerName: nameB, PeerNamespace: netlink.NsFd(int(b))}
	if err := ha.LinkAdd(veth); err != nil {
		t.Fatalf("nstest: add veth %s/%s: %v", nameA, nameB, err)
	}
	for _, side := range []struct {
		h     *netlink.Handle
		name  string
		addrs []string
	}{{ha, nameA, addrsA}, {hb, nameB, addrsB}} {
		l, err := side.h.LinkByName(side.name)
		if err != nil {
			t.Fatalf("nstest: %s: %v", side.name, err)
		}
		for _, s := range side.addrs {
			if err := side.h.AddrAdd(l, Addr(t, s)); err != nil {
				t.Fatalf("nstest: add %s on %s: %v", s, side.name, err)
			}
		}
		if err := side.h.LinkSetUp(l); err != nil {
			t.Fatalf("nstest: %s up: %v", side.name, err)
		}
	}
}

// Addr is s (CIDR, "10.199.0.1/24", "fd99::1/64") as a netlink address to
// add or delete; an IPv6 one is without duplicate address detection
// (IFA_F_NODAD), so it works at once.
func Addr(t testing.TB, s string) *netlink.Addr {
	t.Helper()
	a, err := netlink.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	if a.IP.To4() == nil {
		a.Flags = 0x02 // IFA_F_NODAD
	}
	return a
}

// Do runs f on a thread inside ns: sockets f opens belong to ns. f must not
// start goroutines that open sockets (they may run on other threads).
func Do(ns netns.NsHandle, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("nstest: enter namespace: %w", err)
			return
		}
		ferr := f()
		if netns.Set(orig) == nil {
			// Only a thread back in its namespace goes back to the pool;
			// otherwise it ends with this goroutine.
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}

// Listen listens on addr ("10.199.0.1:0") inside ns; the listener is closed
// when the test ends.
func Listen(t testing.TB, ns netns.NsHandle, network, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	err := Do(ns, func() (err error) { ln, err = net.Listen(network, addr); return err })
	if err != nil {
		t.Fatalf("nstest: listen %s in namespace: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// Dial connects to addr from inside ns.
func Dial(ns netns.NsHandle, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := Do(ns, func() (err error) { c, err = net.Dial(network, addr); return err })
	return c, err
}

// Client is an HTTP client whose connections are made inside ns, one per
// request (no keep-alive).
func Client(ns netns.NsHandle, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
			return Dial(ns, network, addr)
		},
	}}
}
