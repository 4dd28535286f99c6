// Package testsnap builds snapshots by hand for tests: flag contents and
// VIPs in, a published [cache.Store] out.
package testsnap

import (
	"net/netip"
	"testing"
	"time"

	"github.com/http-status/http_status/cache"
)

// Store returns a store holding one snapshot with flags (name -> content,
// parsed as the watcher parses it) and vips (address -> where), the
// directory watched and the VIP list current.
func Store(tb testing.TB, flags map[string]string, vips map[string]cache.VIPFlags) *cache.Store {
	tb.Helper()
	b := cache.NewBuilder(cache.Empty())
	for name, content := range flags {
		e, _ := cache.ParseFlag([]byte(content))
		b.Set(name, e)
	}
	m := map[netip.Addr]cache.VIPFlags{}
	for a, f := range vips {
		m[netip.MustParseAddr(a)] = f
	}
	b.SetVIPs(m)
	b.SetDirProblem("")
	b.SetVIPsOK(true)
	st := cache.NewStore()
	st.Publish(b.Snapshot(time.Now()))
	return st
}
