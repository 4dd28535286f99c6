//go:build linux

package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// SysV init support: -d/--daemon and --pidfile. Under systemd neither is
// needed (Type=notify tracks the main process itself).

// daemonEnv marks the re-executed child of --daemon. Its value is the number
// of the descriptor on which the child reports readiness to the parent.
const daemonEnv = "HTTP_STATUS_DAEMON_READY_FD"

// daemonStartTimeout bounds how long a --daemon parent waits for its child.
const daemonStartTimeout = 60 * time.Second

// isDaemonChild reports whether this process is the child of --daemon.
func isDaemonChild() bool { return os.Getenv(daemonEnv) != "" }

// daemonize is the --daemon parent: it re-executes this binary with the same
// arguments in a new session, stdin on /dev/null and stdout/stderr on
// --log-file (or /dev/null), and waits until the child says it is ready. It
// returns the parent's exit code: 0 once the child is ready, 1 with the
// child's error otherwise.
func daemonize(args []string, cfg Config, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintln(stderr, "http_status: daemonize:", err)
		return 1
	}
	exe, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fail(err)
	}
	defer null.Close()
	out := null
	if cfg.LogFile != "" {
		if out, err = openLogFile(cfg.LogFile); err != nil {
			return fail(err)
		}
		defer out.Close()
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	defer r.Close()
	cmd := exec.Command(exe, args...)
	cmd.Env = append(childEnv(os.Environ()), daemonEnv+"=3")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, out, out
	cmd.ExtraFiles = []*os.File{w} // fd 3 in the child
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fail(err)
	}

	// The child writes "ready\n" or "error: ...\n" and closes the pipe; it
	// also closes when the child dies, so EOF without "ready" is a failure.
	msg := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(r, 4096))
		msg <- strings.TrimSpace(string(b))
	}()
	select {
	case m := <-msg:
		if m == "ready" {
			_ = cmd.Process.Release()
			return 0
		}
		werr := cmd.Wait()
		if m == "" {
			m = fmt.Sprintf("the daemon exited before it was ready (%v)", werr)
		}
		fmt.Fprintln(stderr, "http_status:", strings.TrimPrefix(m, "error: "))
		return 1
	case <-time.After(daemonStartTimeout):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fail(fmt.Errorf("the daemon was not ready after %s; killed it", daemonStartTimeout))
	}
}

// childEnv drops socket activation variables: they name this process, not
// the child.
func childEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if strings.HasPrefix(kv, "LISTEN_") || strings.HasPrefix(kv, daemonEnv+"=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// daemonChildSetup runs first in the --daemon child: it makes cfg's paths
// absolute and moves to / so the daemon does not pin the directory it was
// started from.
func daemonChildSetup(cfg *Config) error {
	for _, p := range []*string{&cfg.Dir, &cfg.PidFile, &cfg.LogFile} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("daemon: path %q: %w", *p, err)
		}
		*p = abs
	}
	if err := os.Chdir("/"); err != nil {
		return fmt.Errorf("daemon: chdir /: %w", err)
	}
	return nil
}

var parentOnce sync.Once

// tellParent reports readiness (err == nil) or a startup error to the
// --daemon parent. Only the first call counts; it is a no-op outside the
// child.
func tellParent(err error) {
	parentOnce.Do(func() {
		v := os.Getenv(daemonEnv)
		if v == "" {
			return
		}
		os.Unsetenv(daemonEnv)
		fd, perr := strconv.Atoi(v)
		if perr != nil || fd < 3 {
			return
		}
		f := os.NewFile(uintptr(fd), "daemon-ready")
		defer f.Close()
		msg := "ready\n"
		if err != nil {
			msg = "error: " + strings.ReplaceAll(err.Error(), "\n", "; ") + "\n"
		}
		_, _ = f.WriteString(msg)
	})
}

// openLogFile opens --log-file for appending.
func openLogFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open --log-file: %w", err)
	}
	return f, nil
}

// reopenLogOn reopens --log-file at path on each signal from sig (SIGUSR1,
// as nginx and most daemons do) and puts it in place of fds, the
// descriptors the log is written to, with dup3: the file renamed by
// logrotate (without copytruncate) or deleted under the daemon would
// otherwise take every later line, unseen, until a restart. A reopen that
// fails is logged and the file open until then is kept.
func reopenLogOn(sig <-chan os.Signal, path string, fds []int, log zerolog.Logger) {
	for range sig {
		if path == "" {
			log.Info().Msg("SIGUSR1: no --log-file to reopen (logs go to stderr); nothing done")
			continue
		}
		f, err := openLogFile(path)
		for _, fd := range fds {
			if err != nil {
				break
			}
			// stdout and stderr stay open across exec; any other
			// descriptor stays close-on-exec, as Go opened it.
			flags := unix.O_CLOEXEC
			if fd <= 2 {
				flags = 0
			}
			if e := unix.Dup3(int(f.Fd()), fd, flags); e != nil {
				err = fmt.Errorf("reopen --log-file: dup3 onto descriptor %d: %w", fd, e)
			}
		}
		if f != nil {
			f.Close()
		}
		if err != nil {
			log.Error().Err(err).Str("log_file", path).Msg("SIGUSR1: the log file was not reopened; logging goes on to the file open until now")
			continue
		}
		log.Info().Str("log_file", path).Msg("SIGUSR1: log file reopened")
	}
}
