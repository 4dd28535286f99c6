// Package testbin gives end-to-end tests one http_status binary, built from
// this checkout, shared by every test process of a `go test ./...` run and
// by later runs.
//
// The binary lives in a per-user directory under os.TempDir, one entry per
// checkout (keyed by the module root's path). Path takes an flock on the
// entry and runs `go build -o` into it: when the file is already up to date
// (same sources, flags and toolchain), go build sees its build ID and
// returns in a fraction of a second without linking, so the packages whose
// tests run at the same time link once between them. go build renames the
// new file into place, so a daemon still running the old one is not
// disturbed.
//
// The binary is stamped like a package build (-X main.version, main.commit)
// with [Version] and [Commit].
//
// Only tests import this package.
package testbin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The version and commit stamped into the test binary.
const (
	Version = "0.0.0+testbin"
	Commit  = "testbin"
)

// pruneAfter is how long an entry (a checkout's binary) may go unused before
// a build for another checkout removes it.
const pruneAfter = 7 * 24 * time.Hour

var (
	once sync.Once
	path string
	err  error
)

// Path returns the path of the shared binary, building it on the first call
// in this process. A build failure fails tb.
func Path(tb testing.TB) string {
	tb.Helper()
	once.Do(func() { path, err = build() })
	if err != nil {
		tb.Fatal(err)
	}
	return path
}

// ModuleRoot is the directory holding this module's go.mod, found upwards
// from the working directory (a test runs in its package's directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("testbin: module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testbin: module root: no go.mod above the working directory")
		}
		dir = parent
	}
}

func build() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	base, err := privateDir(filepath.Join(os.TempDir(), fmt.Sprintf("http_status-testbin-%d", os.Geteuid())))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(root))
	entry := filepath.Join(base, hex.EncodeToString(sum[:8]))
	if err := os.Mkdir(entry, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("testbin: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(entry, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", fmt.Errorf("testbin: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("testbin: lock %s: %w", lock.Name(), err)
	}
	now := time.Now()
	_ = os.Chtimes(entry, now, now) // in use: not for prune
	bin := filepath.Join(entry, "http_status")
	cmd := exec.Command("go", "build", "-o", bin,
		"-ldflags", "-X main.version="+Version+" -X main.commit="+Commit, "./cmd/http_status")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("testbin: go build ./cmd/http_status: %w\n%s", err, out)
	}
	prune(base, entry, now)
	return bin, nil
}

// privateDir creates dir (mode 0700) if needed and checks that it is a
// directory of ours that nobody else can write: the binary found there is
// executed, as root in CI.
func privateDir(dir string) (string, error) {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("testbin: %w", err)
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return "", fmt.Errorf("testbin: %w", err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !st.IsDir() || !ok || int(sys.Uid) != os.Geteuid() || st.Mode().Perm()&0o022 != 0 {
		return "", fmt.Errorf("testbin: %s is not a directory owned by uid %d and writable only by it (mode %v)", dir, os.Geteuid(), st.Mode())
	}
	return dir, nil
}

// prune removes other checkouts' entries unused for pruneAfter, so that
// deleted checkouts do not leave binaries behind for ever.
func prune(base, keep string, now time.Time) {
	ents, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range ents {
		p := filepath.Join(base, e.Name())
		if p == keep || !e.IsDir() {
			continue
		}
		if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) > pruneAfter {
			_ = os.RemoveAll(p)
		}
	}
}
