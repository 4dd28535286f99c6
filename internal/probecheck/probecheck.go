// Package probecheck performs one attempt of each kind of active health
// check: an HTTP request, a TCP exchange, a FastCGI request, a look at
// Docker containers' state, a script. Each kind is a struct of plain
// settings whose Check runs one attempt until it is done or its context
// is; package probe decides what to check, when, and what the results
// mean.
package probecheck

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/http-status/http_status/cache"
)

// Checker runs one attempt. It returns what it found on success and an
// error saying what failed otherwise. It must return when ctx is done,
// with [context.Canceled] when ctx was canceled and "timeout after ..."
// when its deadline passed.
type Checker interface {
	Check(ctx context.Context) (Outcome, error)
}

// Outcome is an attempt's result beyond pass or fail.
type Outcome struct {
	// Msg is a short message on success ("HTTP 200").
	Msg string
	// Stdout is the first non-empty line an [Exec] with Agent set printed
	// on stdout, when it exited 0: the caller reads it as agent words.
	Stdout string
	// Containers a [Container] check matched, whether it passed or not.
	Containers []cache.Container
}

// maxBody bounds how much of a reply is read to look for an expected text.
const maxBody = 64 << 10

// ctxErr turns a deadline into "timeout after ..." and keeps other errors.
func ctxErr(ctx context.Context, err error, timeout time.Duration) error {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		if errors.Is(ctx.Err(), context.Canceled) {
			return context.Canceled
		}
		return fmt.Errorf("timeout after %s", timeout)
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func deadlineOf(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return time.Until(d).Round(time.Millisecond)
	}
	return 0
}

// statusOK reports whether code is expected: in want, or 200..399 when want
// is empty.
func statusOK(code int, want []int) bool {
	if len(want) == 0 {
		return code >= 200 && code < 400
	}
	for _, w := range want {
		if code == w {
			return true
		}
	}
	return false
}

func wantStatuses(want []int) string {
	if len(want) == 0 {
		return "200-399"
	}
	s := make([]string, len(want))
	for i, w := range want {
		s[i] = strconv.Itoa(w)
	}
	return strings.Join(s, ",")
}

func firstLine(b []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" {
			return s
		}
	}
	return ""
}
