//go:build linux

package watcher

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/http-status/http_status/cache"
)

// AddrUpdate is one address added to or removed from an interface. The
// kernel keys an IPv4 address by (address, prefix length, interface): the
// same address may be configured twice with two prefix lengths, and deleting
// one leaves the other. See addrKey.
type AddrUpdate struct {
	Addr      netip.Addr
	PrefixLen int
	LinkIndex int
	New       bool // added (true) or removed (false)
	// DAD is where the address's duplicate address detection (IPv6)
	// stands; only an address past it (the zero value) is a VIP.
	DAD DADState
	// NoDAD: the address was added without detection (IFA_F_NODAD).
	NoDAD bool
}

// DADState is where an address's duplicate address detection stands.
type DADState uint8

const (
	// DADDone: no detection (IPv4, nodad, loopback), or it passed, or the
	// address is optimistic (RFC 4429: usable while it runs).
	DADDone DADState = iota
	// DADRunning: the address is tentative. The kernel drops traffic to
	// it and refuses to bind it until the detection passes (about a
	// second; for as long as the link has no carrier).
	DADRunning
	// DADFailed: another host on the link answered for the address. The
	// kernel never uses it; it stays until deleted.
	DADFailed
)

// dadState reads an address's IFA_F_* flags.
func dadState(flags int) DADState {
	switch {
	case flags&unix.IFA_F_DADFAILED != 0:
		return DADFailed
	case flags&unix.IFA_F_TENTATIVE != 0 && flags&unix.IFA_F_OPTIMISTIC == 0:
		return DADRunning
	}
	return DADDone
}

// LinkUpdate is the state of one interface.
type LinkUpdate struct {
	Index    int
	Loopback bool // a loopback interface (LVS-DR real servers keep VIPs there)
	Up       bool // administratively up (IFF_UP)
	Gone     bool // deleted
}

// HostAddrs is a full listing of the host's interfaces and addresses.
type HostAddrs struct {
	Links []LinkUpdate
	Addrs []AddrUpdate
}

// Update is one change: an address (Link nil) or an interface (Link set).
type Update struct {
	Addr AddrUpdate
	Link *LinkUpdate
}

// AddrSource is where addresses come from: netlink in production, canned
// updates in tests.
type AddrSource interface {
	// Subscribe starts a subscription. It returns every interface and
	// address configured now, then delivers changes on the channel until
	// ctx is done or the subscription fails; either way the channel is
	// closed at the end.
	Subscribe(ctx context.Context) (current HostAddrs, updates <-chan Update, err error)
	// List returns every interface and address configured now (a relist
	// on SIGHUP and on the periodic resync).
	List(ctx context.Context) (HostAddrs, error)
}

// NetlinkSource is the production [AddrSource]. The zero value watches the
// current network namespace.
type NetlinkSource struct {
	// Namespace, when set, is the network namespace to watch (tests make a
	// throwaway one).
	Namespace *netns.NsHandle
	// Log receives subscription errors.
	Log zerolog.Logger
}

type netlinkSource = NetlinkSource

func (s NetlinkSource) ns() netns.NsHandle {
	if s.Namespace != nil {
		return *s.Namespace
	}
	return netns.None()
}

// List implements [AddrSource].
func (s NetlinkSource) List(ctx context.Context) (HostAddrs, error) {
	h, err := netlink.NewHandleAt(s.ns())
	if err != nil {
		return HostAddrs{}, fmt.Errorf("watcher: netlink handle: %w", err)
	}
	defer h.Close()
	return list(h)
}

// listTries bounds the listings one list takes while the kernel says each
// was interrupted.
const listTries = 5

