package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// wrkResult is what one wrk --latency run reported.
type wrkResult struct {
	RPS    float64
	P99MS  float64 // 99th percentile latency, milliseconds
	Errors int     // socket errors: connect + read + write + timeout
	Non2xx int     // "Non-2xx or 3xx responses"
}

// parseWrk reads wrk's human output. It needs Requests/sec and the 99%
// line of --latency's distribution; either missing is an error (wrk failed,
// or ran without --latency).
func parseWrk(r io.Reader) (wrkResult, error) {
	var w wrkResult
	var haveRPS, haveP99, inDist bool
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case line == "Latency Distribution":
			inDist = true
		case inDist && len(f) == 2 && strings.HasSuffix(f[0], "%"):
			if f[0] == "99%" {
				ms, err := wrkMS(f[1])
				if err != nil {
					return w, fmt.Errorf("wrk 99%% line %q: %w", line, err)
				}
				w.P99MS, haveP99 = ms, true
			}
		case strings.HasPrefix(line, "Requests/sec:") && len(f) == 2:
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return w, fmt.Errorf("wrk line %q: %w", line, err)
			}
			w.RPS, haveRPS = v, true
		case strings.HasPrefix(line, "Socket errors:"):
			// Socket errors: connect 0, read 12, write 0, timeout 0
			for i := 2; i+1 < len(f); i += 2 {
				n, err := strconv.Atoi(strings.TrimSuffix(f[i+1], ","))
				if err != nil {
					return w, fmt.Errorf("wrk line %q: %w", line, err)
				}
				w.Errors += n
			}
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:"):
			n, err := strconv.Atoi(f[len(f)-1])
			if err != nil {
				return w, fmt.Errorf("wrk line %q: %w", line, err)
			}
			w.Non2xx = n
		default:
			if len(f) != 2 || !strings.HasSuffix(f[0], "%") {
				inDist = false
			}
		}
	}
	if err := sc.Err(); err != nil {
		return w, err
	}
	switch {
	case !haveRPS:
		return w, errors.New("no Requests/sec line (did wrk run?)")
	case !haveP99:
		return w, errors.New("no 99% latency line (wrk needs --latency)")
	}
	return w, nil
}

// wrkMS converts one of wrk's durations ("87.00us", "1.23ms", "2.01s",
// "1.50m", "1.00h") to milliseconds.
func wrkMS(s string) (float64, error) {
	for _, u := range []struct {
		suffix string
		ms     float64
	}{{"us", 1e-3}, {"ms", 1}, {"s", 1e3}, {"m", 60e3}, {"h", 3600e3}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, err
			}
			return f * u.ms, nil
		}
	}
	return 0, fmt.Errorf("duration %q: no unit", s)
}

// row is one run of a results file.
type row struct {
	Round  int
	Mode   string // keepalive, close, agent
	Conns  int
	Target string
	Role   string // base, goal, info
	RPS    float64
	P99MS  float64
	Errors int
	Bad    int
}

// readResults reads a results file (see the package comment). Blank lines
// are skipped.
func readResults(r io.Reader) ([]row, error) {
	var rows []row
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 9 {
			return nil, fmt.Errorf("line %d: %d fields, want 9", n, len(f))
		}
		x := row{Mode: f[1], Target: f[3], Role: f[4]}
		var err error
		ints := []struct {
			s string
			p *int
		}{{f[0], &x.Round}, {f[2], &x.Conns}, {f[7], &x.Errors}, {f[8], &x.Bad}}
		for _, v := range ints {
			if *v.p, err = strconv.Atoi(v.s); err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
		}
		if x.RPS, err = strconv.ParseFloat(f[5], 64); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if x.P99MS, err = strconv.ParseFloat(f[6], 64); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		switch x.Mode {
		case "keepalive", "close", "agent":
		default:
			return nil, fmt.Errorf("line %d: mode %q: want keepalive, close or agent", n, x.Mode)
		}
		switch x.Role {
		case "base", "goal", "info":
		default:
			return nil, fmt.Errorf("line %d: role %q: want base, goal or info", n, x.Role)
		}
		rows = append(rows, x)
	}
	return rows, sc.Err()
}
