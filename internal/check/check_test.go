package check

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/testsnap"
)

func snap(t testing.TB, flags map[string]string, vips map[string]cache.VIPFlags) *cache.Store {
	t.Helper()
	return testsnap.Store(t, flags, vips)
}

func TestCheck(t *testing.T) {
	st := snap(t, map[string]string{
		"status.html": "<html>old page</html>",
		"squid.80":    "",
		"squid":       "up",
		"web.443":     "drain 50% # deploy 1234",
		"db.5432":     "maint # disk swap",
		"cache.11211": "down",
		"old.80":      "drain until=2000-01-01T00:00:00Z",
		"a-b_c@d+e:f": "",
	}, map[string]cache.VIPFlags{
		"192.0.2.10":  cache.OnOther,
		"2001:db8::1": cache.OnLoopback,
		"127.0.0.1":   cache.OnLoopback,
	})
	c := New(Options{Store: st})
	lo := New(Options{Store: st, LoopbackVIPsOnly: true})
	tests := []struct {
		name, q string
		c       *Checker
		code    int
		body    string
		state   cache.State
		reason  string
		weight  int
	}{
		{"default flag", "", c, 200, BodyOK, cache.Up, "", cache.NoWeight},
		{"service and port", "SERVICE=squid&PORT=80", c, 200, BodyOK, cache.Up, "", cache.NoWeight},
		{"service only", "SERVICE=squid", c, 200, BodyOK, cache.Up, "", cache.NoWeight},
		{"lower-case names", "service=squid&port=80", c, 200, BodyOK, cache.Up, "", cache.NoWeight},
		{"missing flag", "SERVICE=nope&PORT=80", c, 404, BodyNoService, cache.Missing, "", cache.NoWeight},
		{"one VIP", "SERVICE=squid&PORT=80&VIP=192.0.2.10", c, 200, BodyOKVIP, cache.Up, "", cache.NoWeight},
		{"VIP list", "SERVICE=squid&PORT=80&VIP=192.0.2.10,2001:db8::1", c, 200, BodyOKVIP, cache.Up, "", cache.NoWeight},
		{"VIP list encoded comma", "SERVICE=squid&PORT=80&VIP=192.0.2.10%2C2001%3Adb8%3A%3A1", c, 200, BodyOKVIP, cache.Up, "", cache.NoWeight},
		{"VIP v4-mapped", "SERVICE=squid&PORT=80&VIP=::ffff:192.0.2.10", c, 200, BodyOKVIP, cache.Up, "", cache.NoWeight},
		{"VIP one missing", "SERVICE=squid&PORT=80&VIP=192.0.2.10,192.0.2.11", c, 404, BodyNoVIP, cache.Up, "VIP not configured", cache.NoWeight},
		{"loopback only: on lo", "SERVICE=squid&PORT=80&VIP=2001:db8::1", lo, 200, BodyOKVIP, cache.Up, "", cache.NoWeight},
		{"loopback only: not on lo", "SERVICE=squid&PORT=80&VIP=192.0.2.10", lo, 404, BodyNoVIP, cache.Up, "VIP not configured", cache.NoWeight},
		{"VIP on missing service", "SERVICE=nope&VIP=192.0.2.10", c, 404, BodyNoService, cache.Missing, "", cache.NoWeight},
		{"drain", "SERVICE=web&PORT=443", c, 404, BodyDrain, cache.Drain, "deploy 1234", 50},
		{"maint", "SERVICE=db&PORT=5432", c, 503, BodyMaint, cache.Maint, "disk swap", cache.NoWeight},
		{"down", "SERVICE=cache&PORT=11211", c, 503, BodyDown, cache.Down, "", cache.NoWeight},
		{"expired drain is up", "SERVICE=old&PORT=80", c, 200, BodyOK, cache.Up, "", cache.NoWeight},
		{"all name chars", "SERVICE=a-b_c%40d%2Be%3Af", c, 200, BodyOK, cache.Up, "", cache.NoWeight},
		{"unknown params ignored", "SERVICE=squid&PORT=80&_=12345&x", c, 200, BodyOK, cache.Up, "", cache.NoWeight},
		{"first occurrence wins", "SERVICE=squid&SERVICE=nope&PORT=80", c, 200, BodyOK, cache.Up, "", cache.NoWeight},
		{"empty first service, then another", "SERVICE=&SERVICE=squid&PORT=80", c, 400, BodyTwoServices, cache.Missing, "", 0},
		{"empty service alone is status.html", "SERVICE=", c, 200, BodyOK, cache.Up, "", cache.NoWeight},
		{"empty pairs", "&&SERVICE=squid&&PORT=80&", c, 200, BodyOK, cache.Up, "", cache.NoWeight},
		// An empty PORT= or VIP= (a check template whose variable came out
		// blank) used to be taken as not given: PORT= asked for the
		// port-less flag, VIP= skipped the address check. Fail closed.
		{"empty port", "SERVICE=squid&PORT=", c, 400, BodyBadPort, cache.Missing, "", 0},
		{"empty port first", "SERVICE=squid&PORT=&PORT=80", c, 400, BodyBadPort, cache.Missing, "", 0},
		{"empty VIP", "SERVICE=squid&PORT=80&VIP=", c, 400, BodyBadVIP, cache.Missing, "", 0},
		{"empty VIP first", "SERVICE=squid&PORT=80&VIP=&VIP=192.0.2.10", c, 400, BodyBadVIP, cache.Missing, "", 0},
		// VIP asks for every address: a repeated VIP (a template that adds
		// one parameter per address) adds to the list, as a comma does;
		// the first one alone answered 200 with the second missing.
		{"repeated VIP, one missing", "SERVICE=squid&PORT=80&VIP=192.0.2.10&VIP=192.0.2.11", c, 404, BodyNoVIP, cache.Up, "VIP not configured", cache.NoWeight},
		{"repeated VIP, all there", "SERVICE=squid&PORT=80&vip=192.0.2.10&VIP=2001:db8::1", c, 200, BodyOKVIP, cache.Up, "", cache.NoWeight},
		{"repeated VIP, second empty", "SERVICE=squid&PORT=80&VIP=192.0.2.10&VIP=", c, 400, BodyBadVIP, cache.Missing, "", 0},
		{"repeated VIP, second bad", "SERVICE=squid&PORT=80&VIP=192.0.2.10&VIP=bogus", c, 400, BodyBadVIP, cache.Missing, "", 0},
		{"repeated VIP, too many", "SERVICE=squid" + strings.Repeat("&VIP=192.0.2.10", 65), c, 400, BodyTooManyVIPs, cache.Missing, "", 0},
		{"traversal", "SERVICE=../../etc/passwd", c, 400, BodyBadService, cache.Missing, "", 0},
		{"traversal encoded", "SERVICE=..%2F..%2Fetc%2Fpasswd", c, 400, BodyBadService, cache.Missing, "", 0},
		{"dot dot", "SERVICE=..", c, 400, BodyBadService, cache.Missing, "", 0},
		{"dot-file", "SERVICE=.hidden", c, 400, BodyBadService, cache.Missing, "", 0},
		{"tmp file", "SERVICE=x.tmp", c, 400, BodyBadService, cache.Missing, "", 0},
		{"NUL", "SERVICE=squid%00", c, 400, BodyBadService, cache.Missing, "", 0},
		{"space", "SERVICE=a+b", c, 400, BodyBadService, cache.Missing, "", 0},
		{"bad escape", "SERVICE=%zz", c, 400, BodyBadService, cache.Missing, "", 0},
		{"truncated escape", "SERVICE=ab%4", c, 400, BodyBadService, cache.Missing, "", 0},
		{"too long", "SERVICE=" + strings.Repeat("a", 201), c, 400, BodyBadService, cache.Missing, "", 0},
		{"long with port", "SERVICE=" + strings.Repeat("a", 198) + "&PORT=80", c, 400, BodyBadService, cache.Missing, "", 0},
		{"port without service", "PORT=80", c, 400, BodyPortAlone, cache.Missing, "", 0},
		{"port not a number", "SERVICE=squid&PORT=http", c, 400, BodyBadPort, cache.Missing, "", 0},
		{"port zero", "SERVICE=squid&PORT=0", c, 400, BodyBadPort, cache.Missing, "", 0},
		{"port too big", "SERVICE=squid&PORT=65536", c, 400, BodyBadPort, cache.Missing, "", 0},
		{"port negative", "SERVICE=squid&PORT=-1", c, 400, BodyBadPort, cache.Missing, "", 0},
		{"bad VIP", "SERVICE=squid&PORT=80&VIP=1.2.3", c, 400, BodyBadVIP, cache.Missing, "", 0},
		{"bad VIP in list", "SERVICE=squid&PORT=80&VIP=192.0.2.10,bogus", c, 400, BodyBadVIP, cache.Missing, "", 0},
		{"VIP with zone", "SERVICE=squid&PORT=80&VIP=fe80::1%25eth0", c, 400, BodyBadVIP, cache.Missing, "", 0},
		{"VIP with prefix", "SERVICE=squid&PORT=80&VIP=192.0.2.10/32", c, 400, BodyBadVIP, cache.Missing, "", 0},
		{"too many VIPs", "SERVICE=squid&VIP=" + strings.Repeat("192.0.2.10,", 65), c, 400, BodyTooManyVIPs, cache.Missing, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.c.Check(tt.q)
			if r.Code != tt.code || r.Body != tt.body {
				t.Fatalf("Check(%q) = %d %q, want %d %q", tt.q, r.Code, r.Body, tt.code, tt.body)
			}
			if tt.code == 400 {
				return
			}
			if r.State != tt.state || r.Reason != tt.reason || r.Weight != tt.weight {
				t.Errorf("Check(%q) state/reason/weight = %v %q %d, want %v %q %d", tt.q, r.State, r.Reason, r.Weight, tt.state, tt.reason, tt.weight)
			}
		})
	}
}

