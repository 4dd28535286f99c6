package benchutil

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {99, 99}, {100, 100}, {0, 1}} {
		if got := Percentile(d, c.p); got != c.want {
			t.Errorf("Percentile(1..100, %v) = %v, want %v", c.p, got, c.want)
		}
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("Percentile(nil) = %v, want 0", got)
	}
}

// TestClientKeepAlive: the polling client reads answers back to back on one
// connection, and redials when the server closes it.
func TestClientKeepAlive(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if r.URL.Query().Get("close") != "" {
			w.Header().Set("Connection", "close")
		}
		code := 200
		fmt.Sscan(r.URL.Query().Get("code"), &code)
		w.WriteHeader(code)
		fmt.Fprint(w, strings.Repeat("x", 100))
	}))
	defer srv.Close()
	c, err := Dial(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, q := range []string{"/?code=404", "/", "/?close=1", "/?code=503", "/"} {
		want := 200
		fmt.Sscanf(q, "/?code=%d", &want)
		got, err := c.Get(q)
		if err != nil || got != want {
			t.Fatalf("request %d %s: got %d, %v; want %d", i, q, got, err, want)
		}
	}
	if n.Load() != 5 {
		t.Errorf("server saw %d requests, want 5", n.Load())
	}
}

func TestStatusKiB(t *testing.T) {
	const status = "Name:\thttp_status\nVmPeak:\t 1265348 kB\nVmHWM:\t   45312 kB\nVmRSS:\t   12000 kB\nThreads:\t8\n"
	for field, want := range map[string]int{"VmHWM": 45312, "VmRSS": 12000, "VmPeak": 1265348} {
		if got, err := statusKiB(status, field); err != nil || got != want {
			t.Errorf("statusKiB(%s) = %d, %v; want %d", field, got, err, want)
		}
	}
	for _, field := range []string{"VmSwap", "Threads", "Vm"} {
		if got, err := statusKiB(status, field); err == nil {
			t.Errorf("statusKiB(%s) = %d, want an error", field, got)
		}
	}
	// This process's own: resident memory is never zero.
	if got, err := ProcStatusKiB(os.Getpid(), "VmRSS"); err != nil || got <= 0 {
		t.Errorf("ProcStatusKiB(self, VmRSS) = %d, %v", got, err)
	}
}
