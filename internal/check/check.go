// Package check answers a health check from the current [cache.Snapshot],
// whatever the transport: HTTP /status (httpd) and the HAProxy agent
// (internal/agent) both ask it.
//
// # Per-request work
//
// A request costs one [cache.Store.Load] and a few map lookups: no stat, no
// open, no netlink call, and the lookup path ([Checker.Check]) allocates
// nothing. Query parsing is done by hand over the raw query so that a
// request can only ever name a flag file directly in the status directory
// (see [cache.ValidName]).
//
// # Concurrency
//
// A [Checker] is safe for concurrent use; it only reads the store.
package check

import (
	"net/netip"
	"net/url"
	"strings"
	"time"
	"unsafe"

	"github.com/http-status/http_status/cache"
)

// Response bodies. The original tool's bodies are kept in meaning; its
// misspelling "aviliable" is fixed to "available" (see README, migrating).
const (
	BodyOK          = "OK - service fine!\n"
	BodyOKVIP       = "OK - service and VIP all fine!\n"
	BodyNoService   = "Not Found - Service not available!\n"
	BodyNoVIP       = "Not Found - VIP alias not available!\n"
	BodyNoVIP503    = "Service Unavailable - VIP alias not available!\n"
	BodyDrain       = "Not Found - Service draining!\n"
	BodyMaint       = "Service Unavailable - Service in maintenance!\n"
	BodyDown        = "Service Unavailable - Service down!\n"
	BodyBadService  = "Bad Request - SERVICE must be 1-200 bytes of A-Z a-z 0-9 . _ - @ + :, not start with a dot, not end in .tmp or ~\n"
	BodyPortAlone   = "Bad Request - PORT needs a SERVICE (the flag file is SERVICE.PORT)\n"
	BodyTwoServices = "Bad Request - SERVICE given twice, the first one empty: ambiguous\n"
	BodyBadPort     = "Bad Request - PORT must be a number from 1 to 65535\n"
	BodyBadVIP      = "Bad Request - VIP must be a comma-separated list of IPv4 or IPv6 addresses, without zone or prefix length\n"
	BodyTooManyVIPs = "Bad Request - too many VIPs (at most 64)\n"
	BodyStale       = "Service Unavailable - http_status cannot see flag changes!\n"
)

// ReasonStale is the reason of every answer while the watcher is stalled.
const ReasonStale = "watcher loop stalled: answers would be stale"

// ReasonNotRead is the reason of every answer before the status directory
// has been read once: a daemon started on a directory (or parent) whose
// filesystem does not answer serves with no flag to go by. (Also a start
// whose first scan or address list merely takes over the wait: hence the
// question mark.)
const ReasonNotRead = "status directory not read yet: its first scan has not ended (a filesystem that does not answer?)"

// ReasonVIPsStale is the reason of an answer to a check naming a VIP once
// the VIP list has not been current for StaleAfter.
const ReasonVIPsStale = "VIP list not current (netlink subscription down): VIP unknown"

// MaxVIPs bounds the VIP list of one request.
const MaxVIPs = 64

// Result is the answer to one health check. Body is a constant; Reason, when
// not empty, is appended to it by the transport (as "reason: ..." line) and
// sent in the X-Status-Reason header.
type Result struct {
	Code   int
	Body   string
	State  cache.State
	Weight int // percent, or cache.NoWeight
	Reason string
}

// Options configure a [Checker].
type Options struct {
	Store *cache.Store
	// LoopbackVIPsOnly counts only VIPs configured on a loopback interface
	// (LVS-DR real servers).
	LoopbackVIPsOnly bool
	// Now is the clock used for expiries; time.Now when nil.
	Now func() time.Time
	// VIPMissingCode answers a service that is up while a VIP it names is
	// not on this host: 404 (the original's code, and the default when
	// 0) or 503. HAProxy's "http-check disable-on-404" drains a server on
	// 404 but takes it down on 503.
	VIPMissingCode int
	// HeartbeatAge, with StaleAfter above 0, tells how long ago the
	// watcher loop last turned, at a reading of the clock. Once that is
	// over StaleAfter every service is answered down (503, BodyStale,
	// ReasonStale): the snapshot may no longer be the operator's truth.
	//
	// StaleAfter above 0 also bounds how long a check naming a VIP is
	// answered from a VIP list that is not current (the netlink
	// subscription is down and the last known list is kept): past it
	// the VIP counts as missing (VIPMissingCode, ReasonVIPsStale).
	HeartbeatAge func(now time.Time) time.Duration
	StaleAfter   time.Duration
}

