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
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/http-status/http_status/internal/testenv"
)

// TestLogReaderStalled runs the real binary with its stderr on a pipe of 4
// KiB that nobody reads (journald hung, a terminal paused with Ctrl-S, a
// pipe to a logger that died). Logging must not block the daemon: before,
// the watcher loop blocked on its next line (a flag change), flag changes
// went unseen, every check turned 503 after --stale-after, and SIGTERM
// hung on the "stopping" line. (That the dropped lines are counted once the
// reader is back: TestLoggerDropsWhenBehind.)
func TestLogReaderStalled(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "web.80"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, 4096); err != nil {
		t.Skipf("F_SETPIPE_SZ: %v", err)
	}
	cmd, exited, status := startLoggingTo(t, dir, w)
	w.Close()

	// Fill the pipe: each SIGHUP logs a few lines, none under 100 bytes, so
	// with less than that free the next line blocks its writer.
	testenv.PollUntil(t, "the log pipe full", 15*time.Second, func() (bool, string) {
		_ = cmd.Process.Signal(syscall.SIGHUP)
		n, err := unix.IoctlGetInt(int(r.Fd()), unix.TIOCINQ)
		return err == nil && n > 4096-100, fmt.Sprintf("%d bytes queued (%v)", n, err)
	})
	// A flag change is logged by the watcher loop; it must still be
	// published, and nothing may go stale.
	if err := os.WriteFile(filepath.Join(dir, "web.80"), []byte("drain # deploy\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.PollUntil(t, "the drain seen with the log's reader stalled", 5*time.Second, func() (bool, string) {
		code, body := status()
		return code == 404 && strings.Contains(body, "drain"), fmt.Sprintf("%d %q", code, body)
	})

	// And it stops, the reader still stalled.
	stopWithin(t, cmd, exited, 15*time.Second)
}

// TestLogReaderGone: the daemon's stdout and stderr are a pipe whose reader
// exits (a logger under runit or s6 that died, `http_status | logger` with
// logger killed, a journald stream broken under a unit with
// IgnoreSIGPIPE=no). A Go program writing to a broken pipe on fd 1 or 2 is
// killed by SIGPIPE unless it asks for the signal: every service went out
// of rotation with its next log line (a flag change), "connection
// refused".
func TestLogReaderGone(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "web.80"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd, exited, status := startLoggingTo(t, dir, w)
	w.Close()
	r.Close() // the reader is gone
	if err := os.WriteFile(filepath.Join(dir, "web.80"), []byte("drain # deploy\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.PollUntil(t, "the drain seen with the log's reader gone", 5*time.Second, func() (bool, string) {
		code, body := status()
		return code == 404 && strings.Contains(body, "drain"), fmt.Sprintf("%d %q", code, body)
	})
	if err := os.Remove(filepath.Join(dir, "web.80")); err != nil {
		t.Fatal(err)
	}
	testenv.PollUntil(t, "the flag's removal seen", 5*time.Second, func() (bool, string) {
		code, body := status()
		return code == 404 && !strings.Contains(body, "drain"), fmt.Sprintf("%d %q", code, body)
	})
	stopWithin(t, cmd, exited, 15*time.Second)
}

// startLoggingTo starts the daemon on dir with its stdout and stderr on w,
// and waits until it answers 200 for web.80 (dir must hold that flag). It
// returns the process, the result of its Wait, and a check of web.80.
func startLoggingTo(t *testing.T, dir string, w *os.File) (*exec.Cmd, <-chan error, func() (int, string)) {
	t.Helper()
	port := testenv.FreePort(t)
	cmd := exec.Command(testBinary(t), "--dir", dir, "-p", fmt.Sprint(port), "--vips=false", "--stale-after", "2s", "--log-format", "json")
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = w, w
	testenv.DieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	url := fmt.Sprintf("http://127.0.0.1:%d/status?SERVICE=web&PORT=80", port)
	client := &http.Client{Timeout: 5 * time.Second}
	status := func() (int, string) {
		res, err := client.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res.StatusCode, string(b)
	}
	testenv.PollUntil(t, "the daemon serving", 15*time.Second, func() (bool, string) {
		code, body := status()
		return code == 200, fmt.Sprintf("%d %q", code, body)
	})
	return cmd, exited, status
}