func TestParseQuery(t *testing.T) {
	q, ok := parseQuery("SERVICE=squid&PORT=80&VIP=192.0.2.1,%3A%3Affff%3A10.0.0.1")
	if !ok || q.Name != "squid.80" || len(q.VIPs) != 2 || q.VIPs[1] != netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("parseQuery = %+v, %v", q, ok)
	}
	if q, ok := parseQuery(""); !ok || q.Name != cache.DefaultService {
		t.Fatalf("empty query = %+v, %v", q, ok)
	}
}

func TestCheckNoAllocs(t *testing.T) {
	st := snap(t, map[string]string{"squid.80": "", "web.443": "drain 50% # why"}, map[string]cache.VIPFlags{"192.0.2.10": cache.OnOther})
	c := New(Options{Store: st})
	for _, tc := range []struct {
		q    string
		want float64
	}{
		{"SERVICE=squid&PORT=80&VIP=192.0.2.10,2001:db8::1", 0},
		{"SERVICE=squid&PORT=80&VIP=192.0.2.10&VIP=2001:db8::1", 0},
		{"SERVICE=squid&PORT=80", 0},
		{"SERVICE=web&PORT=443", 0},
		{"SERVICE=%73quid&PORT=80&VIP=192.0.2.10", 0},
		{"SERVICE=../etc", 0},
		// A percent-encoded VIP list is decoded into one new string.
		{"SERVICE=squid&PORT=80&VIP=192.0.2.10%2C192.0.2.10", 1},
	} {
		if n := testing.AllocsPerRun(100, func() { c.Check(tc.q) }); n != tc.want {
			t.Errorf("Check(%q) allocates %v times per run, want %v", tc.q, n, tc.want)
		}
	}
}

