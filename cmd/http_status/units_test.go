//go:build linux

package main

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/rs/zerolog"
	"github.com/rs/zerolog/journald"
)

// TestSystemdUnitsVerify runs systemd-analyze verify on systemd/*.service
// and *.socket. verify wants ExecStart='s binary to exist, so the units are
// copied into a temp dir with /usr/sbin/http_status rewritten to the
// freshly built binary.
func TestSystemdUnitsVerify(t *testing.T) {
	t.Parallel()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian package systemd)")
	}
	bin := testBinary(t)
	src := filepath.Join("..", "..", "systemd")
	tmp := t.TempDir()
	var units []string
	for _, name := range []string{"http_status.service", "http_status.socket"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "/usr/sbin/http_status", bin)
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, p)
	}
	cmd := exec.Command(analyze, append([]string{"verify"}, units...)...)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=notice")
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: err=%v, output:\n%s", err, out)
	}
}

// TestJournalFields: what reaches journald for one log line. No journald
// runs where the tests do (it needs systemd as PID 1), so the writer's send
// function is replaced to capture the entry: a stand-in for the journal
// socket, not for the writer.
func TestJournalFields(t *testing.T) {
	var msg string
	var prio journal.Priority
	var vars map[string]string
	journald.SendFunc = func(m string, p journal.Priority, v map[string]string) error {
		msg, prio, vars = m, p, v
		return nil
	}
	t.Cleanup(func() { journald.SendFunc = nil })
	log := zerolog.New(newJournalWriter(io.Discard))
	log.Warn().Str("component", "watcher").Str("flag", "squid.80").Int("weight", 50).Int64("took_ns", 1234567).Bool("ok", true).Msg("squid.80 drain")
	if msg != "squid.80 drain" || prio != journal.PriWarning {
		t.Errorf("message %q priority %v", msg, prio)
	}
	// Integers of a million and more stay integers (the hand-written
	// writer this replaces sent 1.234567e+06).
	want := map[string]string{"COMPONENT": "watcher", "FLAG": "squid.80", "WEIGHT": "50", "TOOK_NS": "1234567", "OK": "true"}
	for k, v := range want {
		if vars[k] != v {
			t.Errorf("%s = %q, want %q (all: %v)", k, vars[k], v, vars)
		}
	}
	// journald refusing the entry: the line goes to the fallback.
	journald.SendFunc = func(string, journal.Priority, map[string]string) error { return errors.New("no journal") }
	var fb strings.Builder
	fbLog := zerolog.New(newJournalWriter(&fb))
	fbLog.Error().Msg("kept")
	if !strings.Contains(fb.String(), `"message":"kept"`) {
		t.Errorf("fallback got %q", fb.String())
	}
}
