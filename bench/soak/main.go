//go:build linux

// Command soak runs the real daemon for minutes under everything at once
// and watches what grows. It is a measurement, not a test: it asserts
// nothing and exits 0 unless the daemon could not be run; it prints
// samples and the count of wrong answers, and the operator reads them.
//
//	go run ./bench/soak -bin PATH/http_status [-load 4m] [-idle 20s]
//
// As root it re-executes itself under "unshare -n" (a fresh network
// namespace: lo, a veth pair soak0/soak1), starts the daemon there with a
// temp --dir, the agent port, --pages on a port of its own and a --config
// with an exec probe that hangs past its timeout one attempt in four and
// an http probe to a loopback server that stalls one request in four.
// Then, for -load, at once:
//
//   - 16 checked flags chk-N.80 changed every 0.2-1 s in every way (touch,
//     rm, rename over, truncate, in-place edit with a reason, chmod 000 and
//     back, a symlink and a symlink swapped over it, a directory, the
//     control command's drain/activate/list);
//   - waves of 3,000 flags created and removed;
//   - addresses on soak0 added and removed (IPv4, IPv6 nodad, IPv6 with
//     DAD, that is tentative for a while), one by one and in bursts of 100;
//   - checkers on /status (keep-alive and one connection per request, with
//     and without VIP=) and the agent port (a line, and none), each answer
//     compared with what the driver last did to that flag and address, once
//     -settle has passed since and nothing changed during the request;
//   - /events clients that read a little and vanish, ones that never read,
//     /board and /metrics scrapes, clients that stall mid-request and
//     clients that reset;
//   - SIGHUP every 5 s with the good config, a broken one, the good one.
//
// Every -every it samples the daemon's VmRSS, VmHWM, open fds, threads,
// CPU, and go_goroutines and go_memstats_* from /metrics. After the load
// it returns the flags and addresses to how they started and samples for
// -idle more: the counts should come back near the start and the CPU to ~0.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/http-status/http_status/bench/internal/benchutil"
)

var (
	bin    = flag.String("bin", "", "the http_status binary (required)")
	load   = flag.Duration("load", 4*time.Minute, "how long the load runs")
	idle   = flag.Duration("idle", 20*time.Second, "idle sampling before and after the load")
	every  = flag.Duration("every", 3*time.Second, "sampling period")
	settle = flag.Duration("settle", 1500*time.Millisecond, "time after a change before an answer must agree with it")
	waveN  = flag.Int("wave", 3000, "flags per wave")
	hold   = flag.Duration("hold", 0, "keep the daemon running this long after the report, to look at it")
)

const nChecked = 16

func main() {
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "soak: -bin is required")
		os.Exit(2)
	}
	if !benchutil.InNetns() {
		if err := benchutil.RunInNetns(os.Args[1:]...); err != nil {
			fatal(err)
		}
	}
	if err := run(); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "soak:", err)
	os.Exit(1)
}

func sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// truth is what the driver last did to one flag or address: the state it
// must be answered with once settle has passed, unless it is changing now.
type truth struct {
	mu       sync.Mutex
	state    string // up, drain, maint, down, missing; for an address: present, absent
	weight   string // "50%" or ""
	at       time.Time
	changing bool
	seq      uint64
	settle   time.Duration
}

func (t *truth) begin() {
	t.mu.Lock()
	t.changing = true
	t.seq++
	t.mu.Unlock()
}

func (t *truth) end(state, weight string, settle time.Duration) {
	t.mu.Lock()
	t.state, t.weight, t.at, t.changing, t.settle = state, weight, time.Now(), false, settle
	t.seq++
	t.mu.Unlock()
}

type view struct {
	state, weight string
	seq           uint64
	ok            bool // settled and not changing
}

func (t *truth) view(now time.Time) view {
	t.mu.Lock()
	defer t.mu.Unlock()
	return view{t.state, t.weight, t.seq, !t.changing && now.Sub(t.at) >= t.settle}
}

