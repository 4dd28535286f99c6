package watcher

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/rs/zerolog"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/http-status/http_status/cache"
)

// AddrUpdate is one address added to or removed from an interface.
type AddrUpdate struct {
	Addr      netip.Addr
	LinkIndex int
	Loopback  bool // the interface is a loopback interface
	New       bool // added (true) or removed (false)
}

// AddrSource is where addresses come from: netlink in production, canned
// updates in tests.
type AddrSource interface {
	// Subscribe starts a subscription. It returns every address configured
	// now, then delivers changes on the channel until ctx is done or the
	// subscription fails; either way the channel is closed at the end.
	Subscribe(ctx context.Context) (current []AddrUpdate, updates <-chan AddrUpdate, err error)
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

// Subscribe implements [AddrSource]. It subscribes first and lists second, so
// no change can fall between the two: updates that the list already holds
// are applied again, which is harmless.
func (s NetlinkSource) Subscribe(ctx context.Context) ([]AddrUpdate, <-chan AddrUpdate, error) {
	ns := netns.None()
	if s.Namespace != nil {
		ns = *s.Namespace
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, nil, fmt.Errorf("watcher: netlink handle: %w", err)
	}
	defer h.Close()

	raw := make(chan netlink.AddrUpdate, 256)
	done := make(chan struct{})
	err = netlink.AddrSubscribeWithOptions(raw, done, netlink.AddrSubscribeOptions{
		Namespace: &ns,
		ErrorCallback: func(err error) {
			if ctx.Err() == nil { // closing the socket on stop is not news
				s.Log.Warn().Err(err).Msg("netlink address subscription")
			}
		},
		ReceiveBufferSize: 1 << 20,
	})
	if err != nil {
		close(done)
		return nil, nil, fmt.Errorf("watcher: netlink subscribe: %w", err)
	}
	loop := map[int]bool{}
	links, err := h.LinkList()
	if err != nil {
		close(done)
		drain(raw)
		return nil, nil, fmt.Errorf("watcher: netlink link list: %w", err)
	}
	for _, l := range links {
		loop[l.Attrs().Index] = l.Attrs().Flags&net.FlagLoopback != 0
	}
	list, err := h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		close(done)
		drain(raw)
		return nil, nil, fmt.Errorf("watcher: netlink address list: %w", err)
	}
	cur := make([]AddrUpdate, 0, len(list))
	for _, a := range list {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			cur = append(cur, AddrUpdate{Addr: ip.Unmap(), LinkIndex: a.LinkIndex, Loopback: loop[a.LinkIndex], New: true})
		}
	}
	out := make(chan AddrUpdate, 256)
	go func() {
		defer close(out)
		// Keep draining raw until it closes: the library's sender does
		// not watch done and would block forever otherwise.
		defer drain(raw)
		stop := context.AfterFunc(ctx, func() { close(done) })
		defer func() {
			if stop() {
				close(done)
			}
		}()
		lh, _ := netlink.NewHandleAt(ns)
		if lh != nil {
			defer lh.Close()
		}
		for u := range raw {
			ip, ok := netip.AddrFromSlice(u.LinkAddress.IP)
			if !ok {
				continue
			}
			lb, known := loop[u.LinkIndex]
			if !known && lh != nil {
				if l, err := lh.LinkByIndex(u.LinkIndex); err == nil {
					lb = l.Attrs().Flags&net.FlagLoopback != 0
					loop[u.LinkIndex] = lb
				}
			}
			select {
			case out <- AddrUpdate{Addr: ip.Unmap(), LinkIndex: u.LinkIndex, Loopback: lb, New: u.NewAddr}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return cur, out, nil
}

func drain[T any](c <-chan T) {
	for range c {
	}
}

// addrEvent is what the subscription goroutine hands the loop: a full list
// (reset) or one change, or a notice that the subscription is down.
type addrEvent struct {
	reset bool
	list  []AddrUpdate
	one   AddrUpdate
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
			log.Info().Int("addresses", len(cur)).Msg("netlink resubscribed")
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

// addrTable is the loop's record of which address is on which links.
type addrTable struct {
	links    map[netip.Addr]map[int]bool // addr -> link index -> loopback
	ok       bool                        // a list has been received and the subscription is up
	gotFirst bool
}

func newAddrTable() *addrTable { return &addrTable{links: map[netip.Addr]map[int]bool{}} }

func (t *addrTable) apply(u AddrUpdate) {
	a := u.Addr.Unmap().WithZone("")
	if u.New {
		m := t.links[a]
		if m == nil {
			m = map[int]bool{}
			t.links[a] = m
		}
		m[u.LinkIndex] = u.Loopback
		return
	}
	if m := t.links[a]; m != nil {
		delete(m, u.LinkIndex)
		if len(m) == 0 {
			delete(t.links, a)
		}
	}
}

func (t *addrTable) set() map[netip.Addr]cache.VIPFlags {
	out := make(map[netip.Addr]cache.VIPFlags, len(t.links))
	for a, m := range t.links {
		var f cache.VIPFlags
		for _, lb := range m {
			if lb {
				f |= cache.OnLoopback
			} else {
				f |= cache.OnOther
			}
		}
		out[a] = f
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
		t.links = map[netip.Addr]map[int]bool{}
		for _, u := range ev.list {
			t.apply(u)
		}
		t.ok, t.gotFirst = true, true
		w.count(func(s *Stats) { s.AddrUpdates++ })
		return true
	default:
		w.count(func(s *Stats) { s.AddrUpdates++ })
		t.apply(ev.one)
		return true
	}
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