// Checker turns a /status query into a [Result]. It counts nothing: each
// transport counts its own answers.
type Checker struct {
	store    *cache.Store
	loopback bool
	now      func() time.Time
	noVIP    int    // code for a missing VIP
	noVIPMsg string // and its body
	beatAge  func(time.Time) time.Duration
	stale    time.Duration
	vipStale time.Duration // 0: a VIP list not current is used however old
}

// New returns a Checker reading opts.Store.
func New(opts Options) *Checker {
	c := &Checker{store: opts.Store, loopback: opts.LoopbackVIPsOnly, now: opts.Now, noVIP: 404, noVIPMsg: BodyNoVIP}
	if c.now == nil {
		c.now = time.Now
	}
	if opts.VIPMissingCode == 503 {
		c.noVIP, c.noVIPMsg = 503, BodyNoVIP503
	}
	if opts.HeartbeatAge != nil && opts.StaleAfter > 0 {
		c.beatAge, c.stale = opts.HeartbeatAge, opts.StaleAfter
	}
	c.vipStale = max(opts.StaleAfter, 0)
	return c
}

// Stale reports whether, at now, the watcher loop has not turned for
// longer than Options.StaleAfter (every check is then answered down), and
// how long ago it did turn. Never stale without the options.
func (c *Checker) Stale(now time.Time) (age time.Duration, stale bool) {
	if c.beatAge == nil {
		return 0, false
	}
	age = c.beatAge(now)
	return age, age > c.stale
}

// Store returns the store the checker reads.
func (c *Checker) Store() *cache.Store { return c.store }

// query is a parsed /status query, for tests.
type query struct {
	Name string // flag-file name: SERVICE, SERVICE.PORT, or status.html
	VIPs []netip.Addr
}

// Check answers the /status query in rawQuery (the part after '?', still
// percent-encoded). It does not allocate, except to decode a VIP list that
// is itself percent-encoded (load balancers send plain lists).
func (c *Checker) Check(rawQuery string) Result {
	var q parsed
	if code := q.parse(rawQuery); code != nil {
		return *code
	}
	return c.answer(&q)
}

// CheckName answers for a flag-file name and VIP list already validated
// (the agent responder uses it).
func (c *Checker) CheckName(name string, vips []netip.Addr) Result {
	var q parsed
	if len(name) > cache.MaxNameLen {
		return Result{Code: 400, Body: BodyBadService}
	}
	q.nameLen = copy(q.nameBuf[:], name)
	q.nvips = copy(q.vips[:], vips)
	return c.answer(&q)
}

