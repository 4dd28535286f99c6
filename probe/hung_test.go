//go:build linux

package probe

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/faulttest"
	"github.com/http-status/http_status/internal/testenv"
)

// TestExecProbeUninterruptible: a script that blocks on a hung mount (a
// real FUSE filesystem whose server never answers, in a mount namespace of
// the test's own) cannot be killed at its timeout: SIGKILL leaves it in
// uninterruptible sleep. The probe passed before; its service must not
// keep that result while the script hangs.
func TestExecProbeUninterruptible(t *testing.T) {
	testenv.RunInMountNamespace(t, "TestExecProbeUninterruptibleChild")
}

func TestExecProbeUninterruptibleChild(t *testing.T) {
	testenv.IsChild(t, "TestExecProbeUninterruptibleChild")
	sh, c, r, target := hungScript(t)
	good := filepath.Join(faulttest.TempDir(t), "good")
	if err := os.WriteFile(good, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("[ -e %s ] && exit 0; exec cat %s", good, target)
	if err := r.Apply(mustParse(t, fmt.Sprintf(`
[[probe]]
service = "web.80"
kind = "exec"
command = [%q, "-c", %q]
interval = "500ms"
timeout = "300ms"
fall = 1
rise = 1
`, sh, script))); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "web.80", "passing", func(st cache.ProbeStatus) bool { return st.OK })

	if err := os.Remove(good); err != nil {
		t.Fatal(err)
	}
	// The next attempt blocks in cat; its timeout's SIGKILL does not end
	// it. The script must be seen in uninterruptible sleep, or this test
	// proves nothing.
	testenv.PollUntil(t, "the script in uninterruptible sleep", 10*time.Second, func() (bool, string) {
		st := procState(t, target)
		return st == "D", "state " + st
	})
	deadline := time.Now().Add(300*time.Millisecond + stuckAfter + 5*time.Second)
	st := c.waitFor(t, "web.80", "failing as stuck", func(st cache.ProbeStatus) bool { return !st.OK })
	if !strings.Contains(st.LastErr, "attempt still running") && !strings.Contains(st.LastErr, "previous attempt is still running") {
		t.Errorf("failing for %q, want the stuck attempt named", st.LastErr)
	}
	if time.Now().After(deadline) {
		t.Errorf("failing only after the script hung for over %s", 300*time.Millisecond+stuckAfter+5*time.Second)
	}
}

// hungScript is the setup of the tests of a script blocked on a hung
// mount: sh, a collector and its runner, and target, a path on a FUSE mount
// whose server never answers. The runner comes first, so that its Close
// runs after the mount's cleanup has let the blocked script go (cleanups
// run last first). It skips without sh.
func hungScript(t *testing.T) (sh string, c *collector, r *Runner, target string) {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("needs sh")
	}
	c = newCollector()
	r = newTestRunner(t, c, Options{})
	return sh, c, r, filepath.Join(faulttest.HungMount(t), "x")
}