func (t *truth) same(seq uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.seq == seq && !t.changing
}

type counters struct {
	checks, compared, wrong, errs atomic.Int64
	flagOps, addrOps, waves       atomic.Int64
	reloads, events, stallers     atomic.Int64
}

var cnt counters

var wrongLog = make(chan string, 64)

func reportWrong(format string, a ...any) {
	cnt.wrong.Add(1)
	select {
	case wrongLog <- fmt.Sprintf(format, a...):
	default:
	}
}

type soak struct {
	dir, work, bin string
	d              *benchutil.Daemon
	checkAddr      string
	agentAddr      string
	pagesAddr      string
	config         string
	flags          [nChecked]*truth
	addrs          []string // the checked addresses
	addrT          []*truth
	probeSrv       string
}

func run() error {
	if err := sh("ip", "link", "set", "lo", "up"); err != nil {
		return err
	}
	if err := sh("ip", "link", "add", "soak0", "type", "veth", "peer", "name", "soak1"); err != nil {
		return err
	}
	for _, l := range []string{"soak0", "soak1"} {
		if err := sh("ip", "link", "set", l, "up"); err != nil {
			return err
		}
	}
	work, err := os.MkdirTemp("", "soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	s := &soak{dir: filepath.Join(work, "st"), work: work, bin: *bin, config: filepath.Join(work, "probes.toml")}
	if err := os.Mkdir(s.dir, 0o755); err != nil {
		return err
	}
	// The probes' targets.
	if err := s.startProbeServer(); err != nil {
		return err
	}
	hang := filepath.Join(work, "hang.sh")
	// One attempt in four hangs past the 1 s timeout (its sleep child too:
	// the whole group must be killed).
	os.WriteFile(hang, []byte("#!/bin/sh\nn=$(od -An -N1 -tu1 /dev/urandom)\nif [ $n -lt 64 ]; then sleep 5; fi\necho ok\n"), 0o755)
	s.writeConfig(hang, false, "2s")
	for _, f := range []string{"status.html", "execsvc.81", "httpsvc.82"} {
		os.WriteFile(filepath.Join(s.dir, f), nil, 0o644)
	}
	for i := range s.flags {
		s.flags[i] = &truth{state: "missing", settle: *settle}
	}
	for i := range 8 {
		a := fmt.Sprintf("10.77.0.%d", i+1)
		if i >= 4 {
			a = fmt.Sprintf("fd77::%d", i+1)
		}
		s.addrs = append(s.addrs, a)
		s.addrT = append(s.addrT, &truth{state: "absent", settle: *settle})
	}
	agentPort, _ := benchutil.FreePort()
	pagesPort, _ := benchutil.FreePort()
	s.agentAddr = fmt.Sprintf("127.0.0.1:%d", agentPort)
	s.pagesAddr = fmt.Sprintf("127.0.0.1:%d", pagesPort)
	s.d, err = benchutil.StartDaemon(s.bin, s.dir, work, 20*time.Second,
		"--agent-port", strconv.Itoa(agentPort), "--pages", s.pagesAddr, "--config", s.config, "--log-level", "info")
	if err != nil {
		return err
	}
	defer s.d.Stop()
	s.checkAddr = s.d.Addr
	// Read every notification, as systemd would: a NOTIFY_SOCKET nobody
	// reads fills after net.unix.max_dgram_qlen (10) messages.
	go s.d.WaitNotify("never sent", 24*time.Hour)
	hang0 := hang
	pid := s.d.Cmd.Process.Pid
	fmt.Printf("daemon pid %d check %s agent %s pages %s dir %s log %s\n", pid, s.checkAddr, s.agentAddr, s.pagesAddr, s.dir, s.d.LogFile)

	smp := &sampler{pid: pid, pages: s.pagesAddr}
	fmt.Println(sampleHeader)
	var phase atomic.Value
	phase.Store("idle0")
	sample := func() { smp.sample(phase.Load().(string), s.dir) }
	stopSampling := make(chan struct{})
	var sw sync.WaitGroup
	sw.Go(func() {
		t := time.NewTicker(*every)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-t.C:
				sample()
			}
		}
	})
	sample()
	time.Sleep(*idle)
	fds0 := fdKinds(pid)

	phase.Store("load")
	ctx, cancel := context.WithTimeout(context.Background(), *load)
	var wg sync.WaitGroup
	for i := range s.flags {
		wg.Go(func() { s.flipFlag(ctx, i) })
	}
	wg.Go(func() { s.waves(ctx) })
	wg.Go(func() { s.flipAddrs(ctx) })
	wg.Go(func() { s.addrBursts(ctx) })
	for range 2 {
		wg.Go(func() { s.checkHTTP(ctx, true) })
		wg.Go(func() { s.checkHTTP(ctx, false) })
		wg.Go(func() { s.checkAgent(ctx) })
	}
	wg.Go(func() { s.checkProbed(ctx) })
	wg.Go(func() { s.eventClients(ctx) })
	wg.Go(func() { s.nonReaders(ctx) })
	wg.Go(func() { s.scrapes(ctx) })
	wg.Go(func() { s.stallers(ctx) })
	wg.Go(func() { s.reloads(ctx, hang0) })
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-wrongLog:
				fmt.Println("WRONG", m)
			}
		}
	})
	wg.Wait()
	cancel()

	// Back to the start: the checked flags and addresses gone, the waves
	// gone, the good config.
	phase.Store("restore")
	for i := range s.flags {
		os.RemoveAll(filepath.Join(s.dir, fmt.Sprintf("chk-%d.80", i)))
	}
	ents, _ := os.ReadDir(s.dir)
	for _, e := range ents {
		if n := e.Name(); n != "status.html" && n != "execsvc.81" && n != "httpsvc.82" {
			os.RemoveAll(filepath.Join(s.dir, n))
		}
	}
	sh("ip", "addr", "flush", "dev", "soak0", "scope", "global")
	s.writeConfig(hang0, false, "2s")
	s.d.Cmd.Process.Signal(syscall.SIGHUP)
	phase.Store("idle1")
	time.Sleep(*idle)
	close(stopSampling)
	sw.Wait()
	sample()
	smp.summary()
	if b, err := os.ReadFile(s.d.LogFile); err == nil {
		for _, l := range []string{"SIGHUP: rescanning", "probe config reloaded", "probe config not reloaded", "reload done", "sd_notify failed"} {
			fmt.Printf("daemon log %q: %d\n", l, strings.Count(string(b), l))
		}
	}
	fmt.Println("fds at the start:", fds0)
	fmt.Println("fds at the end:  ", fdKinds(pid))
	if *hold > 0 {
		fmt.Println("holding the daemon for", *hold)
		time.Sleep(*hold)
	}
	fmt.Printf("checks %d compared %d WRONG %d errors %d flag-ops %d addr-ops %d waves %d reloads %d event-clients %d stallers %d\n",
		cnt.checks.Load(), cnt.compared.Load(), cnt.wrong.Load(), cnt.errs.Load(), cnt.flagOps.Load(), cnt.addrOps.Load(),
		cnt.waves.Load(), cnt.reloads.Load(), cnt.events.Load(), cnt.stallers.Load())
	return nil
}

