//go:build linux

package daemon

import (
	"net"

	"github.com/rs/zerolog"

	"github.com/http-status/http_status/internal/agent"
	"github.com/http-status/http_status/internal/check"
)

// newAgent makes the agent-check responder on ln (bound from --agent-port or
// passed by systemd as the socket named "agent").
func newAgent(cfg Config, c *check.Checker, ln net.Listener, log zerolog.Logger, started func()) (*agent.Server, error) {
	ag, err := agent.New(agent.Options{
		Checker:        c,
		DefaultService: cfg.AgentDefault,
		Logger:         log.With().Str("component", "agent").Logger(),
		Started:        started,
	})
	if err != nil {
		return nil, err
	}
	ag.UseListener(ln)
	return ag, nil
}