// list lists interfaces and addresses. A listing taken while addresses
// change is interrupted (NLM_F_DUMP_INTR): the kernel may have skipped an
// entry that did not change, or given one that went away. It tries again;
// when every try was interrupted it returns them all together (the later
// try's entry for a key last). That is safe because the subscription was
// open before the first try: whatever changed since comes after the list and
// is applied over it, and an entry that did not change is missing only if
// every try skipped it.
func list(h *netlink.Handle) (HostAddrs, error) {
	var all HostAddrs
	for range listTries {
		l, err := listOnce(h)
		if err == nil {
			return l, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return HostAddrs{}, err
		}
		all.Links = append(all.Links, l.Links...)
		all.Addrs = append(all.Addrs, l.Addrs...)
	}
	return all, nil
}

// listOnce lists once; its error wraps [netlink.ErrDumpInterrupted], with
// what it read, when a listing was interrupted.
func listOnce(h *netlink.Handle) (HostAddrs, error) {
	var out HostAddrs
	links, lerr := h.LinkList()
	if lerr != nil && !errors.Is(lerr, netlink.ErrDumpInterrupted) {
		return out, fmt.Errorf("watcher: netlink link list: %w", lerr)
	}
	for _, l := range links {
		out.Links = append(out.Links, linkUpdate(l, false))
	}
	addrs, aerr := h.AddrList(nil, netlink.FAMILY_ALL)
	if aerr != nil && !errors.Is(aerr, netlink.ErrDumpInterrupted) {
		return out, fmt.Errorf("watcher: netlink address list: %w", aerr)
	}
	for _, a := range addrs {
		if u, ok := addrUpdate(*a.IPNet, a.LinkIndex, true, a.Flags); ok {
			out.Addrs = append(out.Addrs, u)
		}
	}
	if lerr != nil || aerr != nil {
		return out, fmt.Errorf("watcher: netlink list: %w", netlink.ErrDumpInterrupted)
	}
	return out, nil
}

func linkUpdate(l netlink.Link, gone bool) LinkUpdate {
	a := l.Attrs()
	return LinkUpdate{Index: a.Index, Loopback: a.Flags&net.FlagLoopback != 0, Up: a.Flags&net.FlagUp != 0, Gone: gone}
}

func addrUpdate(n net.IPNet, link int, add bool, flags int) (AddrUpdate, bool) {
	ip, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return AddrUpdate{}, false
	}
	ones, _ := n.Mask.Size()
	return AddrUpdate{Addr: ip.Unmap(), PrefixLen: ones, LinkIndex: link, New: add, DAD: dadState(flags), NoDAD: flags&unix.IFA_F_NODAD != 0}, true
}

