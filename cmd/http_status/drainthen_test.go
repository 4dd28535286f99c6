//go:build linux

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/internal/conns"
	"github.com/http-status/http_status/internal/faulttest"
	"github.com/http-status/http_status/internal/flagfile"
	"github.com/http-status/http_status/internal/testenv"
)

// TestDrainThenRacesOperator: an operator's "activate" lands between drain
// --wait's last look at the flag and its --then write. The operator's word
// must stand and the command exit 1 saying --then was not applied: the
// --then write used to go over it (maint, or the flag removed, where the
// operator asked for up).
func TestDrainThenRacesOperator(t *testing.T) {
	drainThenRaces(t, t.TempDir)
}

// TestDrainThenNoExchange: drain --wait --then on a filesystem without
// RENAME_EXCHANGE or RENAME_NOREPLACE (a real FUSE mount, as NFS): --then
// is applied once drained, and the operator's word still wins the race.
func TestDrainThenNoExchange(t *testing.T) {
	testenv.RunInMountNamespace(t, "TestDrainThenNoExchangeChild")
}

func TestDrainThenNoExchangeChild(t *testing.T) {
	testenv.IsChild(t, "TestDrainThenNoExchangeChild")
	newDir := func() string {
		dir := t.TempDir()
		faulttest.NoExchangeMount(t, dir)
		return dir
	}
	drainThenRaces(t, newDir)
	for _, then := range []string{"maint", "inactivate"} {
		dir := newDir()
		port := strconv.Itoa(testenv.FreePort(t))
		code, out, errs := ctlRunAt(time.Now(), "drain", "web", "-p", port, "--dir", dir, "--reason", "deploy",
			"--wait", "10s", "--min-wait", "0s", "--then", then)
		got, err := os.ReadFile(filepath.Join(dir, "web."+port))
		want := "maint # deploy\n"
		if then == "inactivate" {
			want, got = "(none)", []byte("(none)")
			if err == nil {
				got = []byte("still there")
			}
		}
		if code != 0 || string(got) != want {
			t.Errorf("drain --wait --then %s: exit %d, flag %q (%v), stdout %q, stderr %q; want %q", then, code, got, err, out, errs, want)
		}
	}
}

func drainThenRaces(t *testing.T, newDir func() string) {
	for _, then := range []string{"maint", "inactivate"} {
		t.Run(then, func(t *testing.T) {
			dir := newDir()
			written := []byte("drain # deploy\n")
			if err := flagfile.Write(dir, "web.80", written); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			d := &drainWait{
				dir: dir, name: "web.80", written: written, port: 80,
				wait: time.Minute, then: then,
				thenEntry: cache.Entry{State: thenStates[then], Weight: cache.NoWeight, Reason: "deploy"},
				count: func([]uint16, time.Duration) (map[uint16]conns.PortConns, error) {
					return map[uint16]conns.PortConns{80: {}}, nil
				},
				poll: time.Millisecond, out: &out, errw: &errb,
				beforeThen: func() {
					if code, _, errs := ctlRunAt(time.Now(), "activate", "web.80", "--dir", dir); code != 0 {
						t.Error(errs)
					}
				},
			}
			code := d.run()
			got, err := os.ReadFile(filepath.Join(dir, "web.80"))
			if code != 1 || err != nil || string(got) != "up\n" || !strings.Contains(errb.String(), "--then "+then+" not applied") {
				t.Errorf("exit %d, flag %q (%v), stderr %q; want 1, the operator's up kept", code, got, err, errb.String())
			}
			des, _ := os.ReadDir(dir)
			if len(des) != 1 {
				t.Errorf("files left: %v", des)
			}
		})
	}
}
