//go:build linux

package pages

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/httpd"
	"github.com/http-status/http_status/internal/cdptest"
	"github.com/http-status/http_status/internal/check"
	"github.com/http-status/http_status/internal/testsnap"
)

// boardServer serves the board, /status.json and /events over st on a
// loopback listener, as the daemon mounts them, with a stale switch the
// test turns (the watcher loop cannot be stalled from outside the binary).
func boardServer(t *testing.T, st *cache.Store, stale *atomic.Bool) *httptest.Server {
	t.Helper()
	staleFn := func() (time.Duration, bool) { return 7 * time.Second, stale.Load() }
	h := httpd.NewHandler(check.New(check.Options{Store: st}))
	New(Options{Store: st, Stale: staleFn}).Mount(h)
	ev := NewEvents(EventsOptions{Store: st, Stale: staleFn, Poll: 50 * time.Millisecond})
	ev.Mount(h)
	srv := httptest.NewUnstartedServer(h)
	srv.Config = httpd.NewServer(h, zerolog.Nop())
	srv.Start()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { ev.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait(); srv.Close() })
	return srv
}

// bigFlags is n flags, one in five each of up, drain with a reason, maint,
// down and up 50% (the views audit's mix).
func bigFlags(n int) map[string]string {
	kinds := []string{"", "drain # deploy 7", "maint # kernel", "down # disk", "up 50%"}
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("svc%05d.%d", i, 1000+i%5000)] = kinds[i%len(kinds)]
	}
	return m
}

// TestBoardBrowser opens the board in headless Chromium over a store the
// test publishes to. A publication that changes more than 100 services
// makes the page fetch /status.json and apply it: after it the rows are
// those of the new generation, in order (a removed service gone, an added
// one in its place), and only the rows that changed were rebuilt (the
// server's rows of unchanged services are kept). Then the watcher loop
// stalls and turns again: the stale banner comes and goes without a reload.
func TestBoardBrowser(t *testing.T) {
	t.Parallel()
	b := cache.NewBuilder(cache.Empty())
	names := map[string]bool{}
	set := func(b *cache.Builder, name, content string) {
		b.Set(name, entry(t, content))
		names[name] = true
	}
	for i := range 150 {
		set(b, fmt.Sprintf("svc%03d.80", i), "")
	}
	set(b, "keep.80", "maint # kernel")
	set(b, "gone.80", "")
	b.SetDirProblem("")
	b.SetVIPsOK(true)
	st := cache.NewStore()
	st.Publish(b.Snapshot(time.Now()))
	var stale atomic.Bool
	srv := boardServer(t, st, &stale)
	browser := cdptest.Start(t)
	browser.Open(srv.URL + "/board?refresh=0")
	browser.WaitEval("the board subscribes to /events", `document.body.dataset.live`, `"1"`)
	// A board of boardSkipFrom services or fewer skips no chunk: every row
	// is laid out and in the accessibility tree.
	skipped := `Array.prototype.filter.call(document.querySelectorAll("#services .chunk"), function (c) { return getComputedStyle(c).contentVisibility !== "visible" }).length`
	if v, err := browser.Eval(skipped); err != nil || string(v) != "0" {
		t.Fatalf("chunks the browser may skip on a board of %d services: %s (%v), want 0", len(names), v, err)
	}
	if _, err := browser.Eval(`document.querySelectorAll("tr[data-service]").forEach(function (r) { r.old = 1 }); window.notReloaded = 42`); err != nil {
		t.Fatal(err)
	}

	b = cache.NewBuilder(st.Load())
	for i := range 120 {
		set(b, fmt.Sprintf("svc%03d.80", i), "drain # deploy 9")
	}
	b.Delete("gone.80")
	delete(names, "gone.80")
	set(b, "new.80", "maint # new")
	set(b, "svc050a.80", "")
	next := b.Snapshot(time.Now())
	st.Publish(next)
	browser.WaitEval("the page applies the new generation", `document.getElementById("gen").textContent`, strconv.Quote(strconv.FormatUint(next.Generation(), 10)))

	want, _ := json.Marshal(strings.Join(slices.Sorted(maps.Keys(names)), " "))
	for what, c := range map[string][2]string{
		"the rows, in order":    {`Array.prototype.map.call(document.querySelectorAll("tr[data-service]"), function (r) { return r.dataset.service }).join(" ")`, string(want)},
		"the rows rebuilt":      {`Array.prototype.filter.call(document.querySelectorAll("tr[data-service]"), function (r) { return !r.old }).map(function (r) { return r.dataset.service }).length`, "122"},
		"an unchanged row kept": {`document.querySelector('tr[data-service="keep.80"]').old + "|" + document.querySelector('tr[data-service="svc120.80"]').old`, `"1|1"`},
		"a changed row":         {`(function () { var r = document.querySelector('tr[data-service="svc007.80"]'); return r.className + "|" + r.cells[1].textContent + "|" + r.cells[3].textContent })()`, `"state-drain|drained|deploy 9"`},
		"the added row":         {`(function () { var r = document.querySelector('tr[data-service="new.80"]'); return r.className + "|" + r.cells[1].textContent + "|" + r.cells[3].textContent + "|" + !r.old })()`, `"state-maint|maint|new|true"`},
		"the tally":             {`["up", "drain", "maint", "down"].map(function (s) { return document.getElementById("n-" + s).textContent }).join("|") + "|" + document.getElementById("n-services").textContent`, `"31 up|120 drain|2 maint|0 down|153"`},
	} {
		if v, err := browser.Eval(c[0]); err != nil || string(v) != c[1] {
			t.Errorf("%s: got %s (%v), want %s", what, v, err, c[1])
		}
	}

	banner := `(function () { var b = document.getElementById("stale"); return b ? b.textContent.slice(0, 22) : null })()`
	if v, err := browser.Eval(banner); err != nil || string(v) != "null" {
		t.Fatalf("a stale banner before the stall: %s %v", v, err)
	}
	stale.Store(true)
	browser.WaitEval("the stale banner shows", banner, `"watcher loop stalled: "`)
	stale.Store(false)
	browser.WaitEval("the stale banner goes", banner, "null")
	if v, err := browser.Eval(`window.notReloaded`); err != nil || string(v) != "42" {
		t.Fatalf("the page was reloaded (window.notReloaded = %s, %v)", v, err)
	}
}

