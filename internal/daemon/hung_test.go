//go:build linux

package daemon

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/check"
	"github.com/http-status/http_status/internal/faulttest"
	"github.com/http-status/http_status/internal/testenv"
	"github.com/rs/zerolog"
)

// hungLogger is the daemon's logger in these tests: a buffer, shown when
// the test fails. A goroutine blocked on the hung filesystem outlives Run
// by design and may log once the filesystem lets it go, after the test has
// ended, which a logger writing to t would turn into a panic.
func hungLogger(t *testing.T) zerolog.Logger {
	logs := &testenv.LogBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs)
		}
	})
	return zerolog.New(logs).Level(zerolog.WarnLevel)
}

// TestHungStatusDir: a filesystem mounted over the status directory stops
// answering (an NFS server gone, a FUSE server hung: produced for real, in
// a mount namespace of the test's own). The watcher loop blocks in its
// stat of the directory: every check must go 503 after --stale-after (the
// flags can no longer be read), come back by itself once the filesystem
// answers again, and the daemon must stop within --grace of SIGTERM even
// while the loop is still blocked.
func TestHungStatusDir(t *testing.T) {
	testenv.RunInMountNamespace(t, "TestHungStatusDirChild")
}

func TestHungStatusDirChild(t *testing.T) {
	testenv.IsChild(t, "TestHungStatusDirChild")
	dir := filepath.Join(t.TempDir(), "status")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFlags(t, dir, map[string]string{"web.80": ""})
	cfg := testConfig(dir)
	cfg.VIPs = false
	cfg.StaleAfter = 2 * time.Second
	cfg.Grace = time.Second
	s := startDaemonLog(t, cfg, Options{}, hungLogger(t))
	get := func() (int, string) {
		resp, err := http.Get(s.base + "/status?SERVICE=web&PORT=80")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("X-Status-Reason") + " " + string(b)
	}
	waitCode := func(what string, want int) {
		t.Helper()
		testenv.PollUntil(t, what, 20*time.Second, func() (bool, string) {
			code, body := get()
			return code == want, body
		})
	}
	waitCode("up before the hang", 200)

	release := faulttest.HungMountAt(t, dir)
	waitCode("503 once the loop has stalled on the hung directory", 503)
	if _, body := get(); !strings.Contains(body, check.ReasonStale) {
		t.Errorf("while hung: %q, want the stale reason", body)
	}

	// The server fails every request (EIO) and the mount goes: the loop
	// turns again and reads the flags under it.
	release()
	waitCode("up again once the directory answers", 200)

	faulttest.HungMountAt(t, dir)
	waitCode("503 on the second hang", 503)
	s.cancel()
	stopBy := cfg.Grace + 3*time.Second
	select {
	case s.err = <-s.done:
		s.ended = true
		if s.err != nil {
			t.Errorf("Run: %v", s.err)
		}
	case <-time.After(stopBy):
		t.Errorf("Run did not return %s after the stop while the watcher loop was blocked on the hung directory", stopBy)
		// Cleanup releases the mount (it was made last), then the
		// daemon stops.
	}
}

// TestHungFlagMount: a filesystem mounted over one flag (a container's
// state bind-mounted from NFS) stops answering. That service's flag cannot
// be read: it counts as absent. Every other service must keep its answer:
// the watcher loop must not block on that one read, which took the whole
// host out (503 stale) for one service's mount.
func TestHungFlagMount(t *testing.T) {
	testenv.RunInMountNamespace(t, "TestHungFlagMountChild")
}

