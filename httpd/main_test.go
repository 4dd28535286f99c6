//go:build linux

package httpd

import (
	"os"
	"testing"

	"github.com/http-status/http_status/internal/testenv"
)

// The parallel tests here wait on read deadlines and timeouts far more
// than they compute: let eight of them wait at once. The allocation
// counts (testing.AllocsPerRun) are not parallel, so they run first, alone.
func TestMain(m *testing.M) {
	testenv.WaitBoundParallel(8)
	os.Exit(m.Run())
}
