//go:build linux

package watcher

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/nstest"
	"github.com/http-status/http_status/internal/testenv"
)

func vip(a string, want bool, loopbackOnly bool) func(*cache.Snapshot) bool {
	addr := netip.MustParseAddr(a)
	return func(s *cache.Snapshot) bool { return s.HasVIP(addr, loopbackOnly) == want }
}

// netnsLo makes a throwaway network namespace (lo up; the test's own is
// untouched) and returns it, a netlink handle to it and its lo. It skips
// when not root.
func netnsLo(t *testing.T) (netns.NsHandle, *netlink.Handle, netlink.Link) {
	t.Helper()
	ns := nstest.New(t)
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	return ns, h, lo
}

// TestNetlinkRealNamespace adds and removes IPv4 and IPv6 addresses on lo and
// on a bridge link (the kernel here has no dummy module) in a namespace of
// its own, and checks the snapshot follows, including the loopback flag.
func TestNetlinkRealNamespace(t *testing.T) {
	t.Parallel()
	ns, h, lo := netnsLo(t)
	// An address present before the watcher starts is in the first snapshot.
	if err := h.AddrAdd(lo, nstest.Addr(t, "192.0.2.1/32")); err != nil {
		t.Fatal(err)
	}
	_, st := startWatcher(t, Options{Dir: t.TempDir(), Addrs: true, AddrSource: NetlinkSource{Namespace: &ns}})
	if !st.Load().HasVIP(netip.MustParseAddr("192.0.2.1"), true) {
		t.Fatalf("pre-existing VIP missing from first snapshot: %v", st.Load().VIPs())
	}
	if !st.Load().VIPsOK() {
		t.Fatal("VIPsOK false with a live subscription")
	}

	for _, a := range []string{"192.0.2.10/32", "2001:db8::10/128"} {
		if err := h.AddrAdd(lo, nstest.Addr(t, a)); err != nil {
			t.Fatalf("add %s on lo: %v", a, err)
		}
	}
	waitFor(t, st, "v4 on lo", vip("192.0.2.10", true, true))
	waitFor(t, st, "v6 on lo", vip("2001:db8::10", true, true))
	if !st.Load().HasVIP(netip.MustParseAddr("::ffff:192.0.2.10"), false) {
		t.Error("v4-mapped form of a v4 VIP not found")
	}

	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "hs0"}}
	if err := h.LinkAdd(br); err != nil {
		t.Fatalf("add bridge link: %v", err)
	}
	link, err := h.LinkByName("hs0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"198.51.100.7/24", "2001:db8:1::7/64"} {
		if err := h.AddrAdd(link, nstest.Addr(t, a)); err != nil {
			t.Fatalf("add %s on bridge: %v", a, err)
		}
	}
	waitFor(t, st, "v4 on bridge", vip("198.51.100.7", true, false))
	waitFor(t, st, "v6 on bridge", vip("2001:db8:1::7", true, false))
	if st.Load().HasVIP(netip.MustParseAddr("198.51.100.7"), true) {
		t.Error("bridge address counted as loopback")
	}

	// The same address on two links: removing one keeps it.
	if err := h.AddrAdd(link, nstest.Addr(t, "192.0.2.10/32")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "shared address on bridge too", func(s *cache.Snapshot) bool {
		return s.VIPs()[netip.MustParseAddr("192.0.2.10")] == cache.OnLoopback|cache.OnOther
	})
	if err := h.AddrDel(lo, nstest.Addr(t, "192.0.2.10/32")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "shared address left on bridge only", func(s *cache.Snapshot) bool {
		return s.VIPs()[netip.MustParseAddr("192.0.2.10")] == cache.OnOther
	})

	for _, del := range []struct {
		l netlink.Link
		a string
	}{{lo, "2001:db8::10/128"}, {link, "198.51.100.7/24"}, {link, "2001:db8:1::7/64"}, {link, "192.0.2.10/32"}} {
		if err := h.AddrDel(del.l, nstest.Addr(t, del.a)); err != nil {
			t.Fatalf("del %s: %v", del.a, err)
		}
	}
	for _, a := range []string{"2001:db8::10", "198.51.100.7", "2001:db8:1::7", "192.0.2.10"} {
		waitFor(t, st, a+" gone", vip(a, false, false))
	}
	// Deleting the link takes nothing else with it.
	if err := h.LinkDel(link); err != nil {
		t.Fatal(err)
	}
	if !st.Load().HasVIP(netip.MustParseAddr("192.0.2.1"), true) {
		t.Fatal("unrelated VIP lost")
	}
}

