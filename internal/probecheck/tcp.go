package probecheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// TCP connects, optionally sends a text and waits for an expected one.
type TCP struct {
	Address string // host:port
	Send    string // written once connected, when set
	// Expect, when set, must arrive within the first 64 KiB read.
	Expect string
}

// Check makes one connection.
func (t *TCP) Check(ctx context.Context) (Outcome, error) {
	timeout := deadlineOf(ctx)
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", t.Address)
	if err != nil {
		return Outcome{}, ctxErr(ctx, err, timeout)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if t.Send != "" {
		if _, err := io.WriteString(c, t.Send); err != nil {
			return Outcome{}, ctxErr(ctx, fmt.Errorf("send: %w", err), timeout)
		}
	}
	if t.Expect == "" {
		return Outcome{Msg: "connected"}, nil
	}
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 4096)
	for len(buf) < maxBody {
		n, err := c.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if bytes.Contains(buf, []byte(t.Expect)) {
			return Outcome{Msg: "got " + strconv.Quote(t.Expect)}, nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return Outcome{}, fmt.Errorf("connection closed before %q", t.Expect)
			}
			return Outcome{}, ctxErr(ctx, fmt.Errorf("read: %w", err), timeout)
		}
	}
	return Outcome{}, fmt.Errorf("no %q in the first %d bytes", t.Expect, maxBody)
}
