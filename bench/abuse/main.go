//go:build linux

// Command abuse measures the real daemon under the two abuse cases of
// issue 13, each on a fresh daemon on loopback:
//
//   - rss: C clients each send P bytes of tiny pipelined "GET /status"
//     requests and never read an answer. It reports the daemon's resident
//     memory (VmRSS) before, its peak (VmHWM and the highest VmRSS sampled)
//     and the growth per connection. Goal: peak < 150 MB at 2,000 clients.
//
//   - agent: S connections to the agent port that never send anything
//     (each dialled again as soon as the daemon closes it, so that S stay
//     open), then N real checks ("x.80\n", one line back), one at a time.
//     It reports their latency, dial to reply. Goal: median < 100 ms at
//     3,000 silent connections.
//
//     go run ./bench/abuse -bin PATH/http_status [-cells rss,agent] [-clients 2000] [-silent 3000]
//
// As root it runs in a fresh network namespace of its own (unshare -n, lo
// up) where the daemon's TCP send buffers are capped (-wmem sets that
// namespace's net.ipv4.tcp_wmem): with the kernel's defaults (up to 4 MiB
// per socket) the kernel takes in every answer a client does not read, and
// the daemon's own bound on unsent output is never reached. -netns=false
// (or not root) measures in this namespace with the kernel's buffers.
//
// It raises its soft RLIMIT_NOFILE to the hard limit (the daemon inherits
// it) and skips a cell, saying so, when the hard limit is too low for it.
// It exits 1 when the daemon does not start or a cell could not be run;
// a goal not met is reported, not an error. Nothing here asserts a speed.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/http-status/http_status/bench/internal/benchutil"
)

// Goals of issue 13.
const (
	rssGoalBytes   = 150e6
	agentGoalMedia = 100 * time.Millisecond
)

type argList []string

func (a *argList) String() string     { return strings.Join(*a, " ") }
func (a *argList) Set(s string) error { *a = append(*a, s); return nil }

// summaryRow is one cell of the summary table.
type summaryRow struct {
	cell, measured, goal, met string
}

func main() {
	bin := flag.String("bin", "", "http_status binary to run (required)")
	name := flag.String("name", "ours", "the daemon's name in the summary")
	cells := flag.String("cells", "rss,agent", "cells to run, comma-separated: rss, agent")
	clients := flag.Int("clients", 2000, "rss: clients that pipeline and never read")
	pipeline := flag.Int("pipeline", 16<<10, "rss: bytes of pipelined GET /status each client sends (whole requests, at most this)")
	rcvbuf := flag.Int("rcvbuf", 4096, "rss: the clients' SO_RCVBUF (0: the kernel's default, which on loopback takes in most of the answers, so the daemon holds few)")
	settle := flag.Duration("settle", time.Second, "rss: the peak is taken once VmRSS has not grown for this long after the last write")
	silent := flag.Int("silent", 3000, "agent: silent connections held open")
	checks := flag.Int("checks", 20, "agent: real checks, one at a time")
	interval := flag.Duration("interval", 100*time.Millisecond, "agent: pause between real checks")
	summary := flag.String("summary", "", "append the summary table to this file instead of printing it")
	netns := flag.Bool("netns", os.Geteuid() == 0, "run in a fresh network namespace with the daemon's TCP send buffers capped by -wmem (needs root)")
	wmem := flag.String("wmem", "4096 16384 16384", "net.ipv4.tcp_wmem (min default max) in the namespace of -netns")
	var extra argList
	flag.Var(&extra, "daemon-arg", "extra argument for the daemon (repeatable), e.g. -daemon-arg=--engine=net/http")
	flag.Parse()
	if *bin == "" || flag.NArg() != 0 || *clients < 1 || *silent < 0 || *checks < 1 || *pipeline < 1 || !validWmem(*wmem) {
		flag.Usage()
		os.Exit(2)
	}
	where := "this network namespace, the kernel's TCP buffers"
	if *netns && !benchutil.InNetns() {
		err := benchutil.RunInNetns(os.Args[1:]...)
		fmt.Printf("abuse: no network namespace of its own (%v): measuring in this one\n", err)
	}
	if benchutil.InNetns() {
		if err := loUp(); err != nil {
			fatal(err)
		}
		where = "a network namespace of its own, net.ipv4.tcp_wmem " + strings.Join(strings.Fields(*wmem), " ")
		if err := setWmem(*wmem); err != nil {
			fmt.Printf("abuse: %v: the kernel's default TCP buffers\n", err)
			where = "a network namespace of its own, the kernel's TCP buffers"
		}
	}
	limit, err := raiseNofile()
	if err != nil {
		fatal(err)
	}
	fmt.Printf("== abuse cells: %s (%s), RLIMIT_NOFILE %d, in %s\n", *name, *bin, limit, where)

	var rows []summaryRow
	failed := false
	for _, c := range strings.Split(*cells, ",") {
		var row summaryRow
		var err error
		switch strings.TrimSpace(c) {
		case "rss":
			row, err = rssCell(*bin, extra, limit, *clients, *pipeline, *rcvbuf, *settle)
		case "agent":
			row, err = agentCell(*bin, extra, limit, *silent, *checks, *interval)
		case "":
			continue
		default:
			fmt.Fprintf(os.Stderr, "abuse: unknown cell %q (rss, agent)\n", c)
			os.Exit(2)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "abuse:", err)
			failed = true
			continue
		}
		rows = append(rows, row)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "== abuse cells (issue 13): %s\n", *name)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "cell\tmeasured\tgoal\tmet")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.cell, r.measured, r.goal, r.met)
	}
	tw.Flush()
	if *summary == "" {
		fmt.Print("\n", b.String())
	} else {
		f, err := os.OpenFile(*summary, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err == nil {
			_, err = io.WriteString(f, b.String())
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fatal(err)
		}
	}
	if failed {
		os.Exit(1)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "abuse:", err)
	os.Exit(1)
}

