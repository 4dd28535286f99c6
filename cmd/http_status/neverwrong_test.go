//go:build linux

package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/faulttest"
	"github.com/http-status/http_status/internal/flagfile"
	"github.com/http-status/http_status/internal/testenv"
)

// Tests of issue "never wrong": the answer follows the operator's truth
// within a second (the periodic resync is set to minutes, so it cannot be
// what fixes it), run against the real binary.

// settleWithin is how soon an answer must follow the truth.
const settleWithin = time.Second

// answers polls GET url until it answers want and fails when that took more
// than settleWithin (or never happened within 10 s).
func answers(t *testing.T, url string, want int, what string) {
	t.Helper()
	answersWithin(t, url, want, what, settleWithin)
}

// answersWithin is answers with a limit of its own, for an answer that
// may only come after a wait of the daemon's (a hold) plus settleWithin.
func answersWithin(t *testing.T, url string, want int, what string, limit time.Duration) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	last := 0
	for time.Since(start) < 10*time.Second {
		res, err := c.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			last = res.StatusCode
			if last == want {
				if d := time.Since(start); d > limit {
					t.Errorf("%s: %s answered %d only after %s (limit %s)", what, url, want, d.Round(time.Millisecond), limit)
				}
				return
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("%s: %s still answers %d, want %d", what, url, last, want)
}

// waitServing waits until the daemon answers /healthz.
func waitServing(t *testing.T, d *daemonProc, port int) string {
	t.Helper()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			t.Fatalf("daemon exited: %v\n%s", d.err, d.stderr.String())
		default:
		}
		if res, err := http.Get(base + "/healthz"); err == nil {
			res.Body.Close()
			return base
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("daemon not serving on %d:\n%s", port, d.stderr.String())
	return ""
}

// TestNeverWrongUnprivileged runs the daemon as nobody (setpriv), as the
// shipped unit runs it unprivileged, and changes modes as root: a flag
// created under umask 077 is unreadable to it and counts as absent until a
// chmod makes it readable; chmod 000 on an up flag takes it out; a status
// directory it cannot list puts everything out and says why.
func TestNeverWrongUnprivileged(t *testing.T) {
	t.Parallel()
	if !faulttest.IsRoot() {
		t.Skip("needs root to run the daemon as another user (CI runs as root)")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	bin := testBinary(t)
	// nobody must reach the binary and the status directory.
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "http_status-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
		bin, "--dir", dir, "-p", fmt.Sprint(port), "--resync", "10m", "--vips=false", "--log-format", "json")
	cmd.Env = cleanEnv()
	d := startProc(t, cmd)
	base := waitServing(t, d, port)
	url := base + "/status?SERVICE=squid&PORT=80"

	// umask 077: root's flag is 0600, unreadable to nobody.
	old := syscall.Umask(0o077)
	err = os.WriteFile(filepath.Join(dir, "squid.80"), nil, 0o666)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	write := filepath.Join(dir, "marker")
	if err := os.WriteFile(write, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	answers(t, base+"/status?SERVICE=marker", 200, "marker seen")
	answers(t, url, 404, "unreadable flag counts as absent")
	if err := os.Chmod(filepath.Join(dir, "squid.80"), 0o644); err != nil {
		t.Fatal(err)
	}
	answers(t, url, 200, "chmod 644 makes it count")
	if err := os.Chmod(filepath.Join(dir, "squid.80"), 0); err != nil {
		t.Fatal(err)
	}
	answers(t, url, 404, "chmod 000 takes an up flag out")
	if err := os.Chmod(filepath.Join(dir, "squid.80"), 0o644); err != nil {
		t.Fatal(err)
	}
	answers(t, url, 200, "readable again")

	// The directory itself unreadable: everything out, and /healthz says why.
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	answers(t, url, 404, "directory unreadable")
	code, body := faulttest.HTTPGet(t, base+"/healthz")
	if code != 200 || !strings.Contains(body, "degraded: status directory cannot be listed: permission denied") {
		t.Errorf("/healthz with the directory unreadable: %d %q", code, body)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	answers(t, url, 200, "directory readable again")
	if !strings.Contains(d.stderr.String(), "cannot be read") {
		t.Errorf("the unreadable flag was not logged:\n%s", d.stderr.String())
	}
}

// TestNeverWrongGatedProbesAtStart: a probe whose only_if_vip is absent is
// idle from the first snapshot on, so a standby node answers from its flag
// at once after a restart (no "pending" 503); a probe whose VIP is present
// (127.0.0.1 on lo) holds its service down until it has passed.
func TestNeverWrongGatedProbesAtStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, f := range []string{"standby.80", "active.80"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	closed := testenv.FreePort(t) // nothing listens: the active probe fails
	conf := filepath.Join(t.TempDir(), "probes.toml")
	probes := fmt.Sprintf(`
[[probe]]
service = "standby.80"
kind = "tcp"
address = "127.0.0.1:%d"
interval = "1h"
only_if_vip = "192.0.2.250"

[[probe]]
service = "active.80"
kind = "tcp"
address = "127.0.0.1:%d"
interval = "1h"
only_if_vip = "127.0.0.1"
`, closed, closed)
	if err := os.WriteFile(conf, []byte(probes), 0o644); err != nil {
		t.Fatal(err)
	}
	sock, msgs := notifySocket(t)
	port := testenv.FreePort(t)
	startDaemon(t, []string{"NOTIFY_SOCKET=" + sock}, "--dir", dir, "-p", fmt.Sprint(port), "--config", conf, "--resync", "10m")
	faulttest.ExpectNotify(t, msgs, 15*time.Second, "READY=1", func(m string) bool { return faulttest.HasLine(m, "READY=1") })
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	// The very first answers after READY=1.
	if code, body := faulttest.HTTPGet(t, base+"/status?SERVICE=standby&PORT=80"); code != 200 {
		t.Errorf("standby (gate closed) right after start: %d %q; want 200", code, body)
	}
	if code, body := faulttest.HTTPGet(t, base+"/status?SERVICE=active&PORT=80"); code != 503 {
		t.Errorf("active (gate open, probe not passed) right after start: %d %q; want 503", code, body)
	}
}

// TestNeverWrongOutOfWatches: with no inotify watch to be had (the limit is
// lowered in a user namespace of the test's own, the host's is untouched),
// the daemon still starts, answers every service out of rotation, and says
// the real cause in /healthz and systemd's STATUS line.
func TestNeverWrongOutOfWatches(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare (util-linux) not installed")
	}
	if err := exec.Command("unshare", "--user", "--map-root-user", "sh", "-c", "echo 0 > /proc/sys/user/max_inotify_watches").Run(); err != nil {
		t.Skipf("cannot lower the inotify limit in a user namespace here: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "squid.80"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sock, msgs := notifySocket(t)
	port := testenv.FreePort(t)
	cmd := exec.Command("unshare", "--user", "--map-root-user", "sh", "-c",
		`echo 0 > /proc/sys/user/max_inotify_watches && exec "$@"`, "sh",
		testBinary(t), "--dir", dir, "-p", fmt.Sprint(port), "--resync", "10m", "--log-format", "json")
	cmd.Env = append(cleanEnv(), "NOTIFY_SOCKET="+sock)
	d := startProc(t, cmd)
	m := faulttest.ExpectNotify(t, msgs, 15*time.Second, "READY=1", func(m string) bool { return faulttest.HasLine(m, "READY=1") })
	if !strings.Contains(m, "out of inotify watches") {
		t.Errorf("STATUS line does not say why: %q", m)
	}
	base := waitServing(t, d, port)
	if code, _ := faulttest.HTTPGet(t, base+"/status?SERVICE=squid&PORT=80"); code != 404 {
		t.Errorf("a flag the daemon cannot watch answered %d; want 404 (fail closed)", code)
	}
	code, body := faulttest.HTTPGet(t, base+"/healthz")
	if code != 200 || !strings.Contains(body, "degraded: status directory cannot be watched: out of inotify watches") || strings.Contains(body, "missing") {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if !strings.Contains(d.stderr.String(), "out of inotify watches") {
		t.Errorf("the log does not say why:\n%s", d.stderr.String())
	}
}

// TestNeverWrongChurn flips a few hundred flags every way an operator or a
// deploy tool does (create, rm, rename into place, rewrite in place, a new
// state word) while pollers query over HTTP and the agent port. Once the
// churn stops, every answer must equal what the files say, within a second.
func TestNeverWrongChurn(t *testing.T) {
	t.Parallel()
	const nflags, writers, pollers = 300, 4, 4
	churnFor := 1500 * time.Millisecond
	if testing.Short() {
		churnFor = 500 * time.Millisecond
	}
	dir := t.TempDir()
	port, agentPort := testenv.FreePort(t), testenv.FreePort(t)
	d := startDaemon(t, nil, "--dir", dir, "-p", fmt.Sprint(port), "--agent-port", fmt.Sprint(agentPort), "--resync", "10m", "--vips=false")
	base := waitServing(t, d, port)
	name := func(i int) string { return fmt.Sprintf("svc%03d.80", i) }
	contents := []string{"", "up", "drain", "maint # churn", "down", "up 50%", "drain 300%"}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := filepath.Join(dir, name(rng.IntN(nflags)))
				content := contents[rng.IntN(len(contents))]
				switch rng.IntN(4) {
				case 0: // rm
					_ = os.Remove(p)
				case 1: // rewrite in place (truncate, write)
					_ = os.WriteFile(p, []byte(content), 0o644)
				case 2: // write a temp file and rename it into place
					tmp := filepath.Join(dir, fmt.Sprintf(".churn-%d-%d.tmp", w, i))
					if os.WriteFile(tmp, []byte(content), 0o644) == nil {
						_ = os.Rename(tmp, p)
					}
				case 3: // touch
					if f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
						f.Close()
					}
				}
			}
		})
	}
	var queries, agentQueries atomic.Int64
	for range pollers {
		wg.Go(func() {
			c := &http.Client{Timeout: 5 * time.Second}
			rng := rand.New(rand.NewPCG(7, 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := rng.IntN(nflags)
				if res, err := c.Get(fmt.Sprintf("%s/status?SERVICE=svc%03d&PORT=80", base, i)); err == nil {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					queries.Add(1)
				}
				if cn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", agentPort), 5*time.Second); err == nil {
					_ = cn.SetDeadline(time.Now().Add(5 * time.Second))
					_, _ = io.WriteString(cn, name(i)+"\n")
					_, _ = io.ReadAll(cn)
					cn.Close()
					agentQueries.Add(1)
				}
			}
		})
	}
	time.Sleep(churnFor) // the churn's length, not a synchronisation
	close(stop)
	wg.Wait()
	t.Logf("%d HTTP and %d agent queries during the churn", queries.Load(), agentQueries.Load())

	// The truth, read the daemon's way, against every answer.
	c := &http.Client{Timeout: 5 * time.Second}
	// A pass over every flag can itself outlast settleWithin on a loaded
	// machine (hundreds of requests under the race detector): the answers
	// must be right in a pass that starts once settleWithin has passed,
	// not in one that started before.
	deadline := time.Now().Add(settleWithin)
	for {
		late := time.Now().After(deadline)
		var wrong []string
		for i := range nflags {
			e, present, _ := flagfile.Read(filepath.Join(dir, name(i)))
			want := cache.Missing.HTTPCode()
			if present {
				want = e.Effective(time.Now()).State.HTTPCode()
			}
			res, err := c.Get(fmt.Sprintf("%s/status?SERVICE=svc%03d&PORT=80", base, i))
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != want {
				wrong = append(wrong, fmt.Sprintf("%s: %d, file says %d", name(i), res.StatusCode, want))
			}
			if i%10 == 0 {
				reply := agentAsk(t, agentPort, name(i)+"\n")
				wantReply := cache.Entry{State: cache.Missing, Weight: cache.NoWeight}.AgentReply()
				if present {
					wantReply = e.Effective(time.Now()).AgentReply()
				}
				if strings.TrimSpace(reply) != wantReply {
					wrong = append(wrong, fmt.Sprintf("%s agent: %q, file says %q", name(i), reply, wantReply))
				}
			}
		}
		if len(wrong) == 0 {
			return
		}
		if late {
			t.Fatalf("%d answers differ from the files %s after the churn stopped:\n%s", len(wrong), settleWithin, strings.Join(wrong, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
