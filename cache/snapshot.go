// Package cache holds the daemon's view of the host: which flag files exist
// in the status directory, what they say, and which VIPs are configured.
//
// # Concurrency
//
// A [Snapshot] is immutable once published: every field and every map it
// points to must not be modified afterwards. [Store] holds the current
// snapshot behind an atomic pointer; responders call [Store.Load] once per
// request and read from that snapshot only, so they never lock and never see
// a half-applied change. The watcher is the only writer: it builds the next
// snapshot with a [Builder] (copy-on-write, touching only the shards that
// changed) and publishes it with [Store.Publish].
//
// This package uses only the standard library and never logs.
package cache

import (
	"hash/maphash"
	"iter"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// shardCount is the number of service-map shards. A change copies only the
// shard it touches, so with 10,000 flags a touch copies ~150 entries rather
// than 10,000: publishing stays well under a millisecond.
const shardCount = 64

var seed = maphash.MakeSeed()

func shardOf(key string) int { return int(maphash.String(seed, key) % shardCount) }

// VIPFlags describe where a VIP is configured.
type VIPFlags uint8

const (
	// OnLoopback: the address is on a loopback interface (LVS-DR real
	// servers keep their VIPs there).
	OnLoopback VIPFlags = 1 << iota
	// OnOther: the address is on a non-loopback interface.
	OnOther
)

// Snapshot is one consistent view of flags and VIPs. It must not be modified
// after [Store.Publish]; use a [Builder] to make the next one.
type Snapshot struct {
	gen    uint64
	built  time.Time
	shards [shardCount]map[string]Entry
	// exp lists each shard's entries that have an expiry, by expiry: the
	// loop's per-event questions (the next expiry, what expired since the
	// last turn) then cost O(shards + flags/shards), not O(flags).
	exp       [shardCount][]expiring
	vips      map[netip.Addr]VIPFlags
	probes    map[string]ProbeStatus // services with active probes
	conns     ConnCounts             // live connection counts (conns.go)
	nServices int
	// dirProblem says why the status directory is not watched ("missing",
	// "out of inotify watches ..."); empty while it is.
	dirProblem string
	// missingReason is the reason given for a service with no flag while
	// the directory has a problem: "status directory " + dirProblem, built
	// once so that answers do not allocate. Set by SetDirProblem only:
	// no responder answers from Empty.
	missingReason string
	vipsOK        bool
	// vipsDownSince is when the VIP list stopped being current (the
	// first snapshot published with vipsOK false); zero while it is.
	vipsDownSince time.Time
}

var emptyShard = map[string]Entry{}

// expiring is one entry of Snapshot.exp.
type expiring struct {
	at   time.Time
	name string
}

// firstAfter is the index of the first of x expiring after t.
func firstAfter(x []expiring, t time.Time) int {
	i, _ := slices.BinarySearchFunc(x, t, func(e expiring, t time.Time) int {
		if e.at.After(t) {
			return 1
		}
		return -1
	})
	return i
}

// Empty returns a snapshot with no services and no VIPs, generation 0.
func Empty() *Snapshot {
	s := &Snapshot{vips: map[netip.Addr]VIPFlags{}, dirProblem: "not read yet"}
	for i := range s.shards {
		s.shards[i] = emptyShard
	}
	return s
}

// Generation counts publications; it only grows.
func (s *Snapshot) Generation() uint64 { return s.gen }

// Built is when the snapshot was published.
func (s *Snapshot) Built() time.Time { return s.built }

// DirOK reports whether the status directory was present and watched.
func (s *Snapshot) DirOK() bool { return s.dirProblem == "" }

// DirProblem says why the status directory is not watched (it is then
// treated as empty: every service out of rotation), or "" when it is.
func (s *Snapshot) DirProblem() string { return s.dirProblem }

// MissingReason is why a service with no flag is out of rotation when that
// is the directory's doing ("status directory missing"), or "" when the
// directory is fine (the flag is just absent).
func (s *Snapshot) MissingReason() string { return s.missingReason }

// VIPsOK reports whether the VIP list is current (the netlink subscription is
// up, or VIP tracking is off).
func (s *Snapshot) VIPsOK() bool { return s.vipsOK }

// VIPsStaleFor is how long, at now, the VIP list has not been current: 0
// while it is.
func (s *Snapshot) VIPsStaleFor(now time.Time) time.Duration {
	if s.vipsOK || s.vipsDownSince.IsZero() {
		return 0
	}
	return now.Sub(s.vipsDownSince)
}

// Lookup returns the entry for a flag-file name ("squid.80", "status.html").
// A missing flag yields an Entry with State Missing and ok false. It does not
// allocate.
func (s *Snapshot) Lookup(name string) (Entry, bool) {
	e, ok := s.shards[shardOf(name)][name]
	if !ok {
		return Entry{State: Missing, Weight: NoWeight}, false
	}
	return e, true
}

// Len is the number of flag files.
func (s *Snapshot) Len() int { return s.nServices }

// Services yields every flag file name and entry, in no particular order.
func (s *Snapshot) Services() iter.Seq2[string, Entry] {
	return func(yield func(string, Entry) bool) {
		for _, sh := range s.shards {
			for k, e := range sh {
				if !yield(k, e) {
					return
				}
			}
		}
	}
}

// Names returns the flag file names, sorted.
func (s *Snapshot) Names() []string {
	out := make([]string, 0, s.nServices)
	for k := range s.Services() {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// HasVIP reports whether addr is configured on this host. With loopbackOnly,
// only addresses on a loopback interface count. IPv4-mapped IPv6 addresses
// compare equal to their IPv4 form.
func (s *Snapshot) HasVIP(addr netip.Addr, loopbackOnly bool) bool {
	f := s.vips[addr.Unmap().WithZone("")]
	if loopbackOnly {
		return f&OnLoopback != 0
	}
	return f != 0
}

// VIPs returns a copy of the configured addresses, with where they are (a
// map: in no order).
func (s *Snapshot) VIPs() map[netip.Addr]VIPFlags {
	out := make(map[netip.Addr]VIPFlags, len(s.vips))
	for a, f := range s.vips {
		out[a] = f
	}
	return out
}

// NumVIPs is the number of configured addresses.
func (s *Snapshot) NumVIPs() int { return len(s.vips) }

// NextExpiry is the earliest expiry after now among the entries, or zero.
func (s *Snapshot) NextExpiry(now time.Time) time.Time {
	var next time.Time
	for _, x := range s.exp {
		if i := firstAfter(x, now); i < len(x) && (next.IsZero() || x[i].at.Before(next)) {
			next = x[i].at
		}
	}
	return next
}

// ExpiredIn yields the entries whose expiry is after from and not after to,
// in no particular order.
func (s *Snapshot) ExpiredIn(from, to time.Time) iter.Seq2[string, Entry] {
	return func(yield func(string, Entry) bool) {
		for sh, x := range s.exp {
			for _, e := range x[firstAfter(x, from):firstAfter(x, to)] {
				if !yield(e.name, s.shards[sh][e.name]) {
					return
				}
			}
		}
	}
}

// Summary is a one-line description for logs and systemd's STATUS=.
func (s *Snapshot) Summary(now time.Time) string {
	up := 0
	for name := range s.Services() {
		if e, _ := s.Effective(name, now); e.State == Up {
			up++
		}
	}
	var b strings.Builder
	b.WriteString(strconv.Itoa(up))
	b.WriteString("/")
	b.WriteString(strconv.Itoa(s.nServices))
	b.WriteString(" services up, ")
	b.WriteString(strconv.Itoa(len(s.vips)))
	b.WriteString(" addresses")
	if s.dirProblem != "" {
		b.WriteString(", status directory ")
		b.WriteString(s.dirProblem)
	}
	return b.String()
}

// Builder makes the next snapshot from a base, copying a shard only when it
// is first written. A Builder is used by one goroutine.
type Builder struct {
	next     Snapshot
	copied   [shardCount]bool
	expCp    [shardCount]bool
	probesCp bool
}

// NewBuilder starts a new snapshot from base (which is not modified).
func NewBuilder(base *Snapshot) *Builder {
	return &Builder{next: *base}
}

func (b *Builder) shard(name string) map[string]Entry {
	i := shardOf(name)
	if !b.copied[i] {
		m := make(map[string]Entry, len(b.next.shards[i])+1)
		for k, v := range b.next.shards[i] {
			m[k] = v
		}
		b.next.shards[i] = m
		b.copied[i] = true
	}
	return b.next.shards[i]
}

// setExp moves name's place in its shard's expiry list from was to at (a
// zero time: not listed).
func (b *Builder) setExp(name string, was, at time.Time) {
	if was.Equal(at) {
		return
	}
	i := shardOf(name)
	if !b.expCp[i] {
		b.next.exp[i] = slices.Clone(b.next.exp[i])
		b.expCp[i] = true
	}
	x := b.next.exp[i]
	if !was.IsZero() {
		for j := firstAfter(x, was.Add(-1)); j < len(x); j++ {
			if x[j].name == name {
				x = slices.Delete(x, j, j+1)
				break
			}
		}
	}
	if !at.IsZero() {
		x = slices.Insert(x, firstAfter(x, at), expiring{at: at, name: name})
	}
	b.next.exp[i] = x
}

// Get returns the entry name has in the snapshot being built.
func (b *Builder) Get(name string) (Entry, bool) {
	e, ok := b.next.shards[shardOf(name)][name]
	return e, ok
}

// Set records a flag file. Names failing [ValidName] are ignored.
func (b *Builder) Set(name string, e Entry) {
	if !ValidName(name) {
		return
	}
	sh := b.shard(name)
	prev, ok := sh[name]
	if !ok {
		b.next.nServices++
	}
	sh[name] = e
	b.setExp(name, prev.Expires, e.Expires)
}

// Delete removes a flag file.
func (b *Builder) Delete(name string) {
	prev, ok := b.next.shards[shardOf(name)][name]
	if !ok {
		return
	}
	delete(b.shard(name), name)
	b.setExp(name, prev.Expires, time.Time{})
	b.next.nServices--
}

// ClearServices removes every flag file.
func (b *Builder) ClearServices() {
	for i := range b.next.shards {
		b.next.shards[i] = emptyShard
		b.copied[i] = false
		b.next.exp[i] = nil
		b.expCp[i] = false
	}
	b.next.nServices = 0
}

// SetVIPs replaces the VIP set. The map is owned by the snapshot afterwards.
func (b *Builder) SetVIPs(v map[netip.Addr]VIPFlags) {
	b.next.vips = v
}

// SetDirProblem records why the status directory is not watched; "" means
// it is present and watched.
func (b *Builder) SetDirProblem(p string) {
	if p == "" {
		b.next.missingReason = ""
	} else if p != b.next.dirProblem || b.next.missingReason == "" {
		b.next.missingReason = "status directory " + p
	}
	b.next.dirProblem = p
}

// SetVIPsOK records whether the VIP set is current.
func (b *Builder) SetVIPsOK(ok bool) { b.next.vipsOK = ok }

// Snapshot returns the built snapshot with the next generation number; the
// Builder must not be used afterwards.
func (b *Builder) Snapshot(now time.Time) *Snapshot {
	s := b.next
	s.gen++
	s.built = now
	switch {
	case s.vipsOK:
		s.vipsDownSince = time.Time{}
	case s.vipsDownSince.IsZero():
		s.vipsDownSince = now
	}
	return &s
}

// Store holds the current snapshot. The zero Store is not usable; use
// [NewStore].
type Store struct {
	p      atomic.Pointer[Snapshot]
	notify atomic.Pointer[func(*Snapshot)] // SetOnPublish
}

// NewStore returns a Store holding [Empty], so Load never returns nil.
func NewStore() *Store {
	st := &Store{}
	st.p.Store(Empty())
	return st
}

// Load returns the current snapshot. It never returns nil.
func (st *Store) Load() *Snapshot { return st.p.Load() }

// Publish makes s current. Only the watcher loop calls it.
func (st *Store) Publish(s *Snapshot) {
	st.p.Store(s)
	if f := st.notify.Load(); f != nil {
		(*f)(s)
	}
}
