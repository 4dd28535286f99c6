package httpd

import (
	"html/template"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// PathIndex is served to browsers only: GET / with Accept: text/html gets
// a small page saying what this port is, with links to the pages. Any other
// request for / keeps the plain-text 404 (and OPTIONS / its health-check
// answer), so a check pointed at / by mistake still fails.
const PathIndex = "/"

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
<p>This port tells load balancers whether the services on this host should get traffic.
Health checks ask <code>GET /status?SERVICE=name&amp;PORT=port&amp;VIP=addr</code> and get 200 while the service's flag file says up.</p>
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
	writeHTML(w, r, indexTmpl, struct{ Host, Version string }{p.host, p.opts.Version})
}

// acceptsHTML reports whether the request's Accept header asks for
// text/html by name (browsers do; curl's */* and a load balancer's checks
// do not), with a q-value above zero.
func acceptsHTML(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil || mt != "text/html" {
				continue
			}
			if q, ok := params["q"]; ok {
				if f, err := strconv.ParseFloat(q, 64); err != nil || f <= 0 {
					continue
				}
			}
			return true
		}
	}
	return false
}
