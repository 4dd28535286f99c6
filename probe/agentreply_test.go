package probe

import (
	"fmt"
	"strings"
	"testing"

	"github.com/http-status/http_status/cache"
)

func TestParseAgentReply(t *testing.T) {
	for _, tc := range []struct {
		line   string
		state  cache.State
		weight int // -1: none
		reason string
		err    string
	}{
		{"up", cache.Up, -1, "", ""},
		{"up 100%", cache.Up, 100, "", ""},
		{"UP ready 50%", cache.Up, 50, "", ""},
		{"75%", cache.Up, 75, "", ""},
		{"ready", cache.Up, -1, "", ""},
		{"drain", cache.Drain, -1, "", ""},
		{"up drain #deploy 1234", cache.Drain, -1, "deploy 1234", ""},
		{"maint", cache.Maint, -1, "", ""},
		{"down", cache.Down, -1, "", ""},
		{"down ready #no flag", cache.Down, -1, "no flag", ""},
		{"fail", cache.Down, -1, "", ""},
		{"stopped#gone", cache.Down, -1, "gone", ""},
		{"drain,down", cache.Down, -1, "", ""},
		{"75%,maxconn:30,maint,down", cache.Maint, 75, "", ""},
		{"up\tmaxconn:10", cache.Up, -1, "", ""},
		{"up # ok # really", cache.Up, -1, "ok # really", ""},
		{"0%", cache.Up, 0, "", ""},
		{"256%", cache.Up, 256, "", ""},
		{"257%", 0, 0, "", "want 0% to 256%"},
		{"-1%", 0, 0, "", "want 0% to 256%"},
		{"up 5x%", 0, 0, "", "want 0% to 256%"},
		{"maxconn:x", 0, 0, "", "want maxconn:N"},
		{"OK", 0, 0, "", `"OK" is not an agent word`},
		{"<html>", 0, 0, "", "is not an agent word"},
		{"#only a reason", 0, 0, "", "no agent word"},
		{"", 0, 0, "", "no agent word"},
	} {
		r, err := parseAgentReply(tc.line)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.line, err, tc.err)
			}
			continue
		}
		w := -1
		if r.hasWeight {
			w = r.weight
		}
		if err != nil || r.state != tc.state || w != tc.weight || r.reason != tc.reason {
			t.Errorf("%q: %v weight %d reason %q err %v; want %v weight %d reason %q", tc.line, r.state, w, r.reason, err, tc.state, tc.weight, tc.reason)
		}
	}
}

func TestAgentOutcome(t *testing.T) {
	if _, err := agentOutcome("down #backend says 500"); err == nil || err.Error() != "down: backend says 500" {
		t.Errorf("down: %v", err)
	}
	if _, err := agentOutcome(""); err == nil || !strings.Contains(err.Error(), "no agent reply") {
		t.Errorf("empty: %v", err)
	}
	if _, err := agentOutcome("all good"); err == nil || !strings.Contains(err.Error(), `agent reply "all good" not understood`) {
		t.Errorf("garbage: %v", err)
	}
	o, err := agentOutcome("up drain 50% #deploy")
	if err != nil || o.state != cache.Drain || !o.hasWeight || o.weight != 50 || o.reason != "deploy" || o.Msg != "up drain 50% #deploy" {
		t.Errorf("drain: %+v, %v", o, err)
	}
}

// TestRunnerAgentOutput: scripts with output = "agent" on one service
// combine into the strictest state (maint over drain over up), the smallest
// weight, and a failing one (exit 1, or "down") fails the service; a probe
// that reads the exit code alone passes whatever it prints.
func TestRunnerAgentOutput(t *testing.T) {
	c := newCollector()
	r := newTestRunner(t, c, Options{})
	// Each service's first attempt decides its state, and every check
	// below reads that attempt's output: the timeout is generous, as a
	// shell started under -race on a busy core can take longer than 100 ms
	// (an attempt killed at 100 ms left a service up on its earlier
	// success, with the timeout as its message).
	probe := func(service, name, line, output string) string {
		return fmt.Sprintf("[[probe]]\nservice = %q\nname = %q\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", %q]\n%sinterval = \"5s\"\ntimeout = \"5s\"\n",
			service, name, line, output)
	}
	agent := "output = \"agent\"\n"
	cfg := probe("w.1", "a", "echo 'up 60%'", agent) + probe("w.1", "b", "echo 'up 40% #b says'", agent) +
		probe("d.1", "a", "echo 'drain #deploy'", agent) + probe("d.1", "b", "echo maint", agent) + probe("d.1", "c", "echo up", agent) +
		probe("f.1", "a", "echo drain", agent) + probe("f.1", "b", "echo 'down #broken'", agent) +
		probe("x.1", "a", "echo drain; exit 1", agent) +
		probe("e.1", "a", "echo 'down #broken'", "")
	if err := r.Apply(mustParse(t, cfg)); err != nil {
		t.Fatal(err)
	}
	w := c.waitFor(t, "w.1", "up at the smaller weight", isOK)
	if w.State != cache.Up || !w.HasWeight || w.Weight != 40 || w.Reason != "probe b: b says" {
		t.Errorf("w.1: %+v", w)
	}
	if w.Checks[0].State != cache.Up || !w.Checks[0].HasWeight || w.Checks[0].Weight != 60 || w.Checks[0].Msg != "up 60%" {
		t.Errorf("w.1/a: %+v", w.Checks[0])
	}
	d := c.waitFor(t, "d.1", "maint", func(st cache.ProbeStatus) bool { return st.OK && st.State == cache.Maint })
	if d.Reason != "probe b: maint" || d.Checks[0].State != cache.Drain {
		t.Errorf("d.1: %+v", d)
	}
	ran := func(st cache.ProbeStatus) bool { return !st.OK && !strings.Contains(st.LastErr, "pending") }
	f := c.waitFor(t, "f.1", "down", ran)
	if f.LastErr != "probe b: down: broken" || f.State != cache.Down {
		t.Errorf("f.1: %+v", f)
	}
	x := c.waitFor(t, "x.1", "down on exit 1", ran)
	if x.LastErr != "probe a: exit 1: drain" {
		t.Errorf("x.1: %+v", x)
	}
	e := c.waitFor(t, "e.1", "up (exit code only)", isOK)
	if e.State != cache.Up || e.Checks[0].Msg != "down #broken" {
		t.Errorf("e.1: %+v", e)
	}
}
