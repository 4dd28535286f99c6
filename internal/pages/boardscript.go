//go:build linux

package pages

import (
	"crypto/sha256"
	"encoding/base64"
)

// boardJS keeps an open board current without reloading it: it listens to
// /events and rewrites the rows that change, as the server renders them
// (same cells, classes and texts). It is inline and allowed by its hash in
// the Content-Security-Policy, so the page still loads nothing else. A
// "sync" event naming another generation than the page's, or a stream that
// restarts, fetches /status.json and applies it, at most once every 5 s
// (on a big host whose counts all move, a sync would otherwise come every
// second). Applying it rebuilds only the rows that differ from what the
// service would show, and writes them in one task. The rows are in tables
// of boardChunk rows (the browser lays out only the chunks on screen and
// those a write lands in); a new row goes next to its neighbour, a chunk
// that grows past twice boardChunk rows is split in two, and one left
// empty is removed (a chunk never shown keeps the placeholder height of
// boardChunk rows). Without
// JavaScript the <noscript> refresh reloads the page instead; if the stream
// stays down for the refresh period, the script reloads it too. The stale
// and stopping banners follow the "daemon" events (and the first event of
// each stream).
//
// It must not contain "{{" (it is part of a template), "</script", nor
// comments (html/template removes comments from scripts, which would break
// the hash).
const boardJS = `(function () {
"use strict";
var body = document.body, box = document.getElementById("services"), chunk = +box.dataset.chunk || 200;
var gen = +body.dataset.generation, refresh = +body.dataset.refresh;
var skew = Date.parse(body.dataset.now) - Date.now(), downSince = Date.now();
var stale = !!document.getElementById("stale");
var es = null, opened = 0, states = ["up", "drain", "maint", "down"];
function el(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}
function ts(t) { return t ? new Date(t).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : ""; }
function ago(t) {
  if (!t) return "";
  var s = Math.floor((Date.now() + skew - Date.parse(t)) / 1000), m = Math.floor(s / 60), h = Math.floor(m / 60), d = Math.floor(h / 24);
  if (s < 0) return "just now";
  if (s < 60) return s + "s ago";
  if (m < 60) return m + "m " + (s % 60) + "s ago";
  if (h < 24) return h + "h " + (m % 60) + "m ago";
  if (d < 30) return d + "d " + (h % 24) + "h ago";
  return "on " + ts(t).slice(0, 10);
}
function rowFor(s) {
  var st = s.effective_state, tr = el("tr", "state-" + st), td;
  tr.dataset.service = s.name;
  tr.dataset.state = st;
  tr.appendChild(el("td", "name", s.name));
  td = el("td");
  td.appendChild(el("span", "badge " + st, st === "drain" ? "drained" : st));
  if (s.state !== st) {
    td.appendChild(document.createTextNode(" "));
    td.appendChild(el("span", "muted", "(flag says " + s.state + (stale ? ", watcher stalled" : s.probe && !s.probe.ok ? ", probe failing" : s.probe && s.state === "up" ? ", set by a probe" : ", expired") + ")"));
  }
  tr.appendChild(td);
  tr.appendChild(el("td", null, s.weight == null ? "" : s.weight + "%"));
  td = el("td", null, (s.reason || "") + (s.invalid ? " " : ""));
  if (s.invalid) td.appendChild(el("span", "invalid", "flag not fully understood, counted as " + s.state + ": " + s.invalid));
  tr.appendChild(td);
  td = el("td");
  (s.probe ? s.probe.checks : []).forEach(function (c) {
    var b = el("span", "badge " + (c.idle ? "idle" : c.ok ? "up" : "down"), c.name);
    b.title = (c.idle ? "idle, " : "") + c.kind + ": " + (c.msg || "");
    td.appendChild(b);
    td.appendChild(document.createTextNode(" "));
  });
  tr.appendChild(td);
  td = el("td", "conns", s.connections == null ? "-" : String(s.connections));
  if (s.conn_port) td.title = "port " + s.conn_port;
  tr.appendChild(td);
  var since = Date.parse(s.since) > 0 ? s.since : "";
  td = el("td", "when", ago(since));
  td.dataset.since = since;
  td.title = ts(since);
  tr.appendChild(td);
  tr.appendChild(el("td", "when", ts(s.expires)));
  return tr;
}
function same(a, b) {
  if (a.className !== b.className || a.cells.length !== b.cells.length) return false;
  for (var i = 0; i < a.cells.length; i++) {
    var x = a.cells[i], y = b.cells[i];
    if ("since" in x.dataset ? x.dataset.since !== y.dataset.since && Date.parse(x.dataset.since) !== Date.parse(y.dataset.since) : !x.isEqualNode(y)) return false;
  }
  return true;
}
function rows() { return Array.prototype.slice.call(box.querySelectorAll("tr[data-service]")); }
var byName = new Map(), genOf = new Map();
rows().forEach(function (r) { byName.set(r.dataset.service, r); });
function split(tb) {
  if (tb.rows.length <= 2 * chunk) return;
  var c = tb.closest(".chunk"), nc = el("div", "chunk"), t = el("table"), nb = el("tbody");
  while (tb.rows.length > chunk) nb.insertBefore(tb.rows[tb.rows.length - 1], nb.firstChild);
  t.appendChild(nb);
  nc.appendChild(t);
  c.parentNode.insertBefore(nc, c.nextSibling);
}
function drop(tr) {
  var tb = tr.parentNode;
  tr.remove();
  if (!tb.rows.length && !tb.parentNode.tHead) tb.closest(".chunk").remove();
}
function put(name, tr, old, after) {
  var next;
  byName.set(name, tr);
  if (old) {
    old.parentNode.replaceChild(tr, old);
    return;
  }
  if (after && after.parentNode) {
    after.parentNode.insertBefore(tr, after.nextSibling);
  } else {
    next = rows().filter(function (r) { return r.dataset.service > name; })[0] || document.getElementById("no-flags");
    next.parentNode.insertBefore(tr, next);
  }
  split(tr.parentNode);
}
function apply(s, g) {
  var old = byName.get(s.name), tr;
  if (genOf.get(s.name) > g) return;
  genOf.set(s.name, g);
  if (s.effective_state === "missing") {
    if (old) drop(old);
    byName.delete(s.name);
    return;
  }
  tr = rowFor(s);
  if (!old || !same(old, tr)) put(s.name, tr, old, null);
}
function tally() {
  var n = { up: 0, drain: 0, maint: 0, down: 0 }, all = rows();
  all.forEach(function (r) { if (r.dataset.state in n) n[r.dataset.state]++; });
  states.forEach(function (st) { document.getElementById("n-" + st).textContent = n[st] + " " + st; });
  document.getElementById("n-services").textContent = all.length;
  box.classList.toggle("skip", all.length > +box.dataset.skipFrom);
  var empty = document.getElementById("no-flags");
  if (empty) empty.hidden = all.length > 0;
  document.title = document.title.replace(/\d+\/\d+ up$/, n.up + "/" + all.length + " up");
  document.getElementById("gen").textContent = gen;
}
var lastResync = 0, resyncTimer = null, tallyTimer = null, ticks = 0;
function resync() {
  var wait = lastResync + 5000 - Date.now();
  if (wait > 0) {
    if (!resyncTimer) resyncTimer = setTimeout(function () { resyncTimer = null; resync(); }, wait);
    return;
  }
  lastResync = Date.now();
  fetch("/status.json", { cache: "no-store" }).then(function (r) { return r.json(); }).then(function (doc) {
    var list = doc.services, g = doc.generation, seen = new Set(), todo = [], i = 0;
    (function chunk() {
      for (var end = Math.min(i + 1000, list.length); i < end; i++) {
        var s = list[i], old = byName.get(s.name), tr;
        seen.add(s.name);
        if (genOf.get(s.name) > g) continue;
        tr = rowFor(s);
        if (old && same(old, tr)) genOf.set(s.name, g);
        else todo.push([s.name, tr, i > 0 ? list[i - 1].name : ""]);
      }
      if (i < list.length) {
        setTimeout(chunk, 0);
        return;
      }
      todo.forEach(function (x) {
        if (genOf.get(x[0]) > g) return;
        genOf.set(x[0], g);
        put(x[0], x[1], byName.get(x[0]), byName.get(x[2]));
      });
      byName.forEach(function (r, name) {
        if (!seen.has(name) && !(genOf.get(name) > g)) {
          drop(r);
          byName.delete(name);
        }
      });
      genOf.forEach(function (v, name) { if (!byName.has(name) && v <= g) genOf.delete(name); });
      if (g > gen) gen = g;
      tally();
    })();
  }).catch(function () {});
}
function live(on) {
  body.dataset.live = on ? "1" : "0";
  document.getElementById("live").textContent = on ? "live" : "reconnecting";
  if (!on && downSince === 0) downSince = Date.now();
  if (on) downSince = 0;
}
function banner(id, text) {
  var b = document.getElementById(id);
  if (!text) {
    if (b) b.remove();
    return;
  }
  if (!b) {
    b = el("div", "warn");
    b.id = id;
    var after = id === "stopping" && document.getElementById("stale") || document.querySelector(".meta");
    after.parentNode.insertBefore(b, after.nextSibling);
  }
  b.textContent = text;
}
function daemon(d) {
  if (!("stale" in d)) return;
  banner("stale", d.stale ? d.stale_reason + "." : "");
  if (d.stale !== stale) {
    stale = d.stale;
    resync();
  }
  banner("stopping", d.stopping ? "Stopping: " + d.stopping + "." : "");
}
function connect() {
  opened = Date.now();
  es = new EventSource("/events");
  es.addEventListener("sync", function (m) {
    var d = JSON.parse(m.data);
    live(true);
    daemon(d);
    if (d.generation !== gen) resync();
  });
  es.addEventListener("daemon", function (m) { daemon(JSON.parse(m.data)); });
  es.addEventListener("change", function (m) {
    var d = JSON.parse(m.data);
    apply(d, d.generation);
    if (d.generation > gen) gen = d.generation;
    if (!tallyTimer) tallyTimer = setTimeout(function () { tallyTimer = null; tally(); }, 200);
  });
  es.onerror = function () { live(false); };
}
setInterval(function () {
  if (++ticks % (byName.size > 1000 ? 30 : 1) === 0) box.querySelectorAll("td[data-since]").forEach(function (td) {
    var a = ago(td.dataset.since);
    if (td.textContent !== a) td.textContent = a;
  });
  if (es && es.readyState === 2 && Date.now() - opened > 5000) connect();
  if (refresh > 0 && downSince !== 0 && Date.now() - downSince > refresh * 1000) location.reload();
}, 1000);
connect();
})();
`

// boardScriptHash is the CSP source that allows boardJS and nothing else.
var boardScriptHash = func() string {
	sum := sha256.Sum256([]byte(boardJS))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()
