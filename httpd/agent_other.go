//go:build !linux

package httpd

import (
	"context"
	"net"
)

// serveLoops is Linux only: elsewhere the agent runs a goroutine per
// connection.
func (a *Agent) serveLoops(ctx context.Context, ln net.Listener) (bool, error) {
	return false, nil
}