func (s *soak) writeConfig(hang string, broken bool, interval string) {
	s.writeConfigN(hang, broken, interval, 0)
}

// writeConfigN: with n > 0 a tcp probe of a service named after n (gone
// at the next reload) comes too.
func (s *soak) writeConfigN(hang string, broken bool, interval string, n int) {
	cfg := fmt.Sprintf(`[defaults]
rise = 1
fall = 1

[[probe]]
service  = "execsvc.81"
kind     = "exec"
command  = ["%s"]
interval = "%s"
timeout  = "1s"

[[probe]]
service  = "httpsvc.82"
kind     = "http"
address  = "%s"
path     = "/ping"
interval = "%s"
timeout  = "1s"
`, hang, interval, s.probeSrv, interval)
	if n > 0 {
		cfg += fmt.Sprintf("\n[[probe]]\nservice = \"rot%d.1\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\ninterval = \"1s\"\n", n)
	}
	if broken {
		cfg += "\n[[probe]]\nservice = \"x.1\"\nkind = \"tcp\"\nadress = \"127.0.0.1:1\"\n"
	}
	tmp := s.config + ".tmp"
	os.WriteFile(tmp, []byte(cfg), 0o644)
	os.Rename(tmp, s.config)
}

func (s *soak) startProbeServer() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.probeSrv = ln.Addr().String()
	var n atomic.Int64
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%4 == 0 {
			time.Sleep(3 * time.Second) // past the probe's 1 s timeout
		}
		io.WriteString(w, "pong\n")
	}))
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// stateOf is what a flag with this content means (the driver writes only
// lines it knows).
func stateOf(content string) (string, string) {
	f := strings.Fields(content)
	if len(f) == 0 {
		return "up", ""
	}
	w := ""
	if len(f) > 1 && strings.HasSuffix(f[1], "%") {
		w = f[1]
	}
	return f[0], w
}

