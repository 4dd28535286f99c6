//go:build linux

package main

import (
	"bytes"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/http-status/http_status/internal/testbin"
)

func TestResolveVersion(t *testing.T) {
	vcs := func(rev, modified string) *debug.BuildInfo {
		return &debug.BuildInfo{
			Main:     debug.Module{Path: "github.com/http-status/http_status", Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}},
		}
	}
	for _, tc := range []struct {
		name                  string
		stampV, stampC        string
		bi                    *debug.BuildInfo
		wantVersion, wantComm string
	}{
		{"stamped", "1.2.0", "3f2a9c1", vcs("ffff", "true"), "1.2.0", "3f2a9c1"},
		{"vcs clean", "", "", vcs("abcdef0123", "false"), "devel", "abcdef0123"},
		{"vcs modified", "", "", vcs("abcdef0123", "true"), "devel", "abcdef0123-dirty"},
		{"go install", "", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.3.1"}}, "1.3.1", "unknown"},
		{"nothing", "", "", nil, "devel", "unknown"},
		{"version stamped only", "2.0.0", "", vcs("abc", "false"), "2.0.0", "abc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := resolveVersion(tc.stampV, tc.stampC, tc.bi)
			if v.Version != tc.wantVersion || v.Commit != tc.wantComm || v.GoVersion != runtime.Version() {
				t.Errorf("got %+v, want version %q commit %q", v, tc.wantVersion, tc.wantComm)
			}
		})
	}
}

func TestVersionFlag(t *testing.T) {
	var out, errb bytes.Buffer
	if code := realMain([]string{"--version"}, &out, &errb); code != 0 {
		t.Fatalf("--version: exit %d, stderr %q", code, errb.String())
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "http_status ") || !strings.HasPrefix(lines[1], "commit ") ||
		lines[2] != "go "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("--version printed %q", out.String())
	}
}

// TestVersionStamped runs the shared test binary, built with the -X flags
// packaging/build.sh uses (internal/testbin), and checks it prints them.
// The packaging tests check the packaged binary's own stamp.
func TestVersionStamped(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(testBinary(t), "--version").Output()
	if err != nil {
		t.Fatalf("--version: %v", err)
	}
	want := "http_status " + testbin.Version + "\ncommit " + testbin.Commit + "\ngo " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if string(out) != want {
		t.Errorf("--version printed %q, want %q", out, want)
	}
}