// TestBoardChunks: the services table comes as tables of boardChunk rows,
// past boardSkipFrom services each in a box the browser may skip
// (content-visibility: auto), with the columns of every chunk under the
// header's. A board opened with 1,050 services has six chunks; then in one
// resync the 200 services of the second go, and so does that chunk, and
// 1,700 arrive, two after each of the others (each inserted next to its
// neighbour): no chunk grows past twice boardChunk rows and the rows stay
// in order. (TestBoardBrowser checks that a small board skips nothing.)
func TestBoardChunks(t *testing.T) {
	t.Parallel()
	flags := map[string]string{}
	const n = boardSkipFrom + 50
	for i := range n {
		flags[fmt.Sprintf("svc%04d.80", 3*i)] = "drain # chunk"
	}
	st := testsnap.Store(t, flags, nil)
	var stale atomic.Bool
	srv := boardServer(t, st, &stale)
	browser := cdptest.Start(t)
	browser.Open(srv.URL + "/board?refresh=0")
	browser.WaitEval("the board subscribes to /events", `document.body.dataset.live`, `"1"`)
	chunks := `Array.prototype.map.call(document.querySelectorAll("#services .chunk"), function (c) { return c.querySelectorAll("tr[data-service]").length + (getComputedStyle(c).contentVisibility === "auto" ? "" : " not skippable") }).join(" ")`
	browser.WaitEval("the server's chunks", chunks, `"200 200 200 200 200 50"`)

	b := cache.NewBuilder(st.Load())
	for i := range n {
		if i >= 200 && i < 400 {
			name := fmt.Sprintf("svc%04d.80", 3*i)
			delete(flags, name)
			b.Delete(name)
			continue
		}
		for j := 1; j <= 2; j++ {
			name := fmt.Sprintf("svc%04d.80", 3*i+j)
			flags[name] = ""
			b.Set(name, entry(t, ""))
		}
	}
	next := b.Snapshot(time.Now())
	st.Publish(next)
	browser.WaitEval("the page applies the new generation", `document.getElementById("gen").textContent`, strconv.Quote(strconv.FormatUint(next.Generation(), 10)))

	v, err := browser.Eval(chunks)
	if err != nil {
		t.Fatal(err)
	}
	var got string
	if err := json.Unmarshal(v, &got); err != nil {
		t.Fatal(err)
	}
	total := 0
	for f := range strings.FieldsSeq(got) {
		k, err := strconv.Atoi(f)
		if err != nil || k > 2*boardChunk || k == 0 {
			t.Fatalf("chunks after the resync: %s (each 1 to %d rows, skippable)", got, 2*boardChunk)
		}
		total += k
	}
	if total != len(flags) {
		t.Errorf("chunks after the resync: %s, %d rows in all, want %d", got, total, len(flags))
	}
	want, _ := json.Marshal(strings.Join(slices.Sorted(maps.Keys(flags)), " "))
	if v, err := browser.Eval(`Array.prototype.map.call(document.querySelectorAll("#services tr[data-service]"), function (r) { return r.dataset.service }).join(" ")`); err != nil || string(v) != string(want) {
		t.Errorf("the rows after the resync are not the services in order: %.200s (%v)", v, err)
	}
	// The last chunk's first row lines up with the header, cell by cell.
	align := `(function () { var cs = document.querySelectorAll("#services .chunk"), last = cs[cs.length - 1]; last.scrollIntoView();
  var th = document.querySelectorAll("#services th"), td = last.querySelector("tr[data-service]").cells, out = [];
  for (var i = 0; i < th.length; i++) { var a = th[i].getBoundingClientRect(), b = td[i].getBoundingClientRect(); if (Math.abs(a.left - b.left) > 1 || Math.abs(a.width - b.width) > 1) out.push(i + ": " + a.left + "+" + a.width + " vs " + b.left + "+" + b.width) }
  return out.join(", ") })()`
	browser.WaitEval("the columns line up", align, `""`)
}

