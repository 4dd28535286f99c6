//go:build linux

package pages

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/httpd"
	"github.com/http-status/http_status/internal/check"
)

// MaxPageRenders bounds how many status pages (JSON, text, board) render at
// once. A page walks every service (10,000 flags make a 1.2 MB JSON page); a
// flood of page requests gets 503 instead of eating the CPU the health
// checks need.
const MaxPageRenders = 4

// Options configure [Pages].
type Options struct {
	Store *cache.Store
	// Now is the clock used for expiries; time.Now when nil.
	Now func() time.Time
	// HeartbeatAge is how long ago the watcher loop last turned, on the
	// monotonic clock; /healthz fails when it is over HeartbeatMaxAge.
	// Nil: /healthz only checks that the daemon answers.
	HeartbeatAge    func() time.Duration
	HeartbeatMaxAge time.Duration
	// Stale tells whether /status answers every service down because
	// the watcher loop has stalled (--stale-after), and how long ago it
	// last turned; the pages then say so (stale in /status.json, a
	// banner on the board, a field on the text page). Nil: never.
	Stale func() (age time.Duration, stale bool)
	// BoardRefresh is the board's default auto-refresh period (meta
	// refresh); 0 means 10 s. ?refresh=N overrides it; ?refresh=0 turns
	// it off.
	BoardRefresh time.Duration
	// Version is shown on the index page (GET / from a browser).
	Version string
	// NeedConns tells the connection sampler that a page needs counts
	// ([conns.Sampler.Touch]); a page waits at most a second for the
	// channel it returns when the snapshot has no live counts. Nil: pages
	// show no counts.
	NeedConns func() <-chan struct{}
	// ConfigProblem, when not nil, says why the configuration running is
	// not the one on disk ("" when it is); /healthz reports it as degraded.
	ConfigProblem func() string
	// OwnPort says the pages are served on a listener of their own
	// (--pages ADDR), not on the check port: the index page says so.
	OwnPort bool
	// Stopping, when not nil, says what the daemon does while it stops
	// ("" while it runs); /healthz reports it, still 200: /status answers
	// from the flags until the listeners close.
	Stopping func() string
}

// Pages serves the read-only status pages: /status.json, /status.txt, the
// HTML /board, /healthz, and the index for browsers at /. They read the current snapshot only; nothing
// here changes a state (states change only through the status directory).
type Pages struct {
	opts Options
	now  func() time.Time
	sem  chan struct{}
	host string
}

// NewPages returns the page handlers reading opts.Store.
func New(opts Options) *Pages {
	p := &Pages{opts: opts, now: opts.Now, sem: make(chan struct{}, MaxPageRenders)}
	if p.now == nil {
		p.now = time.Now
	}
	if p.opts.HeartbeatMaxAge <= 0 {
		p.opts.HeartbeatMaxAge = 3 * time.Second
	}
	p.host, _ = os.Hostname()
	if p.opts.BoardRefresh <= 0 {
		p.opts.BoardRefresh = 10 * time.Second
	}
	return p
}

// Mount mounts every page on m: [Pages.MountPages] and [Pages.MountHealth].
func (p *Pages) Mount(m httpd.Mux) {
	p.MountPages(m)
	p.MountHealth(m)
}

// MountPages mounts the pages about the host (/status.json, /status.txt,
// /board and the index for browsers) on m, not /healthz.
func (p *Pages) MountPages(m httpd.Mux) {
	m.Handle(httpd.PathStatusJSON, p.page(p.serveJSON))
	m.Handle(httpd.PathStatusText, p.page(p.serveText))
	m.Handle(httpd.PathBoard, p.page(p.serveBoard))
	m.HandleIndex(http.HandlerFunc(p.serveIndex))
}

// MountHealth mounts /healthz and /health on m. They say nothing about the
// services, so they stay on the check port wherever the pages are.
func (p *Pages) MountHealth(m httpd.Mux) {
	m.Handle(httpd.PathHealthz, http.HandlerFunc(p.serveHealthz))
	m.Handle(httpd.PathHealth, http.HandlerFunc(p.serveHealthz))
}

