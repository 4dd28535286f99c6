//go:build linux

package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Stamped at build time by packaging/build.sh (and `make build`):
//
//	go build -ldflags "-X main.version=1.2.0 -X main.commit=3f2a9c1" ./cmd/http_status
//
// A plain `go build` leaves them empty; [buildVersion] then falls back to
// what the Go toolchain recorded (the module version for `go install
// ...@v1.2.0`, the VCS revision for a build in a git checkout without
// -buildvcs=false).
var (
	version string
	commit  string
)

// versionInfo is what --version prints.
type versionInfo struct {
	Version   string // "1.2.0", or "devel" when nothing says better
	Commit    string // VCS revision, "-dirty" appended for a modified tree; "unknown" if none
	GoVersion string // runtime.Version()
	Platform  string // GOOS/GOARCH
}

// buildVersion combines the -X stamps with the binary's build info.
func buildVersion() versionInfo {
	bi, _ := debug.ReadBuildInfo()
	return resolveVersion(version, commit, bi)
}

// resolveVersion prefers the stamps, then bi (which may be nil).
func resolveVersion(stampVersion, stampCommit string, bi *debug.BuildInfo) versionInfo {
	v := versionInfo{
		Version:   stampVersion,
		Commit:    stampCommit,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	if bi != nil {
		if v.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = strings.TrimPrefix(bi.Main.Version, "v")
		}
		if v.Commit == "" {
			var rev string
			modified := false
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					modified = s.Value == "true"
				}
			}
			if rev != "" {
				v.Commit = rev
				if modified {
					v.Commit += "-dirty"
				}
			}
		}
	}
	if v.Version == "" {
		v.Version = "devel"
	}
	if v.Commit == "" {
		v.Commit = "unknown"
	}
	return v
}

// String is the --version output: three lines, each "key value" after the
// first, so scripts can pick a field with awk.
func (v versionInfo) String() string {
	return fmt.Sprintf("http_status %s\ncommit %s\ngo %s %s\n", v.Version, v.Commit, v.GoVersion, v.Platform)
}
