//go:build linux

package faulttest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// HungMount mounts a FUSE filesystem that answers the kernel's INIT and
// then reads every request without ever answering it, as a FUSE server
// that has hung does (sshfs over a dead link). A process that touches
// anything under the returned directory blocks; once SIGKILLed it waits in
// uninterruptible sleep (state D), because the request is already with the
// server: the kernel only gives up a request a server has read when the
// server answers or the connection is aborted. That is the hung-mount case
// the probe runner must survive, produced for real.
//
// It needs root and /dev/fuse, and it must run in a mount namespace of the
// test's own (testenv.RunChild with unshare --mount --propagation private):
// it refuses the host's. At cleanup every pending request is answered
// with EIO, which lets the blocked processes die, and the mount goes.
func HungMount(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(TempDir(t), "hung")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	HungMountAt(t, dir)
	return dir
}

// HungMountAt is [HungMount] over an existing directory or file dir (a
// status directory a daemon already watches, or a flag in it: the hung
// filesystem then hides what was there, as an NFS mount made over it that
// stops answering). It
// returns release, which answers every pending request with EIO (and
// each later one) and unmounts: what a hung server coming back to fail
// does. Cleanup calls it too; it may be called more than once.
func HungMountAt(t *testing.T, dir string) (release func()) {
	t.Helper()
	// The parent is the test binary that ran unshare (which execs the
	// child): the host's namespace, or at least not one of ours.
	self, err1 := os.Readlink("/proc/self/ns/mnt")
	parent, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", os.Getppid()))
	if err1 != nil || err2 != nil {
		t.Skipf("cannot tell the mount namespace: %v, %v", err1, err2)
	}
	if self == parent {
		t.Fatal("HungMount needs a mount namespace of the test's own (unshare --mount --propagation private)")
	}
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("open /dev/fuse: %v", err)
	}
	// Over a file the root is a file (a hung filesystem bind-mounted
	// over a flag).
	rootmode := "40000"
	if fi, err := os.Stat(dir); err == nil && fi.Mode().IsRegular() {
		rootmode = "100000"
	}
	opts := fmt.Sprintf("fd=%d,rootmode=%s,user_id=0,group_id=0", fd, rootmode)
	if err := unix.Mount("hung", dir, "fuse.hung", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		unix.Close(fd)
		t.Skipf("mount a FUSE filesystem: %v", err)
	}
	var (
		mu      sync.Mutex
		pending []uint64 // requests read and not answered
		failing bool     // released: answer everything with EIO
		done    = make(chan struct{})
	)
	go func() {
		defer close(done)
		buf := make([]byte, 1<<20+4096) // the kernel's largest request
		for {
			n, err := unix.Read(fd, buf)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil || n < 16 {
				return // ENODEV: unmounted
			}
			op, unique := binary.LittleEndian.Uint32(buf[4:]), binary.LittleEndian.Uint64(buf[8:])
			if op == fuseInit {
				_, _ = unix.Write(fd, initReply(unique))
				continue
			}
			if op == fuseForget || op == fuseBatchForget {
				continue // no reply is expected
			}
			mu.Lock()
			if failing {
				_, _ = unix.Write(fd, errReply(unique, unix.EIO))
			} else {
				pending = append(pending, unique)
			}
			mu.Unlock()
		}
	}()
	var once sync.Once
	release = func() {
		once.Do(func() {
			mu.Lock()
			failing = true
			for _, u := range pending {
				_, _ = unix.Write(fd, errReply(u, unix.EIO))
			}
			pending = nil
			mu.Unlock()
			if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
			<-done
			unix.Close(fd)
		})
	}
	t.Cleanup(release)
	return release
}

// FUSE opcodes and the protocol version answered (include/uapi/linux/fuse.h).
const (
	fuseForget      = 2
	fuseInit        = 26
	fuseBatchForget = 42
	fuseMajor       = 7
	fuseMinor       = 31
)

// initReply answers INIT: fuse_out_header (16 bytes) then fuse_init_out (64
// bytes at protocol 7.31), every option off, 4 KiB writes.
func initReply(unique uint64) []byte {
	b := make([]byte, 16+64)
	binary.LittleEndian.PutUint32(b[0:], uint32(len(b)))
	binary.LittleEndian.PutUint64(b[8:], unique)
	binary.LittleEndian.PutUint32(b[16:], fuseMajor)
	binary.LittleEndian.PutUint32(b[20:], fuseMinor)
	binary.LittleEndian.PutUint32(b[36:], 4096) // max_write
	return b
}

// errReply answers a request with an error: a bare fuse_out_header.
func errReply(unique uint64, errno unix.Errno) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint32(b[0:], 16)
	binary.LittleEndian.PutUint32(b[4:], uint32(-int32(errno)))
	binary.LittleEndian.PutUint64(b[8:], unique)
	return b
}

// TempDir is t.TempDir for a test that mounts a hung filesystem under it:
// once the mount is let go, what was blocked on it (a watcher goroutine, a
// script's background writer) goes on and may create a file under the
// directory while the test's cleanup removes it, which t.TempDir's removal
// fails on ("directory not empty"). Its removal is tried again until the
// directory is gone, for 10 s at most.
func TempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hung-"+strings.ReplaceAll(t.Name(), "/", "_")+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := os.RemoveAll(dir)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("remove %s: %v", dir, err)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	return dir
}
