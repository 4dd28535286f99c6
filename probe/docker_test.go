package probe

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/httpd"
	statuscheck "github.com/http-status/http_status/internal/check"
	"github.com/http-status/http_status/internal/pages"
	"github.com/http-status/http_status/internal/testenv"
)

// dockerEngine is a real dockerd (Debian's docker.io) the test starts with
// its own socket, data and exec roots, no iptables and no bridge; containers
// run with --network none from an image imported from busybox-static.
type dockerEngine struct {
	t    *testing.T
	dir  string
	sock string
	cmd  *exec.Cmd
}

func startDocker(t *testing.T) *dockerEngine {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the real Docker engine test needs root (dockerd); internal/probecheck's stand-in test covers the API")
	}
	dockerd, err := exec.LookPath("dockerd")
	if err != nil {
		dockerd = "/usr/sbin/dockerd"
	}
	for _, p := range []string{dockerd, "/usr/bin/busybox"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s missing (Debian: apt-get install docker.io busybox-static); skipping the real Docker engine test", p)
		}
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("docker CLI missing (Debian: docker.io)")
	}
	// A short path: containerd's sockets live under the exec root.
	dir, err := os.MkdirTemp("", "hsdk")
	if err != nil {
		t.Fatal(err)
	}
	d := &dockerEngine{t: t, dir: dir, sock: filepath.Join(dir, "docker.sock")}
	d.cmd = exec.Command(dockerd,
		"-H", "unix://"+d.sock,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-forward=false", "--ip-masq=false",
		"--storage-driver=vfs", "--shutdown-timeout=1",
		"--containerd-namespace=http-status-test", "--containerd-plugins-namespace=http-status-test-plugins",
	)
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	testenv.DieWithTest(d.cmd)
	if err := d.cmd.Start(); err != nil {
		t.Skipf("cannot start dockerd: %v", err)
	}
	t.Cleanup(d.stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if out, err := exec.Command("docker", "-H", "unix://"+d.sock, "version").CombinedOutput(); err == nil {
			break
		} else if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "dockerd.log"))
			t.Skipf("dockerd did not come up here (%v: %s); log:\n%s", err, out, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// An image from busybox-static: just /bin/busybox and a few links.
	root := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile("/usr/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"sh", "sleep", "true", "false"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", l)); err != nil {
			t.Fatal(err)
		}
	}
	tar := filepath.Join(dir, "rootfs.tar")
	if out, err := exec.Command("tar", "-C", root, "-cf", tar, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	d.docker("import", tar, "bb:test")
	return d
}