var contents = []string{"", "up\n", "up 50% # half\n", "drain # deploy 1234\n", "maint # kernel\n", "down # broken\n"}

// flipFlag changes chk-i.80 every 0.2-1 s in one way or another.
func (s *soak) flipFlag(ctx context.Context, i int) {
	t := s.flags[i]
	name := fmt.Sprintf("chk-%d.80", i)
	p := filepath.Join(s.dir, name)
	cur := "missing" // what is at p: missing, file, link, dir
	content := ""
	chmodded := false
	for sleepCtx(ctx, time.Duration(300+rand.IntN(2700))*time.Millisecond) {
		cnt.flagOps.Add(1)
		t.begin()
		if cur == "link" {
			os.Remove(p)
			cur = "missing"
		}
		if cur == "dir" {
			os.Remove(p)
			cur = "missing"
		}
		op := rand.IntN(12)
		switch {
		case op == 0 && cur == "file": // rm
			os.Remove(p)
			cur = "missing"
		case op == 1: // touch
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
			if err == nil {
				f.Close()
				if cur == "missing" {
					content = ""
				}
				cur = "file"
			}
			now := time.Now()
			os.Chtimes(p, now, now)
		case op == 2 || op == 3: // rename over
			c := contents[rand.IntN(len(contents))]
			tmp := filepath.Join(s.dir, "."+name+".new")
			os.WriteFile(tmp, []byte(c), 0o644)
			os.Rename(tmp, p)
			cur, content, chmodded = "file", c, false
		case op == 4 && cur == "file": // truncate
			os.Truncate(p, 0)
			content = ""
		case op == 5: // hand edit in place, with a reason
			c := contents[rand.IntN(len(contents))]
			if c != "" {
				c = strings.TrimSuffix(c, "\n") + " edited by hand\n"
			}
			if f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644); err == nil {
				f.WriteString(c)
				f.Close()
				cur, content = "file", c
			}
		case op == 6 && cur == "file": // chmod 000 and back (root reads both)
			if chmodded {
				os.Chmod(p, 0o644)
			} else {
				os.Chmod(p, 0)
			}
			chmodded = !chmodded
		case op == 7: // a symlink, swapped over by another
			tgt := filepath.Join(s.work, "target-up")
			os.WriteFile(tgt, nil, 0o644)
			os.Remove(p)
			os.Symlink(tgt, p)
			tmp := filepath.Join(s.dir, "."+name+".lnk")
			os.Symlink(filepath.Join(s.work, "target-other"), tmp)
			os.Rename(tmp, p)
			cur, chmodded = "link", false
		case op == 8 && cur != "file": // a directory under the name
			os.Remove(p)
			os.Mkdir(p, 0o755)
			cur = "dir"
		case op == 9: // the control command
			verb := []string{"drain", "activate", "maint", "inactivate"}[rand.IntN(4)]
			args := []string{verb, name, "--dir", s.dir}
			if verb == "drain" {
				args = append(args, "--reason", "soak")
			}
			if err := exec.Command(s.bin, args...).Run(); err != nil {
				fmt.Println("control:", err)
			}
			if f, err := os.ReadFile(p); err == nil {
				cur, content, chmodded = "file", string(f), false
			} else {
				cur = "missing"
			}
		case op == 10:
			exec.Command(s.bin, "list", "--dir", s.dir).Run()
		}
		st, w := "missing", ""
		if cur == "file" {
			st, w = stateOf(content)
		}
		t.end(st, w, *settle)
	}
}

