package probe

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/testenv"
)

// fpm is a php-fpm master the test runs in the foreground.
type fpm struct {
	t    *testing.T
	bin  string
	conf string
	sock string
	log  string
	cmd  *exec.Cmd
}

// findFPM returns the php-fpm binary, or skips the test.
func findFPM(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"php-fpm8.2", "php-fpm", "php-fpm8.3", "php-fpm8.4"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		if p := "/usr/sbin/" + name; fileExists(p) {
			return p
		}
	}
	t.Skip("php-fpm not installed (Debian: apt-get install php-fpm); skipping the FastCGI test against a real php-fpm")
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func newFPM(t *testing.T) *fpm {
	t.Helper()
	dir := t.TempDir()
	f := &fpm{t: t, bin: findFPM(t), conf: filepath.Join(dir, "fpm.conf"), sock: filepath.Join(dir, "fpm.sock"), log: filepath.Join(dir, "fpm.log")}
	conf := fmt.Sprintf(`[global]
pid = %s/fpm.pid
error_log = %s
daemonize = no
[ping]
listen = %s
pm = static
pm.max_children = 1
ping.path = /fpm-ping
ping.response = pong
`, dir, f.log, f.sock)
	if err := os.WriteFile(f.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.stop)
	return f
}

func (f *fpm) start() {
	f.t.Helper()
	args := []string{"-n", "-F", "-y", f.conf}
	if os.Geteuid() == 0 {
		args = append(args, "-R") // allow the pool to run as root
	}
	f.cmd = exec.Command(f.bin, args...)
	testenv.DieWithTest(f.cmd)
	if err := f.cmd.Start(); err != nil {
		f.t.Fatalf("start php-fpm: %v", err)
	}
	// Until a connect succeeds: the socket file exists from bind(), a
	// moment before listen() (a loaded machine saw "connection refused"
	// in between).
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", f.sock)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(f.log)
			f.t.Fatalf("php-fpm does not accept on %s: %v; log:\n%s", f.sock, err, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (f *fpm) stop() {
	if f.cmd == nil || f.cmd.Process == nil {
		return
	}
	_ = f.cmd.Process.Signal(syscall.SIGTERM)
	_ = f.cmd.Wait()
	f.cmd = nil
}

// TestFastCGIPHPFPM runs the FastCGI probe against a real php-fpm with
// ping.path = /fpm-ping: up -> php-fpm stops -> fall -> down -> php-fpm
// starts -> rise -> up.
func TestFastCGIPHPFPM(t *testing.T) {
	t.Parallel()
	f := newFPM(t)
	f.start()

	// One-shot checks first: the ping, a wrong expectation, an unknown
	// script (php-fpm answers Status: 404 and "Primary script unknown").
	base := fmt.Sprintf("service = \"php.9000\"\nkind = \"fastcgi\"\naddress = \"unix:%s\"\n", f.sock)
	if msg, err := runCheck(t, base+"script = \"/fpm-ping\"\nexpect_body = \"pong\"\n", 5*time.Second); err != nil || msg != "200 pong" {
		t.Fatalf("ping: %q, %v", msg, err)
	}
	_, err := runCheck(t, base+"script = \"/fpm-ping\"\nexpect_body = \"ping\"\n", 5*time.Second)
	testenv.ErrContains(t, err, `body lacks "ping" (got "pong")`)
	_, err = runCheck(t, base+"script = \"/nonexistent.php\"\n", 5*time.Second)
	testenv.ErrContains(t, err, "status 404, want 200")
	testenv.ErrContains(t, err, "Primary script unknown")

	c := newCollector()
	r := newTestRunner(t, c, Options{})
	if err := r.Apply(mustParse(t, fmt.Sprintf(`
[[probe]]
service = "php.9000"
name = "fpm-ping"
kind = "fastcgi"
address = "%s"
script = "/fpm-ping"
expect_body = "pong"
interval = "400ms"
timeout = "400ms"
rise = 2
fall = 2
`, f.sock))); err != nil {
		t.Fatal(err)
	}
	st := c.waitFor(t, "php.9000", "up", isOK)
	if st.Checks[0].Msg != "200 pong" {
		t.Errorf("up message %q", st.Checks[0].Msg)
	}
	f.stop()
	st = c.waitFor(t, "php.9000", "down after php-fpm stopped", notOK)
	if !strings.HasPrefix(st.LastErr, "probe fpm-ping: ") || !(strings.Contains(st.LastErr, "no such file") || strings.Contains(st.LastErr, "connection refused")) {
		t.Errorf("LastErr = %q", st.LastErr)
	}
	f.start()
	c.waitFor(t, "php.9000", "up after php-fpm restarted", isOK)
	logs := c.log()
	for _, want := range []string{"php.9000/fpm-ping up: 200 pong", "php.9000/fpm-ping down: "} {
		if strings.Count(logs, want) < 1 {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	// One down, php-fpm's stop. (A timeout of 100ms gave a second one
	// in CI, where an attempt on a loaded machine outlasted it.)
	if n := strings.Count(logs, "php.9000/fpm-ping down: "); n != 1 {
		t.Errorf("down logged %d times:\n%s", n, logs)
	}
}