// FuzzParseQuery checks properties of query parsing: it never panics, an
// accepted query always names a valid flag file (so never a path outside the
// status directory), and Check agrees with parseQuery on what is a 400.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"", "SERVICE=squid&PORT=80&VIP=1.2.3.4,::1", "SERVICE=../../etc/passwd",
		"SERVICE=%2e%2e", "VIP=%zz", "PORT=80", "SERVICE=a&PORT=99999", "SERVICE=a%00b", "service=x&vip=::ffff:1.2.3.4"} {
		f.Add(s)
	}
	st := snap(f, map[string]string{"squid.80": ""}, nil)
	c := New(Options{Store: st})
	f.Fuzz(func(t *testing.T, raw string) {
		q, ok := parseQuery(raw)
		r := c.Check(raw)
		if ok != (r.Code != 400) {
			t.Fatalf("parseQuery ok=%v but Check code %d for %q", ok, r.Code, raw)
		}
		if !ok {
			return
		}
		if !cache.ValidName(q.Name) || strings.ContainsAny(q.Name, "/\x00") || q.Name == "." || q.Name == ".." {
			t.Fatalf("query %q yields unsafe name %q", raw, q.Name)
		}
		for _, a := range q.VIPs {
			if !a.IsValid() || a.Zone() != "" || a.Is4In6() {
				t.Fatalf("query %q yields VIP %v", raw, a)
			}
		}
	})
}

