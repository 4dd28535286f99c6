package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/rs/zerolog"
)

func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t))
}

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

func TestJournalFields(t *testing.T) {
	msg, vars := journalFields([]byte(`{"level":"warn","component":"watcher","flag":"squid.80","weight":50,"ok":true,"time":"2026-11-23T09:00:00Z","message":"squid.80 drain","9x":"y","_private":"z"}` + "\n"))
	if msg != "squid.80 drain" {
		t.Errorf("message %q", msg)
	}
	want := map[string]string{"COMPONENT": "watcher", "FLAG": "squid.80", "WEIGHT": "50", "OK": "true", "F9X": "y", "F_PRIVATE": "z"}
	if len(vars) != len(want) {
		t.Errorf("vars %v, want %v", vars, want)
	}
	for k, v := range want {
		if vars[k] != v {
			t.Errorf("%s = %q, want %q (all: %v)", k, vars[k], v, vars)
		}
	}
	if journalPriority(zerolog.WarnLevel) != journal.PriWarning || journalPriority(zerolog.ErrorLevel) != journal.PriErr {
		t.Error("level to priority mapping")
	}
}