// fakeSource is a canned AddrSource: each Subscribe returns the next list and
// hands the test the update channel; List returns what the test set with
// setCurrent. This stands in for a dropped netlink subscription, which a
// real kernel only does under memory pressure.
type fakeSource struct {
	mu      sync.Mutex
	lists   [][]AddrUpdate
	current []AddrUpdate
	subs    chan *fakeSub
	fail    error // when set, Subscribe fails with it
}

// fakeSub is one subscription: the test sends on c and calls drop to end it,
// as the library closes its channel when the netlink socket fails.
type fakeSub struct {
	c    chan Update
	once sync.Once
}

func (s *fakeSub) drop() { s.once.Do(func() { close(s.c) }) }

// fakeLinks: 1 is lo, 2 is eth0, both up.
var fakeLinks = []LinkUpdate{{Index: 1, Loopback: true, Up: true}, {Index: 2, Up: true}}

func (f *fakeSource) Subscribe(ctx context.Context) (HostAddrs, <-chan Update, error) {
	f.mu.Lock()
	if f.fail != nil {
		defer f.mu.Unlock()
		return HostAddrs{}, nil, f.fail
	}
	var l []AddrUpdate
	if len(f.lists) > 0 {
		l, f.lists = f.lists[0], f.lists[1:]
	}
	f.mu.Unlock()
	sub := &fakeSub{c: make(chan Update)}
	f.subs <- sub
	context.AfterFunc(ctx, sub.drop) // the contract: closed when ctx is done
	return HostAddrs{Links: fakeLinks, Addrs: l}, sub.c, nil
}

func (f *fakeSource) List(context.Context) (HostAddrs, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return HostAddrs{Links: fakeLinks, Addrs: f.current}, nil
}

func (f *fakeSource) setCurrent(l []AddrUpdate) {
	f.mu.Lock()
	f.current = l
	f.mu.Unlock()
}

func upd(a string, lo, add bool) AddrUpdate {
	idx := 2
	if lo {
		idx = 1
	}
	return AddrUpdate{Addr: netip.MustParseAddr(a), PrefixLen: netip.MustParseAddr(a).BitLen(), LinkIndex: idx, New: add}
}

func TestAddrSubscriptionDropped(t *testing.T) {
	t.Parallel()
	src := &fakeSource{
		lists: [][]AddrUpdate{
			{upd("10.0.0.1", false, true)},
			{upd("10.0.0.1", false, true), upd("10.0.0.3", true, true)}, // after the drop
		},
		subs: make(chan *fakeSub, 8),
	}
	w, st := startWatcher(t, Options{Dir: t.TempDir(), Addrs: true, AddrSource: src})
	if !st.Load().HasVIP(netip.MustParseAddr("10.0.0.1"), false) {
		t.Fatal("first list not applied")
	}
	sub := <-src.subs
	sub.c <- Update{Addr: upd("10.0.0.2", false, true)}
	waitFor(t, st, "update applied", vip("10.0.0.2", true, false))
	// Drop the subscription. 10.0.0.2 went away while we were not
	// listening; the relist after resubscribing must show it gone.
	sub.drop()
	waitFor(t, st, "relist after drop", func(s *cache.Snapshot) bool {
		return s.VIPsOK() && s.HasVIP(netip.MustParseAddr("10.0.0.3"), true) && !s.HasVIP(netip.MustParseAddr("10.0.0.2"), false)
	})
	if w.Stats().Resubscribes != 1 {
		t.Fatalf("Resubscribes = %d, want 1", w.Stats().Resubscribes)
	}
	sub2 := <-src.subs
	sub2.c <- Update{Addr: upd("10.0.0.3", true, false)}
	waitFor(t, st, "update on new subscription", vip("10.0.0.3", false, false))

	// A rescan (SIGHUP) relists: an address the subscription never told
	// us about (a lost message) appears, one it kept wrongly goes.
	src.setCurrent([]AddrUpdate{upd("10.0.0.9", false, true)})
	select {
	case <-w.Rescan():
	case <-time.After(10 * time.Second):
		t.Fatal("rescan not published")
	}
	if s := st.Load(); !s.HasVIP(netip.MustParseAddr("10.0.0.9"), false) || s.HasVIP(netip.MustParseAddr("10.0.0.1"), false) {
		t.Fatalf("after rescan: %v", s.VIPs())
	}
}

