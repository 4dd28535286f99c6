// Command goals reads what bench/run.sh measured and prints the goals table
// of issue 13: every cell (mode and connection count) as a ratio against
// nginx in the same run, and whether the cell's goal is met. It also parses
// wrk's output for run.sh. Nothing here measures; it only reads figures.
//
//	goals wrk FILE            prints "rps p99_ms errors non2xx" of one wrk --latency run
//	goals table [-md] FILE    prints the goals table of a results file
//
// A results file has one line per run, tab-separated:
//
//	round  mode  conns  target  role  rps  p99_ms  errors  bad
//
// mode is keepalive, close or agent; role is base (the baseline, nginx),
// goal (a target the goals apply to) or info (shown, judged by nothing).
// Ratios are computed per round against the base of the same mode, conns
// and round, then their median over the rounds is shown.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "wrk":
		if len(os.Args) != 3 {
			usage()
		}
		f, err := os.Open(os.Args[2])
		if err != nil {
			fatal(err)
		}
		defer f.Close()
		w, err := parseWrk(f)
		if err != nil {
			fatal(fmt.Errorf("%s: %w", os.Args[2], err))
		}
		fmt.Printf("%.2f %.3f %d %d\n", w.RPS, w.P99MS, w.Errors, w.Non2xx)
	case "table":
		fs := flag.NewFlagSet("table", flag.ExitOnError)
		md := fs.Bool("md", false, "print a Markdown table")
		fs.Parse(os.Args[2:])
		if fs.NArg() != 1 {
			usage()
		}
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			fatal(err)
		}
		defer f.Close()
		rows, err := readResults(f)
		if err != nil {
			fatal(fmt.Errorf("%s: %w", fs.Arg(0), err))
		}
		t := buildTable(rows)
		if *md {
			t.writeMarkdown(os.Stdout)
		} else {
			t.writeText(os.Stdout)
		}
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: goals wrk FILE | goals table [-md] RESULTS.tsv")
	os.Exit(2)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "goals:", err)
	os.Exit(1)
}
