//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/pages"
)

// writeFlags writes name -> content into dir.
func writeFlags(t *testing.T, dir string, flags map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range flags {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPagesEndToEnd: the real binary serves the pages, /healthz and
// /metrics, and they follow the flags.
func TestPagesEndToEnd(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "flags")
	writeFlags(t, dir, map[string]string{"squid.80": "", "web.443": "drain 50% # deploy 7"})
	d := runDaemon(t, "--dir", dir)

	code, body := d.get(t, "/status.json")
	var v pages.StatusJSON
	if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil {
		t.Fatalf("/status.json: %d %v\n%s", code, err, body)
	}
	if len(v.Services) != 2 || v.Services[1].Name != "web.443" || v.Services[1].Effective != "drain" || v.Services[1].Since.IsZero() || !v.DirOK {
		t.Fatalf("/status.json: %+v", v)
	}
	if code, body := d.get(t, "/healthz"); code != 200 || !strings.HasPrefix(body, "ok\n") {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	if code, body := d.get(t, "/status.txt"); code != 200 || !strings.Contains(body, "web.443 drain code 404 weight 50%") {
		t.Fatalf("/status.txt: %d %q", code, body)
	}
	d.get(t, "/status?SERVICE=squid&PORT=80")
	// A change shows up on the pages and in the metrics.
	writeFlags(t, dir, map[string]string{"squid.80": "maint # disk"})
	d.waitCode(t, "/status?SERVICE=squid&PORT=80", 503)
	code, body = d.get(t, "/metrics")
	for _, want := range []string{
		`http_status_service_state{service="squid.80",state="maint"} 1`,
		`http_status_requests_total{code="200"} `,
		`http_status_requests_total{code="503"} `,
		"http_status_transitions_total 3",
		"http_status_watcher_events_total ",
		"http_status_publish_latency_seconds_count ",
		"process_open_fds ",
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q (code %d)", want, code)
		}
	}
	if strings.Contains(body, "http_status_publish_latency_seconds_count 0\n") {
		t.Error("publish latency not observed after a change")
	}
	if err := d.stop(t); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

// TestBoardChromium renders /board in headless Chromium (Debian's
// package) and checks that a drained service shows as drained, in the DOM
// and in a real, non-blank screenshot.
func TestBoardChromium(t *testing.T) {
	t.Parallel()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed (apt-get install chromium): skipping the board screenshot test")
	}
	dir := filepath.Join(t.TempDir(), "flags")
	writeFlags(t, dir, map[string]string{
		"status.html": "",
		"squid.80":    "",
		"web.443":     "drain 50% # deploy 1234",
		"db.5432":     "down # disk failed",
		"mail.25":     "maint until=2999-01-01T00:00:00Z # kernel",
	})
	d := runDaemon(t, "--dir", dir)
	url := d.base + "/board?refresh=0"

	tmp := t.TempDir()
	run := func(extra ...string) []byte {
		t.Helper()
		args := append([]string{
			"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + filepath.Join(tmp, "profile"), "--window-size=1024,768",
		}, extra...)
		args = append(args, url)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, chromium, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		cmd.Env = append(cleanEnv(), "HOME="+tmp)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %v: %v\n%s", extra, err, stderr.String())
		}
		return out
	}

	// One launch does both: the DOM on stdout and the screenshot.
	shot := filepath.Join(tmp, "board.png")
	dom := string(run("--dump-dom", "--screenshot="+shot))
	for _, want := range []string{
		`<tr class="state-drain" data-service="web.443" data-state="drain">`,
		`<span class="badge drain">drained</span>`,
		`deploy 1234`,
		`<tr class="state-down" data-service="db.5432" data-state="down">`,
		`<tr class="state-maint" data-service="mail.25" data-state="maint">`,
		`<tr class="state-up" data-service="squid.80" data-state="up">`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("DOM lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}

	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1024 || b.Dy() != 768 {
		t.Errorf("screenshot is %v, want 1024x768", b)
	}
	if n := colors(img, 50); n < 5 {
		t.Fatalf("screenshot looks blank: %d distinct colours", n)
	}
	// The drain badge colour (#fff0c2) is on the page.
	if !hasColor(img, 0xff, 0xf0, 0xc2) {
		t.Error("screenshot lacks the drain badge colour")
	}
	if out := os.Getenv("BOARD_SCREENSHOT"); out != "" {
		b, _ := os.ReadFile(shot)
		_ = os.WriteFile(out, b, 0o644)
	}
}

// colors counts distinct colours in img, stopping at limit.
func colors(img image.Image, limit int) int {
	seen := map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
			if len(seen) >= limit {
				return len(seen)
			}
		}
	}
	return len(seen)
}

func hasColor(img image.Image, r, g, b uint32) bool {
	bd := img.Bounds()
	for y := bd.Min.Y; y < bd.Max.Y; y++ {
		for x := bd.Min.X; x < bd.Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			if cr>>8 == r && cg>>8 == g && cb>>8 == b {
				return true
			}
		}
	}
	return false
}
