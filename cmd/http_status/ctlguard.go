//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A control command runs in a child process of its own, watched by the
// process the caller started. A status directory on a filesystem that
// stops answering (an NFS server gone, a FUSE server hung) blocks any
// system call that touches it, in uninterruptible sleep once the request
// has reached the server: SIGKILL does not end such a process, and a
// process cannot exit while one of its threads is blocked so. A deploy
// pipeline that ran "http_status drain" then hung until the filesystem
// came back. The watching process touches nothing there: when the child
// has not reported progress within --io-timeout, it says which step hung
// and exits 1, leaving the child (killed, it ends once the filesystem
// answers or fails) behind.

const (
	// ctlChildEnv marks the child that runs the command itself.
	ctlChildEnv = "HTTP_STATUS_CTL_CHILD"
	// ctlTTYEnv tells the child that the caller's stdout is a terminal
	// (its own is a pipe).
	ctlTTYEnv = "HTTP_STATUS_CTL_TTY"
	// defaultIOTimeout bounds each step that touches the status directory.
	defaultIOTimeout = 10 * time.Second
	// minIOTimeout is above drainPoll: drain --wait reports progress once
	// per poll.
	minIOTimeout = time.Second
)

// exitHung is the exit status when the status directory did not answer.
// It is 1, as for any file not written: scripts already test for it.
const exitHung = 1

func isCtlChild() bool { return os.Getenv(ctlChildEnv) != "" }

var (
	stepMu sync.Mutex
	stepW  *os.File // fd 3 in the child: progress for the watching parent
)

// ctlStep tells the watching parent that the command is alive and about to
// do what (a line such as "write squid.80"); nothing outside a ctl child.
func ctlStep(what string) {
	stepMu.Lock()
	defer stepMu.Unlock()
	if stepW == nil {
		if !isCtlChild() {
			return
		}
		stepW = os.NewFile(3, "ctl-progress")
	}
	_, _ = stepW.WriteString(strings.ReplaceAll(what, "\n", " ") + "\n")
}

// ioTimeoutArg finds --io-timeout in args the way the flag package would
// take it (the child parses and checks it again; a bad value here means
// the default, and the child refuses it).
func ioTimeoutArg(args []string) time.Duration {
	for i, a := range args {
		if a == "--" {
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "io-timeout" {
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				break
			}
			val = args[i+1]
		}
		if d, err := time.ParseDuration(val); err == nil && d >= minIOTimeout {
			return d
		}
		break
	}
	return defaultIOTimeout
}

// superviseCtl runs the control command args in a child and returns its
// exit status, or exitHung when it stops reporting progress for the
// --io-timeout, or 130 when a signal to stop was not obeyed in that time.
func superviseCtl(args []string, stdout, stderr io.Writer, stdoutTTY bool) int {
	timeout := ioTimeoutArg(args)
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "http_status %s: find own executable: %v\n", args[0], err)
		return 1
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(stderr, "http_status %s: progress pipe: %v\n", args[0], err)
		return 1
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), ctlChildEnv+"=1")
	if stdoutTTY {
		cmd.Env = append(cmd.Env, ctlTTYEnv+"=1")
	}
	// Pipes, not the caller's descriptors: a child left blocked would
	// otherwise hold them, and "out=$(http_status ...)" would wait for it.
	// exec copies them and Wait waits for the copying; a child that
	// cannot be waited for is given up on below instead.
	outR, outW, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(stderr, "http_status %s: output pipe: %v\n", args[0], err)
		return 1
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(stderr, "http_status %s: output pipe: %v\n", args[0], err)
		return 1
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.ExtraFiles = []*os.File{pw}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "http_status %s: start: %v\n", args[0], err)
		return 1
	}
	pw.Close()
	outW.Close()
	errW.Close()
	var copying sync.WaitGroup
	copying.Add(2)
	go func() { defer copying.Done(); _, _ = io.Copy(stdout, outR) }()
	go func() { defer copying.Done(); _, _ = io.Copy(stderr, errR) }()

	steps := make(chan string, 16)
	go func() {
		defer close(steps)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			steps <- sc.Text()
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	step := "start"
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	stopping := ""
	for {
		select {
		case err := <-exited:
			copying.Wait()
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					return 128 + int(ws.Signal())
				}
				return ee.ExitCode()
			}
			if err != nil {
				fmt.Fprintf(stderr, "http_status %s: %v\n", args[0], err)
				return 1
			}
			return 0
		case s, ok := <-steps:
			if !ok {
				steps = nil // the child closed it: it is exiting
				continue
			}
			step = s
			if stopping == "" {
				timer.Reset(timeout)
			}
		case s := <-sig:
			_ = cmd.Process.Signal(s)
			if stopping == "" {
				stopping = s.String()
				timer.Reset(timeout)
			}
		case <-timer.C:
			_ = cmd.Process.Kill()
			// What the child wrote before it blocked, then why.
			// The copies may be blocked behind it: give them a moment.
			copied := make(chan struct{})
			go func() { copying.Wait(); close(copied) }()
			select {
			case <-copied:
			case <-time.After(100 * time.Millisecond):
			}
			if stopping != "" {
				fmt.Fprintf(stderr, "http_status %s: %s: the command did not stop within %s (blocked at: %s); gave up on it\n", args[0], stopping, timeout, step)
				return exitInterrupted
			}
			fmt.Fprintf(stderr, "http_status %s: %s: no answer within %s: the status directory's filesystem stopped answering? gave up (exit %d); "+
				"a write under way may still land once it answers, and until then the daemon counts the flags it cannot read as out of rotation (see --io-timeout)\n",
				args[0], step, timeout, exitHung)
			return exitHung
		}
	}
}