// TestAddrSubscriptionDownSince: while the subscription is down (it
// dropped and resubscribing fails) the snapshots keep the last known VIPs
// and say since when the list is not current, counted from the first
// snapshot that said so; once a subscription is back, the list is current
// again (the checker answers VIP checks from a list not current for
// --stale-after as unknown: internal/check TestVIPListNotCurrent).
func TestAddrSubscriptionDownSince(t *testing.T) {
	t.Parallel()
	src := &fakeSource{lists: [][]AddrUpdate{{upd("10.0.0.1", false, true)}, {upd("10.0.0.1", false, true)}}, subs: make(chan *fakeSub, 8)}
	_, st := startWatcher(t, Options{Dir: t.TempDir(), Addrs: true, AddrSource: src})
	if s := st.Load(); !s.VIPsOK() || s.VIPsStaleFor(time.Now()) != 0 {
		t.Fatalf("subscribed: VIPsOK %v, stale for %s", s.VIPsOK(), s.VIPsStaleFor(time.Now()))
	}
	sub := <-src.subs
	src.mu.Lock()
	src.fail = errors.New("netlink: too many open files")
	src.mu.Unlock()
	before := time.Now()
	sub.drop()
	waitFor(t, st, "VIP list not current", func(s *cache.Snapshot) bool { return !s.VIPsOK() })
	s := st.Load()
	after := time.Now()
	if !s.HasVIP(netip.MustParseAddr("10.0.0.1"), false) {
		t.Error("the last known VIPs were not kept while the subscription is down")
	}
	if d := s.VIPsStaleFor(after); d <= 0 || d > after.Sub(before) {
		t.Errorf("VIP list not current for %s, want in (0, %s]", d, after.Sub(before))
	}
	gen := s.Generation()
	src.mu.Lock()
	src.fail = nil
	src.mu.Unlock()
	waitFor(t, st, "resubscribed", func(s *cache.Snapshot) bool { return s.VIPsOK() && s.Generation() > gen })
	if d := st.Load().VIPsStaleFor(time.Now()); d != 0 {
		t.Errorf("VIP list current again, yet stale for %s", d)
	}
}

// TestNetlinkSameAddressTwoPrefixes is the kernel keying IPv4 addresses by
// (address, prefix length, interface): 10.2.0.1/24 and 10.2.0.1/32 on lo are
// two addresses, and deleting the /24 leaves the /32 configured. IPv6 keys
// by (address, interface): a replace with another prefix length leaves the one
// address (the kernel keeps its prefix), and deleting it leaves nothing.
func TestNetlinkSameAddressTwoPrefixes(t *testing.T) {
	t.Parallel()
	ns, h, lo := netnsLo(t)
	_, st := startWatcher(t, Options{Dir: t.TempDir(), Addrs: true, AddrSource: NetlinkSource{Namespace: &ns}, Resync: time.Hour})
	for _, a := range []string{"10.2.0.1/24", "10.2.0.1/32", "2001:db8:2::1/64", "2001:db8:2::2/64"} {
		if err := h.AddrAdd(lo, nstest.Addr(t, a)); err != nil {
			t.Fatalf("add %s: %v", a, err)
		}
	}
	if err := h.AddrReplace(lo, nstest.Addr(t, "2001:db8:2::2/128")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "both present", func(s *cache.Snapshot) bool {
		return s.HasVIP(netip.MustParseAddr("10.2.0.1"), true) && s.HasVIP(netip.MustParseAddr("2001:db8:2::1"), true)
	})
	for _, a := range []string{"10.2.0.1/24"} {
		if err := h.AddrDel(lo, nstest.Addr(t, a)); err != nil {
			t.Fatalf("del %s: %v", a, err)
		}
	}
	// A marker after the deletes: once it is in, the deletes were applied.
	if err := h.AddrAdd(lo, nstest.Addr(t, "10.2.0.99/32")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "marker", vip("10.2.0.99", true, true))
	for _, a := range []string{"10.2.0.1", "2001:db8:2::1"} {
		if !st.Load().HasVIP(netip.MustParseAddr(a), true) {
			t.Fatalf("%s lost although its other prefix length is still configured (ip addr shows it)", a)
		}
	}
	for _, a := range []string{"10.2.0.1/32", "2001:db8:2::1/64", "2001:db8:2::2/64"} {
		if err := h.AddrDel(lo, nstest.Addr(t, a)); err != nil {
			t.Fatalf("del %s: %v", a, err)
		}
	}
	waitFor(t, st, "v4 gone with its last prefix", vip("10.2.0.1", false, false))
	waitFor(t, st, "v6 gone", vip("2001:db8:2::1", false, false))
	waitFor(t, st, "replaced v6 gone", vip("2001:db8:2::2", false, false))
}

