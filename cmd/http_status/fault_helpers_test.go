//go:build linux

package main

import (
	"testing"

	"github.com/http-status/http_status/internal/faulttest"
	"github.com/http-status/http_status/internal/pages"
)

// Short names for the shared fault-test helpers (internal/faulttest).

func startLoad(base, path string, workers int, accept func(code int) bool) *faulttest.LoadGen {
	return faulttest.StartLoad(base, path, workers, accept)
}

func statusJSON(t *testing.T, base string) pages.StatusJSON {
	t.Helper()
	return faulttest.StatusJSON(t, base)
}

func expectExact(t *testing.T, base string, want map[string]string) {
	t.Helper()
	faulttest.ExpectExact(t, base, want)
}

func metricValue(t *testing.T, base, name string) float64 {
	t.Helper()
	return faulttest.MetricValue(t, base, name)
}

func goroutinesBack(t *testing.T, base string, baseline float64) {
	t.Helper()
	faulttest.GoroutinesBack(t, base, baseline)
}

func httpGet(t *testing.T, url string) (int, string) { t.Helper(); return faulttest.HTTPGet(t, url) }

func isRoot() bool { return faulttest.IsRoot() }
