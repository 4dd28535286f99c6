//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/http-status/http_status/internal/nstest"
)

// TestContribTrafficServer runs a real Traffic Server 9 (traffic_manager,
// which starts traffic_server) with contrib/trafficserver/strategies.yaml,
// the parents' names replaced by 127.0.0.2 and 127.0.0.3 and nothing else
// changed. Each parent is a small HTTP origin on port 80 with a real
// http_status on port 8001 beside it; http_status-parent-check.sh, one pass
// (ONCE=1), marks a drained parent down with traffic_ctl: traffic_ctl host
// status says so and the parent gets no new request; when the flag is back
// the same paths go to it again.
//
// Everything runs in a network namespace of the test's own, with only lo:
// Traffic Server looks up the names of the machine's addresses when it
// starts (reverse DNS through /etc/resolv.conf), and in the namespace no
// query can leave the host; it also leaves the example's ports (80, 8001,
// 8080) free. Traffic Server's files (runroot.yaml, configuration, logs,
// sockets) are all in a temp dir: not the system instance, not
// /etc/trafficserver.
func TestContribTrafficServer(t *testing.T) {
	t.Parallel()
	const why = "a real Traffic Server with contrib/trafficserver/ (apt-get install trafficserver)"
	manager := toolPath(t, "traffic_manager", why)
	toolPath(t, "traffic_server", why)
	trafficCtl := toolPath(t, "traffic_ctl", why)
	curl := toolPath(t, "curl", "http_status-parent-check.sh polls with curl")
	ns := nstest.New(t)
	tmp := t.TempDir()
	parents := []string{"127.0.0.2", "127.0.0.3"} // not 127.0.0.1: Traffic Server marks its own address down (self detect)

	// Traffic Server first: it takes seconds to start.
	strategies, err := os.ReadFile(contribPath(t, "trafficserver/strategies.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	adapted := strings.NewReplacer("parent1.example.com", parents[0], "parent2.example.com", parents[1]).Replace(string(strategies))
	for _, p := range parents {
		// What the checker polls with its defaults, recorded per parent.
		if want := "health_check_url: http://" + p + ":8001/status?SERVICE=ats&PORT=80\n"; !strings.Contains(adapted, want) {
			t.Fatalf("strategies.yaml: no %q for its parent; update this test or the example", want)
		}
	}
	atsStart(t, ns, tmp, manager, adapted)

	var hits [2]atomic.Int64
	flagDirs := make([]string, len(parents))
	for i, ip := range parents {
		ln := nstest.Listen(t, ns, "tcp4", ip+":80")
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			fmt.Fprintf(w, "parent%d %s", i+1, r.URL.Path)
		}), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { srv.Close() })

		flagDirs[i] = filepath.Join(tmp, fmt.Sprintf("flags%d", i+1))
		writeFlags(t, flagDirs[i], map[string]string{"ats.80": ""})
		startDaemonIn(t, ns, "--ip", ip, "-p", "8001", "--dir", flagDirs[i], "--vips=false", "--log-format", "json")
	}

	client := nstest.Client(ns, 20*time.Second)
	get := func(url, host string) (int, string, error) {
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			return 0, "", err
		}
		req.Host = host
		res, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return res.StatusCode, string(b), err
	}
	waitCheck := func(ip string, want int) {
		t.Helper()
		url := "http://" + ip + ":8001/status?SERVICE=ats&PORT=80"
		for deadline := time.Now().Add(15 * time.Second); ; {
			code, _, err := get(url, "")
			if err == nil && code == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %d %v, want %d", url, code, err, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// through asks Traffic Server for 20 paths and returns which parent
	// answered each (consistent_hash on the path).
	through := func() []string {
		t.Helper()
		var by []string
		for i := range 20 {
			path := fmt.Sprintf("/p/%d", i)
			code, body, err := get("http://127.0.0.1:8080"+path, "www.example.com")
			if err != nil || code != 200 || !strings.HasSuffix(body, " "+path) {
				t.Fatalf("GET %s through Traffic Server: %d %q %v", path, code, body, err)
			}
			by = append(by, strings.Fields(body)[0])
		}
		return by
	}
	checker := contribPath(t, filepath.Join("trafficserver", "http_status-parent-check.sh"))
	runChecker := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "sh", append([]string{checker}, parents...)...)
		cmd.Env = append(cleanEnv(), "ONCE=1", "TS_RUNROOT="+tmp,
			"PATH="+filepath.Dir(trafficCtl)+":"+filepath.Dir(curl)+":"+os.Getenv("PATH"))
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := nstest.Do(ns, cmd.Start); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("http_status-parent-check.sh (ONCE=1): %v\n%s", err, out.String())
		}
	}
	// hostStatus waits until traffic_ctl host status shows want for host:
	// Traffic Server publishes a host's status record to traffic_ctl a
	// moment after the first traffic_ctl host up or down names it.
	hostStatus := func(host, want string) {
		t.Helper()
		var out []byte
		for deadline := time.Now().Add(15 * time.Second); ; {
			cmd := exec.Command(trafficCtl, "host", "status", host)
			cmd.Env = append(cleanEnv(), "TS_RUNROOT="+tmp)
			var err error
			out, err = cmd.CombinedOutput()
			if err == nil && strings.Contains(string(out), "proxy.process.host_status."+host+" "+want+",") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("traffic_ctl host status %s: %v, want %s\n%s", host, err, want, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	for _, ip := range parents {
		waitCheck(ip, 200)
	}
	// A strategies.yaml Traffic Server refuses leaves requests hanging:
	// read why before sending any.
	atsWaitReady(t, tmp)
	atsDiagsClean(t, tmp)
	if t.Failed() {
		t.FailNow()
	}
	before := through()
	if !strings.Contains(strings.Join(before, " "), "parent1") || !strings.Contains(strings.Join(before, " "), "parent2") {
		t.Fatalf("20 paths did not reach both parents: %v", before)
	}

	// Drain parent 1: after one pass of the checker it is down in Traffic
	// Server and gets no new request; parent 2 answers every path.
	writeFlags(t, flagDirs[0], map[string]string{"ats.80": "drain\n"})
	waitCheck(parents[0], 404)
	runChecker()
	hostStatus(parents[0], "HOST_STATUS_DOWN")
	hostStatus(parents[1], "HOST_STATUS_UP")
	n1 := hits[0].Load()
	for i, by := range through() {
		if by != "parent2" {
			t.Errorf("/p/%d answered by %s while parent 1 is drained", i, by)
		}
	}
	if got := hits[0].Load(); got != n1 {
		t.Errorf("drained parent 1 got %d new requests", got-n1)
	}

	// Back in rotation: up again, and the same paths go to it as before.
	// Checked by the requests, not by traffic_ctl host status, which shows
	// it up to two seconds later (most of this test's time otherwise);
	// traffic_server applies the status a moment after traffic_ctl
	// returns, hence the polling.
	writeFlags(t, flagDirs[0], map[string]string{"ats.80": ""})
	waitCheck(parents[0], 200)
	runChecker()
	for deadline := time.Now().Add(15 * time.Second); ; {
		after := through()
		if strings.Join(after, " ") == strings.Join(before, " ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after parent 1 came back: %v, want the paths as at the start: %v", after, before)
		}
		time.Sleep(20 * time.Millisecond)
	}

	atsDiagsClean(t, tmp)
}

// atsStart writes a Traffic Server runroot in dir (every path in it, the
// programs' directory aside) with strategies as strategies.yaml and a remap
// rule that uses its strategy "parents", and starts traffic_manager in ns.
// Traffic Server listens on 127.0.0.1:8080 in ns; cleanup kills its process
// group (traffic_manager, traffic_server, traffic_crashlog).
func atsStart(t *testing.T, ns netns.NsHandle, dir, manager, strategies string) {
	t.Helper()
	for _, d := range []string{"etc", "var", "run", "log", "cache", "lib", "bodies"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"runroot.yaml": fmt.Sprintf(`prefix: %[1]s
exec_prefix: %[1]s
bindir: %[2]s
sbindir: %[2]s
sysconfdir: %[1]s/etc
datadir: %[1]s/cache
includedir: %[1]s/lib
libdir: %[1]s/lib
libexecdir: %[1]s/lib
localstatedir: %[1]s/var
runtimedir: %[1]s/run
logdir: %[1]s/log
cachedir: %[1]s/cache
`, dir, filepath.Dir(manager)),
		// user_id #-1: stay the user the test runs as (root would switch
		// to an unprivileged one that cannot write the temp dir). One
		// thread of each kind and no cache (no storage): a small Traffic
		// Server. The sync intervals make traffic_ctl host status see a
		// change within about a second instead of five.
		"etc/records.config": fmt.Sprintf(`CONFIG proxy.config.admin.user_id STRING #-1
CONFIG proxy.config.http.server_ports STRING 127.0.0.1:8080
CONFIG proxy.config.exec_thread.autoconfig INT 0
CONFIG proxy.config.exec_thread.limit INT 1
CONFIG proxy.config.task_threads INT 1
CONFIG proxy.config.accept_threads INT 0
CONFIG proxy.config.http.cache.http INT 0
CONFIG proxy.config.url_remap.remap_required INT 1
CONFIG proxy.config.reverse_proxy.enabled INT 1
CONFIG proxy.config.body_factory.enable_customizations INT 0
CONFIG proxy.config.body_factory.template_sets_dir STRING %[1]s/bodies
CONFIG proxy.config.log.logging_enabled INT 0
CONFIG proxy.config.net.connections_throttle INT 1000
CONFIG proxy.config.remote_sync_interval_ms INT 100
CONFIG proxy.config.raw_stat_sync_interval_ms INT 100
CONFIG proxy.config.config_update_interval_ms INT 100
CONFIG proxy.config.http.no_dns_just_forward_to_parent INT 1
CONFIG proxy.config.dns.resolv_conf STRING %[1]s/etc/resolv.conf
`, dir),
		"etc/ip_allow.yaml": `ip_allow:
  - apply: in
    ip_addrs: 127.0.0.1
    action: allow
    methods: ALL
  - apply: out
    ip_addrs: 127.0.0.0/8
    action: allow
    methods: ALL
`,
		// No name lookups: the parents are addresses, and the origin's
		// name (remap.config) is not looked up before going to a parent;
		// Traffic Server's own resolver asks 127.0.0.1 in ns, where nothing
		// answers.
		"etc/resolv.conf":     "nameserver 127.0.0.1\n",
		"etc/remap.config":    "map http://www.example.com/ http://origin.example.com/ @strategy=parents\n",
		"etc/strategies.yaml": strategies,
	}
	for _, f := range []string{"storage.config", "plugin.config", "hosting.config", "volume.config", "cache.config", "parent.config", "splitdns.config", "socks.config", "ssl_multicert.config"} {
		files["etc/"+f] = ""
	}
	writeFlags(t, dir, files)

	cmd := exec.Command(manager, "--nosyslog")
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), "TS_RUNROOT="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := startProcWith(t, cmd, func() error { return nstest.Do(ns, cmd.Start) })
	// Runs before startProc's cleanup: traffic_server and its crash
	// logger are traffic_manager's children, in its process group.
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "log", "diags.log"))
			t.Logf("Traffic Server diags.log:\n%s", b)
		}
	})
}