// TestNetlinkLinkDown: an address on an interface that is administratively
// down does not count (the host does not take traffic for it); it counts
// again when the interface comes up. A veth pair stands in for a NIC.
func TestNetlinkLinkDown(t *testing.T) {
	t.Parallel()
	ns, h, _ := netnsLo(t)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "hsv0"}, PeerName: "hsv1"}
	if err := h.LinkAdd(veth); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	link, err := h.LinkByName("hsv0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(link, nstest.Addr(t, "198.51.100.20/24")); err != nil {
		t.Fatal(err)
	}
	_, st := startWatcher(t, Options{Dir: t.TempDir(), Addrs: true, AddrSource: NetlinkSource{Namespace: &ns}, Resync: time.Hour})
	if st.Load().HasVIP(netip.MustParseAddr("198.51.100.20"), false) {
		t.Fatal("address on a down interface counted at start")
	}
	if err := h.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "interface up", vip("198.51.100.20", true, false))
	if err := h.LinkSetDown(link); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "interface down", vip("198.51.100.20", false, false))
	if err := h.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "interface up again", vip("198.51.100.20", true, false))
	// Deleting the interface takes its addresses.
	if err := h.LinkDel(link); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "interface deleted", vip("198.51.100.20", false, false))
}

// TestNetlinkRelistOnRescan: a rescan (SIGHUP) and the periodic resync read
// the address table afresh from the kernel, whatever the subscription said.
func TestNetlinkRelistOnRescan(t *testing.T) {
	t.Parallel()
	ns, h, lo := netnsLo(t)
	src := &lossySource{NetlinkSource: NetlinkSource{Namespace: &ns}}
	w, st := startWatcher(t, Options{Dir: t.TempDir(), Addrs: true, AddrSource: src, Resync: time.Hour})
	// The subscription loses this one (as an overflowing netlink socket
	// would); only a relist can find it.
	if err := h.AddrAdd(lo, nstest.Addr(t, "192.0.2.77/32")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.Rescan():
	case <-time.After(10 * time.Second):
		t.Fatal("rescan not published")
	}
	if !st.Load().HasVIP(netip.MustParseAddr("192.0.2.77"), true) {
		t.Fatal("rescan did not relist addresses")
	}
}

// lossySource is the real netlink source with its updates dropped: the
// stand-in for lost netlink messages, which a kernel only drops under
// memory pressure.
type lossySource struct{ NetlinkSource }

func (s *lossySource) Subscribe(ctx context.Context) (HostAddrs, <-chan Update, error) {
	cur, ch, err := s.NetlinkSource.Subscribe(ctx)
	if err != nil {
		return cur, ch, err
	}
	out := make(chan Update)
	go func() {
		defer close(out)
		drain(ch)
	}()
	return cur, out, nil
}

