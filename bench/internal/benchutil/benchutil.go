// Package benchutil holds what the benchmark programs in bench/ share:
// starting the daemon on a temporary directory, a keep-alive HTTP/1.1
// client for tight polling, the re-exec into a fresh network namespace, and
// percentiles. It is for benchmarks only; nothing here asserts a speed.
package benchutil

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Daemon is a running http_status.
type Daemon struct {
	Cmd     *exec.Cmd
	Addr    string        // 127.0.0.1:port
	Ready   time.Duration // from exec to READY=1 on NOTIFY_SOCKET
	LogFile string
	notify  *net.UnixConn
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// StartDaemon runs bin on dir (listening on a free loopback port, logging
// to work/daemon.log) and waits up to timeout for its READY=1, which it
// receives as systemd would: on a NOTIFY_SOCKET datagram socket in work.
func StartDaemon(bin, dir, work string, timeout time.Duration, extra ...string) (*Daemon, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(work, fmt.Sprintf("notify-%d.sock", port))
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	d := &Daemon{Addr: fmt.Sprintf("127.0.0.1:%d", port), LogFile: filepath.Join(work, fmt.Sprintf("daemon-%d.log", port)), notify: conn}
	args := append([]string{"--dir", dir, "--ip", "127.0.0.1", "--port", fmt.Sprint(port), "--log-level", "warn", "--log-file", d.LogFile}, extra...)
	d.Cmd = exec.Command(bin, args...)
	d.Cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	d.Cmd.Stderr = os.Stderr
	start := time.Now()
	if err := d.Cmd.Start(); err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := d.WaitNotify("READY=1", timeout); err != nil {
		d.Stop()
		return nil, fmt.Errorf("%s: %w (log: %s)", bin, err, d.LogFile)
	}
	d.Ready = time.Since(start)
	return d, nil
}

// WaitNotify waits for a notification holding the line want and returns
// when it arrived.
func (d *Daemon) WaitNotify(want string, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 4096)
	for {
		d.notify.SetReadDeadline(deadline)
		n, err := d.notify.Read(buf)
		if err != nil {
			return time.Time{}, fmt.Errorf("no %s from the daemon: %w", want, err)
		}
		if slices.Contains(strings.Split(string(buf[:n]), "\n"), want) {
			return time.Now(), nil
		}
	}
}

// Stop sends SIGTERM and waits.
func (d *Daemon) Stop() {
	if d.Cmd.Process != nil {
		d.Cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { d.Cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			d.Cmd.Process.Kill()
			<-done
		}
	}
	d.notify.Close()
	os.Remove(d.notify.LocalAddr().String())
}

// RSSKiB reads VmRSS of the daemon from /proc.
func (d *Daemon) RSSKiB() (int, error) { return ProcStatusKiB(d.Cmd.Process.Pid, "VmRSS") }

// ProcStatusKiB reads a "kB" field of /proc/PID/status: VmRSS (resident
// memory now), VmHWM (its peak), VmSize...
func ProcStatusKiB(pid int, field string) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return statusKiB(string(b), field)
}

// statusKiB finds "field:   1234 kB" in the text of a /proc/PID/status.
func statusKiB(status, field string) (int, error) {
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			var kb int
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err != nil {
				return 0, fmt.Errorf("/proc status %s: %w", field, err)
			}
			return kb, nil
		}
	}
	return 0, fmt.Errorf("/proc status: no %s", field)
}

// Client is one keep-alive HTTP/1.1 connection with a raw, precomposed
// request: the cheapest way to poll, so the measurement is mostly the
// daemon's time and the loopback round trip.
type Client struct {
	conn net.Conn
	r    *bufio.Reader
	addr string
}

// Dial connects to addr.
func Dial(addr string) (*Client, error) {
	c := &Client{addr: addr}
	return c, c.redial()
}

func (c *Client) redial() error {
	if c.conn != nil {
		c.conn.Close()
	}
	conn, err := net.Dial("tcp", c.addr)
	if err != nil {
		return err
	}
	c.conn, c.r = conn, bufio.NewReaderSize(conn, 16<<10)
	return nil
}

// Get sends GET target and returns the status code (the body is read and
// discarded). A broken connection is redialled once.
func (c *Client) Get(target string) (int, error) {
	code, err := c.get(target)
	if err != nil {
		if err = c.redial(); err == nil {
			code, err = c.get(target)
		}
	}
	return code, err
}

func (c *Client) get(target string) (int, error) {
	c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.conn, "GET "+target+" HTTP/1.1\r\nHost: bench\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

// Close closes the connection.
func (c *Client) Close() { c.conn.Close() }

// Percentile returns the p-th percentile (0-100, nearest rank) of sorted d.
func Percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(p/100*float64(len(d))+0.5) - 1
	return d[max(0, min(i, len(d)-1))]
}

// InNetns reports whether this process is the re-executed child that runs
// in its own network namespace (see ReexecInNetns).
func InNetns() bool { return os.Getenv("HTTP_STATUS_BENCH_NETNS") == "1" }

// ReexecInNetns runs this program again with args under "unshare -n" (a
// fresh network namespace with only a down lo), with stdout and stderr
// passed through. The child sees InNetns() true. It needs root (or
// CAP_SYS_ADMIN); the error says so.
func ReexecInNetns(args ...string) error {
	if os.Geteuid() != 0 {
		return errors.New("not root: a network namespace needs root")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return fmt.Errorf("unshare (util-linux) not found: %w", err)
	}
	// In a container unshare may be installed and still not be allowed:
	// try first, so that an *exec.ExitError below is the child's own.
	if out, err := exec.Command(unshare, "-n", "true").CombinedOutput(); err != nil {
		return fmt.Errorf("unshare -n: %v: %s", err, bytes.TrimSpace(out))
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(unshare, append([]string{"-n", "--", self}, args...)...)
	cmd.Env = append(os.Environ(), "HTTP_STATUS_BENCH_NETNS=1")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

// RunInNetns is [ReexecInNetns] for a program whose child does all the
// work: once the child has run, it exits with the child's status. It
// returns only why no network namespace could be made here.
func RunInNetns(args ...string) error {
	err := ReexecInNetns(args...)
	if err == nil {
		os.Exit(0)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		os.Exit(ee.ExitCode())
	}
	return err
}