// page wraps a renderer: GET and HEAD only, bounded concurrency, no caching.
func (p *Pages) page(render func(w http.ResponseWriter, r *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !readOnlyMethod(w, r) {
			return
		}
		select {
		case p.sem <- struct{}{}:
			defer func() { <-p.sem }()
		default:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "Service Unavailable - too many status page requests at once", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "private, no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		render(w, r)
	})
}

// readOnlyMethod answers 405 for anything but GET and HEAD.
func readOnlyMethod(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "Method Not Allowed - read-only; states change only through the status directory", http.StatusMethodNotAllowed)
	return false
}

// ServiceJSON is one flag file in /status.json.
type ServiceJSON struct {
	Name string `json:"name"`
	// State is what the flag file says; Effective is what /status
	// answers now (an expired override is up).
	State     string `json:"state"`
	Effective string `json:"effective_state"`
	Code      int    `json:"code"` // the /status code for Effective, without VIPs
	// Weight is a percentage, or null when the flag names none.
	Weight  *int       `json:"weight"`
	Reason  string     `json:"reason,omitempty"`
	Since   time.Time  `json:"since"`
	Expires *time.Time `json:"expires,omitempty"`
	// Invalid says which part of the content was not understood and
	// ignored; the state word, when there is one, still counts (see
	// cache.ParseFlag).
	Invalid string `json:"invalid,omitempty"`
	// Probe is the service's active probes (absent when it has none). A
	// failing probe makes an up flag answer down (effective_state).
	Probe *ProbeJSON `json:"probe,omitempty"`
	// Conns is the number of open connections on ConnPort, while
	// the connection sampler runs (absent otherwise).
	Conns *int `json:"connections,omitempty"`
	// ConnPort is the local port counted: conn= in the flag, conn_port in
	// the probe configuration, or the port in the name (absent: none).
	ConnPort uint16 `json:"conn_port,omitempty"`
}

// ProbeJSON is the combined verdict of a service's probes.
type ProbeJSON struct {
	OK        bool             `json:"ok"`
	Since     time.Time        `json:"since"`
	LastError string           `json:"last_error,omitempty"`
	Checks    []ProbeCheckJSON `json:"checks"`
}

// ProbeCheckJSON is one probe of a service.
type ProbeCheckJSON struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	OK   bool   `json:"ok"`
	// State is what the probe asks for: up, or drain or maint from a
	// script with output = "agent"; down when failing.
	State  string    `json:"state"`
	Weight *int      `json:"weight,omitempty"` // a weight such a script asked for
	Idle   bool      `json:"idle,omitempty"`   // not running: its only_if_vip is absent
	Msg    string    `json:"msg,omitempty"`
	Since  time.Time `json:"since"`
	// Containers are the containers a container probe matched.
	Containers []ContainerJSON `json:"containers,omitempty"`
}

// ContainerJSON is one container a container probe matched.
type ContainerJSON struct {
	Name   string `json:"name"`
	ID     string `json:"id"`
	State  string `json:"state"`
	Health string `json:"health,omitempty"`
	OK     bool   `json:"ok"`
}

func probeJSON(p cache.ProbeStatus) *ProbeJSON {
	pj := &ProbeJSON{OK: p.OK, Since: p.Since, LastError: p.LastErr, Checks: make([]ProbeCheckJSON, 0, len(p.Checks))}
	for _, c := range p.Checks {
		st := c.State
		if st == cache.Missing {
			st = cache.Up
		}
		if !c.OK {
			st = cache.Down
		}
		cj := ProbeCheckJSON{Name: c.Name, Kind: c.Kind, OK: c.OK, State: st.String(), Idle: c.Idle, Msg: c.Msg, Since: c.Since}
		if c.HasWeight {
			w := c.Weight
			cj.Weight = &w
		}
		for _, ct := range c.Containers {
			cj.Containers = append(cj.Containers, ContainerJSON(ct))
		}
		pj.Checks = append(pj.Checks, cj)
	}
	return pj
}

// VIPJSON is one address configured on the host.
type VIPJSON struct {
	Addr     string `json:"addr"`
	Loopback bool   `json:"loopback"`
}

