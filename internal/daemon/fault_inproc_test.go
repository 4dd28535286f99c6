//go:build linux

package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/http-status/http_status/internal/check"
	"github.com/http-status/http_status/internal/faulttest"
	"github.com/http-status/http_status/internal/pages"
	"github.com/http-status/http_status/internal/testenv"
	"github.com/http-status/http_status/watcher"
)

const maxQueuedEvents = "/proc/sys/fs/inotify/max_queued_events"

// inotifyQueue is the kernel's inotify queue limit, copied into each
// inotify instance when it is created (16384 unless changed).
func inotifyQueue() int {
	b, err := os.ReadFile(maxQueuedEvents)
	if err != nil {
		return 16384
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return 16384
	}
	return n
}

// TestFaultInotifyOverflow: a burst of events beyond the inotify queue
// while the loop is stalled overflows the queue; the watcher counts it,
// rescans, and ends with every flag exactly.
func TestFaultInotifyOverflow(t *testing.T) {
	faulttest.NoLeaks(t)
	// The kernel's queue limit is left as it is (lowering it would change
	// the host for every other inotify user meanwhile): the burst goes
	// past it, and tens of thousands of files take a fraction of a second
	// on a tmpfs, where the flags live in production too.
	queue := inotifyQueue()
	if queue > 1<<16 {
		t.Skipf("%s is %d: a burst past it would take too long", maxQueuedEvents, queue)
	}
	dir := testenv.TmpfsDir(t)
	writeFlags(t, dir, map[string]string{"keep.80": "", "gone.80": "", "web.443": "drain"})
	// The watcher loop is held in its publish hook once wake.80 is
	// published, so that neither it nor fsnotify's buffer (4096 events)
	// drains the kernel queue, then the burst is written. The hold lasts
	// until the burst is written (released below), however slow the
	// machine; the 60 s bound only keeps a broken test from hanging.
	held, release := make(chan struct{}), make(chan struct{})
	var holdOnce sync.Once
	var started atomic.Pointer[running]
	onPublish := func(time.Duration) {
		s := started.Load()
		if s == nil {
			return
		}
		if _, ok := s.d.Store().Load().Lookup("wake.80"); ok {
			holdOnce.Do(func() {
				close(held)
				select {
				case <-release:
				case <-time.After(60 * time.Second):
				}
			})
		}
	}
	cfg := testConfig(dir)
	cfg.VIPs = false
	s := startDaemon(t, cfg, Options{OnPublish: onPublish})
	started.Store(s)
	writeFlags(t, dir, map[string]string{"wake.80": ""})
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("wake.80 never published")
	}
	burst := 4096 + queue + 2000
	want := map[string]string{"keep.80": "up", "wake.80": "up", "web.443": "up"}
	for i := 0; i < burst; i++ {
		name := fmt.Sprintf("b%05d.80", i)
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want[name] = "up"
	}
	if err := os.Remove(filepath.Join(dir, "gone.80")); err != nil {
		t.Fatal(err)
	}
	writeFlags(t, dir, map[string]string{"web.443": "up 50%"})
	close(release)
	// Wait on the store, which is cheap to read, for the rescan's result;
	// then check every service's state in the document /status.json
	// serves, built from the store without the HTTP round trip: at some
	// 15,000 services, building it under the race detector on one busy
	// core outlasted the server's write timeout (the GET saw EOF). The
	// HTTP path is checked once the burst's flags are gone (below).
	for deadline := time.Now().Add(30 * time.Second); ; {
		snap := s.d.Store().Load()
		if e, ok := snap.Lookup("web.443"); ok && snap.Len() == len(want) && e.Weight == 50 && s.d.Watcher().Stats().Overflows > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the burst: %d services, want %d; stats %+v", snap.Len(), len(want), s.d.Watcher().Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	for deadline := time.Now().Add(15 * time.Second); ; {
		v := pages.View(s.d.Store().Load(), time.Now())
		got := faulttest.StateOf(v)
		if v.DirOK && faulttest.SameStates(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state not exact after the burst: dir_ok=%v\n got %s\nwant %s", v.DirOK, faulttest.FmtStates(got), faulttest.FmtStates(want))
		}
		time.Sleep(5 * time.Millisecond)
	}
	st := s.d.Watcher().Stats()
	t.Logf("watcher stats after %d-event burst (queue %d): %+v", burst, queue, st)
	if st.Overflows == 0 {
		t.Errorf("no inotify overflow counted after a burst of %d events beyond a queue of %d", burst, queue)
	}
	// /metrics is scraped once the burst's flags are gone again: with
	// them it is some 15,000 series, which under the race detector on a
	// loaded machine can outlast the server's write timeout.
	for name := range want {
		if strings.HasPrefix(name, "b") {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for deadline := time.Now().Add(30 * time.Second); s.d.Store().Load().Len() != 3; {
		if time.Now().After(deadline) {
			t.Fatalf("burst flags removed: %d services left, want 3", s.d.Store().Load().Len())
		}
		time.Sleep(5 * time.Millisecond)
	}
	faulttest.ExpectExact(t, s.base, map[string]string{"keep.80": "up", "wake.80": "up", "web.443": "up"})
	if v := faulttest.MetricValue(t, s.base, "http_status_watcher_inotify_overflows_total"); v < 1 {
		t.Errorf("overflow metric = %v", v)
	}
	s.stopClean(t)
}

// fakeAddrs is a canned address source: every Subscribe returns list and
// hands the test the subscription, which it can drop (the library closes
// its channel when the netlink socket fails). While blocked is set,
// Subscribe fails, as a kernel refusing the subscription would.
type fakeAddrs struct {
	mu      sync.Mutex
	list    []watcher.AddrUpdate
	blocked bool
	subs    chan *fakeAddrSub
}

type fakeAddrSub struct {
	c    chan watcher.Update
	once sync.Once
}

func (s *fakeAddrSub) drop() { s.once.Do(func() { close(s.c) }) }

// fakeLinks: 1 is lo, 2 is eth0, both up.
var fakeLinks = []watcher.LinkUpdate{{Index: 1, Loopback: true, Up: true}, {Index: 2, Up: true}}

func (f *fakeAddrs) Subscribe(ctx context.Context) (watcher.HostAddrs, <-chan watcher.Update, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.blocked {
		return watcher.HostAddrs{}, nil, fmt.Errorf("fake netlink: %w", syscall.ENOBUFS)
	}
	sub := &fakeAddrSub{c: make(chan watcher.Update)}
	select {
	case f.subs <- sub:
	default:
	}
	context.AfterFunc(ctx, sub.drop)
	return watcher.HostAddrs{Links: fakeLinks, Addrs: append([]watcher.AddrUpdate(nil), f.list...)}, sub.c, nil
}

func (f *fakeAddrs) List(context.Context) (watcher.HostAddrs, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.blocked {
		return watcher.HostAddrs{}, fmt.Errorf("fake netlink: %w", syscall.ENOBUFS)
	}
	return watcher.HostAddrs{Links: fakeLinks, Addrs: append([]watcher.AddrUpdate(nil), f.list...)}, nil
}

func (f *fakeAddrs) set(blocked bool, list ...watcher.AddrUpdate) {
	f.mu.Lock()
	f.blocked, f.list = blocked, list
	f.mu.Unlock()
}

func addrUp(a string, lo bool) watcher.AddrUpdate {
	idx := 2
	if lo {
		idx = 1
	}
	return watcher.AddrUpdate{Addr: netip.MustParseAddr(a), PrefixLen: 32, LinkIndex: idx, New: true}
}

// TestFaultNetlinkDropped: the address subscription drops under load and
// cannot come back for a while. Checks keep their last known VIPs (no
// failed check), /healthz and /metrics say the VIP list is stale, and after
// the resubscription the VIPs are exact again (a VIP removed meanwhile is
// gone).
func TestFaultNetlinkDropped(t *testing.T) {
	faulttest.NoLeaks(t)
	dir := t.TempDir()
	writeFlags(t, dir, map[string]string{"squid.80": ""})
	src := &fakeAddrs{list: []watcher.AddrUpdate{addrUp("192.0.2.10", false), addrUp("192.0.2.11", true)}, subs: make(chan *fakeAddrSub, 16)}
	s := startDaemon(t, testConfig(dir), Options{AddrSource: src})
	sub := <-src.subs

	load := faulttest.StartLoad(s.base, "/status?SERVICE=squid&PORT=80&VIP=192.0.2.10", 4, func(c int) bool { return c == 200 })
	// The kernel drops the subscription and refuses to resubscribe; the
	// host loses 192.0.2.11 meanwhile.
	src.set(true, addrUp("192.0.2.10", false))
	sub.drop()
	faulttest.WaitHealthz(t, s.base, "degraded: VIP list not current")
	if v := faulttest.MetricValue(t, s.base, "http_status_vips_ok"); v != 0 {
		t.Errorf("vips_ok = %v during the outage", v)
	}
	// Let the resubscription succeed.
	src.set(false, addrUp("192.0.2.10", false))
	deadline := time.Now().Add(15 * time.Second)
	for {
		v := faulttest.StatusJSON(t, s.base)
		if v.VIPsOK && len(v.VIPs) == 1 && v.VIPs[0].Addr == "192.0.2.10" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("VIPs not exact after resubscribing: ok=%v %+v", v.VIPsOK, v.VIPs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	load.Finish(t)
	if st := s.d.Watcher().Stats(); st.Resubscribes < 1 {
		t.Errorf("Resubscribes = %d", st.Resubscribes)
	}
	if v := faulttest.MetricValue(t, s.base, "http_status_watcher_netlink_resubscribes_total"); v < 1 {
		t.Errorf("resubscribe metric = %v", v)
	}
	faulttest.WaitHealthz(t, s.base, "ok\n")
	faulttest.ExpectExact(t, s.base, map[string]string{"squid.80": "up"})
	s.stopClean(t)
}

// TestFaultFlagFileAbuse: flag files that are not plain small text (FIFO,
// symlink, directory, huge, binary, NUL bytes, bad UTF-8, unreadable, bad
// names) neither crash nor hang the watcher, and each ends in its defined
// state.
func TestFaultFlagFileAbuse(t *testing.T) {
	faulttest.NoLeaks(t)
	dir := t.TempDir()
	s := startDaemon(t, testConfig(dir), Options{})
	outside := filepath.Join(t.TempDir(), "target")
	writeFlags(t, filepath.Dir(outside), map[string]string{"target": "down"})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(syscall.Mkfifo(filepath.Join(dir, "fifo.80"), 0o644))
	must(os.Symlink(outside, filepath.Join(dir, "link.80")))
	must(os.Mkdir(filepath.Join(dir, "subdir.80"), 0o755))
	huge := strings.Repeat("drain # x\n", 200000) // 2 MB; only the head is read
	writeFlags(t, dir, map[string]string{
		"huge.80":       "maint # big\n" + huge,
		"binary.80":     "\x00\x01\x02\xff\xfe garbage",
		"nul.80":        "down\x00 # nul",
		"badutf8.80":    "down # \xff\xfe",
		"ctl.80":        "drain # a\x1b[31mred",
		"weight.80":     "up 9999%",
		"ok.80":         "drain 25% # fine",
		"bad name.80":   "down",
		".hidden.80":    "down",
		"editor.80.tmp": "down",
		"back.80~":      "down",
	})
	unreadable := filepath.Join(dir, "unreadable.80")
	writeFlags(t, dir, map[string]string{"unreadable.80": "down"})
	must(os.Chmod(unreadable, 0))
	want := map[string]string{
		"huge.80":   "maint",
		"binary.80": "up", // no state word: up, as the original tool
		// Fail closed: the out-of-rotation word is honoured whatever
		// follows it; the rest is ignored and flagged.
		"nul.80":     "down",
		"badutf8.80": "down",
		"ctl.80":     "drain",
		"weight.80":  "up",
		"ok.80":      "drain",
	}
	if faulttest.IsRoot() {
		want["unreadable.80"] = "down" // root reads a mode-000 file; for others it is absent
	}
	faulttest.ExpectExact(t, s.base, want)
	v := faulttest.StatusJSON(t, s.base)
	for _, sv := range v.Services {
		if (sv.Name == "binary.80" || sv.Name == "nul.80" || sv.Name == "badutf8.80" || sv.Name == "ctl.80" || sv.Name == "weight.80") && sv.Invalid == "" {
			t.Errorf("%s: invalid note missing: %+v", sv.Name, sv)
		}
	}
	// The pages survive the content too.
	for _, p := range []string{"/status.txt", "/board", "/metrics"} {
		if code, _ := faulttest.HTTPGet(t, s.base+p); code != 200 {
			t.Errorf("%s: %d", p, code)
		}
	}
	must(os.Chmod(unreadable, 0o644))
	s.stopClean(t)
}

// TestStaleAfter: while the watcher loop is stalled (held in its publish
// hook) for longer than --stale-after, /status answers every service 503
// with the reason, as the agent answers down; once the loop turns again
// the answers are the flags' again.
func TestStaleAfter(t *testing.T) {
	faulttest.NoLeaks(t)
	dir := t.TempDir()
	writeFlags(t, dir, map[string]string{"squid.80": ""})
	var holding atomic.Bool
	release := make(chan struct{})
	cfg := testConfig(dir)
	cfg.VIPs = false
	cfg.StaleAfter = 2 * time.Second
	s := startDaemon(t, cfg, Options{OnPublish: func(time.Duration) {
		if holding.Load() {
			select {
			case <-release:
			case <-time.After(60 * time.Second):
			}
		}
	}})
	get := func() (int, string, string) {
		resp, err := http.Get(s.base + "/status?SERVICE=squid&PORT=80")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header.Get("X-Status-Reason")
	}
	if code, body, _ := get(); code != 200 {
		t.Fatalf("before the stall: %d %q", code, body)
	}
	holding.Store(true)
	writeFlags(t, dir, map[string]string{"other.80": ""}) // the loop publishes it, then is held
	for deadline := time.Now().Add(20 * time.Second); ; {
		code, body, reason := get()
		if code == 503 {
			if !strings.HasPrefix(body, check.BodyStale) || reason != check.ReasonStale {
				t.Errorf("stale answer: %q, reason %q", body, reason)
			}
			// The pages say so too: /status.json's states alone
			// would say up.
			if v := statusJSON(t, s.base); !v.Stale || !strings.Contains(v.StaleReason, "watcher loop stalled") {
				t.Errorf("/status.json while stale: stale %v, reason %q", v.Stale, v.StaleReason)
			}
			for _, page := range []string{"/status.txt", "/board"} {
				if b := getBody(t, s.base+page); !strings.Contains(b, "watcher loop stalled") {
					t.Errorf("%s while stale does not say so", page)
				}
			}
			// Each service's line says what /status answers: down,
			// 503, not the flag's up.
			for _, sj := range statusJSON(t, s.base).Services {
				if sj.Name == "squid.80" && (sj.Effective != "down" || sj.Code != 503 || sj.State != "up") {
					t.Errorf("/status.json squid.80 while stale: state %s, effective %s, code %d; want up, down, 503", sj.State, sj.Effective, sj.Code)
				}
			}
			for page, want := range map[string]string{
				"/status.txt": " squid.80 down code 503 ",
				"/board":      `data-service="squid.80" data-state="down"`,
				"/metrics":    `http_status_service_state{service="squid.80",state="down"} 1`,
			} {
				if b := getBody(t, s.base+page); !strings.Contains(b, want) {
					t.Errorf("%s while stale lacks %q", page, want)
				}
			}
			if b := getBody(t, s.base+"/metrics"); !strings.Contains(b, "\nhttp_status_stale 1\n") {
				t.Errorf("/metrics while stale lacks http_status_stale 1")
			}
			break
		}
		if code != 200 || time.Now().After(deadline) {
			t.Fatalf("loop held: %d %q, want 200 then 503 after --stale-after", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(release)
	for deadline := time.Now().Add(20 * time.Second); ; {
		if code, _, _ := get(); code == 200 {
			if v := statusJSON(t, s.base); v.Stale {
				t.Errorf("/status.json still stale once /status answers 200: %q", v.StaleReason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still not 200 after the loop was released")
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.stopClean(t)
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func statusJSON(t *testing.T, base string) pages.StatusJSON {
	t.Helper()
	var v pages.StatusJSON
	if err := json.Unmarshal([]byte(getBody(t, base+"/status.json")), &v); err != nil {
		t.Fatal(err)
	}
	return v
}
