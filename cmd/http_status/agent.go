package main

import (
	"net"

	"github.com/rs/zerolog"

	"github.com/http-status/http_status/httpd"
)

// newAgent makes the agent-check responder on ln (bound from --agent-port or
// passed by systemd as the socket named "agent").
func newAgent(cfg Config, c *httpd.Checker, ln net.Listener, log zerolog.Logger) (*httpd.Agent, error) {
	agent, err := httpd.NewAgent(httpd.AgentOptions{
		Checker:        c,
		DefaultService: cfg.AgentDefault,
		Logger:         log.With().Str("component", "agent").Logger(),
	})
	if err != nil {
		return nil, err
	}
	agent.UseListener(ln)
	return agent, nil
}