func BenchmarkCheck(b *testing.B) {
	flags := map[string]string{}
	for i := 0; i < 10000; i++ {
		flags["svc"+itoaT(i)+".80"] = ""
	}
	st := snap(b, flags, map[string]cache.VIPFlags{"192.0.2.10": cache.OnOther})
	c := New(Options{Store: st})
	for _, bc := range []struct{ name, q string }{
		{"service", "SERVICE=svc5000&PORT=80"},
		{"service+vip", "SERVICE=svc5000&PORT=80&VIP=192.0.2.10"},
		{"missing", "SERVICE=nope&PORT=80"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if r := c.Check(bc.q); r.Code == 0 {
					b.Fatal("no code")
				}
			}
		})
	}
}

func itoaT(i int) string {
	const d = "0123456789"
	if i < 10 {
		return d[i : i+1]
	}
	return itoaT(i/10) + d[i%10:i%10+1]
}

// TestVIPMissingCode: --vip-missing-status 503 turns the missing-VIP answer
// into a 503 (HAProxy's disable-on-404 then takes the server down instead of
// draining it); everything else is unchanged.
func TestVIPMissingCode(t *testing.T) {
	st := snap(t, map[string]string{"squid.80": "", "web.80": "drain"}, map[string]cache.VIPFlags{"192.0.2.10": cache.OnOther})
	for _, tc := range []struct {
		opt  int
		code int
		body string
	}{{0, 404, BodyNoVIP}, {404, 404, BodyNoVIP}, {503, 503, BodyNoVIP503}} {
		c := New(Options{Store: st, VIPMissingCode: tc.opt})
		if r := c.Check("SERVICE=squid&PORT=80&VIP=192.0.2.11"); r.Code != tc.code || r.Body != tc.body || r.State != cache.Up || r.Reason != "VIP not configured" {
			t.Errorf("VIPMissingCode %d: missing VIP answered %+v, want %d %q", tc.opt, r, tc.code, tc.body)
		}
		if r := c.Check("SERVICE=squid&PORT=80&VIP=192.0.2.10"); r.Code != 200 {
			t.Errorf("VIPMissingCode %d: present VIP answered %d", tc.opt, r.Code)
		}
		if r := c.Check("SERVICE=web&PORT=80&VIP=192.0.2.11"); r.Code != 404 || r.Body != BodyDrain {
			t.Errorf("VIPMissingCode %d: drain with a missing VIP answered %d %q, want the drain", tc.opt, r.Code, r.Body)
		}
		if r := c.Check("SERVICE=nope&VIP=192.0.2.11"); r.Code != 404 {
			t.Errorf("VIPMissingCode %d: no flag answered %d, want 404", tc.opt, r.Code)
		}
	}
}