// loUp brings up lo in the fresh network namespace.
func loUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("netns: lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("netns: lo up: %w", err)
	}
	return nil
}

// validWmem: three positive numbers, min <= default <= max.
func validWmem(wmem string) bool {
	f := strings.Fields(wmem)
	if len(f) != 3 {
		return false
	}
	prev := 1
	for _, s := range f {
		v, err := strconv.Atoi(s)
		if err != nil || v < prev {
			return false
		}
		prev = v
	}
	return true
}

// setWmem caps the TCP send buffers of this network namespace.
func setWmem(wmem string) error {
	if err := os.WriteFile("/proc/sys/net/ipv4/tcp_wmem", []byte(wmem+"\n"), 0o644); err != nil {
		return fmt.Errorf("netns: set net.ipv4.tcp_wmem: %w", err)
	}
	return nil
}

// raiseNofile sets the soft RLIMIT_NOFILE to the hard one and returns it.
// It calls setrlimit even when Go's runtime already raised the soft limit
// at start: only then do the daemons it starts inherit the raised limit
// (otherwise os/exec gives children the limit this process started with).
func raiseNofile() (int, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, fmt.Errorf("getrlimit NOFILE: %w", err)
	}
	r.Cur = r.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, fmt.Errorf("setrlimit NOFILE: %w", err)
	}
	return int(min(r.Cur, 1<<30)), nil
}

// fdMargin is what a process needs besides the cell's connections.
const fdMargin = 200

func skipRow(cell, why string) summaryRow {
	fmt.Printf("-- %s: skipped: %s\n", cell, why)
	return summaryRow{cell: cell, measured: "skipped: " + why, goal: "-", met: "-"}
}

// newStatusDir makes a temporary work directory and a status directory in it
// with status.html and x.80 up.
func newStatusDir() (work, dir string, err error) {
	work, err = os.MkdirTemp("", "http_status-abuse.")
	if err != nil {
		return "", "", err
	}
	dir = filepath.Join(work, "status")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return work, "", err
	}
	for _, f := range []string{"status.html", "x.80"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			return work, "", err
		}
	}
	return work, dir, nil
}

// pipelined returns as many whole copies of req as fit in size bytes (at
// least one), and their count.
func pipelined(req string, size int) ([]byte, int) {
	n := max(1, size/len(req))
	return []byte(strings.Repeat(req, n)), n
}

const statusReq = "GET /status HTTP/1.1\r\nHost: a\r\n\r\n"

// answerLen returns the size of the daemon's answer to req on a kept-alive
// connection.
func answerLen(addr, req string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		return 0, err
	}
	cr := &countReader{r: c}
	resp, err := http.ReadResponse(bufio.NewReader(cr), nil)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /status: %s", resp.Status)
	}
	// The daemon sends nothing more, so the reader read exactly the answer.
	return cr.n, err
}

