package probe

import (
	"os"
	"testing"

	"github.com/http-status/http_status/internal/testenv"
)

// The parallel tests here wait on real peers (dockerd, php-fpm, hanging
// servers) and probe intervals far more than they compute: let eight of
// them wait at once. TestRunnerReload counts goroutines, so it is not
// parallel and runs first, alone.
func TestMain(m *testing.M) {
	testenv.WaitBoundParallel(8)
	os.Exit(m.Run())
}