// waves creates and removes -wave flags, again and again.
func (s *soak) waves(ctx context.Context) {
	for sleepCtx(ctx, 3*time.Second) {
		cnt.waves.Add(1)
		for j := range *waveN {
			c := contents[j%len(contents)]
			if j%10 == 9 {
				c = "drain 300% until=2026-13-01T00:00:00Z # bad weight and date\n"
			}
			os.WriteFile(filepath.Join(s.dir, fmt.Sprintf("wave-%d.%d", j, 1000+j%60000)), []byte(c), 0o644)
		}
		if !sleepCtx(ctx, 5*time.Second) {
			return
		}
		for j := range *waveN {
			os.Remove(filepath.Join(s.dir, fmt.Sprintf("wave-%d.%d", j, 1000+j%60000)))
		}
	}
}

// flipAddrs adds and removes the checked addresses on soak0 one at a time.
func (s *soak) flipAddrs(ctx context.Context) {
	present := make([]bool, len(s.addrs))
	for sleepCtx(ctx, time.Duration(100+rand.IntN(400))*time.Millisecond) {
		i := rand.IntN(len(s.addrs))
		a, t := s.addrs[i], s.addrT[i]
		cnt.addrOps.Add(1)
		t.begin()
		pfx := "/32"
		settle := *settle
		var extra []string
		if strings.Contains(a, ":") {
			pfx = "/128"
			if i%2 == 0 {
				extra = []string{"nodad"}
			} else {
				settle = 4 * time.Second // tentative until DAD passes
			}
		}
		if present[i] {
			if err := sh("ip", "addr", "del", a+pfx, "dev", "soak0"); err != nil {
				fmt.Println(err)
			}
		} else {
			if err := sh(append([]string{"ip", "addr", "add", a + pfx, "dev", "soak0"}, extra...)...); err != nil {
				fmt.Println(err)
			}
		}
		present[i] = !present[i]
		st := "absent"
		if present[i] {
			st = "present"
		}
		t.end(st, "", settle)
	}
}

// addrBursts adds 100 addresses at once and removes them, some IPv6
// tentative.
func (s *soak) addrBursts(ctx context.Context) {
	for sleepCtx(ctx, 2*time.Second) {
		var add, del strings.Builder
		for j := range 100 {
			switch j % 3 {
			case 0:
				fmt.Fprintf(&add, "addr add 10.78.%d.%d/32 dev soak0\n", j/200, j%200+1)
				fmt.Fprintf(&del, "addr del 10.78.%d.%d/32 dev soak0\n", j/200, j%200+1)
			case 1:
				fmt.Fprintf(&add, "addr add fd78::%x/128 dev soak0 nodad\n", j+1)
				fmt.Fprintf(&del, "addr del fd78::%x/128 dev soak0\n", j+1)
			default:
				fmt.Fprintf(&add, "addr add fd79::%x/128 dev soak0\n", j+1)
				fmt.Fprintf(&del, "addr del fd79::%x/128 dev soak0\n", j+1)
			}
		}
		batch(add.String())
		cnt.addrOps.Add(100)
		if !sleepCtx(ctx, time.Duration(500+rand.IntN(2000))*time.Millisecond) {
			batch(del.String())
			return
		}
		batch(del.String())
		cnt.addrOps.Add(100)
	}
}

