//go:build linux

package watcher

import (
	"bytes"
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// writers tells whether an empty flag file may be a writer's passing state,
// from a second inotify instance on the status directory: fsnotify reports
// no "closed after writing" event.
//
// Why: `echo drain > squid.80` truncates the file, then writes. Read in
// between, the file is empty, which means up: a flag going from down to
// drain would answer 200 for that instant. So an empty flag is held (the
// previous state stays) while its last event was a create or a write with
// no close after it: a writer may still write. See also [settle].
//
// The instance is read without blocking, on the watcher loop only, so its
// queue and fsnotify's need no ordering between goroutines.
type writers struct {
	fd   int // -1: unavailable, nothing is held
	wd   int // the watch on the status directory; -1 when none
	open map[string]bool
	buf  []byte
	// While a flag is held, the close that ends the hold must wake the
	// loop at once (fsnotify does not report closes): a goroutine waits
	// in the runtime's poller for the instance to become readable and
	// tells the loop on ready; it waits for the loop's next read of the
	// queue (drained) before it waits again, so it never spins.
	f       *os.File
	holding atomic.Bool
	ready   chan struct{} // nil when unavailable
	drained chan struct{}
	done    chan struct{}
	// lost is when the queue last overflowed: which files were written
	// then is unknown, so every empty flag is held until settle after.
	lost   time.Time
	losses uint64 // overflows, for the log
}

// maxHold bounds how long an empty flag is held; after it the empty file
// counts (as up), as a writer that keeps the file open may never write.
var maxHold = time.Second // a variable for tests

// settle is how long an empty file must stay empty, with no event for it,
// before it brings a flag that is present and out of rotation into
// rotation (as must content that reads as up without an up word, see
// [Watcher.passing]). A truncation is visible before its event is queued: the
// kernel queues the event after the size has changed, so a writer
// preempted in between (a loaded host) leaves an empty file with no event
// for as long as it waits to run. An empty file whose last event was a
// close may thus be the next writer's truncation in flight; its write
// follows. The wait is long enough for a loaded host's scheduler delays
// (the figures are in issue notes and BENCHMARKS.md) and short next to a
// balancer's rise count. Only a flag going from drain, maint or down to up
// waits; a new file (touch) and an up flag do not.
var settle = 500 * time.Millisecond // a variable for tests

// holdPoll is how often held names are looked at again when no event
// comes: an empty file that must stay empty for settle, and the hold's end
// (maxHold). The close that ends a hold wakes the loop itself (ready).
var holdPoll = 5 * time.Millisecond // a variable for tests

const writerMask = unix.IN_CREATE | unix.IN_MODIFY | unix.IN_CLOSE_WRITE |
	unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_DELETE

func newWriters() (*writers, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return &writers{fd: -1, wd: -1}, err
	}
	wr := &writers{fd: fd, wd: -1, open: map[string]bool{}, buf: make([]byte, 64<<10),
		ready: make(chan struct{}, 1), drained: make(chan struct{}, 1), done: make(chan struct{})}
	wr.f = os.NewFile(uintptr(fd), "inotify (writers)")
	if rc, err := wr.f.SyscallConn(); err == nil {
		go wr.wait(rc)
	}
	return wr, nil
}

// wait tells the loop (ready) when events come while it holds a flag. It
// returns once the instance is closed (or cannot be waited on: the loop
// then still looks every holdPoll).
func (wr *writers) wait(rc syscall.RawConn) {
	for {
		if err := rc.Read(func(fd uintptr) bool { return readable(int(fd)) }); err != nil {
			return
		}
		if wr.holding.Load() {
			select {
			case wr.ready <- struct{}{}:
			default:
			}
		}
		select {
		case <-wr.drained:
		case <-wr.done:
			return
		}
	}
}

// turned is told by the loop at the end of each turn, once it has read the
// queue, whether it holds a flag now.
func (wr *writers) turned(holding bool) {
	if wr.fd < 0 {
		return
	}
	wr.holding.Store(holding)
	select {
	case wr.drained <- struct{}{}:
	default:
	}
	// An event that came after the turn's last read of the queue and
	// before holding was set was not signalled: look now.
	if holding && readable(wr.fd) {
		select {
		case wr.ready <- struct{}{}:
		default:
		}
	}
}

func readable(fd int) bool {
	p := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(p[:], 0)
	return err == nil && n > 0
}

func (wr *writers) close() {
	if wr.fd >= 0 {
		close(wr.done)
		_ = wr.f.Close() // the instance; wait's Read returns
		wr.fd = -1
	}
}

// watch moves the watch to dir (after the status directory was (re)watched).
func (wr *writers) watch(dir string) error {
	if wr.fd < 0 {
		return nil
	}
	wr.unwatch()
	wd, err := unix.InotifyAddWatch(wr.fd, dir, writerMask)
	if err != nil {
		return err
	}
	wr.wd = wd
	return nil
}

func (wr *writers) unwatch() {
	if wr.fd < 0 || wr.wd < 0 {
		return
	}
	_, _ = unix.InotifyRmWatch(wr.fd, uint32(wr.wd))
	wr.wd = -1
	clear(wr.open)
}

// drain reads every queued event and reports whether one was for name.
// Reading on the watcher loop, right after reading a file, tells whether
// the file changed since.
func (wr *writers) drain(name string) (touched bool) {
	if wr.fd < 0 {
		return false
	}
	for {
		n, err := unix.Read(wr.fd, wr.buf)
		if err != nil || n <= 0 {
			if err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
				wr.lost = time.Now()
			}
			return touched
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&wr.buf[off]))
			raw := wr.buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
				wr.lost = time.Now()
				wr.losses++
				clear(wr.open) // closes were lost too; lost covers them
				continue
			}
			if int(ev.Wd) != wr.wd || ev.Len == 0 {
				continue
			}
			n := string(bytes.TrimRight(raw, "\x00"))
			if n == name {
				touched = true
			}
			if ev.Mask&(unix.IN_CREATE|unix.IN_MODIFY) != 0 {
				wr.open[n] = true
			} else {
				delete(wr.open, n)
			}
		}
	}
}

// mayBeWriting reports whether name's last event was a create or a write
// with no close after it, or events were lost lately.
func (wr *writers) mayBeWriting(name string) bool {
	if wr.fd < 0 {
		return false
	}
	return wr.open[name] || (!wr.lost.IsZero() && time.Since(wr.lost) < settle)
}
