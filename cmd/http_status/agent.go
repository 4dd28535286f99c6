package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/rs/zerolog"

	"github.com/http-status/http_status/httpd"
)

// startAgent binds the agent-check listener and serves it on wg until ctx is
// done. Serve errors go to errc.
func startAgent(ctx context.Context, cfg Config, c *httpd.Checker, log zerolog.Logger, wg *sync.WaitGroup, errc chan<- error) (*httpd.Agent, error) {
	agent, err := httpd.NewAgent(httpd.AgentOptions{
		Checker:        c,
		DefaultService: cfg.AgentDefault,
		Logger:         log.With().Str("component", "agent").Logger(),
	})
	if err != nil {
		return nil, err
	}
	if err := agent.Listen(cfg.AgentAddr()); err != nil {
		return nil, err
	}
	wg.Go(func() {
		if err := agent.Serve(ctx); err != nil {
			errc <- fmt.Errorf("agent: %w", err)
		}
	})
	return agent, nil
}
