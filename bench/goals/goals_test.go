package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

// wrkOut is wrk 4.1.0's output for a run with --latency and errors.
const wrkOut = `Running 1s test @ http://127.0.0.1:8080/status.html
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   192.69us  145.36us   3.75ms   93.69%
    Req/Sec    40.07k     2.17k   43.93k    70.00%
  Latency Distribution
     50%  160.00us
     75%  211.00us
     90%  290.00us
     99%    1.25ms
  79735 requests in 1.00s, 18.93MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:  79735.23
Transfer/sec:     18.93MB
`

func TestParseWrk(t *testing.T) {
	w, err := parseWrk(strings.NewReader(wrkOut))
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{RPS: 79735.23, P99MS: 1.25, Errors: 5, Non2xx: 7}
	if w != want {
		t.Errorf("parseWrk = %+v, want %+v", w, want)
	}

	// Without errors, p99 in microseconds.
	clean := strings.NewReplacer("    1.25ms", "  796.00us", "  Socket errors: connect 0, read 3, write 0, timeout 2\n", "",
		"  Non-2xx or 3xx responses: 7\n", "").Replace(wrkOut)
	w, err = parseWrk(strings.NewReader(clean))
	if err != nil {
		t.Fatal(err)
	}
	if want := (wrkResult{RPS: 79735.23, P99MS: 0.796}); math.Abs(w.P99MS-want.P99MS) > 1e-9 || w.RPS != want.RPS || w.Errors != 0 || w.Non2xx != 0 {
		t.Errorf("parseWrk(clean) = %+v, want %+v", w, want)
	}

	// The Thread Stats "Latency" line is not the distribution.
	noDist := strings.Replace(wrkOut, "  Latency Distribution\n", "", 1)
	noDist = strings.Replace(noDist, "     99%    1.25ms\n", "", 1)
	if _, err := parseWrk(strings.NewReader(noDist)); err == nil {
		t.Error("parseWrk accepted an output without --latency's 99% line")
	}
	if _, err := parseWrk(strings.NewReader("unable to connect to 127.0.0.1:1 Connection refused\n")); err == nil {
		t.Error("parseWrk accepted a failed run")
	}
}

