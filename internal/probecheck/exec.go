package probecheck

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
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

// killGrace bounds how long the output is read after the script exited and
// its process group was killed: a descendant that left the group (setsid)
// and holds the pipe open must not hold the attempt.
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
	// Pipes of our own rather than writers: with a writer, Wait waits
	// until every holder of the pipe closes it, so a script that starts
	// something in the background (`daemon &`) and exits 0 would fail
	// with "WaitDelay expired". With files, Wait returns when the script
	// exits; then the group is killed and what was written is read.
	// Both streams go to one pipe (the message is the first line of
	// either, in order); with agent output, stdout has its own too: the
	// agent words are read there, as xinetd passed stdout to HAProxy.
	var out, stdout limitedBuffer
	var readers []*pipeReader
	newPipe := func(dst ...*limitedBuffer) (*os.File, error) {
		pr, err := newPipeReader(dst...)
		if err != nil {
			return nil, err
		}
		readers = append(readers, pr)
		return pr.w, nil
	}
	defer func() {
		for _, pr := range readers {
			pr.close()
		}
	}()
	w, err := newPipe(&out)
	if err != nil {
		return Outcome{}, fmt.Errorf("run %s: %w", e.Command[0], err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if e.Agent {
		if cmd.Stdout, err = newPipe(&out, &stdout); err != nil {
			return Outcome{}, fmt.Errorf("run %s: %w", e.Command[0], err)
		}
	}
	err = cmd.Start()
	for _, pr := range readers {
		pr.start() // the parent's write ends are closed: EOF comes when the script's are
	}
	if err == nil {
		err = cmd.Wait()
	}
	// Whatever happened, no one of the group may outlive the attempt.
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	for _, pr := range readers {
		pr.wait(killGrace)
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

// pipeReader copies one pipe of a script into buffers until EOF.
type pipeReader struct {
	r, w *os.File
	dst  []*limitedBuffer
	done chan struct{}
}

func newPipeReader(dst ...*limitedBuffer) (*pipeReader, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	return &pipeReader{r: r, w: w, dst: dst}, nil
}

// start closes the parent's write end and reads in the background (so a
// chatty script never blocks on a full pipe).
func (p *pipeReader) start() {
	_ = p.w.Close()
	p.w = nil
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		buf := make([]byte, 32<<10)
		for {
			n, err := p.r.Read(buf)
			for _, d := range p.dst {
				_, _ = d.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
}

// wait waits for EOF at most grace: a holder of the write end outside the
// killed group would otherwise keep the reader forever.
func (p *pipeReader) wait(grace time.Duration) {
	if p.done == nil {
		return
	}
	_ = p.r.SetReadDeadline(time.Now().Add(grace))
	<-p.done
}

func (p *pipeReader) close() {
	if p.w != nil {
		_ = p.w.Close()
	}
	_ = p.r.Close()
}

// limitedBuffer keeps the first 4 KiB written and discards the rest (so a
// chatty script never blocks on a full pipe). Two readers (stdout and
// stderr of an agent script) may write to it at once.
type limitedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := 4096 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b
}
