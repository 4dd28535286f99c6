//go:build linux

package watcher

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/nstest"
)

// sysctlIn writes a sysctl (a path under /proc/sys) inside ns: /proc/sys/net
// answers for the network namespace of the thread that opens it.
func sysctlIn(t *testing.T, ns netns.NsHandle, path, value string) {
	t.Helper()
	err := nstest.Do(ns, func() error {
		return os.WriteFile(filepath.Join("/proc/sys", path), []byte(value), 0o644)
	})
	if err != nil {
		t.Fatalf("sysctl %s=%s: %v", path, value, err)
	}
}

// linkOf looks a link up by name through h.
func linkOf(t *testing.T, h *netlink.Handle, name string) netlink.Link {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// kernelFlags waits until the kernel lists a on l with flags for which ok
// holds.
func kernelFlags(t *testing.T, h *netlink.Handle, l netlink.Link, a string, what string, ok func(flags int) bool) {
	t.Helper()
	want := netip.MustParseAddr(a)
	kernelAddr(t, h, l, a+" "+what, func(ip netip.Addr, flags int) bool { return ip == want && ok(flags) })
}

// kernelAddr waits until the kernel lists an address on l for which ok
// holds.
func kernelAddr(t *testing.T, h *netlink.Handle, l netlink.Link, what string, ok func(ip netip.Addr, flags int) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range addrs {
			if ip, _ := netip.AddrFromSlice(x.IP); ok(ip.Unmap(), x.Flags) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the kernel never listed %s: %v", what, addrs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNetlinkKeptAddressAfterLinkDown: with keep_addr_on_down (a sysctl
// some distributions and network managers set), an IPv6 address survives
// its interface going down, but the kernel marks it tentative without a
// message: when the interface comes back, the address goes through
// duplicate address detection again before the kernel accepts traffic for
// it, and while the link has no carrier that is never. The watcher must not
// take the interface coming up for the address being usable.
func TestNetlinkKeptAddressAfterLinkDown(t *testing.T) {
	t.Parallel()
	ns, h, _ := netnsLo(t)
	fastDAD(t, ns)
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "hsk0"}, PeerName: "hsk1"}); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	sysctlIn(t, ns, "net/ipv6/conf/hsk0/keep_addr_on_down", "1")
	fastDADOn(t, ns, "hsk0")
	for _, n := range []string{"hsk0", "hsk1"} {
		if err := h.LinkSetUp(linkOf(t, h, n)); err != nil {
			t.Fatal(err)
		}
	}
	_, st := startWatcher(t, Options{Dir: t.TempDir(), Addrs: true, AddrSource: NetlinkSource{Namespace: &ns}, Resync: time.Hour})
	withDAD, _ := netlink.ParseAddr("2001:db8:4b::1/64")
	if err := h.AddrAdd(linkOf(t, h, "hsk0"), withDAD); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "the address past its detection", vip("2001:db8:4b::1", true, false))

	// The peer down first: hsk0 comes back up without carrier.
	for _, n := range []string{"hsk1", "hsk0"} {
		if err := h.LinkSetDown(linkOf(t, h, n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.LinkSetUp(linkOf(t, h, "hsk0")); err != nil {
		t.Fatal(err)
	}
	// An IPv4 address counts as soon as its interface is up: once it is
	// in, the watcher has seen hsk0 come up and everything before.
	if err := h.AddrAdd(linkOf(t, h, "hsk0"), nstest.Addr(t, "198.51.100.75/24")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "the marker on hsk0", vip("198.51.100.75", true, false))
	kernelFlags(t, h, linkOf(t, h, "hsk0"), "2001:db8:4b::1", "tentative", func(f int) bool { return f&unix.IFA_F_TENTATIVE != 0 })
	if st.Load().HasVIP(netip.MustParseAddr("2001:db8:4b::1"), false) {
		t.Fatal("an address the kernel holds tentative (kept over the interface going down, no carrier since) counts as a VIP")
	}

	// Carrier: the detection runs again and passes.
	if err := h.LinkSetUp(linkOf(t, h, "hsk1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "the address after its detection passed again", vip("2001:db8:4b::1", true, false))
	if f := st.Load().VIPs()[netip.MustParseAddr("2001:db8:4b::1")]; f != cache.OnOther {
		t.Fatalf("flags %v, want on a non-loopback interface only", f)
	}
}

// slowSource is the real netlink source read late: its updates wait until
// the test opens the gate, as they would behind a busy loop.
type slowSource struct {
	NetlinkSource
	gate chan struct{}
}

func (s *slowSource) Subscribe(ctx context.Context) (HostAddrs, <-chan Update, error) {
	cur, ch, err := s.NetlinkSource.Subscribe(ctx)
	if err != nil {
		return cur, ch, err
	}
	out := make(chan Update)
	go func() {
		defer close(out)
		defer drain(ch)
		select {
		case <-s.gate:
		case <-ctx.Done():
			return
		}
		for u := range ch {
			select {
			case out <- u:
			case <-ctx.Done():
				return
			}
		}
	}()
	return cur, out, nil
}

// TestNetlinkLinkAndAddressOrder: the kernel announces an interface going
// down, coming up and then its addresses in that order, and the watcher
// must apply them in that order. Here an interface with keep_addr_on_down
// and no detection (accept_dad 0) goes down and up: the kernel announces
// the kept IPv6 address again right after the interface came up. Applied
// before the interface going down, that announcement is undone by it and
// the address stays out although the kernel uses it. Three hundred MTU
// changes on another interface come first and the watcher reads them late,
// so that it has a backlog of interface messages when the rest arrive.
func TestNetlinkLinkAndAddressOrder(t *testing.T) {
	t.Parallel()
	ns, h, _ := netnsLo(t)
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "hso0"}, PeerName: "hso1"}); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "hsobr"}}); err != nil {
		t.Fatalf("add bridge: %v", err)
	}
	sysctlIn(t, ns, "net/ipv6/conf/hso0/keep_addr_on_down", "1")
	sysctlIn(t, ns, "net/ipv6/conf/hso0/accept_dad", "0")
	sysctlIn(t, ns, "net/ipv6/conf/hso0/addr_gen_mode", "1") // no link-local address
	for _, n := range []string{"hso0", "hso1"} {
		if err := h.LinkSetUp(linkOf(t, h, n)); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := netlink.ParseAddr("2001:db8:5e::1/64") // not nodad: the kernel marks it tentative when hso0 goes down
	if err := h.AddrAdd(linkOf(t, h, "hso0"), a); err != nil {
		t.Fatal(err)
	}
	// Past detection (none here) once the kernel has the link ready.
	kernelFlags(t, h, linkOf(t, h, "hso0"), "2001:db8:5e::1", "past its detection", func(f int) bool { return f&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) == 0 })
	src := &slowSource{NetlinkSource: NetlinkSource{Namespace: &ns}, gate: make(chan struct{})}
	_, st := startWatcher(t, Options{Dir: t.TempDir(), Addrs: true, AddrSource: src, Resync: time.Hour})
	if !st.Load().HasVIP(netip.MustParseAddr("2001:db8:5e::1"), false) {
		t.Fatal("the address is not in the first list")
	}

	br := linkOf(t, h, "hsobr")
	for i := range 300 {
		if err := h.LinkSetMTU(br, 1400+i%2); err != nil {
			t.Fatal(err)
		}
	}
	hso0 := linkOf(t, h, "hso0")
	if err := h.LinkSetDown(hso0); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(hso0); err != nil {
		t.Fatal(err)
	}
	// The marker: an address on an interface made last counts once the
	// watcher has seen that interface come up (so every interface
	// message before) and the address (so every address message before).
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "hsomk"}}); err != nil {
		t.Fatal(err)
	}
	mk := linkOf(t, h, "hsomk")
	if err := h.LinkSetUp(mk); err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(mk, nstest.Addr(t, "198.51.100.94/24")); err != nil {
		t.Fatal(err)
	}
	close(src.gate)
	waitFor(t, st, "the marker", vip("198.51.100.94", true, false))
	kernelFlags(t, h, hso0, "2001:db8:5e::1", "past its detection", func(f int) bool { return f&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) == 0 })
	if !st.Load().HasVIP(netip.MustParseAddr("2001:db8:5e::1"), false) {
		t.Fatal("an address the kernel uses is missing: its announcement was applied before its interface going down")
	}
}

