//go:build linux

package pages

import (
	"bytes"
	"html/template"
	"net/http"
	"strconv"
	"time"
)

// boardCSP forbids every external or scripted resource: the board is one
// server-rendered document with inline CSS.
// The one inline script (boardJS) is allowed by its hash; it may only talk
// back to this daemon (/events, /status.json).
var boardCSP = "default-src 'none'; style-src 'unsafe-inline'; script-src " + boardScriptHash + "; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

var boardTmpl = template.Must(template.New("board").Funcs(template.FuncMap{
	"ts": func(v any) string {
		var t time.Time
		switch x := v.(type) {
		case time.Time:
			t = x
		case *time.Time:
			if x != nil {
				t = *x
			}
		}
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"ts3339": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	},
	"ago": ago,
	"mod": func(i, n int) int { return i % n },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{{if .Refresh}}<noscript><meta http-equiv="refresh" content="{{.Refresh}}"></noscript>{{end}}
<title>http_status {{.Host}}: {{.V.Counts.up}}/{{len .V.Services}} up</title>
<style>
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#1d1d1f;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .3em}
.meta{color:#555;margin-bottom:1em}
.warn{background:#fde2e1;color:#8a1c17;padding:.4em .8em;border-radius:4px;margin:.5em 0;font-weight:600}
.tally span{display:inline-block;margin-right:.6em;padding:.2em .7em;border-radius:999px;font-weight:600}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px rgba(0,0,0,.08)}
#services{background:#fff;box-shadow:0 1px 2px rgba(0,0,0,.08)}
#services table{table-layout:fixed;box-shadow:none}
#services.skip .chunk{content-visibility:auto;contain-intrinsic-size:auto {{.ChunkHeight}}px}
#services :is(th,td):nth-child(1){width:15%}
#services :is(th,td):nth-child(2){width:7em}
#services :is(th,td):nth-child(3){width:3.8em}
#services :is(th,td):nth-child(5){width:9%}
#services :is(th,td):nth-child(6){width:3.5em}
#services :is(th,td):nth-child(7){width:7em}
#services :is(th,td):nth-child(8){width:11.5em}
th,td{text-align:left;padding:.35em .7em;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f0f0f2;font-weight:600}
td.when{white-space:nowrap}
td.name{font-family:ui-monospace,Menlo,Consolas,monospace;overflow-wrap:anywhere}
.badge{display:inline-block;min-width:4.5em;text-align:center;padding:.1em .5em;border-radius:4px;font-weight:700;text-transform:uppercase;font-size:.85em}
.up{background:#d9f2dc;color:#14591d}
.drain{background:#fff0c2;color:#7a5400}
.maint{background:#dde7fb;color:#1f3f8a}
.down,.missing{background:#fbd9d7;color:#8a1c17}
.idle{background:#e8eaed;color:#555}
tr.state-drain td{background:#fffaf0}
tr.state-maint td{background:#f3f6fd}
tr.state-down td{background:#fff6f6}
td.conns{text-align:right;font-variant-numeric:tabular-nums}
#live{font-weight:600}
.invalid{color:#8a1c17;font-size:.85em}
.muted{color:#777}
h2{font-size:1.1em;margin:1.5em 0 .4em}
</style>
</head>
<body data-generation="{{.V.Generation}}" data-refresh="{{.Refresh}}" data-now="{{.V.Now.UTC.Format "2006-01-02T15:04:05.000Z07:00"}}">
<h1>http_status on {{.Host}}</h1>
<div class="meta"><span id="live">{{if .Refresh}}refreshes every {{.Refresh}} s{{else}}static{{end}}</span> · generation <span id="gen">{{.V.Generation}}</span>, built {{ts .V.Built}}, page rendered {{ts .V.Now}}. Read-only: states change only through the status directory.</div>
{{if .V.Stale}}<div class="warn" id="stale">{{.V.StaleReason}}.</div>{{end}}
{{if .V.Stopping}}<div class="warn" id="stopping">Stopping: {{.V.Stopping}}.</div>{{end}}
{{if not .V.DirOK}}<div class="warn" id="dir-missing">Status directory {{.V.DirProblem}}: every service is out of rotation.</div>{{end}}
{{if not .V.VIPsOK}}<div class="warn" id="vips-stale">VIP list not current (netlink subscription down).</div>{{end}}
<div class="tally"><span class="up" id="n-up">{{.V.Counts.up}} up</span><span class="drain" id="n-drain">{{.V.Counts.drain}} drain</span><span class="maint" id="n-maint">{{.V.Counts.maint}} maint</span><span class="down" id="n-down">{{.V.Counts.down}} down</span></div>
<h2>Services (<span id="n-services">{{len .V.Services}}</span>)</h2>
<div id="services" data-chunk="{{.Chunk}}" data-skip-from="{{.SkipFrom}}"{{if gt (len .V.Services) .SkipFrom}} class="skip"{{end}}>
<div class="chunk"><table>
<thead><tr><th>Service</th><th>State</th><th>Weight</th><th>Reason</th><th>Probes</th><th title="open TCP connections (established or close-wait) on the service's port">Conns</th><th>Since</th><th>Until</th></tr></thead>
<tbody>
{{range $i, $_ := .V.Services}}{{if and $i (eq (mod $i $.Chunk) 0)}}</tbody></table></div>
<div class="chunk"><table><tbody>
{{end}}<tr class="state-{{.Effective}}" data-service="{{.Name}}" data-state="{{.Effective}}">
<td class="name">{{.Name}}</td>
<td><span class="badge {{.Effective}}">{{if eq .Effective "drain"}}drained{{else}}{{.Effective}}{{end}}</span>{{if ne .State .Effective}} <span class="muted">(flag says {{.State}}{{if $.V.Stale}}, watcher stalled{{else if and .Probe (not .Probe.OK)}}, probe failing{{else if and .Probe (eq .State "up")}}, set by a probe{{else}}, expired{{end}})</span>{{end}}</td>
<td>{{if .Weight}}{{.Weight}}%{{end}}</td>
<td>{{.Reason}}{{if .Invalid}} <span class="invalid">flag not fully understood, counted as {{.State}}: {{.Invalid}}</span>{{end}}</td>
<td>{{with .Probe}}{{range .Checks}}<span class="badge {{if .Idle}}idle{{else if .OK}}up{{else}}down{{end}}" title="{{if .Idle}}idle, {{end}}{{.Kind}}: {{.Msg}}">{{.Name}}</span> {{end}}{{end}}</td>
<td class="conns"{{if .ConnPort}} title="port {{.ConnPort}}"{{end}}>{{if .Conns}}{{.Conns}}{{else}}-{{end}}</td>
<td class="when" title="{{ts .Since}}" data-since="{{ts3339 .Since}}">{{ago $.V.Now .Since}}</td>
<td class="when">{{ts .Expires}}</td>
</tr>
{{end}}<tr id="no-flags"{{if .V.Services}} hidden{{end}}><td colspan="8" class="muted">No flag files: every service is out of rotation.</td></tr>
</tbody></table></div>
</div>
<h2>Addresses ({{len .V.VIPs}})</h2>
<table id="vips">
<thead><tr><th>Address</th><th>Where</th></tr></thead>
<tbody>
{{range .V.VIPs}}<tr><td class="name">{{.Addr}}</td><td>{{if .Loopback}}loopback{{else}}interface{{end}}</td></tr>
{{else}}<tr><td colspan="2" class="muted">none tracked</td></tr>
{{end}}</tbody>
</table>
<script>` + boardJS + `</script>
</body>
</html>
`))

// ago says how long before now t was, for people: "42s ago", "5m 3s ago",
// "3h 12m ago", "2d 3h ago", and past 30 days the date ("on 2019-03-01"),
// never "60600h11m50s ago".
func ago(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	s := int64(d / time.Second)
	m, h := s/60, s/3600
	days := h / 24
	switch {
	case d < 0:
		return "just now"
	case s < 60:
		return strconv.FormatInt(s, 10) + "s ago"
	case m < 60:
		return strconv.FormatInt(m, 10) + "m " + strconv.FormatInt(s%60, 10) + "s ago"
	case h < 24:
		return strconv.FormatInt(h, 10) + "h " + strconv.FormatInt(m%60, 10) + "m ago"
	case days < 30:
		return strconv.FormatInt(days, 10) + "d " + strconv.FormatInt(h%24, 10) + "h ago"
	}
	return "on " + t.UTC().Format("2006-01-02")
}

// boardChunk is how many rows of the services table go in one <table>.
// In a single 10,000-row table any change made the browser lay out every
// row again (0.1-2 s for one cell, BENCHMARKS.md); each chunk sits in a
// box with content-visibility: auto, so the browser lays out only the
// chunks on screen and the one a change lands in. The columns have fixed
// widths (table-layout: fixed) so that the chunks line up.
const boardChunk = 200

// boardSkipFrom is the number of services above which the chunks the
// browser does not show are skipped (content-visibility: auto, the
// "skip" class, set by the script too when the count crosses it). Below
// it every row is laid out, as in one table (a few ms a change at 1,000
// rows), and stays in the accessibility tree, which leaves out the rows
// of skipped chunks until they are scrolled near.
const boardSkipFrom = 1000

// boardRowHeight is a one-line row's height in pixels, for the size an
// unrendered chunk is given until the browser has laid it out once.
const boardRowHeight = 31

// boardData is what the template sees.
type boardData struct {
	V           StatusJSON
	Host        string
	Refresh     int // seconds; 0: no auto-refresh
	Chunk       int // rows per chunk of the services table
	ChunkHeight int // pixels, an unrendered chunk's placeholder height
	SkipFrom    int // services above which unseen chunks are skipped
}

// maxRefresh bounds ?refresh=N.
const maxRefresh = 3600

func (p *Pages) serveBoard(w http.ResponseWriter, r *http.Request) {
	d := boardData{V: p.view(), Refresh: int(p.opts.BoardRefresh / time.Second), Chunk: boardChunk, ChunkHeight: boardChunk * boardRowHeight, SkipFrom: boardSkipFrom}
	d.Host = p.host
	if s := r.URL.Query().Get("refresh"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > maxRefresh {
			http.Error(w, "Bad Request - refresh must be 0.."+strconv.Itoa(maxRefresh)+" seconds", http.StatusBadRequest)
			return
		}
		d.Refresh = n
	}
	writeHTML(w, r, boardTmpl, d)
}

// writeHTML renders tmpl with data and sends it as a self-contained page
// (no script, no external resource: boardCSP).
func writeHTML(w http.ResponseWriter, r *http.Request, tmpl *template.Template, data any) {
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, data); err != nil {
		http.Error(w, "Internal Server Error - "+err.Error(), http.StatusInternalServerError)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Security-Policy", boardCSP)
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}