// Subscribe implements [AddrSource]. It subscribes first and lists second, so
// no change can fall between the two: updates that the list already holds
// are applied again, which is harmless (each update sets one key's state).
// Interface and address messages come on one socket, in the order the
// kernel sent them: an address announced after its interface came up must
// not be applied before the interface going down.
func (s NetlinkSource) Subscribe(ctx context.Context) (HostAddrs, <-chan Update, error) {
	ns := s.ns()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return HostAddrs{}, nil, fmt.Errorf("watcher: netlink handle: %w", err)
	}
	defer h.Close()
	sock, err := nl.SubscribeAt(ns, netns.None(), unix.NETLINK_ROUTE,
		unix.RTNLGRP_LINK, unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV6_IFADDR)
	if err != nil {
		return HostAddrs{}, nil, fmt.Errorf("watcher: netlink subscribe: %w", err)
	}
	if err := sock.SetReceiveBufferSize(1<<20, false); err != nil {
		sock.Close()
		return HostAddrs{}, nil, fmt.Errorf("watcher: netlink receive buffer: %w", err)
	}
	cur, err := list(h)
	if err != nil {
		sock.Close()
		return HostAddrs{}, nil, err
	}
	out := make(chan Update, 256)
	go func() {
		defer close(out)
		stop := context.AfterFunc(ctx, sock.Close)
		defer func() {
			stop()
			sock.Close()
		}()
		for {
			msgs, from, err := sock.Receive()
			if err != nil {
				// Overflow (ENOBUFS) included: the caller resubscribes
				// and relists.
				if ctx.Err() == nil { // closing the socket on stop is not news
					s.Log.Warn().Err(err).Msg("netlink subscription")
				}
				return
			}
			if from.Pid != nl.PidKernel {
				continue
			}
			for _, m := range msgs {
				u, ok := parseUpdate(m)
				if !ok {
					continue
				}
				select {
				case out <- u:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return cur, out, nil
}

// parseUpdate reads one interface or address message; ok is false for any
// other.
func parseUpdate(m syscall.NetlinkMessage) (Update, bool) {
	switch m.Header.Type {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		if len(m.Data) < unix.SizeofIfInfomsg {
			return Update{}, false
		}
		ifi := nl.DeserializeIfInfomsg(m.Data)
		return Update{Link: &LinkUpdate{
			Index:    int(ifi.Index),
			Loopback: ifi.Flags&unix.IFF_LOOPBACK != 0,
			Up:       ifi.Flags&unix.IFF_UP != 0,
			Gone:     m.Header.Type == unix.RTM_DELLINK,
		}}, true
	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		if len(m.Data) < unix.SizeofIfAddrmsg {
			return Update{}, false
		}
		ifa := nl.DeserializeIfAddrmsg(m.Data)
		attrs, err := nl.ParseRouteAttr(m.Data[unix.SizeofIfAddrmsg:])
		if err != nil {
			return Update{}, false
		}
		flags := int(ifa.Flags)
		var local, address []byte
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.IFA_LOCAL:
				local = a.Value
			case unix.IFA_ADDRESS:
				address = a.Value
			case unix.IFA_FLAGS:
				if len(a.Value) >= 4 {
					flags = int(binary.NativeEndian.Uint32(a.Value))
				}
			}
		}
		// As the library's listing reads it (list): IFA_LOCAL is the
		// address, IFA_ADDRESS its peer when they differ (point to
		// point, a /32 then); without IFA_LOCAL, IFA_ADDRESS.
		n := net.IPNet{IP: address, Mask: net.CIDRMask(int(ifa.Prefixlen), 8*len(address))}
		if local != nil && !net.IP(local).Equal(address) {
			n = net.IPNet{IP: local, Mask: net.CIDRMask(8*len(local), 8*len(local))}
		}
		if n.IP == nil {
			return Update{}, false
		}
		a, ok := addrUpdate(n, int(ifa.Index), m.Header.Type == unix.RTM_NEWADDR, flags)
		return Update{Addr: a}, ok
	}
	return Update{}, false
}

func drain[T any](c <-chan T) {
	for range c {
	}
}

// addrEvent is what the subscription goroutine hands the loop: a full list
// (reset) or one change, or a notice that the subscription is down.
type addrEvent struct {
	reset bool
	list  HostAddrs
	one   Update
	down  bool
	err   error
}

// runAddrSource keeps a subscription up, resubscribing with backoff, and
// forwards lists and changes to the loop until ctx is done.
func runAddrSource(ctx context.Context, src AddrSource, out chan<- addrEvent, log zerolog.Logger) {
	defer close(out)
	backoff := 100 * time.Millisecond
	first := true
	// down tells the loop the subscription is gone and waits out the
	// backoff; it reports false when ctx ended meanwhile.
	down := func(err error) bool {
		select {
		case out <- addrEvent{down: true, err: err}:
		case <-ctx.Done():
			return false
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return false
		}
		backoff = min(backoff*2, 10*time.Second)
		return true
	}
	for ctx.Err() == nil {
		sctx, cancel := context.WithCancel(ctx)
		cur, ch, err := src.Subscribe(sctx)
		if err != nil {
			cancel()
			log.Error().Err(err).Dur("retry_in", backoff).Msg("netlink subscription failed")
			if !down(err) {
				return
			}
			continue
		}
		if !first {
			log.Info().Int("addresses", len(cur.Addrs)).Msg("netlink resubscribed")
		}
		first = false
		select {
		case out <- addrEvent{reset: true, list: cur}:
		case <-ctx.Done():
			cancel()
			drain(ch)
			return
		}
		started := time.Now()
		for u := range ch {
			select {
			case out <- addrEvent{one: u}:
			case <-ctx.Done():
			}
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > time.Minute {
			backoff = 100 * time.Millisecond
		}
		log.Warn().Dur("retry_in", backoff).Msg("netlink subscription dropped; resubscribing")
		if !down(errors.New("subscription dropped")) {
			return
		}
	}
}

// addrKey is how the kernel keys an address: IPv4 by (address, prefix
// length, interface), IPv6 by (address, interface). (Two IPv4 point-to-point
// addresses that differ only by peer share a key here: deleting one hides
// the other until the next relist, which errs on the side of out.)
type addrKey struct {
	addr netip.Addr
	plen int
	link int
}

// linkState is what the table knows of an interface.
type linkState struct{ loopback, up bool }

// addrState is what the table knows of an address.
type addrState struct {
	dad   DADState
	nodad bool
}

// addrTable is the loop's record of the host's addresses and interfaces.
type addrTable struct {
	addrs    map[addrKey]addrState
	links    map[int]linkState
	ok       bool // a list has been received and the subscription is up
	gotFirst bool
}

func newAddrTable() *addrTable {
	return &addrTable{addrs: map[addrKey]addrState{}, links: map[int]linkState{}}
}

// reset replaces the table with a full listing.
func (t *addrTable) reset(l HostAddrs) {
	t.addrs = make(map[addrKey]addrState, len(l.Addrs))
	t.links = make(map[int]linkState, len(l.Links))
	for _, u := range l.Links {
		t.apply(Update{Link: &u})
	}
	for _, u := range l.Addrs {
		t.apply(Update{Addr: u})
	}
}

// apply records one change. Each update sets the state of one key (present
// or absent, up or down), so applying an update the table already reflects
// is harmless: that is what makes a relist at any point of the stream safe.
func (t *addrTable) apply(u Update) {
	if l := u.Link; l != nil {
		if l.Gone {
			delete(t.links, l.Index)
			// The kernel deletes a link's addresses with it (and says so,
			// but on another socket that may lag).
			for k := range t.addrs {
				if k.link == l.Index {
					delete(t.addrs, k)
				}
			}
			return
		}
		t.links[l.Index] = linkState{loopback: l.Loopback, up: l.Up}
		if !l.Up {
			// An IPv6 address that outlives its interface going down
			// (keep_addr_on_down) goes back to tentative without a
			// message: the kernel runs its detection again when the
			// interface comes up, and announces it when it ends. (One it
			// does not keep, it deletes, and says so.)
			for k, a := range t.addrs {
				if k.link == l.Index && k.addr.Is6() && !a.nodad && a.dad == DADDone {
					t.addrs[k] = addrState{dad: DADRunning}
				}
			}
		}
		return
	}
	k := keyOf(u.Addr)
	if u.Addr.New {
		// The kernel announces an address again when its detection
		// ends (passed or failed): the same key, a new state.
		t.addrs[k] = addrState{dad: u.Addr.DAD, nodad: u.Addr.NoDAD}
	} else {
		delete(t.addrs, k)
	}
}

func keyOf(u AddrUpdate) addrKey {
	k := addrKey{addr: u.Addr.Unmap().WithZone(""), plen: u.PrefixLen, link: u.LinkIndex}
	if k.addr.Is6() {
		// IPv6 keys an address by (address, interface) alone: a new
		// prefix length replaces the old one in place.
		k.plen = 0
	}
	return k
}

// newlyFailed reports whether u says that an address's duplicate address
// detection failed and the table did not know it yet: worth a warning once.
func (t *addrTable) newlyFailed(u AddrUpdate) bool {
	if !u.New || u.DAD != DADFailed {
		return false
	}
	old, ok := t.addrs[keyOf(u)]
	return !ok || old.dad != DADFailed
}

// set is the VIP set: every address on an interface that is administratively
// up, past its duplicate address detection. An address on a down interface
// does not count: the kernel takes its local route away (IPv4) or the
// address itself (IPv6), so the host does not accept traffic for it; nor
// does a tentative or dadfailed one (see [DADState]), nor an IPv6 address
// kept over its interface going down until its detection passes again
// (see [addrTable.apply]). An interface the table
// has not heard of yet (its link message may lag the address message) counts
// as down until it has.
func (t *addrTable) set() map[netip.Addr]cache.VIPFlags {
	out := make(map[netip.Addr]cache.VIPFlags, len(t.addrs))
	for k, a := range t.addrs {
		l, ok := t.links[k.link]
		if !ok || !l.up || a.dad != DADDone {
			continue
		}
		if l.loopback {
			out[k.addr] |= cache.OnLoopback
		} else {
			out[k.addr] |= cache.OnOther
		}
	}
	return out
}

// handleAddr applies one event from the subscription goroutine; it reports
// whether the VIP set may have changed.
func (w *Watcher) handleAddr(ev addrEvent) bool {
	t := w.addrs
	switch {
	case ev.down:
		if t.ok {
			w.count(func(s *Stats) { s.Resubscribes++ })
		}
		t.ok = false
		// Keep the last known addresses: they are the best guess until the
		// subscription is back, and VIPs rarely move.
		return true
	case ev.reset:
		w.resetAddrs(ev.list)
		t.ok, t.gotFirst = true, true
		w.count(func(s *Stats) { s.AddrUpdates++ })
		return true
	default:
		w.count(func(s *Stats) { s.AddrUpdates++ })
		if ev.one.Link == nil && t.newlyFailed(ev.one.Addr) {
			w.warnDADFailed(ev.one.Addr)
		}
		t.apply(ev.one)
		return true
	}
}

// relist reads every interface and address afresh (SIGHUP, periodic resync)
// and replaces the table with them. Changes still queued from the
// subscription are applied after it, which is safe (see [addrTable.apply]).
// It reports whether it did.
func (w *Watcher) relist(ctx context.Context) bool {
	if w.addrs == nil || w.addrSrc == nil {
		return false
	}
	l, err := w.addrSrc.List(ctx)
	if err != nil {
		w.log.Warn().Err(err).Msg("relisting addresses failed; keeping the subscription's view")
		return false
	}
	w.resetAddrs(l)
	w.count(func(s *Stats) { s.AddrUpdates++ })
	return true
}

// resetAddrs replaces the address table with a full listing, warning about
// addresses whose duplicate address detection failed since the last look.
func (w *Watcher) resetAddrs(l HostAddrs) {
	for _, u := range l.Addrs {
		if w.addrs.newlyFailed(u) {
			w.warnDADFailed(u)
		}
	}
	w.addrs.reset(l)
}

// waitFirstAddrs waits (bounded) for the first address list so the first
// published snapshot already knows the VIPs.
func (w *Watcher) waitFirstAddrs(ctx context.Context, c <-chan addrEvent) {
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for !w.addrs.gotFirst {
		select {
		case ev, ok := <-c:
			if !ok {
				return
			}
			w.handleAddr(ev)
			if ev.down {
				// Failing to subscribe at all: publish without VIPs
				// rather than hold the daemon; keep retrying.
				return
			}
		case <-timeout.C:
			w.log.Warn().Msg("no address list from netlink after 5s; starting without VIPs")
			return
		case <-ctx.Done():
			return
		}
	}
}

func (w *Watcher) warnDADFailed(u AddrUpdate) {
	w.log.Warn().Str("addr", u.Addr.String()).Int("link", u.LinkIndex).
		Msg("address " + u.Addr.String() + ": duplicate address detection failed (another host on the link answers for it); the kernel will not use it, so it is not a VIP of this host until it is deleted and added again")
}