// TestBoardResyncLoad measures how long a full resync of a big board keeps
// the page busy in headless Chromium: the long tasks (over 50 ms, the
// browser's own PerformanceObserver) from the sync event until the page
// shows the change, and the slowest of DevTools evaluations sent every
// 250 ms meanwhile. One live change (a "change" event for a row in the
// middle of the table), then two resyncs: one after a publication that
// changed 250 services (the others unchanged), one after the watcher loop
// stalled (every row changes). It is a measurement, not part of the suite:
// BOARD_RESYNC_SERVICES=10000 go test -run TestBoardResyncLoad -v ./internal/pages
func TestBoardResyncLoad(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("BOARD_RESYNC_SERVICES"))
	if n <= 0 {
		t.Skip("a measurement: set BOARD_RESYNC_SERVICES=10000 to run it")
	}
	flags := bigFlags(n)
	st := testsnap.Store(t, flags, nil)
	var stale atomic.Bool
	srv := boardServer(t, st, &stale)
	browser := cdptest.Start(t)
	browser.Open(srv.URL + "/board?refresh=0")
	browser.WaitEval("the board subscribes to /events", `document.body.dataset.live`, `"1"`)
	if _, err := browser.Eval(`window.lt = []; new PerformanceObserver(function (l) { l.getEntries().forEach(function (e) { lt.push(e.duration) }) }).observe({ type: "longtask" }); 1`); err != nil {
		t.Fatal(err)
	}

	if err := browser.Call("Performance.enable", map[string]any{}, nil); err != nil {
		t.Fatal(err)
	}
	// metrics are the page's cumulative durations (seconds): script,
	// style, layout, all tasks.
	metrics := func() map[string]float64 {
		var r struct {
			Metrics []struct {
				Name  string  `json:"name"`
				Value float64 `json:"value"`
			} `json:"metrics"`
		}
		if err := browser.Call("Performance.getMetrics", map[string]any{}, &r); err != nil {
			t.Fatal(err)
		}
		m := map[string]float64{}
		for _, x := range r.Metrics {
			m[x.Name] = x.Value
		}
		return m
	}
	measure := func(what string, trigger func() string, doneExpr string) {
		t.Helper()
		if _, err := browser.Eval(`lt.length = 0; document.querySelectorAll("tr[data-service]").forEach(function (r) { r.old = 1 }); 1`); err != nil {
			t.Fatal(err)
		}
		before := metrics()
		start := time.Now()
		want := trigger()
		var slowest time.Duration
		done := false
		for !done {
			if time.Since(start) > 60*time.Second {
				t.Fatalf("%s: the page did not show %s", what, want)
			}
			t0 := time.Now()
			v, err := browser.Eval(doneExpr)
			if err != nil {
				t.Fatal(err)
			}
			slowest = max(slowest, time.Since(t0))
			done = string(v) == want
			time.Sleep(250 * time.Millisecond)
		}
		took := time.Since(start)
		// Let a chunked apply or the tally finish before reading the tasks.
		time.Sleep(time.Second)
		rebuilt, err := browser.Eval(`Array.prototype.filter.call(document.querySelectorAll("tr[data-service]"), function (r) { return !r.old }).length`)
		if err != nil {
			t.Fatal(err)
		}
		v, err := browser.Eval(`JSON.stringify(lt)`)
		if err != nil {
			t.Fatal(err)
		}
		var js string
		var tasks []float64
		if json.Unmarshal(v, &js) != nil || json.Unmarshal([]byte(js), &tasks) != nil {
			t.Fatalf("long tasks: %s", v)
		}
		after := metrics()
		var sum, most float64
		for _, d := range tasks {
			sum += d
			most = max(most, d)
		}
		t.Logf("%s at %d services: %s rows rebuilt, shown after %v; long tasks: %d, %.0f ms in all, longest %.0f ms; slowest evaluation %v; script %.0f ms, style %.0f ms, layout %.0f ms, all tasks %.0f ms",
			what, n, rebuilt, took.Round(time.Millisecond), len(tasks), sum, most, slowest.Round(time.Millisecond),
			1000*(after["ScriptDuration"]-before["ScriptDuration"]), 1000*(after["RecalcStyleDuration"]-before["RecalcStyleDuration"]),
			1000*(after["LayoutDuration"]-before["LayoutDuration"]), 1000*(after["TaskDuration"]-before["TaskDuration"]))
	}
	names := slices.Sorted(maps.Keys(flags))
	one := names[n/2]
	measure("one live change (a row off screen)", func() string {
		b := cache.NewBuilder(st.Load())
		b.Set(one, entry(t, "down # live "+one))
		st.Publish(b.Snapshot(time.Now()))
		return `"down"`
	}, `document.querySelector('tr[data-service="`+one+`"]').dataset.state`)
	measure("resync, 250 changed", func() string {
		b := cache.NewBuilder(st.Load())
		i := 0
		for name := range flags {
			if name == names[n-1] {
				continue // the last row stays up: the stale resync below looks at it
			}
			if i++; i > 250 {
				break
			}
			b.Set(name, entry(t, "drain # resync "+name))
		}
		s := b.Snapshot(time.Now())
		st.Publish(s)
		return strconv.Quote(strconv.FormatUint(s.Generation(), 10))
	}, `document.getElementById("gen").textContent`)
	// The script resyncs at most once every 5 s.
	time.Sleep(5 * time.Second)
	last := `(function(){var r=document.querySelector("#no-flags").previousElementSibling;return r.dataset.state+"|"+r.cells[1].textContent})()`
	measure("resync, stale (every row changes)", func() string {
		stale.Store(true)
		return `"down|down (flag says up, watcher stalled)"`
	}, last)
}