func (c *Checker) answer(q *parsed) Result {
	now := c.now()
	snap := c.store.Load()
	if snap.Generation() == 0 {
		// Before the first snapshot (generation 0) nothing is known of
		// the flags; the loop is blocked in its first scan, so it would
		// soon be called stalled too, but this says where.
		return Result{Code: 503, Body: BodyStale, State: cache.Down, Weight: cache.NoWeight, Reason: ReasonNotRead}
	}
	if _, stale := c.Stale(now); stale {
		return Result{Code: 503, Body: BodyStale, State: cache.Down, Weight: cache.NoWeight, Reason: ReasonStale}
	}
	// Flag and probes combine in one place (cache.Snapshot.Effective), so
	// /status and the agent always agree.
	e, _ := snap.Effective(unsafe.String(&q.nameBuf[0], q.nameLen), now)
	r := Result{Code: e.State.HTTPCode(), State: e.State, Weight: e.Weight, Reason: e.Reason}
	switch e.State {
	case cache.Up:
	case cache.Drain:
		r.Body = BodyDrain
		return r
	case cache.Maint:
		r.Body = BodyMaint
		return r
	case cache.Down:
		r.Body = BodyDown
		return r
	default:
		r.Body = BodyNoService
		if r.Reason == "" {
			// The directory's fault, not the operator's: say so.
			r.Reason = snap.MissingReason()
		}
		return r
	}
	if q.nvips > 0 && c.vipStale > 0 && snap.VIPsStaleFor(now) > c.vipStale {
		// The list is kept while the subscription is down (VIPs rarely
		// move), but not past StaleAfter: by then a VIP moved to
		// another host would still be answered here.
		return Result{Code: c.noVIP, Body: c.noVIPMsg, State: e.State, Weight: e.Weight, Reason: ReasonVIPsStale}
	}
	for _, a := range q.vips[:q.nvips] {
		if !snap.HasVIP(a, c.loopback) {
			return Result{Code: c.noVIP, Body: c.noVIPMsg, State: e.State, Weight: e.Weight, Reason: "VIP not configured"}
		}
	}
	if q.nvips > 0 {
		r.Body = BodyOKVIP
	} else {
		r.Body = BodyOK
	}
	return r
}

var (
	resBadService = Result{Code: 400, Body: BodyBadService}
	resBadPort    = Result{Code: 400, Body: BodyBadPort}
	resPortAlone  = Result{Code: 400, Body: BodyPortAlone}
	resTwoSvc     = Result{Code: 400, Body: BodyTwoServices}
	resBadVIP     = Result{Code: 400, Body: BodyBadVIP}
	resManyVIPs   = Result{Code: 400, Body: BodyTooManyVIPs}
)

// parsed is a query parsed into fixed-size storage, so parsing stays on the
// stack.
type parsed struct {
	nameLen int
	nameBuf [cache.MaxNameLen + 8]byte
	vips    [MaxVIPs]netip.Addr
	nvips   int
}

// parseQuery parses a /status query; ok is false for a query that would get
// 400. It is the allocating form of what [Checker.Check] does, for tests.
func parseQuery(rawQuery string) (query, bool) {
	var p parsed
	if p.parse(rawQuery) != nil {
		return query{}, false
	}
	return query{Name: string(p.nameBuf[:p.nameLen]), VIPs: append([]netip.Addr(nil), p.vips[:p.nvips]...)}, true
}

// parse fills p from the raw query; it returns a 400 result on bad input.
// Parameter names are matched case-insensitively; the first SERVICE and
// PORT win (as net/url's Get); every VIP counts, as VIP asks for all its
// addresses; unknown parameters are ignored so that cache-busting
// parameters work.
func (p *parsed) parse(raw string) *Result {
	var service, port string
	var haveService, havePort, emptyVIP bool
	nvips := 0 // VIP parameters; their values are parsed in a second pass
	var decBuf [2][cache.MaxNameLen + 8]byte
	for rest := raw; len(rest) > 0; {
		var k, v string
		if k, v, rest = nextParam(rest); k == "" && v == "" {
			continue
		}
		switch {
		case EqualFoldASCII(k, "SERVICE"):
			if haveService {
				if service == "" && v != "" {
					// "SERVICE=&SERVICE=web": the first (empty) one
					// would answer for status.html, the asker meant
					// web. Ambiguous: refuse rather than guess.
					return &resTwoSvc
				}
				continue
			}
			d, ok := unescape(v, decBuf[0][:])
			if !ok {
				return &resBadService
			}
			service, haveService = d, true
		case EqualFoldASCII(k, "PORT"):
			if havePort {
				continue
			}
			d, ok := unescape(v, decBuf[1][:])
			if !ok {
				return &resBadPort
			}
			port, havePort = d, true
		case EqualFoldASCII(k, "VIP"):
			if nvips == MaxVIPs {
				return &resManyVIPs
			}
			nvips++
			emptyVIP = emptyVIP || v == ""
		}
	}
	// A PORT= or VIP= that is there but empty (a check template whose
	// variable came out blank) is not "not given": taken so, it asked for
	// the port-less flag or skipped the address check. Fail closed.
	if havePort && port == "" {
		return &resBadPort
	}
	if emptyVIP {
		return &resBadVIP
	}
	// Build the flag-file name: SERVICE[.PORT], or the default flag.
	if !haveService || service == "" {
		if havePort {
			return &resPortAlone // a PORT without a SERVICE names nothing
		}
		service = cache.DefaultService
	}
	n := copy(p.nameBuf[:], service)
	if havePort {
		if _, ok := cache.PortNumber(port); !ok {
			return &resBadPort
		}
		if n+1+len(port) > cache.MaxNameLen {
			return &resBadService
		}
		p.nameBuf[n] = '.'
		n++
		n += copy(p.nameBuf[n:], port)
	}
	if n > cache.MaxNameLen {
		return &resBadService
	}
	p.nameLen = n
	if !cache.ValidName(unsafe.String(&p.nameBuf[0], n)) {
		return &resBadService
	}
	for rest := raw; nvips > 0 && len(rest) > 0; {
		var k, vip string
		if k, vip, rest = nextParam(rest); !EqualFoldASCII(k, "VIP") {
			continue
		}
		var res *Result
		if needsUnescape(vip) {
			res = p.parseEncodedVIPs(vip)
		} else {
			res = p.parseVIPs(vip)
		}
		if res != nil {
			return res
		}
	}
	return nil
}