func batch(cmds string) {
	c := exec.Command("ip", "-force", "-batch", "-")
	c.Stdin = strings.NewReader(cmds)
	c.Run()
}

func httpGet(c *http.Client, url string) (int, http.Header, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header, string(b), err
}

func codeOf(state string) int {
	switch state {
	case "up":
		return 200
	case "drain", "missing":
		return 404
	}
	return 503
}

// checkHTTP asks /status for checked flags, sometimes with a checked VIP,
// and compares.
func (s *soak) checkHTTP(ctx context.Context, keepAlive bool) {
	tr := &http.Transport{DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 4}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	defer tr.CloseIdleConnections()
	for sleepCtx(ctx, 3*time.Millisecond) {
		i := rand.IntN(nChecked)
		t := s.flags[i]
		url := fmt.Sprintf("http://%s/status?SERVICE=chk-%d&PORT=80", s.checkAddr, i)
		var at *truth
		if rand.IntN(3) == 0 {
			k := rand.IntN(len(s.addrs))
			at = s.addrT[k]
			url += "&VIP=" + s.addrs[k]
		}
		start := time.Now()
		v := t.view(start)
		var av view
		if at != nil {
			av = at.view(start)
		}
		code, h, body, err := httpGet(c, url)
		cnt.checks.Add(1)
		if err != nil {
			cnt.errs.Add(1)
			continue
		}
		if !v.ok || !t.same(v.seq) || (at != nil && (!av.ok || !at.same(av.seq))) {
			continue
		}
		cnt.compared.Add(1)
		want := codeOf(v.state)
		if at != nil && v.state == "up" && av.state == "absent" {
			want = 404
		}
		gotState := h.Get("X-Status-State")
		if code != want || gotState != v.state {
			vip := ""
			if at != nil {
				vip = " vip " + av.state
			}
			reportWrong("http %s: got %d %s (%q), want %d %s%s", url, code, gotState, strings.TrimSpace(body), want, v.state, vip)
		}
	}
}

