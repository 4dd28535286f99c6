//go:build linux

package pages

import (
	"encoding/json"
	"os"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/http-status/http_status/internal/cdptest"
	"github.com/http-status/http_status/internal/testsnap"
)

// layoutFlatten turns the board's services table back into the single
// table it was before chunking (the rules for the chunks removed), the
// starting point of every option.
const layoutFlatten = `
var ss = document.styleSheets[0];
for (var k = ss.cssRules.length - 1; k >= 0; k--) if (/^#services/.test(ss.cssRules[k].selectorText)) ss.deleteRule(k);
var one = document.createElement("table"), tb1 = document.createElement("tbody"), box = document.getElementById("services");
one.appendChild(box.querySelector("thead"));
Array.prototype.slice.call(box.querySelectorAll("tbody tr")).forEach(function (r) { tb1.appendChild(r) });
one.appendChild(tb1);
box.replaceWith(one);
one.id = "services";
`

// layoutCols are the grid options' columns: fixed or shares of the width,
// never sized by content, or the rows of different chunks would not line up.
const layoutCols = `minmax(0,2fr) minmax(0,1.6fr) 5em minmax(0,2.4fr) minmax(0,1.4fr) 5em 7.5em 11em`

// layoutOptions are the layouts tried, as scripts that rebuild the single
// table: several tables of CH rows, each in a content-visibility: auto box
// (b-tables, the one kept); one table whose tbodies of CH rows are blocks
// with content-visibility: auto and whose rows are grids
// (c-grid-tbodies); the same with content-visibility on every row
// (c-grid-rows); divs with ARIA roles in groups of CH (a-divs). "table"
// is the single table; "board" the page as served, unchanged.
var layoutOptions = map[string]string{
	"board": ``,
	"table": ``,
	"b-tables": `
var st = document.createElement("style");
st.textContent = ".chunk{content-visibility:auto;contain-intrinsic-size:auto " + (CH*31) + "px}.chunk table,table.hd{table-layout:fixed}";
document.head.appendChild(st);
var old = document.getElementById("services"), rows = Array.prototype.slice.call(old.querySelectorAll("tbody tr"));
var wrap = document.createElement("div");
var cg = '<colgroup><col style="width:18%"><col style="width:15%"><col style="width:7%"><col style="width:22%"><col style="width:13%"><col style="width:7%"><col style="width:9%"><col style="width:9%"></colgroup>';
var hd = document.createElement("table"); hd.className = "hd"; hd.innerHTML = cg; hd.appendChild(old.tHead); wrap.appendChild(hd);
for (var i = 0; i < rows.length; i += CH) {
  var d = document.createElement("div"); d.className = "chunk";
  var t = document.createElement("table"); t.innerHTML = cg; var tb = document.createElement("tbody"); t.appendChild(tb);
  rows.slice(i, i + CH).forEach(function (r) { tb.appendChild(r) });
  d.appendChild(t); wrap.appendChild(d);
}
old.replaceWith(wrap);
`,
	"c-grid-tbodies": `
var st = document.createElement("style");
st.textContent = "#services{display:block}#services thead,#services tbody{display:block}#services tbody{content-visibility:auto;contain-intrinsic-size:auto " + (CH*31) + "px}#services tr{display:grid;grid-template-columns:` + layoutCols + `}#services td[colspan]{grid-column:1/-1}";
document.head.appendChild(st);
var old = document.getElementById("services"), tb0 = old.tBodies[0], rows = Array.prototype.slice.call(tb0.rows);
for (var i = 0; i < rows.length; i += CH) {
  var tb = document.createElement("tbody");
  rows.slice(i, i + CH).forEach(function (r) { tb.appendChild(r) });
  old.appendChild(tb);
}
tb0.remove();
`,
	"c-grid-rows": `
var st = document.createElement("style");
st.textContent = "#services{display:block}#services thead,#services tbody{display:block}#services tbody tr{content-visibility:auto;contain-intrinsic-size:auto 31px}#services tr{display:grid;grid-template-columns:` + layoutCols + `}#services td[colspan]{grid-column:1/-1}";
document.head.appendChild(st);
`,
	"a-divs": `
var st = document.createElement("style");
st.textContent = ".rg{content-visibility:auto;contain-intrinsic-size:auto " + (CH*31) + "px}.tr{display:grid;grid-template-columns:` + layoutCols + `}.tr>div{padding:.35em .7em;border-bottom:1px solid #eee}";
document.head.appendChild(st);
var old = document.getElementById("services"), rows = Array.prototype.slice.call(old.querySelectorAll("tr"));
var wrap = document.createElement("div"); wrap.setAttribute("role", "table"); var g;
function conv(r) { var d = document.createElement("div"); d.className = "tr " + r.className; d.setAttribute("role", "row"); for (var k in r.dataset) d.dataset[k] = r.dataset[k];
  Array.prototype.forEach.call(r.cells, function (c) { var x = document.createElement("div"); x.className = c.className; x.setAttribute("role", c.tagName === "TH" ? "columnheader" : "cell"); while (c.firstChild) x.appendChild(c.firstChild); d.appendChild(x) }); return d }
rows.forEach(function (r, i) { if (i % CH === 1 || i === 0) { g = document.createElement("div"); g.className = i ? "rg" : "hd"; g.setAttribute("role", "rowgroup"); wrap.appendChild(g) } g.appendChild(conv(r)) });
old.replaceWith(wrap);
`,
}

