//go:build linux

// Command scale measures http_status with many flags and many VIPs against
// the same daemon with one flag and one VIP, side by side in one run:
// /status request rate (wrk, rounds interleaved, ratio to the baseline),
// resident memory (VmRSS), the duration of a full rescan (SIGHUP, read from
// /metrics) and the time from exec to READY=1 (NOTIFY_SOCKET). As root it
// runs in a fresh network namespace and puts the VIPs on its lo; otherwise
// it skips the VIPs and says so. It measures; it asserts nothing.
//
//	go build -o /tmp/http_status ./cmd/http_status
//	go run ./bench/scale [-flags 10000] [-vips 1000] [-rounds 3] [-d 5s] /tmp/http_status
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/http-status/http_status/bench/internal/benchutil"
)

var (
	nFlags   = flag.Int("flags", 10000, "flag files in the large set")
	nVIPs    = flag.Int("vips", 1000, "VIPs on lo in the large set (root only)")
	rounds   = flag.Int("rounds", 3, "wrk rounds per target")
	duration = flag.String("d", "5s", "wrk duration per run")
	conns    = flag.Int("c", 64, "wrk connections")
	starts   = flag.Int("starts", 3, "daemon starts per configuration (READY, RSS, rescans)")
	noNetns  = flag.Bool("no-netns", false, "do not re-exec into a network namespace (no VIPs)")
)

func main() {
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: scale [flags] /path/to/http_status\n")
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
	if _, err := exec.LookPath("wrk"); err != nil {
		fail(errors.New("wrk not found (Debian package wrk)"))
	}
	if !benchutil.InNetns() && !*noNetns {
		err := benchutil.RunInNetns(os.Args[1:]...)
		fmt.Printf("VIPs skipped (%v); flags only, in this network namespace\n\n", err)
	}
	if err := run(bin, benchutil.InNetns()); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "scale:", err)
	os.Exit(1)
}

// vipAddr is the i-th VIP: 10.77.0.1, 10.77.0.2, ...
func vipAddr(i int) net.IP { return net.IPv4(10, 77, byte(i/250), byte(i%250+1)) }

type vipSet struct {
	lo netlink.Link
	n  int
}

// set makes exactly n VIPs present on lo.
func (v *vipSet) set(n int) error {
	for ; v.n < n; v.n++ {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: vipAddr(v.n), Mask: net.CIDRMask(32, 32)}}
		if err := netlink.AddrAdd(v.lo, a); err != nil {
			return fmt.Errorf("add %v to lo: %w", a.IP, err)
		}
	}
	for ; v.n > n; v.n-- {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: vipAddr(v.n - 1), Mask: net.CIDRMask(32, 32)}}
		if err := netlink.AddrDel(v.lo, a); err != nil {
			return fmt.Errorf("del %v from lo: %w", a.IP, err)
		}
	}
	return nil
}

// config is one daemon setup.
type config struct {
	name   string
	dir    string
	vips   int
	target string // /status?... for a name (and VIP) in the set
}