func (d *dockerEngine) docker(args ...string) string {
	d.t.Helper()
	out, err := exec.Command("docker", append([]string{"-H", "unix://" + d.sock}, args...)...).CombinedOutput()
	if err != nil {
		d.t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func (d *dockerEngine) stop() {
	if d.cmd == nil {
		return
	}
	// Remove the containers, then stop dockerd (and its containerd).
	if ids, err := exec.Command("docker", "-H", "unix://"+d.sock, "ps", "-aq").Output(); err == nil && len(ids) > 0 {
		_ = exec.Command("docker", append([]string{"-H", "unix://" + d.sock, "rm", "-f"}, strings.Fields(string(ids))...)...).Run()
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	d.cmd = nil
	if err := os.RemoveAll(d.dir); err != nil {
		d.t.Logf("cleanup %s: %v", d.dir, err)
	}
}

// TestContainerProbeDocker runs the container probe against a real Docker
// engine: running, healthy, unhealthy, exited, missing; and with the Runner:
// up -> docker stop -> down -> docker start -> up.
func TestContainerProbeDocker(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: skipping the real Docker engine test")
	}
	d := startDocker(t)
	// The engine runs; whether it can start containers depends on the
	// machine (cgroups, seccomp): skip, saying why, when it cannot.
	if out, err := exec.Command("docker", "-H", "unix://"+d.sock, "run", "-d", "--name", "web", "--network", "none", "bb:test", "/bin/sleep", "600").CombinedOutput(); err != nil {
		t.Skipf("dockerd runs but cannot start a container here: %v: %s", err, out)
	}
	d.docker("run", "-d", "--name", "hc", "--network", "none", "--health-cmd", "/bin/true", "--health-interval", "1s", "bb:test", "/bin/sleep", "600")
	d.docker("run", "-d", "--name", "sick", "--network", "none", "--health-cmd", "/bin/false", "--health-interval", "1s", "--health-retries", "1", "bb:test", "/bin/sleep", "600")
	d.docker("create", "--name", "never", "--network", "none", "bb:test", "/bin/true")

	check := func(name string) (string, error) {
		t.Helper()
		return runCheck(t, fmt.Sprintf("service = \"app.1\"\nkind = \"container\"\nsocket = %q\ncontainer = %q\n", d.sock, name), 5*time.Second)
	}
	eventually := func(name, want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			msg, err := check(name)
			got := msg
			if err != nil {
				got = err.Error()
			}
			if strings.Contains(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %q, want %q", name, got, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if msg, err := check("web"); err != nil || msg != "running" {
		t.Errorf("web: %q, %v", msg, err)
	}
	eventually("hc", "running, healthy")
	eventually("sick", "running but unhealthy")
	_, err := check("never")
	testenv.ErrContains(t, err, "container never is created")
	_, err = check("ghost")
	testenv.ErrContains(t, err, `no such container "ghost"`)
	// The engine takes a name it does not know for an ID prefix: a
	// container named like the start of another's ID ("db", "cafe") must
	// not answer for that other container once it is gone.
	id := d.docker("inspect", "-f", "{{.Id}}", "web")
	_, err = check(id[:6])
	testenv.ErrContains(t, err, fmt.Sprintf("no such container %q (the engine took it for an ID prefix of container web", id[:6]))
	if msg, err := check(id[:12]); err != nil || msg != "running" {
		t.Errorf("web by its short ID: %q, %v", msg, err)
	}

	c := newCollector()
	r := newTestRunner(t, c, Options{})
	if err := r.Apply(mustParse(t, fmt.Sprintf(`
[[probe]]
service = "web.80"
kind = "container"
socket = %q
container = "web"
interval = "200ms"
timeout = "200ms"
rise = 2
fall = 2
`, d.sock))); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "web.80", "up", isOK)
	d.docker("stop", "-t", "0", "web")
	st := c.waitFor(t, "web.80", "down after docker stop", notOK)
	if !strings.Contains(st.LastErr, "container web is exited") {
		t.Errorf("LastErr = %q", st.LastErr)
	}
	d.docker("start", "web")
	c.waitFor(t, "web.80", "up after docker start", isOK)

	// Compose-style names and labels: app-1 healthy, app-2 unhealthy (same
	// compose service label), myapp-3 (the engine's name filter matches
	// "app-" anywhere in it; a prefix must not).
	const svc = "com.docker.compose.service=app"
	d.docker("run", "-d", "--name", "app-1", "--label", svc, "--network", "none", "bb:test", "/bin/sleep", "600")
	d.docker("run", "-d", "--name", "app-2", "--label", svc, "--network", "none", "--health-cmd", "/bin/false", "--health-interval", "1s", "--health-retries", "1", "bb:test", "/bin/sleep", "600")
	d.docker("run", "-d", "--name", "myapp-3", "--network", "none", "bb:test", "/bin/sleep", "600")
	match := func(key, value, mode string) string {
		return fmt.Sprintf("service = \"app.1\"\nkind = \"container\"\nsocket = %q\n%s = %q\nmatch = %q\n", d.sock, key, value, mode)
	}
	eventuallyCfg := func(cfg, want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			msg, err := runCheck(t, cfg, 5*time.Second)
			got := msg
			if err != nil {
				got = "error: " + err.Error()
			}
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %q, want %q", cfg, got, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	eventuallyCfg(match("label", svc, "all"), `error: 1/2 containers with label "`+svc+`" healthy (want all): container app-2 is running but unhealthy`)
	eventuallyCfg(match("label", svc, "any"), `1/2 containers with label "`+svc+`" healthy (want any)`)
	eventuallyCfg(match("name_prefix", "app-", "all"), `error: 1/2 containers named "app-*" healthy (want all): container app-2 is running but unhealthy`)
	eventuallyCfg(match("name_prefix", "myapp", "all"), `1/1 containers named "myapp*" healthy (want all)`)
	eventuallyCfg(match("label", "com.docker.compose.service=nothing", "any"), `error: no container with label "com.docker.compose.service=nothing"`)
	// A list of labels: a container must have them all (a Compose project
	// and its service). b-app-1 of project b was created, never started:
	// with the service label alone, "any" would pass on app-1, another
	// project's.
	d.docker("create", "--name", "b-app-1", "--label", "com.docker.compose.project=b", "--label", svc, "--network", "none", "bb:test", "/bin/sleep", "600")
	both := fmt.Sprintf("service = \"app.1\"\nkind = \"container\"\nsocket = %q\nlabel = [\"com.docker.compose.project=b\", %q]\nmatch = \"any\"\n", d.sock, svc)
	eventuallyCfg(both, `error: 0/1 containers with labels "com.docker.compose.project=b", "`+svc+`" healthy (want any): container b-app-1 is created`)
	d.docker("rm", "b-app-1")

	// /status.json lists the containers matched, with state and health.
	r2 := newTestRunner(t, c, Options{})
	if err := r2.Apply(mustParse(t, "[[probe]]\n"+match("label", svc, "any")+"interval = \"200ms\"\ntimeout = \"200ms\"\n")); err != nil {
		t.Fatal(err)
	}
	st = c.waitFor(t, "app.1", "up with one healthy app container", func(st cache.ProbeStatus) bool { return st.OK && len(st.Checks[0].Containers) == 2 })
	b := cache.NewBuilder(cache.Empty())
	b.Set("app.1", cache.Entry{State: cache.Up, Weight: cache.NoWeight})
	b.SetProbe("app.1", st)
	store := cache.NewStore()
	store.Publish(b.Snapshot(time.Now()))
	h := httpd.NewHandler(statuscheck.New(statuscheck.Options{Store: store}))
	pages.New(pages.Options{Store: store}).Mount(h)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/status.json", nil))
	var doc pages.StatusJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || len(doc.Services) != 1 || doc.Services[0].Probe == nil {
		t.Fatalf("/status.json: %v\n%s", err, rec.Body)
	}
	got := doc.Services[0].Probe.Checks[0].Containers
	if len(got) != 2 || got[0].Name != "app-1" || got[0].State != "running" || !got[0].OK || got[0].Health != "" ||
		got[1].Name != "app-2" || got[1].Health != "unhealthy" || got[1].OK || len(got[1].ID) != 12 {
		t.Errorf("/status.json containers: %+v\n%s", got, rec.Body)
	}
}
