//go:build linux

package pages

import (
	"html/template"
	"net/http"
)

var indexTmpl = template.Must(template.New("index").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>http_status on {{.Host}}</title>
<style>
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:42em;padding:0 1em;color:#1d1d1f;background:#fafafa}
h1{font-size:1.4em}
code{font-family:ui-monospace,Menlo,Consolas,monospace;background:#f0f0f2;padding:0 .2em}
li{margin:.3em 0}
.meta{color:#555}
</style>
</head>
<body>
<h1>http_status on {{.Host}}</h1>
{{if .OwnPort}}<p>This port shows what http_status tells load balancers about the services on this host.
Health checks ask <code>GET /status?SERVICE=name&amp;PORT=port&amp;VIP=addr</code> on the check port, not here, and get 200 while the service's flag file says up.</p>
{{else}}<p>This port tells load balancers whether the services on this host should get traffic.
Health checks ask <code>GET /status?SERVICE=name&amp;PORT=port&amp;VIP=addr</code> and get 200 while the service's flag file says up.</p>
{{end}}
<ul>
<li><a href="/board">/board</a>: every service and address, for people</li>
<li><a href="/status.json">/status.json</a>: the same as JSON (<a href="/status.json?pretty">pretty</a>)</li>
<li><a href="/status.txt">/status.txt</a>: the same as plain text</li>
<li><a href="/metrics">/metrics</a>: Prometheus metrics</li>
<li><a href="/healthz">/healthz</a>: is the daemon itself healthy</li>
</ul>
<p class="meta">{{.Version}}</p>
</body>
</html>
`))

// serveIndex renders the index for a browser.
func (p *Pages) serveIndex(w http.ResponseWriter, r *http.Request) {
	writeHTML(w, r, indexTmpl, struct {
		Host, Version string
		OwnPort       bool
	}{p.host, p.opts.Version, p.opts.OwnPort})
}