// procState is the state letter (/proc/PID/stat) of the process whose
// command line names arg alone, or "" when none does.
func procState(t *testing.T, arg string) string {
	t.Helper()
	for _, p := range scriptProcs(t, arg) {
		b, err := os.ReadFile(filepath.Join(p, "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ...: comm may hold spaces, state follows ") ".
		if i := strings.LastIndex(string(b), ") "); i >= 0 && len(b) > i+2 {
			return string(b[i+2])
		}
	}
	return ""
}

// TestCloseWithHungAttempt: the runner stops (SIGTERM, a reload that drops
// the probe) while an attempt is blocked on a hung mount and its timeout
// is far off. The kill at the stop does not end the script (it passes into
// uninterruptible sleep), so waiting for the attempt held the stop for the
// probe's whole timeout and more.
func TestCloseWithHungAttempt(t *testing.T) {
	testenv.RunInMountNamespace(t, "TestCloseWithHungAttemptChild")
}

func TestCloseWithHungAttemptChild(t *testing.T) {
	testenv.IsChild(t, "TestCloseWithHungAttemptChild")
	sh, _, r, target := hungScript(t)
	if err := r.Apply(mustParse(t, fmt.Sprintf(`
[[probe]]
service = "web.80"
kind = "exec"
command = [%q, "-c", %q]
interval = "30s"
timeout = "30s"
`, sh, "exec cat "+target))); err != nil {
		t.Fatal(err)
	}
	// The attempt is blocked once cat waits for the FUSE server.
	testenv.PollUntil(t, "cat waiting on the hung mount", 10*time.Second, func() (bool, string) {
		w := procWchan(t, target)
		return strings.Contains(w, "fuse") || strings.Contains(w, "request_wait_answer"), "wchan " + w
	})
	closed := make(chan struct{})
	go func() { r.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(stopWait + 2*time.Second):
		t.Errorf("Close did not return 4s after it was called, with an attempt blocked on a hung mount (timeout 30s)")
	}
}

// procWchan is the kernel function (/proc/PID/wchan) the process whose
// command line names arg alone sleeps in, or "".
func procWchan(t *testing.T, arg string) string {
	t.Helper()
	for _, p := range scriptProcs(t, arg) {
		b, _ := os.ReadFile(filepath.Join(p, "wchan"))
		return string(b)
	}
	return ""
}

// TestReloadWithStuckAttempt: a reload changes the settings of a probe
// whose attempt is stuck (its script in uninterruptible sleep on a hung
// mount). The new settings must wait for that attempt to end: a new
// script started beside it would block on the same mount, one more
// process per reload, and the service must stay failed meanwhile.
func TestReloadWithStuckAttempt(t *testing.T) {
	testenv.RunInMountNamespace(t, "TestReloadWithStuckAttemptChild")
}

func TestReloadWithStuckAttemptChild(t *testing.T) {
	testenv.IsChild(t, "TestReloadWithStuckAttemptChild")
	sh, c, r, target := hungScript(t)
	conf := func(interval string) *Config {
		return mustParse(t, fmt.Sprintf(`
[[probe]]
service = "web.80"
kind = "exec"
command = [%q, "-c", %q]
interval = %q
timeout = "300ms"
fall = 1
`, sh, "exec cat "+target, interval))
	}
	if err := r.Apply(conf("500ms")); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "web.80", "failing as stuck", func(st cache.ProbeStatus) bool {
		return !st.OK && strings.Contains(st.LastErr, "attempt still running")
	})
	if n := procCount(t, target); n != 1 {
		t.Fatalf("%d scripts on the hung mount before the reload, want 1", n)
	}
	if err := r.Apply(conf("400ms")); err != nil {
		t.Fatal(err)
	}
	// The new probe's first attempt comes within a second: it must fail
	// at once, naming the attempt still running, with no second script.
	testenv.PollUntil(t, "the new settings' first attempt", 10*time.Second, func() (bool, string) {
		if n := procCount(t, target); n != 1 {
			t.Fatalf("%d scripts on the hung mount after the reload, want 1 (the stuck one)", n)
		}
		st, _ := c.get("web.80")
		return strings.Contains(st.LastErr, "previous attempt is still running"), fmt.Sprintf("%+v", st)
	})
	if st, _ := c.get("web.80"); st.OK {
		t.Errorf("web.80 after the reload: %+v, want failing", st)
	}

	// Removed by one reload and back with the next (a probe commented out
	// and in again), the attempt still stuck: the same.
	if err := r.Apply(mustParse(t, "")); err != nil {
		t.Fatal(err)
	}
	if st, ok := c.get("web.80"); ok {
		t.Fatalf("web.80 with its probe removed: %+v, want cleared", st)
	}
	if err := r.Apply(conf("500ms")); err != nil {
		t.Fatal(err)
	}
	testenv.PollUntil(t, "the probe's first attempt once back", 10*time.Second, func() (bool, string) {
		if n := procCount(t, target); n != 1 {
			t.Fatalf("%d scripts on the hung mount after the probe came back, want 1 (the stuck one)", n)
		}
		st, ok := c.get("web.80")
		return ok && strings.Contains(st.LastErr, "previous attempt is still running"), fmt.Sprintf("%+v", st)
	})
}

// procCount is how many processes' command lines name arg alone.
func procCount(t *testing.T, arg string) int {
	t.Helper()
	return len(scriptProcs(t, arg))
}

// scriptProcs are the /proc directories of the processes whose command
// line names arg, but not the shell that exec'd them ("sh -c '... exec cat
// ARG'": only cat names it alone).
func scriptProcs(t *testing.T, arg string) []string {
	t.Helper()
	ds, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range ds {
		p := filepath.Join("/proc", d.Name())
		cmd, err := os.ReadFile(filepath.Join(p, "cmdline"))
		if err == nil && strings.Contains(string(cmd), arg) && !strings.Contains(string(cmd), "-c\x00") {
			out = append(out, p)
		}
	}
	return out
}
