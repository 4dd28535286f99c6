//go:build linux

package pages

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// serveHealthz answers whether the daemon itself is healthy: 200 while the
// watcher loop's heartbeat is current, 503 with the reason when the loop is
// stuck (answers would go stale). A missing status directory or a stale VIP
// list are reported as "degraded" but keep 200: the daemon is doing its job,
// and /status already answers for them. So is a stop in progress
// (lameduck): a monitor must not see the last seconds before the port
// closes as plain "ok".
func (p *Pages) serveHealthz(w http.ResponseWriter, r *http.Request) {
	if !readOnlyMethod(w, r) {
		return
	}
	now := p.now()
	s := p.opts.Store.Load()
	code := http.StatusOK
	var b strings.Builder
	if p.opts.HeartbeatAge != nil {
		age := p.opts.HeartbeatAge()
		if age > p.opts.HeartbeatMaxAge {
			code = http.StatusServiceUnavailable
			b.WriteString("unhealthy: watcher loop stalled: last turn ")
			b.WriteString(age.Truncate(time.Millisecond).String())
			b.WriteString(" ago (limit ")
			b.WriteString(p.opts.HeartbeatMaxAge.String())
			b.WriteString(")\n")
		}
	}
	if code == http.StatusOK {
		b.WriteString("ok\n")
	}
	if p.opts.Stopping != nil {
		if what := p.opts.Stopping(); what != "" {
			b.WriteString("stopping: ")
			b.WriteString(what)
			b.WriteByte('\n')
		}
	}
	if !s.DirOK() {
		b.WriteString("degraded: status directory ")
		b.WriteString(s.DirProblem())
		b.WriteString("; every service is out of rotation\n")
	}
	if p.opts.ConfigProblem != nil {
		if why := p.opts.ConfigProblem(); why != "" {
			b.WriteString("degraded: ")
			b.WriteString(why)
			b.WriteByte('\n')
		}
	}
	// Before the first snapshot the VIP list is not read either: the
	// directory's line says so, and "netlink subscription down" would be
	// false (with --vips=false there is none).
	if !s.VIPsOK() && s.Generation() != 0 {
		b.WriteString("degraded: VIP list not current (netlink subscription down)\n")
	}
	b.WriteString("generation ")
	b.WriteString(strconv.FormatUint(s.Generation(), 10))
	b.WriteString(", ")
	b.WriteString(s.Summary(now))
	b.WriteByte('\n')
	hdr := w.Header()
	hdr.Set("Cache-Control", "private, no-store")
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(b.String()))
	}
}