// TestNetlinkDuplicateAddressDetection: an IPv6 address whose duplicate
// address detection has not passed is not a VIP of this host. While the
// detection runs (tentative) the kernel drops traffic to the address and
// refuses to bind it; once it failed (dadfailed) another host holds the
// address. Both count only once the detection passes. The namespace's
// defaults are the kernel's: accept_dad 1, one probe.
func TestNetlinkDuplicateAddressDetection(t *testing.T) {
	t.Parallel()
	ns, h, lo := netnsLo(t)
	peer := nstest.New(t)
	fastDAD(t, ns)
	// hsd0 here, hsd1 in peer, which holds 2001:db8:d::1 already.
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "hsd0"}, PeerName: "hsd1", PeerNamespace: netlink.NsFd(int(peer))}); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	// hsd2 is up but has no carrier while its peer hsd3 is down: the
	// detection of an address on it waits, so the address stays tentative.
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "hsd2"}, PeerName: "hsd3"}); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	fastDADOn(t, ns, "hsd0", "hsd2")
	hp, err := netlink.NewHandleAt(peer)
	if err != nil {
		t.Fatal(err)
	}
	defer hp.Close()
	hsd1, err := hp.LinkByName("hsd1")
	if err != nil {
		t.Fatal(err)
	}
	if err := hp.AddrAdd(hsd1, nstest.Addr(t, "2001:db8:d::1/64")); err != nil {
		t.Fatal(err)
	}
	if err := hp.LinkSetUp(hsd1); err != nil {
		t.Fatal(err)
	}
	link := func(name string) netlink.Link {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	for _, n := range []string{"hsd0", "hsd2"} {
		if err := h.LinkSetUp(link(n)); err != nil {
			t.Fatal(err)
		}
	}
	var logs testenv.LogBuffer
	_, st := startWatcherLog(t, Options{Dir: t.TempDir(), Addrs: true, AddrSource: NetlinkSource{Namespace: &ns}, Resync: time.Hour}, &logs)

	// The link-local address's detection passed: probes cross the pair.
	kernelAddr(t, h, link("hsd0"), "a link-local address past its detection", func(ip netip.Addr, flags int) bool {
		return ip.IsLinkLocalUnicast() && flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) == 0
	})
	dup, _ := netlink.ParseAddr("2001:db8:d::1/64") // with detection (no IFA_F_NODAD)
	if err := h.AddrAdd(link("hsd0"), dup); err != nil {
		t.Fatal(err)
	}
	kernelFlags(t, h, link("hsd0"), "2001:db8:d::1", "dadfailed", func(f int) bool { return f&unix.IFA_F_DADFAILED != 0 })
	tent, _ := netlink.ParseAddr("2001:db8:e::1/64")
	if err := h.AddrAdd(link("hsd2"), tent); err != nil {
		t.Fatal(err)
	}
	// The watcher reads one subscription in order: once this address is
	// in, the two before it are applied.
	if err := h.AddrAdd(lo, nstest.Addr(t, "192.0.2.99/32")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "the marker address", vip("192.0.2.99", true, false))
	kernelFlags(t, h, link("hsd2"), "2001:db8:e::1", "tentative", func(f int) bool { return f&unix.IFA_F_TENTATIVE != 0 })
	s := st.Load()
	if s.HasVIP(netip.MustParseAddr("2001:db8:d::1"), false) {
		t.Error("an address whose duplicate address detection failed counts as a VIP")
	}
	if s.HasVIP(netip.MustParseAddr("2001:db8:e::1"), false) {
		t.Error("a tentative address counts as a VIP")
	}
	// Carrier: the detection runs (one probe) and passes.
	if err := h.LinkSetUp(link("hsd3")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "the address after its detection passed", vip("2001:db8:e::1", true, false))
	if st.Load().HasVIP(netip.MustParseAddr("2001:db8:d::1"), false) {
		t.Error("the duplicate address counts as a VIP")
	}
	if n := strings.Count(logs.String(), "2001:db8:d::1: duplicate address detection failed"); n != 1 {
		t.Errorf("the failed detection was logged %d times, want once:\n%s", n, logs.String())
	}
}

// fastDAD makes duplicate address detection in ns start at once on
// interfaces made after it (no random wait of up to a second before the
// probe); fastDADOn also waits 100 ms for an answer on the named ones
// instead of a second. One probe, as by default.
func fastDAD(t *testing.T, ns netns.NsHandle) {
	t.Helper()
	sysctlIn(t, ns, "net/ipv6/conf/default/router_solicitation_delay", "0")
}

func fastDADOn(t *testing.T, ns netns.NsHandle, links ...string) {
	t.Helper()
	for _, l := range links {
		sysctlIn(t, ns, "net/ipv6/neigh/"+l+"/retrans_time_ms", "100")
	}
}
