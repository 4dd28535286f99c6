//go:build linux

package daemon

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/faulttest"
	"github.com/http-status/http_status/internal/testenv"
	"github.com/http-status/http_status/watcher"
)

// TestProbesReachStatus runs the daemon with a probe file:
// a failing HTTP probe turns an up flag into 503 with the probe's error, a
// drain flag still wins, a SIGHUP-style reload of a broken file keeps the
// running probes, and a good reload that drops the probe restores 200.
func TestProbesReachStatus(t *testing.T) {
	t.Parallel()
	var healthy atomic.Bool
	healthy.Store(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			http.Error(w, "sick", 500)
		}
	})}
	go target.Serve(ln)
	defer target.Close()

	dir := t.TempDir()
	statusDir := filepath.Join(dir, "status")
	conf := filepath.Join(dir, "probes.toml")
	probeConf := fmt.Sprintf("[[probe]]\nservice = \"web.80\"\nkind = \"http\"\naddress = %q\ninterval = \"100ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1\n", ln.Addr())
	if err := os.WriteFile(conf, []byte(probeConf), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.LogBuffer{}
	if err := os.MkdirAll(statusDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(statusDir, "web.80"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(statusDir)
	cfg.ConfigFile = conf
	r := startDaemonLog(t, cfg, Options{}, zerolog.New(logs))
	get := func() (int, string) { return faulttest.HTTPGet(t, r.base+"/status?SERVICE=web&PORT=80") }
	waitCode := func(want int, what string) string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, body := get()
			if code == want {
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: /status = %d %q, want %d\nlogs:\n%s", what, code, body, want, logs)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	probeRuns := func(result string) float64 {
		return faulttest.MetricValue(t, r.base, `http_status_probe_duration_seconds_count{result="`+result+`",service="web.80"}`)
	}
	waitCode(200, "probe passing")
	healthy.Store(false)
	body := waitCode(503, "probe failing")
	if !strings.Contains(body, "probe http: HTTP 500, want 200-399") {
		t.Errorf("503 body lacks the probe's error: %q", body)
	}
	// The operator's drain wins over the failing probe.
	if err := os.WriteFile(filepath.Join(statusDir, "web.80"), []byte("drain # deploy\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitCode(404, "drain")
	if probeRuns("pass") <= 0 || probeRuns("fail") <= 0 {
		t.Errorf("probe metrics saw %v passing and %v failing attempts, want both > 0", probeRuns("pass"), probeRuns("fail"))
	}
	if err := os.WriteFile(filepath.Join(statusDir, "web.80"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitCode(503, "up flag, probe still failing")

	// A broken file is refused; the probe keeps running.
	if err := os.WriteFile(conf, []byte(probeConf+"bogus = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.d.Reload()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "probe config not reloaded"); {
		if time.Now().After(deadline) {
			t.Fatalf("broken reload not refused; logs:\n%s", logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// ... and /healthz says so until a good file is loaded: a SIGHUP
	// whose file was broken must not look like one that took.
	code, hz := faulttest.HTTPGet(t, r.base+"/healthz")
	if code != 200 || !strings.Contains(hz, "degraded: probe config "+conf+" not reloaded, the previous probes still run: ") || !strings.Contains(hz, "bogus") {
		t.Errorf("/healthz after a refused reload = %d %q, want 200 with a degraded line naming the file and the error", code, hz)
	}
	healthy.Store(true)
	waitCode(200, "probe passing again")
	healthy.Store(false)
	waitCode(503, "probe failing again")
	// Dropping the probe hands the service back to its flag.
	if err := os.WriteFile(conf, []byte("# no probes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.d.Reload()
	waitCode(200, "probe removed")
	if code, hz := faulttest.HTTPGet(t, r.base+"/healthz"); code != 200 || strings.Contains(hz, "degraded") {
		t.Errorf("/healthz after a good reload = %d %q, want 200 without a degraded line", code, hz)
	}
	for deadline := time.Now().Add(10 * time.Second); r.d.Store().Load().NumProbed() != 0; {
		if time.Now().After(deadline) {
			t.Fatal("probe status left in the snapshot")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Its duration series go with it: a reload is no way to make /metrics
	// grow with every service ever probed.
	if _, m := faulttest.HTTPGet(t, r.base+"/metrics"); strings.Contains(m, "http_status_probe_duration_seconds_count{") {
		t.Errorf("/metrics still has the removed probe's series:\n%s", grepLines(m, "probe_duration_seconds_count{"))
	}
	r.stopClean(t)
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return strings.Join(out, "\n")
}

func TestNewProbesBadConfig(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(conf, []byte("[[probe]]\nservice = \"x.1\"\nkind = \"nope\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	store := cache.NewStore()
	w, err := watcher.New(watcher.Options{Dir: t.TempDir(), Store: store})
	if err != nil {
		t.Fatal(err)
	}
	_, err = newProbes(nil, conf, 4, false, store, w, nil, nil, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "bad.toml:1: probe \"x.1/nope\": kind \"nope\"") {
		t.Fatalf("err = %v", err)
	}
}