// checkAgent asks the agent port for checked flags (with and without a
// VIP in the line) and, without a line, for status.html.
func (s *soak) checkAgent(ctx context.Context) {
	for sleepCtx(ctx, 3*time.Millisecond) {
		i := rand.IntN(nChecked)
		t := s.flags[i]
		line := fmt.Sprintf("chk-%d.80\n", i)
		noLine := rand.IntN(10) == 0
		if noLine {
			line = ""
		}
		start := time.Now()
		v := t.view(start)
		conn, err := net.DialTimeout("tcp", s.agentAddr, 5*time.Second)
		if err != nil {
			cnt.errs.Add(1)
			continue
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if line != "" {
			io.WriteString(conn, line)
		}
		reply, err := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		cnt.checks.Add(1)
		if err != nil {
			cnt.errs.Add(1)
			continue
		}
		reply = strings.TrimSpace(reply)
		if noLine {
			cnt.compared.Add(1)
			if reply != "up ready 100%" {
				reportWrong("agent (no line): got %q, want up ready 100%%", reply)
			}
			continue
		}
		if !v.ok || !t.same(v.seq) {
			continue
		}
		cnt.compared.Add(1)
		var want string
		switch v.state {
		case "up":
			w := v.weight
			if w == "" {
				w = "100%"
			}
			want = "up ready " + w
		case "drain":
			want = "up drain"
		case "maint":
			want = "maint"
		case "down":
			want = "down ready"
		case "missing":
			want = "down ready #no flag file"
		}
		if reply != want && !strings.HasPrefix(reply, want+" #") {
			reportWrong("agent %q: got %q, want %q", strings.TrimSpace(line), reply, want)
		}
	}
}

// checkProbed: the probed flags are up, so their answers may be 200 or 503
// (a probe failing), never anything else.
func (s *soak) checkProbed(ctx context.Context) {
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for sleepCtx(ctx, 50*time.Millisecond) {
		for _, svc := range []string{"SERVICE=execsvc&PORT=81", "SERVICE=httpsvc&PORT=82", ""} {
			code, _, body, err := httpGet(c, fmt.Sprintf("http://%s/status?%s", s.checkAddr, svc))
			cnt.checks.Add(1)
			if err != nil {
				cnt.errs.Add(1)
				continue
			}
			cnt.compared.Add(1)
			if svc == "" && code != 200 || code != 200 && !(code == 503 && strings.Contains(body, "probe ")) {
				reportWrong("probed %q: got %d %q", svc, code, body)
			}
		}
	}
}

// eventClients connect to /events, read a little and vanish.
func (s *soak) eventClients(ctx context.Context) {
	for sleepCtx(ctx, 100*time.Millisecond) {
		conn, err := net.DialTimeout("tcp", s.pagesAddr, 5*time.Second)
		if err != nil {
			cnt.errs.Add(1)
			continue
		}
		cnt.events.Add(1)
		fmt.Fprintf(conn, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
		conn.SetReadDeadline(time.Now().Add(time.Duration(rand.IntN(2000)) * time.Millisecond))
		io.CopyN(io.Discard, conn, int64(rand.IntN(20000)))
		if rand.IntN(2) == 0 {
			conn.(*net.TCPConn).SetLinger(0) // a reset
		}
		conn.Close()
	}
}

// nonReaders hold /events streams that never read, 8 at a time, each for
// up to 20 s.
func (s *soak) nonReaders(ctx context.Context) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
					c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048) })
					return nil
				}}
				conn, err := d.Dial("tcp", s.pagesAddr)
				if err != nil {
					cnt.errs.Add(1)
					sleepCtx(ctx, time.Second)
					continue
				}
				cnt.events.Add(1)
				fmt.Fprintf(conn, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
				sleepCtx(ctx, time.Duration(rand.IntN(20000))*time.Millisecond)
				conn.Close()
			}
		})
	}
	wg.Wait()
}

// scrapes read /board, /metrics, /status.json and /status.txt.
func (s *soak) scrapes(ctx context.Context) {
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	paths := []string{"/board", "/metrics", "/status.json", "/status.txt", "/healthz"}
	for sleepCtx(ctx, 300*time.Millisecond) {
		p := paths[rand.IntN(len(paths))]
		_, _, _, err := httpGet(c, "http://"+s.pagesAddr+p)
		if err != nil {
			cnt.errs.Add(1)
		}
	}
}

// stallers stall mid-request on the check, agent and pages ports, or
// reset, 16 at a time.
func (s *soak) stallers(ctx context.Context) {
	var wg sync.WaitGroup
	for k := range 16 {
		wg.Go(func() {
			for sleepCtx(ctx, time.Duration(rand.IntN(500))*time.Millisecond) {
				addr := []string{s.checkAddr, s.agentAddr, s.pagesAddr}[k%3]
				conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					cnt.errs.Add(1)
					continue
				}
				cnt.stallers.Add(1)
				if addr == s.agentAddr {
					io.WriteString(conn, "chk-1")
				} else {
					io.WriteString(conn, "GET /status?SERVICE=chk-1&PO")
				}
				if rand.IntN(2) == 0 {
					conn.(*net.TCPConn).SetLinger(0)
				} else {
					sleepCtx(ctx, time.Duration(rand.IntN(3000))*time.Millisecond)
				}
				conn.Close()
			}
		})
	}
	wg.Wait()
}

// reloads: SIGHUP with the good config, a broken one, the good one with
// another interval.
func (s *soak) reloads(ctx context.Context, hang string) {
	for n := 0; sleepCtx(ctx, 5*time.Second); n++ {
		switch n % 3 {
		case 0:
			s.writeConfig(hang, false, "2s")
		case 1:
			s.writeConfig(hang, true, "2s")
		case 2:
			s.writeConfigN(hang, false, "3s", n)
		}
		s.d.Cmd.Process.Signal(syscall.SIGHUP)
		cnt.reloads.Add(1)
	}
}