// StatusJSON is the /status.json document.
type StatusJSON struct {
	Generation uint64         `json:"generation"`
	Built      time.Time      `json:"built"`
	Now        time.Time      `json:"now"`
	DirOK      bool           `json:"dir_ok"`
	DirProblem string         `json:"dir_problem,omitempty"` // why DirOK is false
	VIPsOK     bool           `json:"vips_ok"`
	Counts     map[string]int `json:"counts"` // effective state -> services
	Services   []ServiceJSON  `json:"services"`
	VIPs       []VIPJSON      `json:"vips"`
	// ConnsLive is true while connection counts are sampled; ConnsError
	// says why the last count failed.
	ConnsLive  bool   `json:"connections_live"`
	ConnsError string `json:"connections_error,omitempty"`
	// Stale is true while the watcher loop has been stalled for longer
	// than --stale-after: /status and the agent then answer every service
	// down, whatever the states above say; StaleReason says since when.
	Stale       bool   `json:"stale"`
	StaleReason string `json:"stale_reason,omitempty"`
	// Stopping says what the daemon does while it stops (omitted while
	// it runs): in a lameduck the agent answers drain for services that
	// are up, which the states above do not show.
	Stopping string `json:"stopping,omitempty"`
}

// view is View of the current snapshot, marked stale while /status
// answers every service down for a stalled watcher loop.
func (p *Pages) view() StatusJSON {
	v := View(p.load(), p.now())
	if p.opts.Stale != nil {
		if age, stale := p.opts.Stale(); stale {
			v.Stale = true
			v.StaleReason = staleReason(age)
			markStale(&v)
		}
	}
	if p.opts.Stopping != nil {
		v.Stopping = p.opts.Stopping()
	}
	return v
}

func staleReason(age time.Duration) string {
	return "watcher loop stalled: last turn " + age.Round(time.Millisecond).String() + " ago: /status and the agent answer every service down"
}

// markStale makes each service of v say what /status and the agent answer
// while the watcher loop is stalled: down, with their reason; state keeps
// what the flag says.
func markStale(v *StatusJSON) {
	for st := range v.Counts {
		v.Counts[st] = 0
	}
	down := cache.Down.String()
	for i := range v.Services {
		s := &v.Services[i]
		s.Effective, s.Code, s.Reason = down, cache.Down.HTTPCode(), check.ReasonStale
		v.Counts[down]++
	}
}