func run(bin string, withVIPs bool) error {
	work, err := os.MkdirTemp("", "http_status-scale")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	var vs *vipSet
	if withVIPs {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return err
		}
		vs = &vipSet{lo: lo}
		if err := vs.set(1); err != nil {
			return err
		}
	}
	small := filepath.Join(work, "small")
	large := filepath.Join(work, "large")
	for _, d := range []string{small, large} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	t0 := time.Now()
	for i := range *nFlags {
		if err := os.WriteFile(filepath.Join(large, fmt.Sprintf("svc%05d.80", i)), nil, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("created %d flag files in %v\n", *nFlags, time.Since(t0).Round(time.Millisecond))
	mid := fmt.Sprintf("svc%05d", *nFlags/2)
	if err := os.WriteFile(filepath.Join(small, mid+".80"), nil, 0o644); err != nil {
		return err
	}
	q := "/status?SERVICE=" + mid + "&PORT=80"
	var cfgs []config
	if withVIPs {
		vipQ := q + "&VIP=" + vipAddr(0).String()
		cfgs = []config{
			{name: "1 flag, 1 VIP", dir: small, vips: 1, target: vipQ},
			{name: fmt.Sprintf("%d flags, 1 VIP", *nFlags), dir: large, vips: 1, target: vipQ},
			{name: fmt.Sprintf("%d flags, %d VIPs", *nFlags, *nVIPs), dir: large, vips: *nVIPs, target: q + "&VIP=" + vipAddr(*nVIPs/2).String()},
		}
	} else {
		cfgs = []config{
			{name: "1 flag", dir: small, target: q},
			{name: fmt.Sprintf("%d flags", *nFlags), dir: large, target: q},
		}
	}

	// Start-up, memory and rescans: fresh daemons, each configuration in turn.
	fmt.Printf("\n== start-up and rescan (%d starts per configuration; rescan = SIGHUP, duration from /metrics)\n", *starts)
	fmt.Printf("%-28s %22s %22s %26s %8s\n", "configuration", "exec→READY ms", "VmRSS idle MiB", "full rescan ms", "vs base")
	var baseRescan float64
	for ci, c := range cfgs {
		if vs != nil {
			if err := vs.set(c.vips); err != nil {
				return err
			}
		}
		var ready, rss, rescan []float64
		for range *starts {
			d, err := benchutil.StartDaemon(bin, c.dir, work, 60*time.Second)
			if err != nil {
				return err
			}
			ready = append(ready, ms(d.Ready))
			if err := expect200(d.Addr, c.target); err != nil {
				d.Stop()
				return fmt.Errorf("%s: %w", c.name, err)
			}
			for range 3 {
				r, err := rescanSeconds(d)
				if err != nil {
					d.Stop()
					return err
				}
				rescan = append(rescan, r*1000)
			}
			kb, err := d.RSSKiB()
			d.Stop()
			if err != nil {
				return err
			}
			rss = append(rss, float64(kb)/1024)
		}
		if ci == 0 {
			baseRescan = median(rescan)
		}
		fmt.Printf("%-28s %22s %22s %26s %7.1fx\n", c.name, spread(ready, 1), spread(rss, 1), spread(rescan, 2), median(rescan)/baseRescan)
	}

	// Request rate: long-running daemons, rounds interleaved.
	if vs != nil {
		if err := vs.set(1); err != nil {
			return err
		}
	}
	ds := map[string]*benchutil.Daemon{}
	for _, dir := range []string{small, large} {
		d, err := benchutil.StartDaemon(bin, dir, work, 60*time.Second)
		if err != nil {
			return err
		}
		defer d.Stop()
		ds[dir] = d
	}
	fmt.Printf("\n== /status request rate: wrk -t2 -c%d -d%s --latency (keep-alive), %d rounds interleaved; median (min-max)\n", *conns, *duration, *rounds)
	rps := make([][]float64, len(cfgs))
	p99 := make([][]float64, len(cfgs))
	ratio := make([][]float64, len(cfgs))
	for r := range *rounds {
		var base float64
		for ci, c := range cfgs {
			d := ds[c.dir]
			if vs != nil && vs.n != c.vips {
				if err := vs.set(c.vips); err != nil {
					return err
				}
			}
			if err := waitFor(d.Addr, c.target, 200); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			rate, lat, err := wrk(d.Addr, c.target)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			if ci == 0 {
				base = rate
			}
			rps[ci] = append(rps[ci], rate)
			p99[ci] = append(p99[ci], lat)
			ratio[ci] = append(ratio[ci], rate/base)
			fmt.Printf("  round %d %-28s %10.0f req/s  p99 %6.2f ms\n", r+1, c.name, rate, lat)
		}
		if vs != nil {
			if err := vs.set(1); err != nil {
				return err
			}
		}
	}
	fmt.Printf("%-28s %26s %26s %20s\n", "configuration", "req/s", "p99 ms", "vs first row")
	for ci, c := range cfgs {
		fmt.Printf("%-28s %26s %26s %20s\n", c.name, spread(rps[ci], 0), spread(p99[ci], 2), spread(ratio[ci], 2))
	}
	fmt.Println()
	for _, dir := range []string{small, large} {
		kb, err := ds[dir].RSSKiB()
		if err == nil {
			fmt.Printf("VmRSS after the load, %-12s %6.1f MiB\n", filepath.Base(dir)+" set:", float64(kb)/1024)
		}
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// spread formats median (min-max).
func spread(v []float64, prec int) string {
	return fmt.Sprintf("%.*f (%.*f-%.*f)", prec, median(v), prec, slices.Min(v), prec, slices.Max(v))
}

func expect200(addr, target string) error {
	resp, err := http.Get("http://" + addr + target)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s answers %d, not 200", target, resp.StatusCode)
	}
	return nil
}

// waitFor polls until target answers code (after a VIP change).
func waitFor(addr, target string, code int) error {
	c, err := benchutil.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := c.Get(target)
		if err != nil {
			return err
		}
		if got == code {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s answers %d, not %d", target, got, code)
		}
		time.Sleep(time.Millisecond)
	}
}

// metric reads one unlabelled metric from /metrics.
func metric(addr, name string) (float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("/metrics has no %s", name)
}

// rescanSeconds sends SIGHUP and returns the duration of the full rescan it
// causes, as the daemon reports it (http_status_watcher_last_rescan_duration_seconds).
func rescanSeconds(d *benchutil.Daemon) (float64, error) {
	const total, last = "http_status_watcher_rescans_total", "http_status_watcher_last_rescan_duration_seconds"
	before, err := metric(d.Addr, total)
	if err != nil {
		return 0, err
	}
	prev, err := metric(d.Addr, last)
	if err != nil {
		return 0, err
	}
	if err := d.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return 0, err
	}
	// READY=1 follows RELOADING=1 once the rescan has started; then poll
	// /metrics gently (with 10,000 flags one scrape is 0.6 MB, and scraping
	// fast would slow the rescan being measured).
	if _, err := d.WaitNotify("READY=1", 30*time.Second); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		n, err := metric(d.Addr, total)
		if err != nil {
			return 0, err
		}
		v, err := metric(d.Addr, last)
		if err != nil {
			return 0, err
		}
		if n > before && v != prev {
			return v, nil
		}
	}
	return 0, errors.New("SIGHUP did not cause a rescan within 30 s")
}

// wrk runs one keep-alive wrk and returns req/s and p99 in ms; socket
// errors or non-2xx answers are an error.
func wrk(addr, target string) (float64, float64, error) {
	out, err := exec.Command("wrk", "-t2", fmt.Sprintf("-c%d", *conns), "-d"+*duration, "--latency", "http://"+addr+target).CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	var rate, lat float64
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			rate, _ = strconv.ParseFloat(f[1], 64)
		case len(f) == 2 && f[0] == "99%":
			lat = wrkMillis(f[1])
		case len(f) > 0 && (f[0] == "Socket" || f[0] == "Non-2xx"):
			return 0, 0, fmt.Errorf("wrk reported errors:\n%s", out)
		}
	}
	if rate == 0 {
		return 0, 0, fmt.Errorf("no Requests/sec in wrk output:\n%s", out)
	}
	return rate, lat, nil
}

func wrkMillis(s string) float64 {
	for _, u := range []struct {
		suf string
		mul float64
	}{{"us", 0.001}, {"ms", 1}, {"s", 1000}} {
		if v, ok := strings.CutSuffix(s, u.suf); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f * u.mul
		}
	}
	return 0
}
