//go:build linux

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/testenv"
)

var ctlNow = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func ctlRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return ctlRunAt(ctlNow, args...)
}

// ctlRunAt runs the control command in process as if the time were now
// (time.Now() for commands that wait on the clock, such as drain --wait),
// and returns its exit code, stdout and stderr.
func ctlRunAt(now time.Time, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := runCtl(args, &out, &errb, now)
	return code, out.String(), errb.String()
}

func ctlReadFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCtlWrites(t *testing.T) {
	tests := []struct {
		args []string
		file string
		want string
	}{
		{[]string{"activate", "squid"}, "squid", "up\n"},
		{[]string{"activate", "squid", "--port", "80"}, "squid.80", "up\n"},
		{[]string{"activate", "-p", "80", "squid"}, "squid.80", "up\n"},
		{[]string{"activate", "squid.80", "--weight", "20%"}, "squid.80", "up 20%\n"},
		{[]string{"drain", "squid", "--port=80", "--reason", "deploy 1234", "--ttl", "15m"},
			"squid.80", "drain until=2026-11-23T10:15:00Z # deploy 1234\n"},
		{[]string{"drain", "squid", "--ttl", "1500ms"}, "squid", "drain until=2026-11-23T10:00:02Z\n"},
		{[]string{"maint", "db.5432", "--reason", "kernel"}, "db.5432", "maint # kernel\n"},
		{[]string{"down", "old.80"}, "old.80", "down\n"},
		{[]string{"weight", "web.443", "50%"}, "web.443", "up 50%\n"},
		{[]string{"weight", "50%", "web", "-p", "443", "--ttl", "1h"}, "web.443", "up 50% until=2026-11-23T11:00:00Z\n"},
		{[]string{"weight", "web.443", "0%"}, "web.443", "up 0%\n"},
		// Spaces around a reason (a quoted shell variable) are dropped, as
		// the daemon drops them; they used to refuse the whole command
		// with "want at most 200 bytes of printable text on one line".
		{[]string{"drain", "web", "--reason", "  deploy 7 "}, "web", "drain # deploy 7\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			dir := t.TempDir()
			args := append(append([]string(nil), tt.args...), "--dir", dir)
			code, out, errs := ctlRun(t, args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errs)
			}
			if got := ctlReadFile(t, filepath.Join(dir, tt.file)); got != tt.want {
				t.Errorf("%s holds %q, want %q", tt.file, got, tt.want)
			}
			if !strings.HasPrefix(out, tt.file+": ") {
				t.Errorf("stdout %q does not name %s", out, tt.file)
			}
			// The daemon reads back what was written, without complaint.
			if _, err := cache.ParseFlag([]byte(tt.want)); err != nil {
				t.Errorf("written content does not parse: %v", err)
			}
			des, _ := os.ReadDir(dir)
			if len(des) != 1 {
				t.Errorf("directory holds %d entries, want only the flag (no temp file left)", len(des))
			}
			fi, err := os.Stat(filepath.Join(dir, tt.file))
			if err != nil || fi.Mode().Perm() != 0o644 {
				t.Errorf("flag mode %v, %v; want 0644", fi.Mode(), err)
			}
		})
	}
}

func TestCtlInactivate(t *testing.T) {
	for _, cmd := range []string{"inactivate", "deactivate"} {
		t.Run(cmd, func(t *testing.T) {
			dir := t.TempDir()
			if code, _, errs := ctlRun(t, "activate", "squid", "-p", "80", "--dir", dir); code != 0 {
				t.Fatal(errs)
			}
			code, out, errs := ctlRun(t, cmd, "squid", "-p", "80", "--dir", dir)
			if code != 0 || !strings.Contains(out, "removed") {
				t.Fatalf("exit %d, out %q, err %q", code, out, errs)
			}
			if _, err := os.Lstat(filepath.Join(dir, "squid.80")); !os.IsNotExist(err) {
				t.Errorf("flag still there: %v", err)
			}
			// Again: nothing to remove is fine (init scripts run it blindly).
			code, out, _ = ctlRun(t, cmd, "squid", "-p", "80", "--dir", dir)
			if code != 0 || !strings.Contains(out, "already out of rotation") {
				t.Errorf("second %s: exit %d, out %q", cmd, code, out)
			}
		})
	}
}

func TestCtlErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"drain"},
		{"drain", "../etc/passwd"},
		{"drain", ".hidden"},
		{"drain", "x.tmp"},
		{"drain", "a b"},
		{"drain", "x", "--port", "70000"},
		{"drain", "x", "--port", "-1"},
		{"drain", "x", "--port", "0"},
		{"activate", "x", "-p", "0"},
		{"drain", "x", "--ttl", "-5m"},
		{"drain", "x", "--ttl", "soon"},
		{"drain", "x", "--reason", "two\nlines"},
		{"drain", "x", "--reason", strings.Repeat("r", cache.MaxReasonLen+1)},
		{"weight", "x"},
		{"weight", "x", "300%"},
		{"weight", "x", "-1%"},
		{"activate", "x", "--weight", "lots"},
		{"inactivate", "x", "--reason", "why"},
		{"list", "x"},
		{"drain", "x", "--bogus"},
		// Ports are decimal: the flag package alone read 010 as 8 and
		// 0x50 as 80, so "-p 010" wrote x.8.
		{"activate", "x", "-p", "010"},
		{"inactivate", "x", "--port", "010"},
		{"drain", "x", "--port", "0x50"},
		{"drain", "x", "--conn-port", "010"},
		// Given values that used to be taken as "not given": --ttl 0s
		// wrote a drain with no end, --conn-port 0 kept the old conn=.
		{"drain", "x", "--ttl", "0s"},
		{"inactivate", "x", "--ttl", "0s"},
		{"drain", "x", "--conn-port", "0"},
		{"inactivate", "x", "--conn-port", "0"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, _, errs := ctlRun(t, append(args, "--dir", dir)...)
			if code != 2 || errs == "" {
				t.Errorf("exit %d, stderr %q; want 2 and a message", code, errs)
			}
		})
	}
	// A duration without a unit says what one looks like (the flag
	// package said only "parse error").
	for _, fl := range []string{"--ttl", "--wait", "--min-wait"} {
		if code, _, errs := ctlRun(t, "drain", "x", fl, "5", "--dir", dir); code != 2 || !strings.Contains(errs, "such as 90s") {
			t.Errorf("%s 5: exit %d, stderr %q; want 2 and an example", fl, code, errs)
		}
	}
	// A refused command writes nothing (--port 0 used to write "x").
	if des, err := os.ReadDir(dir); err != nil || len(des) != 0 {
		t.Errorf("refused commands left files behind: %v %v", des, err)
	}
	if des, _ := os.ReadDir(dir); len(des) != 0 {
		t.Errorf("failed commands left %d files", len(des))
	}
}

func TestCtlCreatesDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "http_status")
	if code, _, errs := ctlRun(t, "activate", "status.html", "--dir", dir); code != 0 {
		t.Fatal(errs)
	}
	if got := ctlReadFile(t, filepath.Join(dir, "status.html")); got != "up\n" {
		t.Errorf("got %q", got)
	}
	// Only one level is created: a typo in a deeper path fails.
	deep := filepath.Join(t.TempDir(), "no", "such")
	if code, _, _ := ctlRun(t, "activate", "x", "--dir", deep); code != 1 {
		t.Errorf("exit %d for a missing parent, want 1", code)
	}
}

// TestCtlAtomic: a reader racing many rewrites only ever sees one whole
// version of the file or the other.
func TestCtlAtomic(t *testing.T) {
	t.Parallel()
	dir := testenv.TmpfsDir(t) // 200 fsynced rewrites: on a tmpfs, like /run/http_status
	p := filepath.Join(dir, "x.80")
	long := strings.Repeat("r", cache.MaxReasonLen)
	a := "drain # " + long + "\n"
	b := "up 50%\n"
	if code, _, errs := ctlRun(t, "weight", "x.80", "50%", "--dir", dir); code != 0 {
		t.Fatal(errs)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad []string
	var mu sync.Mutex
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, err := os.ReadFile(p)
			if err != nil || (string(got) != a && string(got) != b) {
				mu.Lock()
				bad = append(bad, string(got)+" / "+ctlErrString(err))
				mu.Unlock()
			}
		}
	})
	for i := 0; i < 200; i++ {
		var code int
		if i%2 == 0 {
			code, _, _ = ctlRun(t, "drain", "x.80", "--reason", long, "--dir", dir)
		} else {
			code, _, _ = ctlRun(t, "weight", "x.80", "50%", "--dir", dir)
		}
		if code != 0 {
			t.Fatalf("write %d failed", i)
		}
	}
	close(stop)
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("reader saw %d partial or missing versions, first %q", len(bad), bad[0])
	}
}