// TestStale: once the watcher loop has not turned for StaleAfter, every
// service is answered down, whatever its flag; before that, and with the
// option off, answers are the snapshot's.
func TestStale(t *testing.T) {
	st := snap(t, map[string]string{"squid.80": "", "web.80": "drain"}, nil)
	var age time.Duration
	beat := func(time.Time) time.Duration { return age }
	c := New(Options{Store: st, HeartbeatAge: beat, StaleAfter: 10 * time.Second})
	off := New(Options{Store: st, HeartbeatAge: beat})
	for _, tc := range []struct {
		age  time.Duration
		q    string
		code int
		body string
	}{
		{time.Second, "SERVICE=squid&PORT=80", 200, BodyOK},
		{10 * time.Second, "SERVICE=squid&PORT=80", 200, BodyOK},
		{11 * time.Second, "SERVICE=squid&PORT=80", 503, BodyStale},
		{11 * time.Second, "SERVICE=web&PORT=80", 503, BodyStale},
		{11 * time.Second, "SERVICE=nope", 503, BodyStale},
		{11 * time.Second, "SERVICE=../x", 400, BodyBadService}, // a bad query stays a 400
	} {
		age = tc.age
		r := c.Check(tc.q)
		if r.Code != tc.code || r.Body != tc.body {
			t.Errorf("heartbeat %v ago: %s answered %d %q, want %d %q", tc.age, tc.q, r.Code, r.Body, tc.code, tc.body)
		}
		if r.Code == 503 && (r.State != cache.Down || r.Reason != ReasonStale) {
			t.Errorf("stale answer %+v: want state down, reason %q", r, ReasonStale)
		}
		if r := off.Check("SERVICE=squid&PORT=80"); r.Code != 200 {
			t.Errorf("StaleAfter 0, heartbeat %v ago: %d, want 200", tc.age, r.Code)
		}
	}
	age = time.Hour
	if r := c.CheckName("squid.80", nil); r.Code != 503 || r.Reason != ReasonStale {
		t.Errorf("CheckName (agent) while stale: %+v", r)
	}
	if n := testing.AllocsPerRun(100, func() { c.Check("SERVICE=squid&PORT=80") }); n != 0 {
		t.Errorf("a stale answer allocates %v times", n)
	}
}

// TestCheckDirProblemReason: while the status directory cannot be used
// every service is out of rotation; the answer for one says why (the
// directory), not only that its flag is absent. With the directory fine an
// absent flag gets the original's bare body.
func TestCheckDirProblemReason(t *testing.T) {
	b := cache.NewBuilder(cache.Empty())
	b.SetDirProblem("missing")
	store := cache.NewStore()
	store.Publish(b.Snapshot(time.Now()))
	c := New(Options{Store: store})
	r := c.Check("SERVICE=web&PORT=80")
	if r.Code != 404 || r.Body != BodyNoService || r.State != cache.Missing || r.Reason != "status directory missing" {
		t.Errorf("directory missing: %+v", r)
	}
	b = cache.NewBuilder(store.Load())
	b.SetDirProblem("")
	store.Publish(b.Snapshot(time.Now()))
	if r := c.Check("SERVICE=web&PORT=80"); r.Code != 404 || r.Reason != "" {
		t.Errorf("directory fine, no flag: %+v", r)
	}
}

