//go:build linux

package testenv

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDieWithTest runs this test binary as a parent that starts `sleep`
// with DieWithTest and exits at once; the sleep must be gone afterwards.
func TestDieWithTest(t *testing.T) {
	if os.Getenv("TESTENV_PARENT") == "1" {
		cmd := exec.Command("sleep", "60")
		DieWithTest(cmd)
		if err := cmd.Start(); err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString(strconv.Itoa(cmd.Process.Pid) + "\n")
		os.Exit(0) // without waiting: the child would be orphaned
	}
	if _, err := exec.LookPath("sleep"); err != nil {
		t.Skip("no sleep(1)")
	}
	parent := exec.Command(os.Args[0], "-test.run=^TestDieWithTest$")
	parent.Env = append(os.Environ(), "TESTENV_PARENT=1")
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("parent printed no pid: %v", err)
	}
	_ = parent.Wait()
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("pid %q: %v", line, err)
	}
	// A pidfd becomes readable when the process ends (pidfd_open(2)).
	fd, err := unix.PidfdOpen(pid, 0)
	if err == unix.ESRCH {
		return // already gone
	}
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 10_000)
	if err != nil || n == 0 {
		_ = unix.Kill(pid, unix.SIGKILL)
		t.Fatalf("child %d still running 10 s after its parent exited (poll: %d, %v)", pid, n, err)
	}
}

// TestFreePortUnique: FreePort never hands out a port twice, although the
// kernel may offer one it just freed again.
func TestFreePortUnique(t *testing.T) {
	seen := map[int]bool{}
	for range 200 {
		p := FreePort(t)
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}