func TestWrkMS(t *testing.T) {
	for in, want := range map[string]float64{"87.00us": 0.087, "1.23ms": 1.23, "2.01s": 2010, "1.50m": 90000, "1.00h": 3600000} {
		got, err := wrkMS(in)
		if err != nil || math.Abs(got-want) > 1e-9 {
			t.Errorf("wrkMS(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"12", "ms", "1.2.3ms", ""} {
		if _, err := wrkMS(bad); err == nil {
			t.Errorf("wrkMS(%q) accepted", bad)
		}
	}
}

const results = "" +
	"1\tkeepalive\t16\tnginx /status.html\tbase\t100000\t1.0\t0\t0\n" +
	"1\tkeepalive\t16\tours\tgoal\t130000\t0.8\t0\t0\n" +
	"1\tclose\t1\tours\tgoal\t9000\t0.2\t0\t0\n" +
	"1\tclose\t1\tnginx /status.html\tbase\t10000\t0.1\t0\t0\n" +
	"2\tkeepalive\t16\tours\tgoal\t110000\t1.2\t0\t0\n" +
	"2\tkeepalive\t16\tnginx /status.html\tbase\t100000\t1.0\t0\t0\n" +
	"2\tclose\t1\tnginx /status.html\tbase\t10000\t0.1\t0\t0\n" +
	"2\tclose\t1\tours\tgoal\t11000\t0.05\t0\t1\n" +
	"3\tkeepalive\t16\tours\tgoal\t125000\t0.9\t0\t0\n" +
	"3\tkeepalive\t16\tnginx /status.html\tbase\t100000\t1.0\t0\t0\n" +
	"\n" +
	"1\tagent\t64\tnginx /status.html\tbase\t20000\t5\t0\t0\n" +
	"1\tagent\t64\tours /status\tinfo\t25000\t4\t0\t0\n" +
	"1\tagent\t64\tours agent x.80\tgoal\t22000\t4.5\t0\t0\n" +
	// Another cell whose rounds ran the targets in another order: the
	// table lists them in the order of the file's first appearance.
	"1\tagent\t16\tours agent x.80\tgoal\t20000\t4.5\t0\t0\n" +
	"1\tagent\t16\tours /status\tinfo\t20000\t4\t0\t0\n" +
	"1\tagent\t16\tnginx /status.html\tbase\t20000\t5\t0\t0\n"

func TestTable(t *testing.T) {
	rows, err := readResults(strings.NewReader(results))
	if err != nil {
		t.Fatal(err)
	}
	tb := buildTable(rows)
	if tb.rounds != 3 {
		t.Errorf("rounds = %d, want 3", tb.rounds)
	}
	type want struct {
		cell, target       string
		rounds             int
		ratio, lo, hi, p99 float64
		met                string
	}
	wants := []want{
		// Ratios 1.3, 1.1, 1.25: median 1.25; p99 ratios 0.8, 1.2, 0.9: median 0.9.
		{"keep-alive, 16 conn", "ours", 3, 1.25, 1.1, 1.3, 0.9, "yes"},
		// Ratios 0.9 and 1.1: median 1.0 (meets >= 1.0x); p99 ratios 2 and 0.5: 1.25; a bad answer.
		{"per connection, 1 conn", "ours", 2, 1.0, 0.9, 1.1, 1.25, "no (p99, errors)"},
		{"agent port, 64 conn", "ours /status", 1, 1.25, 1.25, 1.25, 0.8, "-"},
		{"agent port, 64 conn", "ours agent x.80", 1, 1.1, 1.1, 1.1, 0.9, "yes"},
		{"agent port, 16 conn", "ours /status", 1, 1, 1, 1, 0.8, "-"},
		{"agent port, 16 conn", "ours agent x.80", 1, 1, 1, 1, 0.9, "yes"},
	}
	if len(tb.lines) != len(wants) {
		t.Fatalf("%d lines, want %d: %+v", len(tb.lines), len(wants), tb.lines)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	for i, w := range wants {
		l := tb.lines[i]
		if cellName(l) != w.cell || l.Target != w.target || l.Rounds != w.rounds || !near(l.Ratio, w.ratio) ||
			!near(l.RatioLo, w.lo) || !near(l.RatioHi, w.hi) || !near(l.P99Ratio, w.p99) || l.Met != w.met {
			t.Errorf("line %d = %+v (%s), want %+v", i, l, cellName(l), w)
		}
	}
	var text, md bytes.Buffer
	tb.writeText(&text)
	tb.writeMarkdown(&md)
	for _, s := range []string{"goals met in 3 of 4 cells; not met: per connection, 1 conn ours (p99, errors)", "1.25x (1.10-1.30)", "rps >= 1.2x, p99 <= nginx"} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("text table lacks %q:\n%s", s, text.String())
		}
	}
	if !strings.Contains(md.String(), "| per connection, 1 conn | ours | 10000 | 10000 | 1.00x (0.90-1.10) | 0.100 | 0.125 | 1.25 | rps >= 1.0x, p99 <= nginx | **no (p99, errors)** |") {
		t.Errorf("markdown table:\n%s", md.String())
	}
}

// TestTableMissingBase: a target with no baseline in its round is not
// judged met.
func TestTableMissingBase(t *testing.T) {
	rows, err := readResults(strings.NewReader("1\tclose\t16\tours\tgoal\t9000\t0.2\t0\t0\n"))
	if err != nil {
		t.Fatal(err)
	}
	tb := buildTable(rows)
	if len(tb.lines) != 1 || !strings.HasPrefix(tb.lines[0].Met, "no ") {
		t.Errorf("lines = %+v, want one not met", tb.lines)
	}
}

func TestReadResultsErrors(t *testing.T) {
	for _, bad := range []string{
		"1\tkeepalive\t16\tours\tgoal\t1\t1\t0\n",           // 8 fields
		"1\tkeepalive\tx\tours\tgoal\t1\t1\t0\t0\n",         // conns
		"1\tkeepalive\t16\tours\tgoal\tNaNx\t1\t0\t0\n",     // rps
		"1\tpipeline\t16\tours\tgoal\t1\t1\t0\t0\n",         // mode
		"1\tkeepalive\t16\tours\tbaseline\t1\t1\t0\t0\n",    // role
		"1\tkeepalive\t16\tours\tgoal\t1\t1ms\t0\t0\n",      // p99
		"one\tkeepalive\t16\tours\tgoal\t1\t1\t0\t0\n",      // round
		"1\tkeepalive\t16\tours\tgoal\t1\t1\t0\tmany\n",     // bad
		"1\tkeepalive\t16\tours\tgoal\t1\t1\tsome\t0\n",     // errors
		"1\tkeepalive\t16\tours\tgoal\t1\t1\t0\t0\textra\n", // 10 fields
	} {
		if _, err := readResults(strings.NewReader(bad)); err == nil {
			t.Errorf("readResults(%q) accepted", bad)
		}
	}
}