// TestVIPListNotCurrent: while the netlink subscription is down the last
// known VIP list is used, but only for StaleAfter; past it a check naming a
// VIP answers as for a missing VIP (the operator's chosen code), with a
// reason of its own, and a check naming none is not affected. Back to
// current, the VIP counts again; with StaleAfter 0 the list is used however
// old.
func TestVIPListNotCurrent(t *testing.T) {
	st := snap(t, map[string]string{"web.80": ""}, map[string]cache.VIPFlags{"192.0.2.10": cache.OnOther})
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	now := t0
	clock := func() time.Time { return now }
	b := cache.NewBuilder(st.Load())
	b.SetVIPsOK(false)
	st.Publish(b.Snapshot(t0))
	c := New(Options{Store: st, Now: clock, StaleAfter: 10 * time.Second})
	c503 := New(Options{Store: st, Now: clock, StaleAfter: 10 * time.Second, VIPMissingCode: 503})
	never := New(Options{Store: st, Now: clock})
	const q = "SERVICE=web&PORT=80&VIP=192.0.2.10"
	for _, tc := range []struct {
		after time.Duration
		code  int
	}{{0, 200}, {10 * time.Second, 200}, {11 * time.Second, 404}} {
		now = t0.Add(tc.after)
		r := c.Check(q)
		if r.Code != tc.code {
			t.Errorf("VIP list not current for %s: %d %q, want %d", tc.after, r.Code, r.Body, tc.code)
		}
		if r.Code == 404 && (r.Body != BodyNoVIP || r.Reason != ReasonVIPsStale || r.State != cache.Up) {
			t.Errorf("stale VIP list answer: %+v", r)
		}
		if r := never.Check(q); r.Code != 200 {
			t.Errorf("StaleAfter 0, VIP list not current for %s: %d, want 200", tc.after, r.Code)
		}
		if r := c.Check("SERVICE=web&PORT=80"); r.Code != 200 {
			t.Errorf("no VIP named, VIP list not current for %s: %d, want 200", tc.after, r.Code)
		}
	}
	if r := c503.Check(q); r.Code != 503 || r.Body != BodyNoVIP503 || r.Reason != ReasonVIPsStale {
		t.Errorf("--vip-missing-status 503, stale VIP list: %+v", r)
	}
	if r := c.CheckName("web.80", []netip.Addr{netip.MustParseAddr("192.0.2.10")}); r.Code != 404 || r.Reason != ReasonVIPsStale {
		t.Errorf("CheckName (agent), stale VIP list: %+v", r)
	}
	if n := testing.AllocsPerRun(100, func() { c.Check(q) }); n != 0 {
		t.Errorf("a stale VIP list answer allocates %v times", n)
	}

	// Current again (the subscription is back and relisted).
	b = cache.NewBuilder(st.Load())
	b.SetVIPsOK(true)
	st.Publish(b.Snapshot(now))
	if r := c.Check(q); r.Code != 200 {
		t.Errorf("VIP list current again: %d %q, want 200", r.Code, r.Body)
	}
	// Down again: the time counts from the new failure, not the old one.
	b = cache.NewBuilder(st.Load())
	b.SetVIPsOK(false)
	st.Publish(b.Snapshot(now))
	if r := c.Check(q); r.Code != 200 {
		t.Errorf("VIP list just gone stale again: %d, want 200", r.Code)
	}
}

// TestCheckNotReadYet: before the first snapshot (the daemon started on a
// status directory whose filesystem does not answer) nothing is known of
// the flags: every check is 503 saying so, before the stalled loop's
// reason, never a 200 or a bare 404.
func TestCheckNotReadYet(t *testing.T) {
	store := cache.NewStore()
	c := New(Options{Store: store, HeartbeatAge: func(time.Time) time.Duration { return time.Hour }, StaleAfter: 10 * time.Second})
	r := c.Check("SERVICE=web&PORT=80")
	if r.Code != 503 || r.Body != BodyStale || r.State != cache.Down || r.Reason != ReasonNotRead {
		t.Errorf("not read yet: %+v", r)
	}
	b := cache.NewBuilder(store.Load())
	b.SetDirProblem("")
	b.Set("web.80", cache.Entry{State: cache.Up})
	store.Publish(b.Snapshot(time.Now()))
	c = New(Options{Store: store})
	if r := c.Check("SERVICE=web&PORT=80"); r.Code != 200 {
		t.Errorf("read: %+v, want 200", r)
	}
}