type countReader struct {
	r io.Reader
	n int
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// inq is the number of bytes received on c and not read yet (SIOCINQ).
func inq(c net.Conn) int {
	sc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	_ = sc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	return n
}

// daemonQueues sums the send and receive queues of the connected sockets
// whose local address is addr (the daemon's side) in /proc/net/tcp{,6}.
func daemonQueues(addr string) (tx, rx, n int, err error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return 0, 0, 0, err
	}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			if f == "/proc/net/tcp6" && errors.Is(err, os.ErrNotExist) {
				continue
			}
			return 0, 0, 0, err
		}
		t, r, k, err := tcpQueues(string(b), int(ap.Port()))
		if err != nil {
			return 0, 0, 0, fmt.Errorf("%s: %w", f, err)
		}
		tx, rx, n = tx+t, rx+r, n+k
	}
	return tx, rx, n, nil
}

// tcpQueues sums tx_queue and rx_queue over the sockets of a /proc/net/tcp
// text whose local port is port, listening sockets left out.
func tcpQueues(text string, port int) (tx, rx, n int, err error) {
	for i, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if i == 0 || len(f) < 5 {
			continue // the header, or the last empty line
		}
		// sl local_address rem_address st tx_queue:rx_queue ...
		_, lport, ok := strings.Cut(f[1], ":")
		if !ok {
			return 0, 0, 0, fmt.Errorf("line %d: local address %q", i+1, f[1])
		}
		p, err := strconv.ParseUint(lport, 16, 16)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("line %d: local port: %w", i+1, err)
		}
		if int(p) != port || f[3] == "0A" { // 0A: TCP_LISTEN
			continue
		}
		txs, rxs, ok := strings.Cut(f[4], ":")
		if !ok {
			return 0, 0, 0, fmt.Errorf("line %d: queues %q", i+1, f[4])
		}
		t, err1 := strconv.ParseUint(txs, 16, 32)
		r, err2 := strconv.ParseUint(rxs, 16, 32)
		if err := errors.Join(err1, err2); err != nil {
			return 0, 0, 0, fmt.Errorf("line %d: queues: %w", i+1, err)
		}
		tx, rx, n = tx+int(t), rx+int(r), n+1
	}
	return tx, rx, n, nil
}

func mb(kib int) float64 { return float64(kib) * 1024 / 1e6 }

