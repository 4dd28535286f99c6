//go:build linux

package watcher

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/testenv"
)

// logTally reads the JSON lines a watcher wrote: flag change lines, the
// changes counted by summary lines, and summary lines.
func logTally(t *testing.T, logs string) (flagLines, unlogged, summaries int) {
	t.Helper()
	for line := range strings.Lines(logs) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		if _, ok := m["flag"]; ok {
			flagLines++
		}
		if n, ok := m["unlogged"].(float64); ok {
			unlogged += int(n)
			summaries++
		}
	}
	return flagLines, unlogged, summaries
}

// A burst of small publications (flags removed one at a time, each
// published before the next goes, like an rm -rf over a slow loop) logs at
// most flagLineBudget flag lines per window; every change is still
// counted, in summary lines; and the status directory going away during
// the flood is logged all the same.
func TestFlagLinesBoundedOverTime(t *testing.T) {
	t.Parallel()
	const n = 400
	dir := filepath.Join(t.TempDir(), "status")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		write(t, filepath.Join(dir, fmt.Sprintf("svc%d.80", i)), "drain")
	}
	var logs testenv.LogBuffer
	start := time.Now()
	_, st := startWatcherLog(t, Options{Dir: dir}, &logs)
	waitFor(t, st, "the first scan", func(s *cache.Snapshot) bool { return s.Len() == n })
	gen := st.Load().Generation()
	for i := range n / 2 {
		name := fmt.Sprintf("svc%d.80", i)
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, st, name+" gone", hasNot(name))
	}
	if pubs := st.Load().Generation() - gen; pubs < n/4 {
		t.Fatalf("only %d publications for %d removals: the test needs small ones", pubs, n/2)
	}
	// With the budget spent, the directory going away is still an error
	// line, and the flags it takes are counted.
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, "no flags", func(s *cache.Snapshot) bool { return s.Len() == 0 })
	// The flags changed n (first scan) + n/2 (one by one) + n/2 (the
	// directory) times; wait for the last summary (the loop's tick).
	deadline := time.Now().Add(10 * time.Second)
	for {
		fl, un, _ := logTally(t, logs.String())
		if fl+un == 2*n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("logged %d flag lines and counted %d more, want %d in all:\n%s", fl, un, 2*n, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	fl, _, sums := logTally(t, logs.String())
	// The bound README states: 64 flag lines per 10 s.
	windows := int(elapsed/(10*time.Second)) + 1
	if fl > 64*windows {
		t.Errorf("%d flag lines in %v, want at most 64 per 10s", fl, elapsed)
	}
	if max := int(elapsed/summaryEvery) + 2; sums > max {
		t.Errorf("%d summary lines in %v, want at most %d", sums, elapsed, max)
	}
	if !strings.Contains(logs.String(), "status directory not watched") {
		t.Errorf("the directory going away was not logged during the flood:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "http_status list") {
		t.Errorf("the summary does not say where to look:\n%s", logs.String())
	}
	t.Logf("%d flag lines, %d summaries for %d changes in %v", fl, sums, 2*n, elapsed)
}
