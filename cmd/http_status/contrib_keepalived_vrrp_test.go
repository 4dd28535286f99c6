//go:build linux

package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/http-status/http_status/internal/nstest"
)

// TestContribKeepalivedVRRP runs contrib/keepalived-vrrp.conf in two real
// keepalived, each in a network namespace of the test's own beside a real
// http_status, the two joined by a veth pair named eth0 on both sides (the
// example's interface), with the example's addresses (192.0.2.0/24 exists
// only inside the namespaces). The example is changed only where the second
// host must differ (state, priority) and in its timings (advert_int 0.1,
// fall 1, rise 1) so the test stays short. The VIP is on the first host;
// drained there (the control command) it moves to the second; activated,
// it comes back (preemption). Each move is checked twice: with ip in the
// namespace and with the daemon's own /status?...&VIP= (200 on the holder,
// 404 on the other).
//
// keepalived's pid files and configuration are in a temp dir; it runs in
// the foreground, logs to the console only (--no-syslog) and runs the
// VRRP subsystem only (-P).
func TestContribKeepalivedVRRP(t *testing.T) {
	t.Parallel()
	const why = "a real keepalived with contrib/keepalived-vrrp.conf (apt-get install keepalived)"
	keepalived := toolPath(t, "keepalived", why)
	curl := toolPath(t, "curl", "the example's check runs curl")
	ipTool := toolPath(t, "ip", "the VIP is looked up with ip addr (apt-get install iproute2)")
	if _, err := user.Lookup("nobody"); err != nil {
		t.Skipf("no user nobody (the example's script_user): %v", err)
	}
	const vip = "192.0.2.10"
	example, err := os.ReadFile(contribPath(t, "keepalived-vrrp.conf"))
	if err != nil {
		t.Fatal(err)
	}
	// Timings: VRRPv3 adverts every 100 ms (the backup takes over after
	// about 3 missed adverts), one check a second (keepalived's minimum)
	// and one failure or success to change state.
	common := []string{
		"/usr/bin/curl ", curl + " ",
		"advert_int 1\n", "advert_int 0.1\n",
		"fall 2\n", "fall 1\n",
		"rise 2\n", "rise 1\n",
	}
	second := []string{"state MASTER\n", "state BACKUP\n", "priority 150\n", "priority 100\n"}
	for i := 0; i < len(common); i += 2 {
		if !strings.Contains(string(example), common[i]) {
			t.Fatalf("keepalived-vrrp.conf: no %q; update this test or the example", common[i])
		}
	}
	for i := 0; i < len(second); i += 2 {
		if !strings.Contains(string(example), second[i]) {
			t.Fatalf("keepalived-vrrp.conf: no %q; update this test or the example", second[i])
		}
	}
	if want := "http://127.0.0.1:8001/status?SERVICE=squid&PORT=80\"\n"; !strings.Contains(string(example), want) {
		t.Fatalf("keepalived-vrrp.conf: the check is not %q; update this test or the example", want)
	}

	type host struct {
		ns     netns.NsHandle
		flags  string
		client *http.Client
	}
	tmp := t.TempDir()
	hosts := [2]*host{{ns: nstest.New(t)}, {ns: nstest.New(t)}}
	nstest.Veth(t, hosts[0].ns, "eth0", []string{"192.0.2.1/24"}, hosts[1].ns, "eth0", []string{"192.0.2.2/24"})
	for i, h := range hosts {
		h.flags = filepath.Join(tmp, fmt.Sprintf("flags%d", i+1))
		writeFlags(t, h.flags, map[string]string{"squid.80": ""})
		startDaemonIn(t, h.ns, "--ip", "127.0.0.1", "-p", "8001", "--dir", h.flags, "--log-format", "json")
		h.client = nstest.Client(h.ns, 10*time.Second)
	}
	code := func(h *host, q string) (int, error) {
		res, err := h.client.Get("http://127.0.0.1:8001/status?" + q)
		if err != nil {
			return 0, err
		}
		defer res.Body.Close()
		_, err = io.Copy(io.Discard, res.Body)
		return res.StatusCode, err
	}
	// poll calls f until it returns "" (done) or the deadline passes.
	poll := func(what string, within time.Duration, f func() string) {
		t.Helper()
		for deadline := time.Now().Add(within); ; {
			why := f()
			if why == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s: %s", what, within, why)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	const check = "SERVICE=squid&PORT=80"
	for i, h := range hosts {
		poll(fmt.Sprintf("host %d /status?%s", i+1, check), 10*time.Second, func() string {
			c, err := code(h, check)
			if err != nil || c != 200 {
				return fmt.Sprintf("%d %v", c, err)
			}
			return ""
		})
	}

	var kept []*daemonProc
	for i, h := range hosts {
		conf := strings.NewReplacer(common...).Replace(string(example))
		if i == 1 {
			conf = strings.NewReplacer(second...).Replace(conf)
		}
		dir := filepath.Join(tmp, fmt.Sprintf("keepalived%d", i+1))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		confPath := filepath.Join(dir, "keepalived.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(keepalived, "--dont-fork", "--log-console", "--no-syslog", "-P", "-f", confPath,
			"-p", filepath.Join(dir, "keepalived.pid"), "-r", filepath.Join(dir, "vrrp.pid"),
			"-c", filepath.Join(dir, "checkers.pid"), "-b", filepath.Join(dir, "bfd.pid"))
		cmd.Env = cleanEnv()
		kept = append(kept, startProcWith(t, cmd, func() error { return nstest.Do(h.ns, cmd.Start) }))
	}
	// SIGTERM, not startProcWith's SIGKILL: keepalived then stops its VRRP
	// child and reaps it (killed, the parent leaves it to init, which may
	// not reap it: a zombie on the host). It takes about a second to stop:
	// both at once.
	t.Cleanup(func() {
		for _, p := range kept {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
		for i, p := range kept {
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				t.Errorf("keepalived %d did not stop within 10s of SIGTERM", i+1)
			}
		}
	})

	// hasVIP says whether ip addr in h's namespace lists the VIP.
	hasVIP := func(h *host) (bool, error) {
		cmd := exec.Command(ipTool, "-o", "-4", "addr", "show", "dev", "eth0")
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := nstest.Do(h.ns, cmd.Start); err != nil {
			return false, err
		}
		if err := cmd.Wait(); err != nil {
			return false, fmt.Errorf("ip addr: %w: %s", err, out.String())
		}
		return strings.Contains(out.String(), " inet "+vip+"/24 "), nil
	}
	// holder waits until the VIP is on hosts[on] only (ip addr), then until
	// both daemons agree: /status with VIP= 200 there, 404 on the other.
	holder := func(on int, within time.Duration) {
		t.Helper()
		poll(fmt.Sprintf("VIP on host %d only (ip addr)", on+1), within, func() string {
			for i, h := range hosts {
				has, err := hasVIP(h)
				if err != nil {
					t.Fatal(err)
				}
				if has != (i == on) {
					return fmt.Sprintf("host %d has it: %v", i+1, has)
				}
			}
			return ""
		})
		q := check + "&VIP=" + vip
		poll(fmt.Sprintf("/status?%s: 200 on host %d only", q, on+1), 2*time.Second, func() string {
			for i, h := range hosts {
				want := 404
				if i == on {
					want = 200
				}
				if c, err := code(h, q); err != nil || c != want {
					return fmt.Sprintf("host %d: %d %v, want %d", i+1, c, err, want)
				}
			}
			return ""
		})
	}
	ctl := func(args ...string) {
		t.Helper()
		cmd := exec.Command(testBinary(t), append(args, "squid", "-p", "80", "--dir", hosts[0].flags)...)
		cmd.Env = cleanEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("http_status %s: %v\n%s", args[0], err, out)
		}
	}

	start := time.Now()
	holder(0, 10*time.Second)
	t.Logf("VIP on host 1 %v after keepalived started", time.Since(start).Round(time.Millisecond))

	// The check runs once a second and one failure lowers the priority;
	// the backup takes over about three adverts (300 ms) later.
	start = time.Now()
	ctl("drain")
	holder(1, 5*time.Second)
	t.Logf("VIP on host 2 %v after the drain", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	ctl("activate")
	holder(0, 5*time.Second)
	t.Logf("VIP back on host 1 %v after the activate", time.Since(start).Round(time.Millisecond))
}