// TestBoardLayoutOptions measures what a change costs the browser in each
// of the layouts tried for the services table (BENCHMARKS.md): the page is
// the board, turned back into one table (the old layout), then into the
// option's markup, in groups of CH (200) rows. Each change is timed three
// ways: the script, the layout it forces (document.body.offsetHeight) and
// until the next frame has been drawn. A measurement, not part of the
// suite: BOARD_LAYOUT_SERVICES=10000 BOARD_LAYOUT=b-tables go test
// -count=1 -run TestBoardLayoutOptions -v ./internal/pages
func TestBoardLayoutOptions(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("BOARD_LAYOUT_SERVICES"))
	variant := os.Getenv("BOARD_LAYOUT")
	if n <= 0 {
		t.Skip("a measurement: set BOARD_LAYOUT_SERVICES=10000 and BOARD_LAYOUT to one of board, table, b-tables, c-grid-tbodies, c-grid-rows, a-divs to run it")
	}
	if _, ok := layoutOptions[variant]; !ok {
		t.Fatalf("BOARD_LAYOUT=%q: not an option", variant)
	}
	ch := "200"
	st := testsnap.Store(t, bigFlags(n), nil)
	var stale atomic.Bool
	srv := boardServer(t, st, &stale)
	browser := cdptest.Start(t)
	browser.Open(srv.URL + "/board?refresh=0")
	browser.WaitEval("live", `document.body.dataset.live`, `"1"`)
	script := layoutFlatten + layoutOptions[variant]
	if variant == "board" {
		script = ""
	}
	if _, err := browser.Eval(`(function(){var CH=` + ch + `;` + script + `; document.body.offsetHeight; return 1})()`); err != nil {
		t.Fatal(err)
	}
	run := func(what, js string) {
		var r struct {
			Result struct {
				Value json.RawMessage `json:"value"`
			} `json:"result"`
			Exc any `json:"exceptionDetails"`
		}
		expr := `new Promise(function (res) { requestAnimationFrame(function () { setTimeout(function () {
var rows = Array.prototype.slice.call(document.querySelectorAll("[data-service]"));
function rep(r) { var c = r.cloneNode(true); c.className = c.className.replace(/state-\w+/, "state-down"); c.children[3].textContent = "x" + Math.random(); r.replaceWith(c) }
var t0 = performance.now();
` + js + `
var t1 = performance.now(); document.body.offsetHeight; var t2 = performance.now();
requestAnimationFrame(function () { setTimeout(function () { res([Math.round(t1 - t0), Math.round(t2 - t1), Math.round(performance.now() - t0)]) }, 0) });
}, 0) }) })`
		if err := browser.Call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &r); err != nil || r.Exc != nil {
			t.Fatal(err, r.Exc)
		}
		t.Logf("%s %s: [script, forced layout, until next frame] ms = %s", variant, what, r.Result.Value)
	}
	for range 2 {
		run("1 cell offscreen", `rows[rows.length >> 1].children[3].textContent = "x" + Math.random();`)
		run("1 cell onscreen", `rows[3].children[3].textContent = "x" + Math.random();`)
		run("250 rows replaced", `for (var i = 0; i < 250; i++) rep(rows[(i * 7919) % rows.length]);`)
		run("all rows replaced", `rows.forEach(rep);`)
	}
}
