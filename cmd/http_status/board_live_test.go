//go:build linux

package main

import (
	"bytes"
	"fmt"
	"image/png"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/cdptest"
)

// TestBoardLiveChromium opens /board in headless Chromium and changes a
// state with the control command: the open page shows the drain, and the
// service's connection count moving, without a reload (a value set in the
// page survives). Screenshots before and after are kept as artifacts. Then
// SIGTERM with --lameduck, which publishes no snapshot: the open page shows
// the stopping banner within about a second (the daemon looks once a
// second), still without a reload.
func TestBoardLiveChromium(t *testing.T) {
	t.Parallel()
	browser := cdptest.Start(t)
	port := loopbackPort(t)
	api := "api." + strconv.Itoa(port)
	dir := filepath.Join(t.TempDir(), "flags")
	writeFlags(t, dir, map[string]string{
		"status.html": "",
		"squid.80":    "",
		"db.5432":     "maint # kernel",
		api:           "",
	})
	d := runDaemon(t, "--dir", dir, "--vips=false", "--lameduck=10s")
	conns := dialLoopback(t, port, 1, 1)

	browser.Open(d.base + "/board?refresh=0")
	browser.WaitEval("the board subscribes to /events", `document.body.dataset.live`, `"1"`)
	row := func(field string) string {
		return fmt.Sprintf(`(function(){var r=document.querySelector('tr[data-service="%s"]');return r?%s:null})()`, api, field)
	}
	browser.WaitEval("the count shows", row(`r.querySelector("td.conns").textContent`), `"2"`)
	if _, err := browser.Eval(`window.notReloaded = 42`); err != nil {
		t.Fatal(err)
	}
	art := artifactDir(t)
	before := browser.Screenshot(filepath.Join(art, "board-before.png"))

	out, err := exec.Command(testBinary(t), "drain", api, "--reason", "deploy 77", "--dir", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("http_status drain: %v\n%s", err, out)
	}
	browser.WaitEval("the row turns to drain", row(`r.dataset.state + "|" + r.className + "|" + r.querySelector(".badge").textContent`), `"drain|state-drain|drained"`)
	browser.WaitEval("the reason shows", row(`r.cells[3].textContent`), `"deploy 77"`)
	browser.WaitEval("the tally follows", `document.getElementById("n-drain").textContent + "|" + document.getElementById("n-maint").textContent + "|" + document.getElementById("n-up").textContent`, `"1 drain|1 maint|2 up"`)
	conns[0].Close()
	browser.WaitEval("the count goes down during the drain", row(`r.querySelector("td.conns").textContent`), `"1"`)
	after := browser.Screenshot(filepath.Join(art, "board-after.png"))
	if v, err := browser.Eval(`window.notReloaded`); err != nil || string(v) != "42" {
		t.Fatalf("the page was reloaded (window.notReloaded = %s, %v)", v, err)
	}
	conns[1].Close()
	browser.WaitEval("no connections left", row(`r.querySelector("td.conns").textContent`), `"0"`)

	// The screenshots are real pages: the drained row's tint (#fffaf0) is
	// only in the second.
	for name, b := range map[string][]byte{"before": before, "after": after} {
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s screenshot: %v", name, err)
		}
		if n := colors(img, 50); n < 5 {
			t.Fatalf("%s screenshot looks blank: %d colours", name, n)
		}
		if tinted := hasColor(img, 0xff, 0xfa, 0xf0); tinted != (name == "after") {
			t.Errorf("%s screenshot: drained-row tint present = %v", name, tinted)
		}
	}

	banner := `(function(){var b=document.getElementById("stopping");return b?b.textContent.slice(0,20):null})()`
	if v, err := browser.Eval(banner); err != nil || string(v) != "null" {
		t.Fatalf("a stopping banner before the stop: %s %v", v, err)
	}
	sent := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	browser.WaitEval("the stopping banner shows", banner, `"Stopping: lameduck: "`)
	took := time.Since(sent)
	if v, err := browser.Eval(`window.notReloaded`); err != nil || string(v) != "42" {
		t.Fatalf("the page was reloaded at the stop (window.notReloaded = %s, %v)", v, err)
	}
	// The daemon looks once a second; the rest is the machine's load.
	if took > 5*time.Second {
		t.Errorf("the banner showed %v after SIGTERM, want about a second", took)
	}
	t.Logf("stopping banner %v after SIGTERM", took)
}
