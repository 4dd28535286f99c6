package packaging_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/testenv"
)

// TestSysVInitScript runs contrib/init.d/http_status against the built
// daemon, with start-stop-daemon and with the plain-shell fallback:
// start, status, a real /status check, reload (SIGHUP), restart, stop,
// and a stale pidfile.
func TestSysVInitScript(t *testing.T) {
	t.Parallel()
	script := filepath.Join(repoRoot, "contrib", "init.d", "http_status")
	bin := testBinary(t)
	for _, mode := range []string{"start-stop-daemon", "plain-shell"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			env := []string{"HTTP_STATUS_NO_SSD=1"}
			if mode == "start-stop-daemon" {
				if _, err := exec.LookPath("start-stop-daemon"); err != nil {
					t.Skip("start-stop-daemon not installed (Debian package dpkg)")
				}
				env = []string{"HTTP_STATUS_NO_SSD=0"}
			}
			tmp := t.TempDir()
			port := testenv.FreePort(t)
			flags := filepath.Join(tmp, "flags")
			logf := filepath.Join(tmp, "http_status.log")
			pidfile := filepath.Join(tmp, "http_status.pid")
			defaults := filepath.Join(tmp, "default")
			writeFile(t, defaults, "HTTP_STATUS_OPTS=\"--ip 127.0.0.1 --port "+itoa(port)+" --vips=false\"\n"+
				"HTTP_STATUS_DIR="+flags+"\nHTTP_STATUS_LOG="+logf+"\n")
			env = append(env, "DAEMON="+bin, "PIDFILE="+pidfile, "HTTP_STATUS_DEFAULTS="+defaults, "STOP_TIMEOUT=10")
			t.Cleanup(func() { killPidfile(pidfile) })
			initd := func(want int, action string) string {
				t.Helper()
				return mustRun(t, want, env, script, action)
			}

			initd(3, "status")
			initd(7, "reload")
			initd(0, "start")
			pid := readPid(pidfile)
			if !alive(pid) {
				t.Fatalf("after start, pidfile %s names %d, not a live process", pidfile, pid)
			}
			if out := initd(0, "status"); !strings.Contains(out, "running (pid "+itoa(pid)+")") {
				t.Errorf("status said %q", out)
			}
			if st, err := os.Stat(flags); err != nil || st.Mode().Perm() != 0o775 {
				t.Errorf("status directory: %v, mode %v; want 0775", err, st.Mode().Perm())
			}
			// start is ready-synchronous (--daemon), so no wait here.
			if got := statusCode(port, "SERVICE=squid&PORT=80"); got != 404 {
				t.Errorf("no flag: %d, want 404", got)
			}
			writeFile(t, filepath.Join(flags, "squid.80"), "")
			waitStatus(t, port, "SERVICE=squid&PORT=80", 200)

			initd(0, "start") // already running: a no-op
			if readPid(pidfile) != pid {
				t.Error("a second start replaced the daemon")
			}
			initd(0, "reload")
			waitFor(t, "SIGHUP in the log", func() bool { return fileContains(logf, "SIGHUP") })
			if readPid(pidfile) != pid || !alive(pid) {
				t.Error("reload changed or killed the daemon")
			}

			initd(0, "restart")
			npid := readPid(pidfile)
			if npid == pid || !alive(npid) || alive(pid) {
				t.Errorf("restart: old pid %d (alive %v), new pid %d (alive %v)", pid, alive(pid), npid, alive(npid))
			}
			waitStatus(t, port, "SERVICE=squid&PORT=80", 200) // the flag survived

			initd(0, "stop")
			if alive(npid) {
				t.Errorf("pid %d still alive after stop", npid)
			}
			if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
				t.Errorf("pidfile after stop: %v", err)
			}
			initd(3, "status")
			initd(0, "stop") // stopping a stopped service is fine
			if got := statusCode(port, ""); got != 0 {
				t.Errorf("still answering after stop: %d", got)
			}

			// A pidfile naming a dead process: status 1, and start
			// replaces it.
			writeFile(t, pidfile, "999999\n")
			initd(1, "status")
			initd(0, "start")
			if p := readPid(pidfile); p == 999999 || !alive(p) {
				t.Errorf("start over a stale pidfile: pidfile says %d", p)
			}
			initd(0, "stop")
			initd(3, "status")
		})
	}
}