// nextParam splits the first "k=v" off a raw query: k and v are empty for
// an empty pair ("&&"); v is empty for a key without "=".
func nextParam(raw string) (k, v, rest string) {
	kv := raw
	if i := strings.IndexByte(raw, '&'); i >= 0 {
		kv, rest = raw[:i], raw[i+1:]
	}
	k = kv
	if i := strings.IndexByte(kv, '='); i >= 0 {
		k, v = kv[:i], kv[i+1:]
	}
	return k, v, rest
}

// parseEncodedVIPs decodes a percent-encoded VIP list first. It is the one
// path that allocates (the decoded copy); load balancers send plain lists.
func (p *parsed) parseEncodedVIPs(vip string) *Result {
	d, err := url.QueryUnescape(vip)
	if err != nil {
		return &resBadVIP
	}
	return p.parseVIPs(d)
}

// parseVIPs parses a comma-separated address list.
func (p *parsed) parseVIPs(vip string) *Result {
	for len(vip) > 0 {
		var a string
		if i := strings.IndexByte(vip, ','); i >= 0 {
			a, vip = vip[:i], vip[i+1:]
		} else {
			a, vip = vip, ""
		}
		a = strings.Trim(a, " \t")
		if a == "" {
			continue
		}
		if p.nvips == MaxVIPs {
			return &resManyVIPs
		}
		addr, err := netip.ParseAddr(a)
		if err != nil || addr.Zone() != "" {
			return &resBadVIP
		}
		p.vips[p.nvips] = addr.Unmap()
		p.nvips++
	}
	return nil
}

// unescape percent-decodes s (and '+' as space) into buf when needed. The
// returned string aliases s or buf; it must not outlive either.
func unescape(s string, buf []byte) (string, bool) {
	if !needsUnescape(s) {
		return s, true
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if n >= len(buf) {
			return "", false
		}
		c := s[i]
		switch c {
		case '+':
			c = ' '
		case '%':
			if i+2 >= len(s) {
				return "", false
			}
			h, ok1 := unhex(s[i+1])
			l, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return "", false
			}
			c = h<<4 | l
			i += 2
		}
		buf[n] = c
		n++
	}
	if n == 0 {
		return "", true
	}
	return unsafe.String(&buf[0], n), true
}

func needsUnescape(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' || s[i] == '+' {
			return true
		}
	}
	return false
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// EqualFoldASCII reports whether s equals the upper-case ASCII word w,
// ignoring ASCII case only (unlike strings.EqualFold, "ſ" is not "S").
func EqualFoldASCII(s, w string) bool {
	if len(s) != len(w) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != w[i] {
			return false
		}
	}
	return true
}