// sampler reads the daemon's /proc and /metrics.
type sampler struct {
	pid     int
	pages   string
	lastCPU int64
	lastAt  time.Time
	rows    [][]float64
	phases  []string
}

const sampleHeader = "t_s\tphase\tflags\tVmRSS_kB\tVmHWM_kB\tfds\tthreads\tcpu_pct\tgoroutines\theap_inuse_MB\theap_objects\tsys_MB\thttp_conns\tagent_conns\tchildren\tmetrics_lines"

var cols = []string{"flags", "VmRSS_kB", "VmHWM_kB", "fds", "threads", "cpu_pct", "goroutines", "heap_inuse_MB", "heap_objects", "sys_MB", "http_conns", "agent_conns", "children", "metrics_lines"}

var t0 = time.Now()

func (m *sampler) sample(phase, dir string) {
	ents, _ := os.ReadDir(dir)
	rss, _ := benchutil.ProcStatusKiB(m.pid, "VmRSS")
	hwm, _ := benchutil.ProcStatusKiB(m.pid, "VmHWM")
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", m.pid))
	thr := procStatusNum(m.pid, "Threads")
	cpu := procCPU(m.pid)
	now := time.Now()
	pct := 0.0
	if !m.lastAt.IsZero() {
		pct = float64(cpu-m.lastCPU) / 100 / now.Sub(m.lastAt).Seconds() * 100
	}
	m.lastCPU, m.lastAt = cpu, now
	met := scrape(m.pages)
	children := countChildren(m.pid)
	row := []float64{float64(len(ents)), float64(rss), float64(hwm), float64(len(fds)), float64(thr), pct,
		met["go_goroutines"], met["go_memstats_heap_inuse_bytes"] / 1e6, met["go_memstats_heap_objects"], met["go_memstats_sys_bytes"] / 1e6,
		met["http_status_http_connections"], met["http_status_agent_connections"], float64(children), met["lines"]}
	m.rows = append(m.rows, row)
	m.phases = append(m.phases, phase)
	var b strings.Builder
	fmt.Fprintf(&b, "%.0f\t%s", now.Sub(t0).Seconds(), phase)
	for _, v := range row {
		fmt.Fprintf(&b, "\t%.4g", v)
	}
	fmt.Println(b.String())
}

// summary prints start (first idle0), peak and end (last idle1) of each
// column.
func (m *sampler) summary() {
	if len(m.rows) == 0 {
		return
	}
	fmt.Println("column\tstart\tpeak\tend")
	for c, name := range cols {
		peak := m.rows[0][c]
		for _, r := range m.rows {
			peak = max(peak, r[c])
		}
		fmt.Printf("%s\t%.4g\t%.4g\t%.4g\n", name, m.rows[0][c], peak, m.rows[len(m.rows)-1][c])
	}
}

func procStatusNum(pid int, field string) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// procCPU: utime+stime in clock ticks (100 a second).
func procCPU(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

// countChildren counts processes whose parent is pid (probe scripts left
// behind would pile up here).
func countChildren(pid int) int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			n++
		}
	}
	return n
}

func scrape(addr string) map[string]float64 {
	out := map[string]float64{}
	tr := &http.Transport{DisableKeepAlives: true}
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		out["lines"]++
		if strings.HasPrefix(l, "#") {
			continue
		}
		name, val, ok := strings.Cut(l, " ")
		if !ok || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = v
		}
	}
	if errors.Is(sc.Err(), io.ErrUnexpectedEOF) {
		return out
	}
	return out
}

// fdKinds counts the daemon's open descriptors by what they are.
func fdKinds(pid int) map[string]int {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	out := map[string]int{}
	for _, e := range ents {
		l, _ := os.Readlink(filepath.Join(dir, e.Name()))
		k, _, _ := strings.Cut(l, ":")
		if strings.HasPrefix(l, "/") {
			k = l
		}
		out[k]++
	}
	return out
}
