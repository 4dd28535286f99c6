//go:build linux

// Package testenv holds settings shared by the test binaries. Only tests
// import it.
package testenv

import (
	"bytes"
	"flag"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// WaitBoundParallel raises `go test`'s -parallel default (GOMAXPROCS) to n
// unless -parallel was given: call it from TestMain before m.Run. It is for
// packages whose parallel tests spend their time waiting (on child
// processes, timeouts, the kernel) rather than computing, so that on a
// 2-core machine more than two of them can wait at once.
func WaitBoundParallel(n int) {
	if !flag.Parsed() {
		flag.Parse()
	}
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if set || n <= runtime.GOMAXPROCS(0) {
		return
	}
	_ = flag.Set("test.parallel", strconv.Itoa(n))
}

// TmpfsDir returns a new directory for the test on a tmpfs (/dev/shm), or
// t.TempDir() where there is none, removed when the test ends. It is for
// tests that churn through thousands of flag files: the flags live in
// /run/http_status, a tmpfs, in production, and on a VM's disk file system
// the same churn takes seconds.
func TmpfsDir(t testing.TB) string {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp("/dev/shm", "http_status-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() {
		// Mode-000 files and the like: make everything removable first.
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o700)
			}
			return nil
		})
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	return dir
}

// DieWithTest makes the child cmd starts receive SIGKILL when the test
// binary dies (prctl PR_SET_PDEATHSIG), so that a test killed by -timeout,
// a panic or ^C leaves no daemon, HAProxy or nginx running on the host.
// Call it before cmd.Start; it keeps other SysProcAttr settings. The kernel
// clears the setting when a child changes its user or group IDs
// (setpriv), and a grandchild (a shell's child) does not inherit it.
func DieWithTest(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// childEnv marks a re-executed test binary that runs one test inside a
// namespace the parent test made (a mount namespace, a user namespace).
const childEnv = "HTTP_STATUS_TEST_CHILD"

// RunChild re-executes this test binary to run test inside the command
// prefix (unshare ...), and fails when the child fails; it skips when the
// child skipped.
func RunChild(t *testing.T, test string, prefix ...string) {
	t.Helper()
	if os.Getenv(childEnv) != "" {
		t.Skip("already a child")
	}
	args := append(prefix, os.Args[0], "-test.run=^"+test+"$", "-test.v")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), childEnv+"="+test)
	DieWithTest(cmd)
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), "--- SKIP") {
		t.Skipf("child skipped:\n%s", out)
	}
	if err != nil {
		t.Fatalf("child %s: %v\n%s", test, err, out)
	}
	t.Logf("child output:\n%s", out)
}

// RunInMountNamespace runs test (a Child test that calls IsChild) in a
// re-executed test binary inside a mount namespace of its own (unshare
// --mount --propagation private), in parallel with the caller's other
// tests: mounts made there leave the host's mount table untouched. It
// skips when not root or without unshare (util-linux).
func RunInMountNamespace(t *testing.T, test string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a mount namespace of its own (CI runs as root)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare (util-linux)")
	}
	t.Parallel()
	RunChild(t, test, "unshare", "--mount", "--propagation", "private")
}

// IsChild skips the calling test unless this binary was started by
// RunChild for it.
func IsChild(t *testing.T, test string) {
	t.Helper()
	if os.Getenv(childEnv) != test {
		t.Skip("runs only as a child of " + strings.TrimSuffix(test, "Child"))
	}
}

var (
	portsMu sync.Mutex
	ports   = map[int]bool{}
)

// FreePort returns a loopback TCP port nobody listens on right now, and
// never the same one twice in one test binary: the kernel may hand out a
// port it just freed again, and two daemons told the same port (an HTTP and
// an agent port, say) fail with "address already in use".
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !ports[port] {
			ports[port] = true
			return port
		}
	}
	t.Fatal("FreePort: the kernel kept handing out ports already used")
	return 0
}

// ClosedAddr is a loopback address (127.0.0.1:PORT) nothing listens on: a
// [FreePort], so no other caller in the test binary is given it.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}

// ServeHTTP serves h on 127.0.0.1 until the test ends and returns the
// address.
func ServeHTTP(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// ErrContains fails the test unless err is an error whose text holds want.
func ErrContains(t testing.TB, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q lacks %q", err, want)
	}
}

// LogBuffer collects what goroutines (a logger, a child process) write, for
// a test to read while they still run.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// AcceptEach hands every connection ln accepts to handle, each on a
// goroutine of its own (handle closes it), until ln is closed; ln is closed
// when the test ends.
func AcceptEach(t testing.TB, ln net.Listener, handle func(net.Conn)) {
	t.Helper()
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
}

// ServeTCP listens on 127.0.0.1, serves each connection with handle (see
// [AcceptEach]) until the test ends, and returns the address.
func ServeTCP(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	AcceptEach(t, ln, handle)
	return ln.Addr().String()
}

// ListenBoth listens on 127.0.0.1 and ::1 on one port, until the test ends.
// It skips the test when loopback has no IPv6.
func ListenBoth(t testing.TB) (port int, l4, l6 net.Listener) {
	t.Helper()
	for range 20 {
		l4, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l4.Addr().(*net.TCPAddr).Port
		l6, err := net.Listen("tcp6", net.JoinHostPort("::1", strconv.Itoa(port)))
		if err != nil {
			l4.Close()
			if strings.Contains(err.Error(), "cannot assign") {
				t.Skip("no IPv6 on loopback")
			}
			continue // port taken on ::1: try another
		}
		t.Cleanup(func() { l4.Close(); l6.Close() })
		return port, l4, l6
	}
	t.Fatal("no port free on both 127.0.0.1 and ::1")
	return 0, nil, nil
}

// RawRequest sends req as bytes to addr and returns the whole answer up to
// the server's close (10 s at most).
func RawRequest(t testing.TB, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

// PollUntil calls f every 50 ms until it reports true, and fails t with
// what and the last state f reported once timeout has passed: a condition
// awaited, with a deadline for a stuck one, rather than a sleep.
func PollUntil(t testing.TB, what string, timeout time.Duration, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := f()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v; last seen: %s", what, timeout, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
