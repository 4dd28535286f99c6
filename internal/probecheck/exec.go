package probecheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// Exec runs a script in its own process group: exit 0 passes, and the
// first line of its output is the message.
type Exec struct {
	Command []string // an absolute path, then the arguments
	// Service is passed to the script as HTTP_STATUS_SERVICE.
	Service string
	// Agent: the first line of stdout is HAProxy agent words (output =
	// "agent"); Check returns it in [Outcome.Stdout] for the caller to
	// read.
	Agent bool
}

// killGrace is how long Wait waits for the output pipes once the process
// group was killed (a grandchild holding them open must not hang us).
const killGrace = time.Second

// Check runs the script once.
func (e *Exec) Check(ctx context.Context) (Outcome, error) {
	timeout := deadlineOf(ctx)
	cmd := exec.CommandContext(ctx, e.Command[0], e.Command[1:]...)
	// Its own process group, so a timeout kills the script and everything
	// it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = killGrace
	cmd.Env = append(os.Environ(), "HTTP_STATUS_SERVICE="+e.Service)
	cmd.Stdin = nil
	// Both streams in one buffer (the message is the first line of
	// either); with agent output, stdout alone is also kept: the agent
	// words are read there, as xinetd passed stdout to HAProxy.
	var out, stdout limitedBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if e.Agent {
		cmd.Stdout = io.MultiWriter(&out, &stdout)
	}
	err := cmd.Run()
	// Whatever happened, no one of the group may outlive the attempt.
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	line := firstLine(out.Bytes())
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return Outcome{}, context.Canceled
		}
		return Outcome{}, fmt.Errorf("timeout after %s; process group killed", timeout)
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			msg := "exit " + strconv.Itoa(ee.ExitCode())
			if ee.ExitCode() < 0 {
				msg = ee.ProcessState.String()
			}
			if line != "" {
				msg += ": " + line
			}
			return Outcome{}, errors.New(msg)
		}
		return Outcome{}, fmt.Errorf("run %s: %w", e.Command[0], err)
	}
	if e.Agent {
		return Outcome{Msg: line, Stdout: firstLine(stdout.Bytes())}, nil
	}
	if line == "" {
		line = "exit 0"
	}
	return Outcome{Msg: line}, nil
}

// limitedBuffer keeps the first 4 KiB written and discards the rest (so a
// chatty script never blocks on a full pipe).
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 4096 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) Bytes() []byte { return l.b }
