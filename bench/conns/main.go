//go:build linux

// Command conns measures what counting connections costs: one sock_diag
// count (conns.Counter) with many sockets open, and the daemon's CPU per
// second while its sampler runs, against the same daemon idle.
//
//	go build -o /tmp/http_status ./cmd/http_status
//	go run ./bench/conns -daemon /tmp/http_status            # 5,000 connections: 10,000 sockets
//	go run ./bench/conns -conns 1000 -seconds 5 -daemon ...   # quicker
//
// It runs itself again in a fresh network namespace (root needed), so the
// host's own sockets neither add to nor hide from the figures, and it opens
// the connections there on loopback. It asserts nothing.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/http-status/http_status/bench/internal/benchutil"
	"github.com/http-status/http_status/internal/conns"
)

func main() {
	n := flag.Int("conns", 5000, "established connections to open on the counted port (each has two sockets: 2n in all, 10,000 by default)")
	calls := flag.Int("calls", 200, "counts per measurement of one count")
	seconds := flag.Int("seconds", 20, "seconds of daemon CPU measured, sampler on and off")
	daemon := flag.String("daemon", "", "http_status binary: also measure the daemon's CPU with its sampler on and off")
	flag.Parse()
	if !benchutil.InNetns() {
		err := benchutil.RunInNetns(os.Args[1:]...)
		fmt.Fprintln(os.Stderr, "conns:", err)
		os.Exit(1)
	}
	if err := run(*n, *calls, *seconds, *daemon); err != nil {
		fmt.Fprintln(os.Stderr, "conns:", err)
		os.Exit(1)
	}
}

func run(n, calls, seconds int, daemon string) error {
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	// This process holds both ends of every connection.
	need := uint64(2*n + 256)
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur < need {
		lim.Cur = min(need, lim.Max)
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < need {
			return fmt.Errorf("need %d open files, the limit is %d (hard %d): lower -conns", need, lim.Cur, lim.Max)
		}
	}
	busy, err := listen()
	if err != nil {
		return err
	}
	quiet, err := listen()
	if err != nil {
		return err
	}
	bport := uint16(busy.Addr().(*net.TCPAddr).Port)
	qport := uint16(quiet.Addr().(*net.TCPAddr).Port)
	start := time.Now()
	var keep []net.Conn
	for range n {
		c, err := net.Dial("tcp4", busy.Addr().String())
		if err != nil {
			return fmt.Errorf("connection %d: %w", len(keep), err)
		}
		keep = append(keep, c)
	}
	fmt.Printf("%d connections to port %d open (%d sockets) in %v\n\n", n, bport, 2*n, time.Since(start).Round(time.Millisecond))

	c, err := conns.NewCounter()
	if err != nil {
		return err
	}
	defer c.Close()
	many := []uint16{bport}
	for p := uint16(1); len(many) < 100; p++ {
		if p != bport {
			many = append(many, p)
		}
	}
	fmt.Println("| count | result | wall per call | CPU per call (user+sys) | of which system |")
	fmt.Println("| --- | --- | --- | --- | --- |")
	for _, m := range []struct {
		what string
		f    func() (string, error)
	}{
		{"busy port, in-kernel filter (conns.Counter)", func() (string, error) {
			r, err := c.Count([]uint16{bport})
			return strconv.Itoa(r[bport]), err
		}},
		{"quiet port, in-kernel filter", func() (string, error) {
			r, err := c.Count([]uint16{qport})
			return strconv.Itoa(r[qport]), err
		}},
		{"100 ports, filtered here (more than the kernel filter takes)", func() (string, error) {
			r, err := c.Count(many)
			return strconv.Itoa(r[bport]), err
		}},
		{"netlink.SocketDiagTCP, IPv4 and IPv6 (every socket, every state, with tcp_info)", func() (string, error) {
			k := 0
			for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
				ss, err := netlink.SocketDiagTCP(fam)
				if err != nil {
					return "", err
				}
				for _, s := range ss {
					if s.State == 1 && s.ID.SourcePort == bport {
						k++
					}
				}
			}
			return strconv.Itoa(k), nil
		}},
	} {
		var res string
		u0, s0 := cpuTime()
		wall0 := time.Now()
		for range calls {
			if res, err = m.f(); err != nil {
				return fmt.Errorf("%s: %w", m.what, err)
			}
		}
		u1, s1 := cpuTime()
		per := func(d time.Duration) time.Duration { return (d / time.Duration(calls)).Round(time.Microsecond) }
		fmt.Printf("| %s | %s | %v | %v | %v |\n", m.what, res, per(time.Since(wall0)), per(u1-u0+s1-s0), per(s1-s0))
	}

	if daemon == "" {
		return nil
	}
	fmt.Printf("\nDaemon CPU over %d s each (utime+stime from /proc):\n\n", seconds)
	fmt.Println("| daemon | sampler | CPU per second |")
	fmt.Println("| --- | --- | --- |")
	for _, state := range []string{"up", "drain"} {
		// A flag in drain keeps the sampler on; up with no page requests
		// leaves it idle: the difference is the sampler.
		work, err := os.MkdirTemp("", "bench-conns-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(work)
		dir := filepath.Join(work, "flags")
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("svc.%d", bport)), []byte(state+"\n"), 0o644); err != nil {
			return err
		}
		d, err := benchutil.StartDaemon(daemon, dir, work, 20*time.Second, "--vips=false")
		if err != nil {
			return err
		}
		time.Sleep(2 * time.Second) // past start-up and the first samples
		t0, err := procCPU(d.Cmd.Process.Pid)
		if err != nil {
			d.Stop()
			return err
		}
		time.Sleep(time.Duration(seconds) * time.Second)
		t1, err := procCPU(d.Cmd.Process.Pid)
		d.Stop()
		if err != nil {
			return err
		}
		on := "idle (flag up, no requests)"
		if state == "drain" {
			on = "on (flag in drain), 1 count/s"
		}
		fmt.Printf("| %d connections on the port | %s | %v |\n", n, on, ((t1 - t0) / time.Duration(seconds)).Round(100*time.Microsecond))
	}
	for _, k := range keep {
		k.Close()
	}
	return nil
}

func listen() (net.Listener, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		var held []net.Conn // kept open: the connections are what is counted
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	return ln, nil
}

// cpuTime is this process's user and system time.
func cpuTime() (user, sys time.Duration) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// procCPU is a process's user+system time from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	const hz = 100 // USER_HZ
	return time.Duration(ut+st) * time.Second / hz, nil
}