// View builds the /status.json document from one snapshot; the text page
// and the board render the same data.
func View(s *cache.Snapshot, now time.Time) StatusJSON {
	v := StatusJSON{
		Generation: s.Generation(), Built: s.Built(), Now: now,
		DirOK: s.DirOK(), DirProblem: s.DirProblem(), VIPsOK: s.VIPsOK(),
		Counts:   map[string]int{"up": 0, "drain": 0, "maint": 0, "down": 0},
		Services: make([]ServiceJSON, 0, s.Len()),
		VIPs:     []VIPJSON{},
	}
	cc := s.ConnCounts()
	v.ConnsLive, v.ConnsError = cc.Live, cc.Err
	for name, e := range s.Services() {
		sj := serviceView(s, name, e, now)
		v.Counts[sj.Effective]++
		v.Services = append(v.Services, sj)
	}
	slices.SortFunc(v.Services, func(a, b ServiceJSON) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	vips := s.VIPs()
	addrs := make([]netip.Addr, 0, len(vips))
	for a := range vips {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	for _, a := range addrs {
		v.VIPs = append(v.VIPs, VIPJSON{Addr: a.String(), Loopback: vips[a]&cache.OnLoopback != 0})
	}
	return v
}

// serviceView is one service of s at now, as /status.json shows it and as
// an /events change carries it.
func serviceView(s *cache.Snapshot, name string, e cache.Entry, now time.Time) ServiceJSON {
	eff, _ := s.Effective(name, now) // flag and probes, as /status answers
	sj := ServiceJSON{
		Name: name, State: e.State.String(), Effective: eff.State.String(),
		Code: eff.State.HTTPCode(), Reason: eff.Reason, Since: eff.Since, Invalid: e.Invalid,
		ConnPort: s.ConnPort(name),
	}
	if eff.Weight != cache.NoWeight {
		w := eff.Weight
		sj.Weight = &w
	}
	if !eff.Expires.IsZero() {
		x := eff.Expires
		sj.Expires = &x
	}
	if p, ok := s.Probe(name); ok {
		sj.Probe = probeJSON(p)
	}
	if n, ok := s.Conns(name); ok {
		sj.Conns = &n
	}
	return sj
}

// load is the snapshot a page renders. When nothing has needed connection
// counts lately the sampler is idle: wake it and wait (at most a second)
// for its first sample, so the page shows current counts rather than none.
func (p *Pages) load() *cache.Snapshot { return waitConns(p.opts.Store, p.opts.NeedConns) }

// waitConns tells the sampler (need) that counts are needed, and when the
// snapshot has none yet waits at most a second for the first sample; it
// returns the snapshot to use.
func waitConns(st *cache.Store, need func() <-chan struct{}) *cache.Snapshot {
	s := st.Load()
	if need == nil {
		return s
	}
	ch := need()
	if s.ConnCounts().Live {
		return s
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
	return st.Load()
}

func (p *Pages) serveJSON(w http.ResponseWriter, r *http.Request) {
	v := p.view()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	if _, ok := r.URL.Query()["pretty"]; ok {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		http.Error(w, "Internal Server Error - "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// serveText is a plain-text page in the spirit of nginx's upstream check
// status page: a summary line, then one line per service.
func (p *Pages) serveText(w http.ResponseWriter, r *http.Request) {
	v := p.view()
	var b bytes.Buffer
	b.WriteString("Service count: ")
	b.WriteString(strconv.Itoa(len(v.Services)))
	for _, st := range []string{"up", "drain", "maint", "down"} {
		b.WriteString("; ")
		b.WriteString(st)
		b.WriteString(": ")
		b.WriteString(strconv.Itoa(v.Counts[st]))
	}
	b.WriteString("; generation: ")
	b.WriteString(strconv.FormatUint(v.Generation, 10))
	b.WriteString("; built: ")
	b.WriteString(v.Built.UTC().Format(time.RFC3339Nano))
	b.WriteString("; dir: ")
	b.WriteString(okWord(v.DirOK, v.DirProblem))
	b.WriteString("; vips: ")
	b.WriteString(okWord(v.VIPsOK, "stale"))
	if v.Stale {
		b.WriteString("; ")
		b.WriteString(v.StaleReason)
	}
	if v.Stopping != "" {
		b.WriteString("; stopping: ")
		b.WriteString(v.Stopping)
	}
	b.WriteByte('\n')
	for i, s := range v.Services {
		b.WriteString("    ")
		b.WriteString(strconv.Itoa(i))
		b.WriteByte(' ')
		b.WriteString(s.Name)
		b.WriteByte(' ')
		b.WriteString(s.Effective)
		b.WriteString(" code ")
		b.WriteString(strconv.Itoa(s.Code))
		if s.Weight != nil {
			b.WriteString(" weight ")
			b.WriteString(strconv.Itoa(*s.Weight))
			b.WriteByte('%')
		}
		if s.Conns != nil {
			b.WriteString(" conns ")
			b.WriteString(strconv.Itoa(*s.Conns))
		}
		b.WriteString(" since ")
		b.WriteString(s.Since.UTC().Format(time.RFC3339))
		if s.Expires != nil {
			b.WriteString(" until ")
			b.WriteString(s.Expires.UTC().Format(time.RFC3339))
		}
		if s.Probe != nil {
			b.WriteString(" probe ")
			b.WriteString(okWord(s.Probe.OK, "failing"))
		}
		if s.Invalid != "" {
			b.WriteString(" invalid ")
			b.WriteString(strconv.Quote(s.Invalid))
		}
		if s.Reason != "" {
			b.WriteString(" reason ")
			b.WriteString(strconv.Quote(s.Reason))
		}
		b.WriteByte('\n')
	}
	b.WriteString("VIP count: ")
	b.WriteString(strconv.Itoa(len(v.VIPs)))
	b.WriteByte('\n')
	for i, a := range v.VIPs {
		b.WriteString("    ")
		b.WriteString(strconv.Itoa(i))
		b.WriteByte(' ')
		b.WriteString(a.Addr)
		if a.Loopback {
			b.WriteString(" loopback")
		}
		b.WriteByte('\n')
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b.Bytes())
	}
}

func okWord(ok bool, bad string) string {
	if ok {
		return "ok"
	}
	return bad
}
