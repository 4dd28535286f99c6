package httpd

import (
	"bytes"
	"html/template"
	"net/http"
	"strconv"
	"time"
)

// boardCSP forbids every external or scripted resource: the board is one
// server-rendered document with inline CSS.
const boardCSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

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
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return now.Sub(t).Truncate(time.Second).String()
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{{if .Refresh}}<meta http-equiv="refresh" content="{{.Refresh}}">{{end}}
<title>http_status {{.Host}}: {{.V.Counts.up}}/{{len .V.Services}} up</title>
<style>
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#1d1d1f;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .3em}
.meta{color:#555;margin-bottom:1em}
.warn{background:#fde2e1;color:#8a1c17;padding:.4em .8em;border-radius:4px;margin:.5em 0;font-weight:600}
.tally span{display:inline-block;margin-right:.6em;padding:.2em .7em;border-radius:999px;font-weight:600}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px rgba(0,0,0,.08)}
th,td{text-align:left;padding:.35em .7em;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f0f0f2;font-weight:600}
td.when{white-space:nowrap}
td.name{font-family:ui-monospace,Menlo,Consolas,monospace}
.badge{display:inline-block;min-width:4.5em;text-align:center;padding:.1em .5em;border-radius:4px;font-weight:700;text-transform:uppercase;font-size:.85em}
.up{background:#d9f2dc;color:#14591d}
.drain{background:#fff0c2;color:#7a5400}
.maint{background:#dde7fb;color:#1f3f8a}
.down,.missing{background:#fbd9d7;color:#8a1c17}
tr.state-drain td{background:#fffaf0}
tr.state-down td,tr.state-maint td{background:#fff6f6}
.invalid{color:#8a1c17;font-size:.85em}
.muted{color:#777}
h2{font-size:1.1em;margin:1.5em 0 .4em}
</style>
</head>
<body>
<h1>http_status on {{.Host}}</h1>
<div class="meta">generation {{.V.Generation}}, built {{ts .V.Built}}, page rendered {{ts .V.Now}}{{if .Refresh}}, refreshes every {{.Refresh}} s{{end}}. Read-only: states change only through the status directory.</div>
{{if not .V.DirOK}}<div class="warn" id="dir-missing">Status directory missing: every service is out of rotation.</div>{{end}}
{{if not .V.VIPsOK}}<div class="warn" id="vips-stale">VIP list not current (netlink subscription down).</div>{{end}}
<div class="tally"><span class="up">{{.V.Counts.up}} up</span><span class="drain">{{.V.Counts.drain}} drain</span><span class="maint">{{.V.Counts.maint}} maint</span><span class="down">{{.V.Counts.down}} down</span></div>
<h2>Services ({{len .V.Services}})</h2>
<table id="services">
<thead><tr><th>Service</th><th>State</th><th>Weight</th><th>Reason</th><th>Probes</th><th>Since</th><th>Until</th></tr></thead>
<tbody>
{{range .V.Services}}<tr class="state-{{.Effective}}" data-service="{{.Name}}" data-state="{{.Effective}}">
<td class="name">{{.Name}}</td>
<td><span class="badge {{.Effective}}">{{if eq .Effective "drain"}}drained{{else}}{{.Effective}}{{end}}</span>{{if ne .State .Effective}} <span class="muted">(flag says {{.State}}{{if and .Probe (not .Probe.OK)}}, probe failing{{else}}, expired{{end}})</span>{{end}}</td>
<td>{{if .Weight}}{{.Weight}}%{{end}}</td>
<td>{{.Reason}}{{if .Invalid}} <span class="invalid">flag not understood, counted as up: {{.Invalid}}</span>{{end}}</td>
<td>{{with .Probe}}{{range .Checks}}<span class="badge {{if .Idle}}missing{{else if .OK}}up{{else}}down{{end}}" title="{{.Kind}}: {{.Msg}}">{{.Name}}</span> {{end}}{{end}}</td>
<td class="when" title="{{ts .Since}}">{{ago $.V.Now .Since}} ago</td>
<td class="when">{{ts .Expires}}</td>
</tr>
{{else}}<tr><td colspan="7" class="muted">No flag files: every service is out of rotation.</td></tr>
{{end}}</tbody>
</table>
<h2>Addresses ({{len .V.VIPs}})</h2>
<table id="vips">
<thead><tr><th>Address</th><th>Where</th></tr></thead>
<tbody>
{{range .V.VIPs}}<tr><td class="name">{{.Addr}}</td><td>{{if .Loopback}}loopback{{else}}interface{{end}}</td></tr>
{{else}}<tr><td colspan="2" class="muted">none tracked</td></tr>
{{end}}</tbody>
</table>
</body>
</html>
`))

// boardData is what the template sees.
type boardData struct {
	V       StatusJSON
	Host    string
	Refresh int // seconds; 0: no auto-refresh
}

// maxRefresh bounds ?refresh=N.
const maxRefresh = 3600

func (p *Pages) serveBoard(w http.ResponseWriter, r *http.Request) {
	d := boardData{V: View(p.opts.Store.Load(), p.now()), Refresh: int(p.opts.BoardRefresh / time.Second)}
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
