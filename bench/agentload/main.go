// Command agentload is a closed-loop, connection-per-request load generator:
// C workers, each in a loop for D seconds: dial, write one request, read the
// whole reply, close. It drives HTTP servers (an HTTP/1.0 GET, read until the
// server closes) and HAProxy agent-check responders (an agent-send line, read
// one reply line), so that an agent port can be compared with an HTTP server
// by the same client: the client's own cost is the same for every target and
// the ratio stays fair on a small machine where client and servers share the
// CPUs.
//
//	go run ./bench/agentload [-c 64] [-d 5s] [-rounds 3] TARGET...
//
// A TARGET is NAME=URL; the first one is the baseline every ratio is
// computed against, in the same round:
//
//	'nginx=http://127.0.0.1:8080/status.html'   GET /status.html HTTP/1.0
//	'ours=http://127.0.0.1:8001/status'         the same for http_status
//	'agent x.80=agent://127.0.0.1:8002/x.80'    sends "x.80\n", reads one line
//	'agent default=agent://127.0.0.1:8002/'     sends nothing (default service)
//
// Rounds are interleaved: round r runs every target once, starting with a
// different one each round. An HTTP answer counts as a success when its
// status is 200; an agent reply when it is one line starting with -expect
// ("up " by default). Anything else, and any dial, read or write error,
// counts as an error, and agentload then exits 1. Nothing here asserts a
// speed.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

type target struct {
	name    string
	mode    string // "http" or "agent"
	addr    string
	payload []byte
}

// parseTarget reads NAME=URL; NAME may hold '=' (the last one before the
// "://" separates it).
func parseTarget(s string) (target, error) {
	i := strings.Index(s, "://")
	if i < 0 {
		return target{}, fmt.Errorf("target %q: want NAME=http://HOST:PORT/PATH or NAME=agent://HOST:PORT/LINE", s)
	}
	eq := strings.LastIndex(s[:i], "=")
	if eq <= 0 {
		return target{}, fmt.Errorf("target %q: no NAME=", s)
	}
	t := target{name: s[:eq]}
	u, err := url.Parse(s[eq+1:])
	if err != nil {
		return target{}, fmt.Errorf("target %q: %v", s, err)
	}
	t.addr = u.Host
	if _, _, err := net.SplitHostPort(t.addr); err != nil {
		return target{}, fmt.Errorf("target %q: %v", s, err)
	}
	switch u.Scheme {
	case "http":
		t.mode = "http"
		path := u.EscapedPath()
		if path == "" {
			path = "/"
		}
		if u.RawQuery != "" {
			path += "?" + u.RawQuery
		}
		t.payload = []byte("GET " + path + " HTTP/1.0\r\nHost: " + u.Host + "\r\n\r\n")
	case "agent":
		t.mode = "agent"
		line := strings.TrimPrefix(u.Path, "/")
		if u.RawQuery != "" {
			line += "?" + u.RawQuery
		}
		if line != "" {
			t.payload = []byte(line + "\n")
		}
	default:
		return target{}, fmt.Errorf("target %q: scheme must be http or agent", s)
	}
	return t, nil
}

// errBad is an answer that is not what was expected.
var errBad = errors.New("unexpected answer")