// stopWithin sends SIGTERM and wants a clean exit within d.
func stopWithin(t *testing.T, cmd *exec.Cmd, exited <-chan error, d time.Duration) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(d):
		t.Fatalf("no exit %s after SIGTERM", d)
	}
}

// blockingWriter blocks every Write until release is closed, then keeps
// what it is given.
type blockingWriter struct {
	release chan struct{}
	got     testenv.LogBuffer
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	<-b.release
	return b.got.Write(p)
}

func (b *blockingWriter) String() string { return b.got.String() }

// TestLoggerDropsWhenBehind: with a writer that does not take lines, the
// daemon's logger never blocks the code that logs; past logBuffer lines the
// oldest are dropped, and once the writer takes lines again one line says
// how many were. The flush at exit gives up after logFlushWait.
func TestLoggerDropsWhenBehind(t *testing.T) {
	t.Parallel()
	w := &blockingWriter{release: make(chan struct{})}
	log, closeLog, err := newLogger(Config{LogLevel: "info", LogFormat: "json"}, w)
	if err != nil {
		t.Fatal(err)
	}
	logged := make(chan struct{})
	go func() {
		for i := range 3 * logBuffer {
			log.Info().Int("i", i).Msg("a line")
		}
		close(logged)
	}()
	select {
	case <-logged:
	case <-time.After(30 * time.Second):
		t.Fatal("logging blocked on a writer that does not take lines")
	}
	close(w.release)
	log.Info().Msg("the last line")
	testenv.PollUntil(t, "the last line and the count of dropped ones", 10*time.Second, func() (bool, string) {
		s := w.String()
		return strings.Contains(s, "the last line") && strings.Contains(s, "log lines dropped"), fmt.Sprintf("%d bytes", len(s))
	})
	if n := strings.Count(w.String(), `"message":"a line"`); n >= 3*logBuffer || n == 0 {
		t.Errorf("%d of %d lines written, want some dropped and some kept", n, 3*logBuffer)
	}
	closeLog()

	// Exit with a writer stuck for good: the flush gives up.
	stuck := &blockingWriter{release: make(chan struct{})}
	defer close(stuck.release)
	log, closeLog, err = newLogger(Config{LogLevel: "info", LogFormat: "json"}, stuck)
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Msg("never written")
	done := make(chan struct{})
	go func() { closeLog(); close(done) }()
	select {
	case <-done:
	case <-time.After(logFlushWait + 10*time.Second):
		t.Fatal("the flush at exit waited on a writer stuck for good")
	}
}

// failingWriter refuses every Write with ENOSPC until ok is set, counting
// the refusals; then it keeps what it is given. A stand-in for a --log-file
// on a full filesystem: the logger sees only Write's error, and a test
// must know when the refused lines were tried before space comes back.
type failingWriter struct {
	ok      atomic.Bool
	refused atomic.Int64
	got     testenv.LogBuffer
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if !w.ok.Load() {
		w.refused.Add(1)
		return 0, &os.PathError{Op: "write", Path: "/var/log/http_status.log", Err: syscall.ENOSPC}
	}
	return w.got.Write(p)
}

func (w *failingWriter) String() string { return w.got.String() }

// TestLoggerCountsLostLines: lines the writer refuses (a full disk under
// --log-file) were lost without a trace; once it takes lines again, one
// line says how many were lost and why.
func TestLoggerCountsLostLines(t *testing.T) {
	t.Parallel()
	w := &failingWriter{}
	log, closeLog, err := newLogger(Config{LogLevel: "info", LogFormat: "json"}, w)
	if err != nil {
		t.Fatal(err)
	}
	defer closeLog()
	for i := range 5 {
		log.Info().Int("i", i).Msg("while the disk is full")
	}
	testenv.PollUntil(t, "the five lines tried", 10*time.Second, func() (bool, string) {
		return w.refused.Load() == 5, fmt.Sprintf("%d refused", w.refused.Load())
	})
	w.ok.Store(true)
	log.Info().Msg("space again")
	testenv.PollUntil(t, "the count of lost lines", 10*time.Second, func() (bool, string) {
		s := w.String()
		return strings.Contains(s, "space again") && strings.Contains(s, `"lost":5`) &&
			strings.Contains(s, "5 log lines lost: writing them failed (write /var/log/http_status.log: no space left on device)"), s
	})
}