// TestNetlinkOverflowRelists: a burst of address changes larger than the
// netlink socket holds, read late, overflows it (ENOBUFS): the kernel drops
// messages. The watcher must notice, say the list is not current, resubscribe
// and relist, and end up with what the kernel has.
func TestNetlinkOverflowRelists(t *testing.T) {
	t.Parallel()
	ns, h, lo := netnsLo(t)
	src := &slowSource{NetlinkSource: NetlinkSource{Namespace: &ns}, gate: make(chan struct{})}
	w, st := startWatcher(t, Options{Dir: t.TempDir(), Addrs: true, AddrSource: src, Resync: time.Hour})
	const n = 3000
	addr := func(i int) string { return netip.AddrFrom4([4]byte{10, 77, byte(i / 256), byte(i % 256)}).String() }
	for i := range n {
		if err := h.AddrAdd(lo, nstest.Addr(t, addr(i)+"/32")); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i += 2 {
		if err := h.AddrDel(lo, nstest.Addr(t, addr(i)+"/32")); err != nil {
			t.Fatal(err)
		}
	}
	close(src.gate)
	waitFor(t, st, "the list after the overflow", func(s *cache.Snapshot) bool {
		return s.VIPsOK() && w.Stats().Resubscribes > 0 && len(s.VIPs()) == n/2+2 // and 127.0.0.1, ::1
	})
	s := st.Load()
	for i := range n {
		if s.HasVIP(netip.MustParseAddr(addr(i)), true) != (i%2 == 1) {
			t.Fatalf("%s: VIP %v, the kernel has it: %v", addr(i), s.HasVIP(netip.MustParseAddr(addr(i)), true), i%2 == 1)
		}
	}
}

// TestNetlinkListDuringChurn: a listing taken while addresses change is
// interrupted (the kernel flags the dump NLM_F_DUMP_INTR). The watcher
// lists on every (re)subscription, SIGHUP and resync; a host whose addresses
// keep changing must still be listed, not fail into backoff.
func TestNetlinkListDuringChurn(t *testing.T) {
	t.Parallel()
	ns, h, lo := netnsLo(t)
	for i := range 2000 { // a listing of several messages: one can be interrupted
		if err := h.AddrAdd(lo, nstest.Addr(t, netip.AddrFrom4([4]byte{10, 78, byte(i / 256), byte(i % 256)}).String()+"/32")); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	churned := make(chan error, 1)
	go func() {
		a := nstest.Addr(t, "10.78.99.1/32")
		for {
			select {
			case <-stop:
				churned <- nil
				return
			default:
			}
			if err := h.AddrAdd(lo, a); err != nil {
				churned <- err
				return
			}
			if err := h.AddrDel(lo, a); err != nil {
				churned <- err
				return
			}
		}
	}()
	src := NetlinkSource{Namespace: &ns}
	var failed, short int
	var last error
	for range 10 {
		l, err := src.List(context.Background())
		if err != nil {
			failed++
			last = err
			continue
		}
		// Every address that did not change is in the listing.
		seen := map[netip.Addr]bool{}
		for _, a := range l.Addrs {
			seen[a.Addr] = true
		}
		for i := range 2000 {
			if !seen[netip.AddrFrom4([4]byte{10, 78, byte(i / 256), byte(i % 256)})] {
				short++
				break
			}
		}
	}
	close(stop)
	if err := <-churned; err != nil {
		t.Fatal(err)
	}
	if failed > 0 {
		t.Errorf("%d of 10 listings failed under churn; the last: %v", failed, last)
	}
	if short > 0 {
		t.Errorf("%d of 10 listings missed an address that did not change", short)
	}
}
