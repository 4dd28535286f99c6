package cache

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// ConnCounts are the live connection counts a sampler measured: open
// (ESTABLISHED or CLOSE-WAIT) TCP connections (IPv4 and IPv6) by local
// port. They reach a [Snapshot] through the watcher like every other
// change, so responders read them without a syscall. It is a value: its
// maps are never modified once it is in a snapshot.
type ConnCounts struct {
	// Live is true while the sampler runs; when it stops (nothing needs the
	// counts), Live is false and Ports is empty, so nobody reads an old
	// count as a current one.
	Live bool
	// Err is why the last sample failed ("" when it worked); Ports then
	// holds the previous sample.
	Err string
	// Ports maps each sampled local port to its connection count.
	Ports map[uint16]int
	// Config maps a flag-file name to the conn_port of the probe
	// configuration; a flag's own conn=PORT word wins over it.
	Config map[string]uint16
}

// Same reports whether two ConnCounts say the same thing.
func (c ConnCounts) Same(o ConnCounts) bool {
	return c.Live == o.Live && c.Err == o.Err && maps.Equal(c.Ports, o.Ports) && maps.Equal(c.Config, o.Config)
}

// NamePort is the port in a flag-file name ("squid.80": 80), or 0.
func NamePort(name string) uint16 {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return 0
	}
	p, err := ParsePort(name[i+1:])
	if err != nil {
		return 0
	}
	return p
}

// ConnPort is the local port whose connections count for the flag-file
// name: the flag's conn=PORT word, else the probe configuration's
// conn_port, else the port in the name; 0 when there is none.
func (s *Snapshot) ConnPort(name string) uint16 {
	e, _ := s.Lookup(name)
	return s.connPort(name, e, s.conns.Config)
}

func (s *Snapshot) connPort(name string, e Entry, cfg map[string]uint16) uint16 {
	if e.ConnPort != 0 {
		return e.ConnPort
	}
	if p := cfg[name]; p != 0 {
		return p
	}
	return NamePort(name)
}

// Conns is the number of open connections of a service; ok is false
// while the sampler is not running or the service has no port.
func (s *Snapshot) Conns(name string) (n int, ok bool) {
	if !s.conns.Live {
		return 0, false
	}
	p := s.ConnPort(name)
	if p == 0 {
		return 0, false
	}
	n, ok = s.conns.Ports[p]
	return n, ok
}

// ConnCounts returns the counts in the snapshot (its maps must not be
// modified).
func (s *Snapshot) ConnCounts() ConnCounts { return s.conns }

// ConnPorts lists the ports whose counts the services of s need, sorted,
// given the probe configuration's conn_port map cfg; draining is true when
// a service is in drain at now, by its flag or its probes, as
// [Snapshot.Effective] says (a drain is worth watching).
func (s *Snapshot) ConnPorts(cfg map[string]uint16, now time.Time) (ports []uint16, draining bool) {
	seen := map[uint16]bool{}
	for name, e := range s.Services() {
		if p := s.connPort(name, e, cfg); p != 0 && !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
		if !draining && s.effective(name, e, now).State == Drain {
			draining = true
		}
	}
	slices.Sort(ports)
	return ports, draining
}

// SetConns records the connection counts; the maps are owned by the
// snapshot afterwards.
func (b *Builder) SetConns(c ConnCounts) { b.next.conns = c }