// once does one connection: dial, write, read the reply, close.
func once(t *target, d *net.Dialer, buf []byte, timeout time.Duration, expect []byte) error {
	c, err := d.Dial("tcp", t.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if len(t.payload) > 0 {
		if _, err := c.Write(t.payload); err != nil {
			return err
		}
	}
	n := 0
	for {
		if n == len(buf) {
			return errBad
		}
		m, err := c.Read(buf[n:])
		n += m
		if t.mode == "agent" {
			if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
				if !bytes.HasPrefix(buf[:i], expect) {
					return errBad
				}
				return nil
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if t.mode == "agent" {
		return errBad // closed before a whole line
	}
	return checkHTTP(buf[:n])
}

// checkHTTP accepts a whole HTTP answer with status 200.
func checkHTTP(b []byte) error {
	// "HTTP/1.x 200 "
	if len(b) < 13 || !bytes.HasPrefix(b, []byte("HTTP/1.")) || !bytes.Equal(b[8:13], []byte(" 200 ")) {
		return errBad
	}
	return nil
}

type result struct {
	ok, errs, bad int
	rps           float64
	p50, p99      time.Duration
	firstErr      error
}

// part is what one worker (or one epoll loop) counted.
type part struct {
	ok, errs, bad int
	lat           []time.Duration
	err           error
}

// merge sums the parts of a run that took elapsed.
func merge(parts []part, elapsed time.Duration) result {
	var res result
	var lat []time.Duration
	for _, r := range parts {
		res.ok += r.ok
		res.errs += r.errs
		res.bad += r.bad
		lat = append(lat, r.lat...)
		if res.firstErr == nil {
			res.firstErr = r.err
		}
	}
	slices.Sort(lat)
	res.rps = float64(res.ok) / elapsed.Seconds()
	res.p50 = pct(lat, 50)
	res.p99 = pct(lat, 99)
	return res
}

// run drives t with c workers for d.
func run(t *target, c int, d, timeout time.Duration, expect []byte) result {
	out := make([]part, c)
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for w := 0; w < c; w++ {
		wg.Go(func() {
			r := &out[w]
			r.lat = make([]time.Duration, 0, 1<<14)
			buf := make([]byte, 4096)
			dialer := &net.Dialer{Timeout: timeout}
			for {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				err := once(t, dialer, buf, timeout, expect)
				switch {
				case err == nil:
					r.ok++
					r.lat = append(r.lat, time.Since(t0))
				case errors.Is(err, errBad):
					r.bad++
				default:
					r.errs++
					if r.err == nil {
						r.err = err
					}
					if errors.Is(err, syscall.EADDRNOTAVAIL) {
						time.Sleep(time.Millisecond) // out of ports: do not spin
					}
				}
			}
		})
	}
	wg.Wait()
	return merge(out, time.Since(start))
}

func pct(s []time.Duration, p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// tsvLine is one run for -tsv: round, target, req/s, p50 ms, p99 ms,
// errors, unexpected answers. A target name's tabs and newlines become
// spaces, so the line keeps its seven fields.
func tsvLine(round int, name string, x result) string {
	name = strings.NewReplacer("\t", " ", "\n", " ").Replace(name)
	return fmt.Sprintf("%d\t%s\t%.2f\t%.3f\t%.3f\t%d\t%d\n", round, name, x.rps, ms(x.p50), ms(x.p99), x.errs, x.bad)
}

func median(v []float64) (med, lo, hi float64) {
	s := slices.Clone(v)
	slices.Sort(s)
	k := len(s)
	if k == 0 {
		return 0, 0, 0
	}
	if k%2 == 1 {
		med = s[k/2]
	} else {
		med = (s[k/2-1] + s[k/2]) / 2
	}
	return med, s[0], s[k-1]
}

func main() {
	conc := flag.Int("c", 64, "concurrent workers (connections in flight)")
	dur := flag.Duration("d", 5*time.Second, "duration of each run")
	rounds := flag.Int("rounds", 3, "interleaved rounds")
	timeout := flag.Duration("timeout", 2*time.Second, "per-connection deadline (dial, write and read)")
	expect := flag.String("expect", "up ", "an agent reply must start with this")
	pause := flag.Duration("pause", 0, "sleep between runs")
	defClient := "go"
	if epollSupported {
		defClient = "epoll"
	}
	client := flag.String("client", defClient, "epoll: non-blocking sockets on -loops event loops, one OS thread each (like wrk; Linux); go: one goroutine per worker with net.Dial")
	loops := flag.Int("loops", runtime.NumCPU(), "event loops of the epoll client")
	tsv := flag.String("tsv", "", "also append one line per run to this file: round, target, req/s, p50 ms, p99 ms, errors, unexpected answers (tab-separated)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: agentload [flags] NAME=http://HOST:PORT/PATH|NAME=agent://HOST:PORT/LINE ...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 || *conc < 1 || *rounds < 1 || (*client != "go" && *client != "epoll") {
		flag.Usage()
		os.Exit(2)
	}
	var ts []target
	for _, a := range flag.Args() {
		t, err := parseTarget(a)
		if err != nil {
			fmt.Fprintln(os.Stderr, "agentload:", err)
			os.Exit(2)
		}
		ts = append(ts, t)
	}
	how := *client + " client"
	if *client == "epoll" {
		how += fmt.Sprintf(", %d loop(s)", *loops)
	}
	fmt.Printf("== agentload -c %d -d %s, %d round(s), %s; one connection per request; baseline %s\n", *conc, *dur, *rounds, how, ts[0].name)
	var tsvOut io.Writer
	if *tsv != "" {
		f, err := os.OpenFile(*tsv, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "agentload:", err)
			os.Exit(2)
		}
		defer f.Close()
		tsvOut = f
	}
	res := make([][]result, len(ts)) // [target][round]
	failed := false
	for r := 0; r < *rounds; r++ {
		for k := range ts {
			i := (k + r) % len(ts)
			if *pause > 0 {
				time.Sleep(*pause)
			}
			var x result
			if *client == "epoll" {
				x = runEpoll(&ts[i], *conc, *loops, *dur, *timeout, []byte(*expect))
			} else {
				x = run(&ts[i], *conc, *dur, *timeout, []byte(*expect))
			}
			res[i] = append(res[i], x)
			note := ""
			if x.errs+x.bad > 0 {
				failed = true
				note = fmt.Sprintf("  ERRORS: %d errors, %d unexpected answers", x.errs, x.bad)
				if x.firstErr != nil {
					note += fmt.Sprintf(" (first: %v)", x.firstErr)
				}
			}
			fmt.Printf("  round %d  %-34s %9.0f req/s  p50 %6.2f ms  p99 %7.2f ms%s\n", r+1, ts[i].name, x.rps, ms(x.p50), ms(x.p99), note)
			if tsvOut != nil {
				if _, err := io.WriteString(tsvOut, tsvLine(r+1, ts[i].name, x)); err != nil {
					fmt.Fprintln(os.Stderr, "agentload:", err)
					os.Exit(1)
				}
			}
		}
	}
	fmt.Printf("\n== results: median (min-max) over %d round(s); ratio = req/s / %s req/s in the same round\n", *rounds, ts[0].name)
	fmt.Printf("%-34s %24s %22s %22s %20s\n", "target", "req/s", "p50 ms", "p99 ms", "vs "+ts[0].name)
	for i, t := range ts {
		var rps, p50, p99, ratio []float64
		for r, x := range res[i] {
			rps = append(rps, x.rps)
			p50 = append(p50, ms(x.p50))
			p99 = append(p99, ms(x.p99))
			if b := res[0][r].rps; b > 0 {
				ratio = append(ratio, x.rps/b)
			}
		}
		a, al, ah := median(rps)
		b, bl, bh := median(p50)
		c, cl, ch := median(p99)
		d, dl, dh := median(ratio)
		fmt.Printf("%-34s %8.0f (%6.0f-%6.0f) %6.2f (%5.2f-%5.2f) %6.2f (%5.2f-%5.2f) %6.2fx (%4.2f-%4.2f)\n",
			t.name, a, al, ah, b, bl, bh, c, cl, ch, d, dl, dh)
	}
	if failed {
		fmt.Fprintln(os.Stderr, "agentload: FAILED: some run had errors or unexpected answers")
		os.Exit(1)
	}
}
