//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/pages"
)

// TestEventsEndToEnd reads the daemon's /events with a raw client (through
// the default fast engine, which hands the request to net/http) while the
// control command changes a flag three times: three change events, in that
// order, each naming the state before and after.
func TestEventsEndToEnd(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "flags")
	writeFlags(t, dir, map[string]string{"x.80": "up"})
	d := runDaemon(t, "--dir", dir, "--vips=false")
	c, err := net.Dial("tcp", strings.TrimPrefix(d.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /events: %v %v", res, err)
	}
	body := bufio.NewReader(res.Body)
	next := func() (string, string) {
		t.Helper()
		var event, data string
		for {
			line, err := body.ReadString('\n')
			if err != nil {
				t.Fatalf("stream: %v", err)
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "" && event != "":
				return event, data
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			}
		}
	}
	if ev, _ := next(); ev != "sync" {
		t.Fatalf("first event %q, want sync", ev)
	}
	ctl := func(args ...string) {
		if code, _, errs := ctlRunAt(time.Now(), append(args, "--dir", dir)...); code != 0 {
			t.Fatal(errs)
		}
	}
	var last uint64
	for _, step := range []struct {
		args     []string
		old, now string
	}{
		{[]string{"drain", "x.80", "--reason", "r1"}, "up", "drain"},
		{[]string{"maint", "x.80"}, "drain", "maint"},
		{[]string{"inactivate", "x.80"}, "maint", "missing"},
	} {
		ctl(step.args...)
		var ch pages.ChangeJSON
		for {
			ev, data := next()
			if err := json.Unmarshal([]byte(data), &ch); ev != "change" || err != nil {
				t.Fatalf("after %v: %s %s", step.args, ev, data)
			}
			if ch.Old != ch.Effective {
				break
			}
			// The subscriber started the connection sampler: its counts
			// arrive as changes that keep the state.
			if ch.Conns == nil {
				t.Fatalf("a change that changes nothing shown: %s", data)
			}
		}
		if ch.Name != "x.80" || ch.Old != step.old || ch.Effective != step.now || ch.Generation <= last {
			t.Fatalf("after %v: %+v, want %s -> %s after generation %d", step.args, ch, step.old, step.now, last)
		}
		last = ch.Generation
	}
}
