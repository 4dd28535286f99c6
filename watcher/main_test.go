//go:build linux

package watcher

import (
	"os"
	"testing"

	"github.com/http-status/http_status/internal/testenv"
)

// The parallel tests here mostly wait on the kernel (inotify, netlink,
// child processes in their own namespaces): let four of them wait at once.
// TestRemoteFSPolled swaps a package variable and is not parallel: it runs
// first, alone.
func TestMain(m *testing.M) {
	testenv.WaitBoundParallel(4)
	os.Exit(m.Run())
}