// atsWaitReady waits until traffic_server says, in its diags.log under dir,
// that it has loaded its configuration and serves, or logs an error (a
// configuration it refuses: it exits and traffic_manager starts it again).
func atsWaitReady(t *testing.T, dir string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		b, _ := os.ReadFile(filepath.Join(dir, "log", "diags.log"))
		if strings.Contains(string(b), "Traffic Server is fully initialized") || strings.Contains(string(b), " ERROR: ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("traffic_server not initialized after 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// atsDiagsClean fails the test on an error, or a warning about the
// configuration the test checks, in Traffic Server's diags.log. Traffic
// Server 9.2 rejects a key it does not know in strategies.yaml ("keys ...
// invalid in this map") and then loads no strategy at all.
func atsDiagsClean(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "log", "diags.log"))
	if err != nil {
		t.Fatal(err)
	}
	diags := string(b)
	if !strings.Contains(diags, "strategies.yaml finished loading") {
		t.Errorf("diags.log: strategies.yaml not loaded:\n%s", diags)
	}
	for _, line := range strings.Split(diags, "\n") {
		low := strings.ToLower(line)
		if strings.Contains(line, "ERROR") || strings.Contains(line, "WARNING") &&
			(strings.Contains(low, "strateg") || strings.Contains(low, "remap") || strings.Contains(low, "parent") || strings.Contains(low, "yaml-cpp")) {
			t.Errorf("diags.log: %s", line)
		}
	}
}
