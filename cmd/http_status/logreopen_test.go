//go:build linux

package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/testenv"
)

// TestLogFileReopen: --log-file renamed away (logrotate without
// copytruncate) or deleted under the daemon. Before, every later line went
// to the renamed or deleted file until a restart (and SIGUSR1, which
// nginx's users send for this, was ignored without a word). SIGUSR1 now
// reopens the path, in the foreground and under --daemon, and the daemon
// answers on throughout.
func TestLogFileReopen(t *testing.T) {
	t.Parallel()
	for _, daemon := range []bool{false, true} {
		t.Run(fmt.Sprintf("daemon=%v", daemon), func(t *testing.T) {
			t.Parallel()
			dir, logDir := t.TempDir(), t.TempDir()
			logFile := filepath.Join(logDir, "http_status.log")
			flag := filepath.Join(dir, "web.80")
			if err := os.WriteFile(flag, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			port := testenv.FreePort(t)
			pidFile := filepath.Join(logDir, "pid")
			args := []string{"--dir", dir, "-p", fmt.Sprint(port), "--vips=false", "--log-format", "json", "--log-file", logFile}
			if daemon {
				args = append(args, "--daemon", "--pidfile", pidFile)
			}
			cmd := exec.Command(testBinary(t), args...)
			cmd.Env = cleanEnv()
			testenv.DieWithTest(cmd)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			pid := cmd.Process.Pid
			if daemon {
				if err := <-exited; err != nil {
					t.Fatalf("--daemon parent: %v", err)
				}
				b, err := os.ReadFile(pidFile)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := fmt.Sscan(string(b), &pid); err != nil {
					t.Fatalf("pid file %q: %v", b, err)
				}
			}
			t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
			client := &http.Client{Timeout: 5 * time.Second}
			status := func() (int, string) {
				res, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/status?SERVICE=web&PORT=80", port))
				if err != nil {
					return 0, err.Error()
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				return res.StatusCode, string(b)
			}
			read := func(p string) string { b, _ := os.ReadFile(p); return string(b) }
			testenv.PollUntil(t, "the daemon serving, its start logged", 15*time.Second, func() (bool, string) {
				code, body := status()
				return code == 200 && strings.Contains(read(logFile), "http_status ready"), fmt.Sprintf("%d %q", code, body)
			})
			// A change logged and answered, then seen in the file now at path.
			change := func(content, state string) {
				t.Helper()
				if err := os.WriteFile(flag, []byte(content+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				testenv.PollUntil(t, "web.80 "+state+" answered and logged in "+logFile, 5*time.Second, func() (bool, string) {
					code, body := status()
					return strings.Contains(read(logFile), `"message":"web.80 `+state+`"`), fmt.Sprintf("%d %q; log: %q", code, body, read(logFile))
				})
			}

			// logrotate without copytruncate: rename, then SIGUSR1. Under
			// --daemon (the SysV script's setup) the packaged
			// configuration does it, with the real logrotate.
			if lr, err := exec.LookPath("logrotate"); daemon && err == nil && os.Geteuid() == 0 { // it runs as root
				rotatePackaged(t, lr, logFile, pidFile)
			} else {
				if err := os.Rename(logFile, logFile+".1"); err != nil {
					t.Fatal(err)
				}
				if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
					t.Fatal(err)
				}
			}
			testenv.PollUntil(t, "the reopen logged in a new file", 5*time.Second, func() (bool, string) {
				return strings.Contains(read(logFile), "log file reopened"), read(logFile + ".1")
			})
			change("drain", "drain")
			if old := read(logFile + ".1"); strings.Contains(old, "web.80 drain") || strings.Contains(old, "reopened") {
				t.Fatalf("lines after the reopen went to the renamed file:\n%s", old)
			}

			// Deleted under the daemon: the next SIGUSR1 creates it again.
			if err := os.Remove(logFile); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
				t.Fatal(err)
			}
			testenv.PollUntil(t, "the reopen logged in a file created again", 5*time.Second, func() (bool, string) {
				return strings.Contains(read(logFile), "log file reopened"), "no " + logFile
			})
			change("maint", "maint")
			if code, body := status(); code != 503 || !strings.Contains(body, "maint") {
				t.Fatalf("after the reopens: %d %q, want 503 maintenance", code, body)
			}

			if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			testenv.PollUntil(t, "the daemon gone after SIGTERM", 15*time.Second, func() (bool, string) {
				if !daemon {
					select {
					case err := <-exited:
						if err != nil {
							t.Errorf("exit after SIGTERM: %v", err)
						}
						return true, ""
					default:
						return false, "running"
					}
				}
				return syscall.Kill(pid, 0) != nil, "running"
			})
		})
	}
}

// rotatePackaged runs logrotate -f with packaging/http_status.logrotate,
// its log and pidfile paths replaced by logFile and pidFile.
func rotatePackaged(t *testing.T, logrotate, logFile, pidFile string) {
	t.Helper()
	conf, err := os.ReadFile(filepath.Join("..", "..", "packaging", "http_status.logrotate")) // tests run in cmd/http_status
	if err != nil {
		t.Fatal(err)
	}
	text := string(conf)
	for old, new := range map[string]string{"/var/log/http_status.log": logFile, "/run/http_status.pid": pidFile} {
		if !strings.Contains(text, old) {
			t.Fatalf("packaging/http_status.logrotate does not name %s", old)
		}
		text = strings.ReplaceAll(text, old, new)
	}
	dir := t.TempDir()
	confPath := filepath.Join(dir, "http_status")
	if err := os.WriteFile(confPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(logrotate, "-f", "-s", filepath.Join(dir, "state"), confPath).CombinedOutput(); err != nil {
		t.Fatalf("logrotate -f: %v\n%s", err, out)
	}
	if _, err := os.Stat(logFile + ".1"); err != nil {
		t.Fatalf("logrotate did not rotate %s: %v", logFile, err)
	}
}
