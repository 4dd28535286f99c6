package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/httpd"
	"github.com/http-status/http_status/watcher"
)

// syncBuf is a goroutine-safe log sink.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestProbesReachStatus wires watcher, probe runner and /status as run does:
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
	logs := &syncBuf{}
	log := zerolog.New(logs)
	store := cache.NewStore()
	w, err := watcher.New(watcher.Options{Dir: statusDir, Store: store, Logger: log, CreateDir: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(statusDir, "web.80"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var passed, failed atomic.Int64
	observe := func(service string, ok bool, d time.Duration) {
		if service == "web.80" && d >= 0 {
			if ok {
				passed.Add(1)
			} else {
				failed.Add(1)
			}
		}
	}
	pr, err := newProbes(conf, 4, false, store, w, observe, log)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = w.Run(ctx) })
	defer wg.Wait()
	defer cancel()
	<-w.Ready()

	h := httpd.NewHandler(httpd.NewChecker(httpd.CheckerOptions{Store: store}))
	get := func() (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/status?SERVICE=web&PORT=80", nil))
		return rec.Code, rec.Body.String()
	}
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
	if passed.Load() == 0 || failed.Load() == 0 {
		t.Errorf("Observe hook saw %d passing and %d failing attempts, want both > 0", passed.Load(), failed.Load())
	}
	if err := os.WriteFile(filepath.Join(statusDir, "web.80"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitCode(503, "up flag, probe still failing")

	// A broken file is refused; the probe keeps running.
	if err := os.WriteFile(conf, []byte(probeConf+"bogus = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pr.reload()
	if !strings.Contains(logs.String(), "probe config not reloaded") || pr.runner.NumProbes() != 1 {
		t.Fatalf("broken reload: probes %d, logs:\n%s", pr.runner.NumProbes(), logs)
	}
	healthy.Store(true)
	waitCode(200, "probe passing again")
	healthy.Store(false)
	waitCode(503, "probe failing again")
	// Dropping the probe hands the service back to its flag.
	if err := os.WriteFile(conf, []byte("# no probes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pr.reload()
	waitCode(200, "probe removed")
	if store.Load().NumProbed() != 0 {
		t.Errorf("probe status left in the snapshot")
	}
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
	_, err = newProbes(conf, 4, false, store, w, nil, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "bad.toml:1: probe \"x.1/nope\": kind \"nope\"") {
		t.Fatalf("err = %v", err)
	}
}