func ctlErrString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func TestCtlList(t *testing.T) {
	// Any user may read it: list is certain of every state (see
	// TestCtlListAsTheDaemonReads for the others).
	dir := openTempDir(t)
	for _, args := range [][]string{
		{"drain", "squid", "-p", "80", "--reason", "deploy 1234", "--ttl", "15m"},
		{"weight", "web.443", "50%"},
		{"activate", "status.html"},
	} {
		if code, _, errs := ctlRun(t, append(args, "--dir", dir)...); code != 0 {
			t.Fatal(errs)
		}
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("old.html", "<html><body>up</body></html>")
	write("expired.80", "maint until=2026-11-23T09:00:00Z # kernel\n")
	write(".editor.swp", "junk")
	if err := os.Symlink("web.443", filepath.Join(dir, "link.80")); err != nil {
		t.Fatal(err)
	}
	code, out, errs := ctlRun(t, "list", "--dir", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"NAME", "STATE", "WEIGHT", "EXPIRES", "REASON",
		"squid.80", "drain", "2026-11-23T10:15:00Z (in 15m0s)", "deploy 1234",
		"web.443", "50%",
		"status.html",
		"expired.80", "expired 2026-11-23T09:00:00Z (was maint)",
		"warning: old.html: content not understood, counted as up",
		"warning: link.80: a symlink: ignored",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("list output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "editor") {
		t.Errorf("list shows a dot-file:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "expired.80" && f[1] != "up" {
			t.Errorf("expired override listed as %q, want up", f[1])
		}
		if len(f) >= 2 && f[0] == "old.html" && f[1] != "up" {
			t.Errorf("old.html listed as %q, want up", f[1])
		}
	}

	empty := t.TempDir()
	if code, out, _ := ctlRun(t, "list", "--dir", empty); code != 0 || !strings.Contains(out, "no flag files") {
		t.Errorf("empty dir: exit %d, %q", code, out)
	}
	if code, _, _ := ctlRun(t, "list", "--dir", filepath.Join(empty, "missing")); code != 1 {
		t.Errorf("missing dir: exit %d, want 1", code)
	}
}

func TestRealMainDispatch(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := realMain([]string{"maint", "x", "--dir", dir}, &out, &errb); code != 0 {
		t.Fatalf("realMain maint: exit %d, %s", code, errb.String())
	}
	if got := ctlReadFile(t, filepath.Join(dir, "x")); got != "maint\n" {
		t.Errorf("got %q", got)
	}
	out.Reset()
	if code := realMain([]string{"help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "inactivate") {
		t.Errorf("help: exit %d, %q", code, out.String())
	}
}

// TestCtlHardLinkNote: the control command replaces a flag with a new file;
// when the old one had other hard links, those names no longer change the
// flag, and the command says so (the state is still set: exit 0).
func TestCtlHardLinkNote(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(other, []byte("up\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(other, filepath.Join(dir, "squid.80")); err != nil {
		t.Skipf("hard link: %v", err)
	}
	code, out, errs := ctlRun(t, "drain", "squid.80", "--dir", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errs)
	}
	if !strings.Contains(errs, "squid.80: note: it had 2 hard links") {
		t.Errorf("stderr %q: want the hard-link note", errs)
	}
	if got := ctlReadFile(t, filepath.Join(dir, "squid.80")); got != "drain\n" {
		t.Errorf("flag %q, want drain", got)
	}
	if got := ctlReadFile(t, other); got != "up\n" {
		t.Errorf("the other name changed too: %q", got)
	}
	// A flag with one link: no note.
	if code, _, errs := ctlRun(t, "activate", "squid.80", "--dir", dir); code != 0 || errs != "" {
		t.Errorf("activate: exit %d, stderr %q", code, errs)
	}
}
