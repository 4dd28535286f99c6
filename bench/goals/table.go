package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// Goals of issue 13: the rate against nginx's in the same run, per mode;
// every mode also wants a p99 no higher than nginx's.
var minRatio = map[string]float64{"keepalive": 1.2, "close": 1.0, "agent": 1.0}

// line is one row of the goals table: a target in a cell, over the rounds.
type line struct {
	Mode, Target, Role string
	Conns              int
	Rounds             int // rounds with both the target and the base
	BaseRPS, RPS       float64
	Ratio, RatioLo     float64
	RatioHi            float64
	BaseP99, P99       float64
	P99Ratio           float64
	Errors             int // errors + bad answers of the target and its base
	Met                string
}

type table struct {
	lines  []line
	rounds int
}

type cellKey struct {
	mode  string
	conns int
}

// buildTable computes, per cell (mode, conns) and non-base target, the
// medians over the rounds of rps, p99 and their per-round ratios to the
// base. Cells come in the order they first appear; within a cell, targets
// in the order they first appear in the whole file (run.sh rotates which
// target runs first, but its first run of all follows its target list), so
// that every cell lists them alike.
func buildTable(rows []row) table {
	var cells []cellKey
	base := map[cellKey]map[int]row{}
	type tk struct {
		cellKey
		target string
	}
	var targets []tk
	byTarget := map[tk][]row{}
	order := map[string]int{} // target -> first appearance
	var t table
	for _, r := range rows {
		k := cellKey{r.Mode, r.Conns}
		if _, ok := base[k]; !ok {
			base[k] = map[int]row{}
			cells = append(cells, k)
		}
		t.rounds = max(t.rounds, r.Round)
		if _, ok := order[r.Target]; !ok {
			order[r.Target] = len(order)
		}
		if r.Role == "base" {
			base[k][r.Round] = r
			continue
		}
		x := tk{k, r.Target}
		if _, ok := byTarget[x]; !ok {
			targets = append(targets, x)
		}
		byTarget[x] = append(byTarget[x], r)
	}
	slices.SortStableFunc(targets, func(a, b tk) int { return order[a.target] - order[b.target] })
	for _, c := range cells {
		for _, x := range targets {
			if x.cellKey != c {
				continue
			}
			rs := byTarget[x]
			l := line{Mode: c.mode, Conns: c.conns, Target: x.target, Role: rs[0].Role}
			var brps, rps, ratio, bp99, p99, p99r []float64
			for _, r := range rs {
				l.Errors += r.Errors + r.Bad
				b, ok := base[c][r.Round]
				if !ok {
					continue
				}
				l.Errors += b.Errors + b.Bad
				l.Rounds++
				brps, rps = append(brps, b.RPS), append(rps, r.RPS)
				bp99, p99 = append(bp99, b.P99MS), append(p99, r.P99MS)
				ratio = append(ratio, div(r.RPS, b.RPS))
				p99r = append(p99r, div(r.P99MS, b.P99MS))
			}
			l.BaseRPS, l.RPS = median(brps), median(rps)
			l.BaseP99, l.P99 = median(bp99), median(p99)
			l.Ratio, l.P99Ratio = median(ratio), median(p99r)
			if len(ratio) > 0 {
				l.RatioLo, l.RatioHi = slices.Min(ratio), slices.Max(ratio)
			}
			l.Met = judge(l)
			t.lines = append(t.lines, l)
		}
	}
	return t
}

// judge says whether a line meets its goal: "yes", "no (why)", or "-" for a
// line no goal applies to.
func judge(l line) string {
	if l.Role != "goal" {
		return "-"
	}
	if l.Rounds == 0 {
		return "no (no baseline in the same round)"
	}
	var why []string
	if !(l.Ratio >= minRatio[l.Mode]) {
		why = append(why, "rps")
	}
	if !(l.P99Ratio <= 1) {
		why = append(why, "p99")
	}
	if l.Errors > 0 {
		why = append(why, "errors")
	}
	if len(why) == 0 {
		return "yes"
	}
	return "no (" + strings.Join(why, ", ") + ")"
}

func goalText(l line) string {
	if l.Role != "goal" {
		return "-"
	}
	return fmt.Sprintf("rps >= %.1fx, p99 <= nginx", minRatio[l.Mode])
}

func cellName(l line) string {
	m := map[string]string{"keepalive": "keep-alive", "close": "per connection", "agent": "agent port"}[l.Mode]
	return fmt.Sprintf("%s, %d conn", m, l.Conns)
}

func (t table) ratioText(l line) string {
	s := fmt.Sprintf("%.2fx", l.Ratio)
	if t.rounds > 1 {
		s += fmt.Sprintf(" (%.2f-%.2f)", l.RatioLo, l.RatioHi)
	}
	return s
}

var header = []string{"cell", "target", "nginx rps", "rps", "ratio", "nginx p99 ms", "p99 ms", "p99 ratio", "goal", "met"}

func (t table) fields(l line) []string {
	return []string{cellName(l), l.Target, fmt.Sprintf("%.0f", l.BaseRPS), fmt.Sprintf("%.0f", l.RPS), t.ratioText(l),
		fmt.Sprintf("%.3f", l.BaseP99), fmt.Sprintf("%.3f", l.P99), fmt.Sprintf("%.2f", l.P99Ratio), goalText(l), l.Met}
}

// summary counts the lines with a goal and lists those that miss it.
func (t table) summary() string {
	n, met := 0, 0
	var missed []string
	for _, l := range t.lines {
		if l.Role != "goal" {
			continue
		}
		n++
		if l.Met == "yes" {
			met++
		} else {
			missed = append(missed, fmt.Sprintf("%s %s %s", cellName(l), l.Target, strings.TrimPrefix(l.Met, "no ")))
		}
	}
	s := fmt.Sprintf("goals met in %d of %d cells", met, n)
	if len(missed) > 0 {
		s += "; not met: " + strings.Join(missed, "; ")
	}
	return s
}

func (t table) writeText(w io.Writer) {
	fmt.Fprintf(w, "== goals (issue 13): median over %d round(s); ratio = rps / nginx rps, p99 ratio = p99 / nginx p99, same cell and round\n", t.rounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, l := range t.lines {
		fmt.Fprintln(tw, strings.Join(t.fields(l), "\t"))
	}
	tw.Flush()
	fmt.Fprintln(w, t.summary())
}

func (t table) writeMarkdown(w io.Writer) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(header, " | "))
	fmt.Fprintf(w, "|%s\n", strings.Repeat(" --- |", len(header)))
	for _, l := range t.lines {
		f := t.fields(l)
		if l.Met != "-" && l.Met != "yes" {
			f[len(f)-1] = "**" + l.Met + "**"
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(f, " | "))
	}
	fmt.Fprintf(w, "\n%s\n", t.summary())
}

func div(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

// median of v (NaN for none); the mean of the middle two for an even count.
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	k := len(s)
	if k%2 == 1 {
		return s[k/2]
	}
	return (s[k/2-1] + s[k/2]) / 2
}
