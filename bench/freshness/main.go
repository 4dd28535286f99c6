//go:build linux

// Command freshness measures how soon a change is visible on /status: for
// each flip (touch, rm, rename into place; and, as root, a VIP added to or
// removed from lo in a fresh network namespace) it takes the time from the
// changing syscall returning to the first /status answer that reflects it,
// polling as fast as one keep-alive connection allows. It prints p50, p90,
// p99 and max per operation, and the plain round trip of one request (the
// resolution of the measurement). It measures; it asserts nothing.
//
//	go build -o /tmp/http_status ./cmd/http_status
//	go run ./bench/freshness [-n 1000] /tmp/http_status
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/http-status/http_status/bench/internal/benchutil"
)

var (
	n       = flag.Int("n", 1000, "flips per operation")
	timeout = flag.Duration("timeout", 2*time.Second, "give up on one flip after this long")
	noVIPs  = flag.Bool("no-vips", false, "skip the VIP flips")
)

func main() {
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: freshness [-n flips] [-no-vips] /path/to/http_status\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	bin, err := filepath.Abs(flag.Arg(0))
	if err != nil {
		fail(err)
	}
	if benchutil.InNetns() {
		if err := vips(bin); err != nil {
			fail(err)
		}
		return
	}
	if err := files(bin); err != nil {
		fail(err)
	}
	if *noVIPs {
		return
	}
	fmt.Println()
	args := append([]string{"-n", fmt.Sprint(*n), "-timeout", timeout.String()}, bin)
	if err := benchutil.ReexecInNetns(args...); err != nil {
		fmt.Printf("VIP flips skipped: %v\n", err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "freshness:", err)
	os.Exit(1)
}

// result collects one operation's delays.
type result struct {
	name     string
	d        []time.Duration
	polls    int // requests sent in total
	timeouts int
}

func (r *result) print() {
	slices.Sort(r.d)
	p := func(q float64) string { return fmtDur(benchutil.Percentile(r.d, q)) }
	maxd := "-"
	if len(r.d) > 0 {
		maxd = fmtDur(r.d[len(r.d)-1])
	}
	fmt.Printf("%-22s %6d %9s %9s %9s %9s %8.1f %8d\n", r.name, len(r.d), p(50), p(90), p(99), maxd,
		float64(r.polls)/float64(max(1, len(r.d)+r.timeouts)), r.timeouts)
}

func header(what string) {
	fmt.Println(what)
	fmt.Printf("%-22s %6s %9s %9s %9s %9s %8s %8s\n", "operation", "n", "p50", "p90", "p99", "max", "polls", "timeouts")
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
}

// await polls target until it answers want; it returns the time from t0
// to the end of that answer.
func await(c *benchutil.Client, target string, want int, t0 time.Time, r *result) error {
	for {
		code, err := c.Get(target)
		r.polls++
		if err != nil {
			return err
		}
		if code == want {
			r.d = append(r.d, time.Since(t0))
			return nil
		}
		if time.Since(t0) > *timeout {
			r.timeouts++
			return nil
		}
	}
}

// roundTrip measures plain requests with no change pending.
func roundTrip(c *benchutil.Client, target string, want int) (*result, error) {
	r := &result{name: "request round trip"}
	for range *n {
		t0 := time.Now()
		if err := await(c, target, want, t0, r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// start runs the daemon on a new status directory holding the given flag
// files and connects a client; stop undoes both and removes the directory.
func start(bin string, flags ...string) (dir string, c *benchutil.Client, stop func(), err error) {
	work, err := os.MkdirTemp("", "http_status-freshness")
	if err != nil {
		return "", nil, nil, err
	}
	dir = filepath.Join(work, "status")
	d, err := func() (*benchutil.Daemon, error) {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, err
		}
		for _, f := range flags {
			if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
				return nil, err
			}
		}
		return benchutil.StartDaemon(bin, dir, work, 10*time.Second)
	}()
	if err != nil {
		os.RemoveAll(work)
		return "", nil, nil, err
	}
	if c, err = benchutil.Dial(d.Addr); err != nil {
		d.Stop()
		os.RemoveAll(work)
		return "", nil, nil, err
	}
	return dir, c, func() { c.Close(); d.Stop(); os.RemoveAll(work) }, nil
}

func files(bin string) error {
	dir, c, stop, err := start(bin)
	if err != nil {
		return err
	}
	defer stop()

	const target = "/status?SERVICE=fresh&PORT=80"
	flag := filepath.Join(dir, "fresh.80")
	tmp := filepath.Join(dir, "fresh.80.tmp") // ignored by the daemon (ends in .tmp)
	rt, err := roundTrip(c, target, 404)
	if err != nil {
		return err
	}
	touch := &result{name: "touch (create)"}
	rm := &result{name: "rm"}
	rename := &result{name: "rename into place"}
	for range *n {
		// touch: create the flag.
		f, err := os.OpenFile(flag, os.O_WRONLY|os.O_CREATE, 0o644)
		if err == nil {
			err = f.Close()
		}
		if err != nil {
			return err
		}
		if err := await(c, target, 200, time.Now(), touch); err != nil {
			return err
		}
		// rm.
		if err := os.Remove(flag); err != nil {
			return err
		}
		if err := await(c, target, 404, time.Now(), rm); err != nil {
			return err
		}
		// rename: write elsewhere in the directory, rename into place.
		if err := os.WriteFile(tmp, nil, 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, flag); err != nil {
			return err
		}
		if err := await(c, target, 200, time.Now(), rename); err != nil {
			return err
		}
		// back to absent (not measured: rm is measured above).
		if err := os.Remove(flag); err != nil {
			return err
		}
		if err := await(c, target, 404, time.Now(), &result{}); err != nil {
			return err
		}
	}
	header(fmt.Sprintf("flag files: time from the syscall returning to the first /status answer reflecting it (%d flips each)", *n))
	rt.print()
	touch.print()
	rm.print()
	rename.print()
	return nil
}

// vips runs in a fresh network namespace (root): lo is brought up, the
// daemon watches the addresses with netlink, and each flip adds or removes
// 192.0.2.1/32 on lo with one netlink request (what "ip addr add/del" does).
func vips(bin string) error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return err
	}
	_, c, stop, err := start(bin, "status.html")
	if err != nil {
		return err
	}
	defer stop()
	const target = "/status?VIP=192.0.2.1"
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(192, 0, 2, 1), Mask: net.CIDRMask(32, 32)}}
	rt, err := roundTrip(c, target, 404)
	if err != nil {
		return err
	}
	add := &result{name: "ip addr add (lo)"}
	del := &result{name: "ip addr del (lo)"}
	for range *n {
		if err := netlink.AddrAdd(lo, addr); err != nil {
			return fmt.Errorf("add 192.0.2.1/32 to lo: %w", err)
		}
		if err := await(c, target, 200, time.Now(), add); err != nil {
			return err
		}
		if err := netlink.AddrDel(lo, addr); err != nil {
			return fmt.Errorf("del 192.0.2.1/32 from lo: %w", err)
		}
		if err := await(c, target, 404, time.Now(), del); err != nil {
			return err
		}
	}
	header(fmt.Sprintf("VIPs (own network namespace): time from the netlink request returning to the first /status?VIP= answer reflecting it (%d flips each)", *n))
	rt.print()
	add.print()
	del.print()
	return nil
}