// TestUpstartJob checks contrib/upstart/http_status.conf without upstart
// (init-checkconf needs a running upstart): every line outside a script
// block is a known stanza, blocks are closed, the scripts pass sh -n, and
// the pre-start and main scripts, run as upstart would (sh -e, with the
// job's env stanzas, DAEMON and DEFAULTS pointed at the test's files),
// start a daemon that answers /status and stops on SIGTERM.
func TestUpstartJob(t *testing.T) {
	t.Parallel()
	path := filepath.Join(repoRoot, "contrib", "upstart", "http_status.conf")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stanzas := map[string]bool{
		"description": true, "author": true, "version": true, "usage": true, "emits": true,
		"start": true, "stop": true, "respawn": true, "task": true, "manual": true, "instance": true,
		"kill": true, "normal": true, "expect": true, "console": true, "env": true, "export": true,
		"umask": true, "nice": true, "oom": true, "limit": true, "chdir": true, "chroot": true,
		"setuid": true, "setgid": true, "exec": true, "script": true, "reload": true,
		"pre-start": true, "post-start": true, "pre-stop": true, "post-stop": true,
	}
	blocks := map[string]string{}
	env := map[string]string{}
	var block string // name of the open script block
	var body strings.Builder
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if block != "" {
			if trimmed == "end script" {
				blocks[block] = body.String()
				block = ""
				body.Reset()
				continue
			}
			body.WriteString(line + "\n")
			continue
		}
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		fields := strings.Fields(trimmed)
		if !stanzas[fields[0]] {
			t.Errorf("line %d: unknown stanza %q", n, fields[0])
			continue
		}
		switch {
		case trimmed == "script":
			block = "script"
		case len(fields) == 2 && fields[1] == "script" && (strings.HasSuffix(fields[0], "-start") || strings.HasSuffix(fields[0], "-stop")):
			block = fields[0]
		case fields[0] == "env":
			k, v, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(trimmed, "env")), "=")
			if !ok {
				t.Errorf("line %d: env without =", n)
			}
			env[k] = strings.Trim(v, `"`)
		}
	}
	if block != "" {
		t.Fatalf("script block %q is not closed with end script", block)
	}
	for _, name := range []string{"pre-start", "script"} {
		if blocks[name] == "" {
			t.Fatalf("no %s block", name)
		}
	}
	for name, b := range blocks {
		if out, code := run(t, nil, "sh", "-n", "-c", b); code != 0 {
			t.Errorf("%s block: sh -n: %s", name, out)
		}
	}
	if env["DAEMON"] != "/usr/sbin/http_status" || !strings.Contains(env["DEFAULTS"], "/etc/default/http_status") {
		t.Errorf("env stanzas: %v", env)
	}

	// Run it. upstart runs each block with /bin/sh -e and the job's env.
	bin := testBinary(t)
	tmp := t.TempDir()
	port := testenv.FreePort(t)
	flags := filepath.Join(tmp, "flags")
	defaults := filepath.Join(tmp, "default")
	writeFile(t, defaults, "HTTP_STATUS_OPTS=\"--ip 127.0.0.1 --port "+itoa(port)+" --vips=false\"\nHTTP_STATUS_DIR="+flags+"\n")
	jobEnv := []string{"DAEMON=" + bin, "DEFAULTS=" + defaults + " " + filepath.Join(tmp, "absent")}
	mustRun(t, 0, jobEnv, "sh", "-e", "-c", blocks["pre-start"])
	if st, err := os.Stat(flags); err != nil || st.Mode().Perm() != 0o775 {
		t.Fatalf("pre-start did not make the status directory 0775: %v", err)
	}
	cmd := exec.Command("sh", "-e", "-c", blocks["script"])
	cmd.Env = append(os.Environ(), jobEnv...)
	testenv.DieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
	})
	writeFile(t, filepath.Join(flags, "squid.80"), "")
	waitStatus(t, port, "SERVICE=squid&PORT=80", 200)
	// The script execs the daemon, so its PID is upstart's main process.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		if waitErr != nil {
			t.Errorf("daemon after SIGTERM: %v", waitErr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("daemon did not stop on SIGTERM")
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func fileContains(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.Contains(string(b), s)
}

func itoa(i int) string { return strconv.Itoa(i) }
