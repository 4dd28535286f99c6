package probe

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/probecheck"
)

// agentReply is one line in HAProxy's agent-check reply grammar, as the
// xinetd-fed agent scripts print it.
type agentReply struct {
	state     cache.State // Up, Drain, Maint or Down
	weight    int
	hasWeight bool
	reason    string
}

// parseAgentReply reads a line of HAProxy's agent words: separated by
// spaces, tabs or commas, "up", "down" (or "fail", "stopped"), "ready",
// "drain", "maint", a weight "N%", "maxconn:N" (accepted, it means nothing
// here), and "#" followed by a reason up to the end of the line. HAProxy
// keeps an operational state (up, down) and an administrative one (ready,
// drain, maint); they fold into one state, the strictest: maint, then
// down, then drain, then up. A line with no state word and only a weight
// is up at that weight.
//
// Unlike HAProxy, which keeps an earlier drain or maint until a "ready"
// comes, each line stands alone: the script says the whole truth every
// time. Any other word is an error, so that a script whose output is not
// understood fails rather than passes.
func parseAgentReply(line string) (agentReply, error) {
	r := agentReply{state: cache.Up}
	words := line
	if i := strings.IndexByte(line, '#'); i >= 0 {
		words, r.reason = line[:i], strings.TrimSpace(line[i+1:])
	}
	var op, admin string
	seen := false
	for _, w := range strings.FieldsFunc(words, func(c rune) bool { return c == ' ' || c == '\t' || c == ',' }) {
		seen = true
		lw := strings.ToLower(w)
		switch {
		case lw == "up":
			op = "up"
		case lw == "down" || lw == "fail" || lw == "stopped":
			op = "down"
		case lw == "ready" || lw == "drain" || lw == "maint":
			admin = lw
		case strings.HasSuffix(lw, "%"):
			n, err := strconv.Atoi(lw[:len(lw)-1])
			if err != nil || n < 0 || n > cache.MaxWeight {
				return r, fmt.Errorf("weight %q: want 0%% to %d%%", w, cache.MaxWeight)
			}
			r.weight, r.hasWeight = n, true
		case strings.HasPrefix(lw, "maxconn:"):
			if _, err := strconv.Atoi(lw[len("maxconn:"):]); err != nil {
				return r, fmt.Errorf("%q: want maxconn:N", w)
			}
		default:
			return r, fmt.Errorf("%q is not an agent word (up, down, ready, drain, maint, N%%, maxconn:N, #reason)", w)
		}
	}
	if !seen {
		return r, fmt.Errorf("no agent word before %q", "#")
	}
	switch {
	case admin == "maint":
		r.state = cache.Maint
	case op == "down":
		r.state = cache.Down
	case admin == "drain":
		r.state = cache.Drain
	}
	return r, nil
}

// agentOutcome judges the first line a script with output = "agent"
// printed on stdout after exiting 0: down (or fail, stopped) fails the
// attempt like any failure; up, drain and maint pass, with that state,
// weight and reason; a line that is not agent words fails.
func agentOutcome(line string) (outcome, error) {
	if line == "" {
		return outcome{}, errors.New("exit 0 but no agent reply on stdout")
	}
	r, err := parseAgentReply(line)
	if err != nil {
		return outcome{}, fmt.Errorf("agent reply %q not understood: %w", cache.Clip(line, 100), err)
	}
	if r.state == cache.Down {
		if r.reason != "" {
			return outcome{}, errors.New("down: " + r.reason)
		}
		return outcome{}, errors.New("down")
	}
	return outcome{Outcome: probecheck.Outcome{Msg: line}, agentReply: r}, nil
}