func TestHungFlagMountChild(t *testing.T) {
	testenv.IsChild(t, "TestHungFlagMountChild")
	dir := t.TempDir()
	writeFlags(t, dir, map[string]string{"web.80": "", "api.80": ""})
	cfg := testConfig(dir)
	cfg.VIPs = false
	cfg.StaleAfter = 2 * time.Second
	cfg.Grace = time.Second
	s := startDaemonLog(t, cfg, Options{}, hungLogger(t))
	get := func(svc string) (int, string) {
		resp, err := http.Get(s.base + "/status?SERVICE=" + svc + "&PORT=80")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("X-Status-Reason") + " " + string(b)
	}
	waitCode := func(what, svc string, want int) {
		t.Helper()
		testenv.PollUntil(t, what, 20*time.Second, func() (bool, string) {
			code, body := get(svc)
			return code == want, body
		})
	}
	waitCode("api up before the hang", "api", 200)

	release := faulttest.HungMountAt(t, filepath.Join(dir, "api.80"))
	// 404 (absent), not 503 stale: the loop went on past the read.
	waitCode("api absent while its mount hangs", "api", 404)
	if code, body := get("web"); code != 200 {
		t.Errorf("web while api's mount hangs: %d %q, want 200", code, body)
	}
	if age := s.d.Watcher().HeartbeatAge(); age > time.Second {
		t.Errorf("watcher loop last turned %s ago while api's mount hangs", age)
	}
	release()
	waitCode("api up again once its mount is gone", "api", 200)
	s.stopClean(t)
}

// TestHungConfigReload: the probe file is on a filesystem that stops
// answering when a SIGHUP comes. The reload is read on the main loop: it
// must give up within configReadWait, say why (/healthz), refuse the next
// one at once while that read still hangs, keep the running probes and
// every answer, and the daemon must still stop on SIGTERM.
func TestHungConfigReload(t *testing.T) {
	testenv.RunInMountNamespace(t, "TestHungConfigReloadChild")
}

func TestHungConfigReloadChild(t *testing.T) {
	testenv.IsChild(t, "TestHungConfigReloadChild")
	configReadWait = 300 * time.Millisecond // this process runs this test alone
	// The tcp probe's target.
	target := testenv.ServeTCP(t, func(c net.Conn) { c.Close() })
	dir := t.TempDir()
	status := filepath.Join(dir, "status")
	if err := os.Mkdir(status, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFlags(t, status, map[string]string{"web.80": ""})
	conf := filepath.Join(dir, "probes.toml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "[[probe]]\nservice = \"web.80\"\nkind = \"tcp\"\naddress = %q\ninterval = \"1s\"\ntimeout = \"500ms\"\n", target), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(status)
	cfg.VIPs = false
	cfg.ConfigFile = conf
	cfg.Grace = time.Second
	s := startDaemonLog(t, cfg, Options{}, hungLogger(t))
	testenv.PollUntil(t, "web up with its probe passing", 10*time.Second, func() (bool, string) {
		code, body := faulttest.HTTPGet(t, s.base+"/status?SERVICE=web&PORT=80")
		return code == 200, body
	})

	faulttest.HungMountAt(t, conf)
	s.d.Reload()
	testenv.PollUntil(t, "/healthz saying the reload could not read the file", 10*time.Second, func() (bool, string) {
		_, body := faulttest.HTTPGet(t, s.base+"/healthz")
		return strings.Contains(body, "no answer within 300ms"), body
	})
	s.d.Reload()
	testenv.PollUntil(t, "the next reload refused at once", 10*time.Second, func() (bool, string) {
		_, body := faulttest.HTTPGet(t, s.base+"/healthz")
		return strings.Contains(body, "an earlier read has not ended"), body
	})
	if code, body := faulttest.HTTPGet(t, s.base+"/status?SERVICE=web&PORT=80"); code != 200 {
		t.Errorf("web while the probe file hangs: %d %q, want 200 (the running probe passes)", code, body)
	}
	s.cancel()
	select {
	case s.err = <-s.done:
		s.ended = true
		if s.err != nil {
			t.Errorf("Run: %v", s.err)
		}
	case <-time.After(cfg.Grace + 5*time.Second):
		t.Errorf("Run did not return %s after the stop with the probe file's read hanging", cfg.Grace+5*time.Second)
	}
}
