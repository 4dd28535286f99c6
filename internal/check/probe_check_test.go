package check

import (
	"testing"
	"time"

	"github.com/http-status/http_status/cache"
)

func TestCheckWithProbes(t *testing.T) {
	now := time.Now()
	b := cache.NewBuilder(cache.Empty())
	b.Set("php.9000", cache.Entry{State: cache.Up, Weight: cache.NoWeight})
	b.SetProbe("php.9000", cache.ProbeStatus{OK: false, LastErr: "probe fpm-ping: connection refused"})
	b.Set("squid.80", cache.Entry{State: cache.Drain, Weight: cache.NoWeight})
	b.SetProbe("squid.80", cache.ProbeStatus{OK: false, LastErr: "probe http: HTTP 500"})
	b.Set("web.80", cache.Entry{State: cache.Up, Weight: 50})
	b.SetProbe("web.80", cache.ProbeStatus{OK: true})
	b.SetProbe("ghost.80", cache.ProbeStatus{OK: true})
	store := cache.NewStore()
	store.Publish(b.Snapshot(now))
	c := New(Options{Store: store})
	for _, tc := range []struct {
		query  string
		code   int
		state  cache.State
		reason string
	}{
		{"SERVICE=php&PORT=9000", 503, cache.Down, "probe fpm-ping: connection refused"},
		{"SERVICE=squid&PORT=80", 404, cache.Drain, ""},
		{"SERVICE=web&PORT=80", 200, cache.Up, ""},
		{"SERVICE=ghost&PORT=80", 404, cache.Missing, ""},
	} {
		r := c.Check(tc.query)
		if r.Code != tc.code || r.State != tc.state || r.Reason != tc.reason {
			t.Errorf("%s: %+v; want %d %s %q", tc.query, r, tc.code, tc.state, tc.reason)
		}
	}
	if r := c.CheckName("php.9000", nil); r.Code != 503 || r.Body != BodyDown {
		t.Errorf("CheckName: %+v", r)
	}
	for _, q := range []string{"SERVICE=php&PORT=9000", "SERVICE=squid&PORT=80", "SERVICE=web&PORT=80"} {
		if n := testing.AllocsPerRun(100, func() { c.Check(q) }); n != 0 {
			t.Errorf("Check(%q) with probes allocates %v times per run", q, n)
		}
	}
}