// rssCell: n clients pipeline size bytes of GET /status and never read.
func rssCell(bin string, extra []string, limit, n, size, rcvbuf int, settle time.Duration) (summaryRow, error) {
	cell := fmt.Sprintf("RSS, %d clients pipelining %d KiB, not reading", n, size>>10)
	if need := n + fdMargin; limit < need {
		return skipRow(cell, fmt.Sprintf("RLIMIT_NOFILE hard limit %d < %d needed (ulimit -Hn)", limit, need)), nil
	}
	work, dir, err := newStatusDir()
	defer os.RemoveAll(work)
	if err != nil {
		return summaryRow{}, err
	}
	d, err := benchutil.StartDaemon(bin, dir, work, 10*time.Second, extra...)
	if err != nil {
		return summaryRow{}, err
	}
	defer d.Stop()
	pid := d.Cmd.Process.Pid

	// Warm it up as a load balancer would, so "before" is a daemon in use.
	cl, err := benchutil.Dial(d.Addr)
	if err != nil {
		return summaryRow{}, err
	}
	for range 200 {
		if code, err := cl.Get("/status"); err != nil || code != 200 {
			cl.Close()
			return summaryRow{}, fmt.Errorf("rss: warm-up GET /status: %d, %v", code, err)
		}
	}
	cl.Close()
	alen, err := answerLen(d.Addr, statusReq)
	if err != nil {
		return summaryRow{}, fmt.Errorf("rss: one answer: %w", err)
	}
	before, err := d.RSSKiB()
	if err != nil {
		return summaryRow{}, err
	}
	payload, reqs := pipelined(statusReq, size)
	buf := "the kernel's default SO_RCVBUF"
	if rcvbuf > 0 {
		buf = fmt.Sprintf("SO_RCVBUF %d", rcvbuf)
	}
	fmt.Printf("-- rss: %d clients (%s) each send %d bytes (%d pipelined GET /status, asking for %d KB of %d-byte answers) and never read\n",
		n, buf, len(payload), reqs, reqs*alen/1000, alen)

	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	if rcvbuf > 0 {
		// Before connect, so that the window the client offers is small.
		dialer.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	for range n {
		c, err := dialer.Dial("tcp", d.Addr)
		if err != nil {
			return summaryRow{}, fmt.Errorf("rss: dial client %d of %d: %w", len(conns)+1, n, err)
		}
		conns = append(conns, c)
	}
	var wg sync.WaitGroup
	var wrote, werrs atomic.Int64
	var firstErr atomic.Pointer[error]
	start := time.Now()
	for _, c := range conns {
		wg.Go(func() {
			_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			k, err := c.Write(payload)
			wrote.Add(int64(k))
			if err != nil {
				werrs.Add(1)
				firstErr.CompareAndSwap(nil, &err)
			}
		})
	}
	writesDone := make(chan struct{})
	go func() { wg.Wait(); close(writesDone) }()

	// The peak: sample VmRSS until it has not grown for settle after the
	// last write (the daemon answers what it read, then holds what the
	// clients do not take), within 20 s.
	peak, lastGrowth := before, time.Now()
	done := false
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		if kb, err := d.RSSKiB(); err == nil && kb > peak {
			peak, lastGrowth = kb, time.Now()
		}
		if !done {
			select {
			case <-writesDone:
				done, lastGrowth = true, time.Now()
			default:
			}
		}
		if done && time.Since(lastGrowth) >= settle {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	hwm, err := benchutil.ProcStatusKiB(pid, "VmHWM")
	if err != nil {
		return summaryRow{}, err
	}
	delivered := 0
	for _, c := range conns {
		delivered += inq(c)
	}
	tx, rx, nsock, qerr := daemonQueues(d.Addr)
	if !done {
		return summaryRow{}, fmt.Errorf("rss: the clients' writes did not end within 20 s")
	}
	top := max(hwm, peak)
	perConn := float64(top-before) / float64(n)
	fmt.Printf("   daemon VmRSS before %.1f MB; peak %.1f MB (VmHWM; highest VmRSS sampled %.1f MB); %+.1f KiB per connection; settled after %.1f s\n",
		mb(before), mb(hwm), mb(peak), perConn, took.Seconds())
	fmt.Printf("   clients wrote %.1f MB of %.1f MB (%d write errors); answers waiting in the clients' socket buffers: %.1f MB (%.0f KB per client)\n",
		float64(wrote.Load())/1e6, float64(n*len(payload))/1e6, werrs.Load(), float64(delivered)/1e6, float64(delivered)/1e3/float64(n))
	if qerr == nil {
		fmt.Printf("   the daemon's %d sockets hold %.1f MB of answers not yet taken (send queues) and %.1f MB of requests not yet read (receive queues): kernel memory, not in its RSS\n",
			nsock, float64(tx)/1e6, float64(rx)/1e6)
	}
	if e := firstErr.Load(); e != nil {
		fmt.Printf("   first write error: %v\n", *e)
	}
	met := "yes"
	if float64(top)*1024 >= rssGoalBytes {
		met = "no"
	}
	return summaryRow{
		cell:     cell,
		measured: fmt.Sprintf("peak %.1f MB (before %.1f MB; %+.1f KiB/conn)", mb(top), mb(before), perConn),
		goal:     "< 150 MB",
		met:      met,
	}, nil
}

// agentCell: silent connections to the agent port, then real checks.
func agentCell(bin string, extra []string, limit, silent, checks int, interval time.Duration) (summaryRow, error) {
	cell := fmt.Sprintf("agent check, %d silent connections open", silent)
	if need := silent + fdMargin; limit < need {
		return skipRow(cell, fmt.Sprintf("RLIMIT_NOFILE hard limit %d < %d needed (ulimit -Hn)", limit, need)), nil
	}
	work, dir, err := newStatusDir()
	defer os.RemoveAll(work)
	if err != nil {
		return summaryRow{}, err
	}
	port, err := benchutil.FreePort()
	if err != nil {
		return summaryRow{}, err
	}
	agentAddr := fmt.Sprintf("127.0.0.1:%d", port)
	d, err := benchutil.StartDaemon(bin, dir, work, 10*time.Second, append([]string{"--agent-port", fmt.Sprint(port)}, extra...)...)
	if err != nil {
		return summaryRow{}, err
	}
	defer d.Stop()
	if _, reply, err := check(agentAddr); err != nil || !strings.HasPrefix(reply, "up") {
		return summaryRow{}, fmt.Errorf("agent: first check: %q, %v", reply, err)
	}
	fmt.Printf("-- agent: %d silent connections (each dialled again once the daemon closes it), then %d checks \"x.80\\n\" %v apart\n", silent, checks, interval)

	s := newSilent(agentAddr, silent)
	defer s.stop()
	t0 := time.Now()
	for s.open.Load() < int64(silent) && time.Since(t0) < 10*time.Second {
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Printf("   %d of %d open after %.2f s\n", s.open.Load(), silent, time.Since(t0).Seconds())

	var lat []time.Duration
	up, minOpen := 0, int64(silent)
	var firstErr error
	cycles0, c0 := s.cycles.Load(), time.Now()
	for i := range checks {
		if i > 0 {
			time.Sleep(interval)
		}
		minOpen = min(minOpen, s.open.Load())
		took, reply, err := check(agentAddr)
		switch {
		case err != nil:
			if firstErr == nil {
				firstErr = err
			}
		case strings.HasPrefix(reply, "up"):
			up++
		default:
			if firstErr == nil {
				firstErr = fmt.Errorf("reply %q", reply)
			}
		}
		lat = append(lat, took)
	}
	rate := float64(s.cycles.Load()-cycles0) / time.Since(c0).Seconds()
	s.stop()
	slices.Sort(lat)
	med, top := benchutil.Percentile(lat, 50), lat[len(lat)-1]
	fmt.Printf("   checks: %d/%d up, median %.2f ms, p90 %.2f ms, max %.2f ms; silent connections open meanwhile: at least %d; the daemon closed %.0f of them per second; dial errors %d\n",
		up, checks, ms(med), ms(benchutil.Percentile(lat, 90)), ms(top), minOpen, rate, s.dialErrs.Load())
	if firstErr != nil {
		fmt.Printf("   first failed check: %v\n", firstErr)
	}
	met := "yes"
	if med >= agentGoalMedia || up != checks {
		met = "no"
	}
	return summaryRow{
		cell:     cell,
		measured: fmt.Sprintf("median %.2f ms, max %.2f ms (%d/%d up)", ms(med), ms(top), up, checks),
		goal:     "median < 100 ms",
		met:      met,
	}, nil
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// check is one agent check as HAProxy does it: connect, send the line, read
// one reply line. It returns the time from dial to reply.
func check(addr string) (time.Duration, string, error) {
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return time.Since(start), "", err
	}
	defer c.Close()
	_ = c.SetDeadline(start.Add(10 * time.Second))
	if _, err := io.WriteString(c, "x.80\n"); err != nil {
		return time.Since(start), "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	took := time.Since(start)
	if err != nil {
		return took, line, fmt.Errorf("read the reply: %w", err)
	}
	return took, strings.TrimSuffix(line, "\n"), nil
}

// silentConns holds n connections that send nothing: each waits for the
// daemon to answer and close it, then dials again.
type silentConns struct {
	addr     string
	open     atomic.Int64
	cycles   atomic.Int64 // connections the daemon closed
	dialErrs atomic.Int64
	stopping atomic.Bool
	mu       sync.Mutex
	live     map[net.Conn]struct{}
	wg       sync.WaitGroup
	once     sync.Once
}

func newSilent(addr string, n int) *silentConns {
	s := &silentConns{addr: addr, live: make(map[net.Conn]struct{}, n)}
	for range n {
		s.wg.Go(s.worker)
	}
	return s
}

func (s *silentConns) worker() {
	buf := make([]byte, 512)
	for !s.stopping.Load() {
		c, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
		if err != nil {
			s.dialErrs.Add(1)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		s.live[c] = struct{}{}
		stopping := s.stopping.Load()
		s.mu.Unlock()
		s.open.Add(1)
		if !stopping {
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			for {
				if _, err := c.Read(buf); err != nil {
					if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
						s.cycles.Add(1)
					}
					break
				}
			}
		}
		s.open.Add(-1)
		s.mu.Lock()
		delete(s.live, c)
		s.mu.Unlock()
		c.Close()
	}
}

// stop closes every silent connection and waits for the workers.
func (s *silentConns) stop() {
	s.once.Do(func() {
		s.mu.Lock()
		s.stopping.Store(true)
		for c := range s.live {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
}
