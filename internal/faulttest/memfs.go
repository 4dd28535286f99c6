//go:build linux

package faulttest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MemFS is a flat FUSE filesystem held in memory, mounted for real, that
// answers renameat2 with any flag as NFS and most FUSE servers do: EINVAL
// (it has no RENAME2, and the kernel then refuses every flag). Plain
// rename, link, unlink, create, read, write, chmod and fsync work, with no
// kernel caching (every lookup and read reaches the server), so a change
// made with [MemFS.Put] is seen at once, as another host's write to an
// NFS directory would be.
type MemFS struct {
	mu     sync.Mutex
	names  map[string]*memNode
	nodes  map[uint64]*memNode
	next   uint64
	before func(op, name string)
	polls  atomic.Int32 // POLL requests: one, from noPoll, or the hang is back
}

// SetBefore sets f (nil: none) to run in the server as a request that
// makes name a directory entry (create, rename onto it, link to it)
// arrives, before it is done: a test's other writer landing at that
// instant. f may call Put; op is "create", "rename" or "link".
func (m *MemFS) SetBefore(f func(op, name string)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.before = f
}

type memNode struct {
	ino   uint64
	mode  uint32
	nlink uint32
	data  []byte
	ctime time.Time
}

// NoExchangeMount mounts a [MemFS] on dir (an existing directory), in the
// test's own mount namespace (testenv.RunInMountNamespace), and unmounts
// it at cleanup. It needs root and /dev/fuse.
func NoExchangeMount(t *testing.T, dir string) *MemFS {
	t.Helper()
	self, err1 := os.Readlink("/proc/self/ns/mnt")
	parent, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", os.Getppid()))
	if err1 != nil || err2 != nil || self == parent {
		t.Fatal("NoExchangeMount needs a mount namespace of the test's own (unshare --mount --propagation private)")
	}
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("open /dev/fuse: %v", err)
	}
	opts := fmt.Sprintf("fd=%d,rootmode=40755,user_id=0,group_id=0", fd)
	if err := unix.Mount("memfs", dir, "fuse.memfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		unix.Close(fd)
		t.Skipf("mount a FUSE filesystem: %v", err)
	}
	m := &MemFS{names: map[string]*memNode{}, nodes: map[uint64]*memNode{}, next: 2}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1<<20+4096)
		for {
			n, err := unix.Read(fd, buf)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil || n < 40 {
				return // ENODEV: unmounted
			}
			if reply := m.serve(buf[:n]); reply != nil {
				_, _ = unix.Write(fd, reply)
			}
		}
	}()
	t.Cleanup(func() {
		if n := m.polls.Load(); n != 1 {
			t.Errorf("memfs got %d POLL requests, want the one noPoll made", n)
		}
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
		<-done
		unix.Close(fd)
	})
	if err := noPoll(dir); err != nil {
		t.Fatal(err)
	}
	return m
}

// noPoll makes the kernel stop asking this server about poll. Go's runtime
// adds every file it opens to its epoll set with a raw epoll_ctl, holding
// its processor: on FUSE that waits for this server's answer to POLL, and a
// garbage collection starting meanwhile waits for that thread while this
// server waits to run. The test process hung so (epoll_ctl in
// request_wait_answer). One epoll_ctl made as an ordinary system call,
// answered ENOSYS, sets the connection's no_poll.
func noPoll(dir string) error {
	p := dir + "/.poll"
	fd, err := unix.Open(p, unix.O_CREAT|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", p, err)
	}
	defer unix.Unlink(p)
	defer unix.Close(fd)
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll_create1: %w", err)
	}
	defer unix.Close(ep)
	// Not unix.EpollCtl: that is a raw system call too, the very one that
	// deadlocks.
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
	_, _, errno := unix.Syscall6(unix.SYS_EPOLL_CTL, uintptr(ep), unix.EPOLL_CTL_ADD, uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0)
	if errno != 0 && errno != unix.EPERM {
		return fmt.Errorf("epoll_ctl %s: %w", p, errno)
	}
	return nil
}

// Put makes name a regular file holding content (mode 0644), replacing
// what was there: another writer's rename over the flag.
func (m *MemFS) Put(name string, content []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.put(name, content, 0o644)
}

func (m *MemFS) put(name string, content []byte, perm uint32) *memNode {
	if old := m.names[name]; old != nil {
		m.unlinkNode(old)
	}
	nd := &memNode{ino: m.next, mode: unix.S_IFREG | perm, nlink: 1, data: append([]byte(nil), content...), ctime: time.Now()}
	m.next++
	m.names[name], m.nodes[nd.ino] = nd, nd
	return nd
}

func (m *MemFS) unlinkNode(nd *memNode) {
	nd.nlink--
	nd.ctime = time.Now()
}

// FUSE opcodes served (include/uapi/linux/fuse.h).
const (
	opLookup      = 1
	opGetattr     = 3
	opSetattr     = 4
	opUnlink      = 10
	opRename      = 12
	opLink        = 13
	opOpen        = 14
	opRead        = 15
	opWrite       = 16
	opRelease     = 18
	opFsync       = 20
	opFlush       = 25
	opOpendir     = 27
	opReaddir     = 28
	opReleasedir  = 29
	opFsyncdir    = 30
	opAccess      = 34
	opCreate      = 35
	opInterrupt   = 36
	opPoll        = 40
	fopenDirectIO = 1
)

// serve answers one request; nil for the ones that take no answer.
func (m *MemFS) serve(req []byte) []byte {
	le := binary.LittleEndian
	op, unique, nodeid := le.Uint32(req[4:]), le.Uint64(req[8:]), le.Uint64(req[16:])
	body := req[40:]
	switch op {
	case fuseInit:
		return initReply(unique)
	case opPoll:
		m.polls.Add(1)
	case fuseForget, fuseBatchForget, opInterrupt:
		return nil
	case opCreate, opRename, opLink:
		// The other writer goes first, outside the lock it takes.
		m.mu.Lock()
		before := m.before
		m.mu.Unlock()
		if before != nil {
			var name string
			switch op {
			case opCreate:
				name = cstr(body[16:])
			case opRename:
				name = cstr(body[8+len(cstr(body[8:]))+1:])
			case opLink:
				name = cstr(body[8:])
			}
			before(map[uint32]string{opCreate: "create", opRename: "rename", opLink: "link"}[op], name)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out, errno := m.do(op, nodeid, body)
	if errno != 0 {
		return errReply(unique, errno)
	}
	b := make([]byte, 16+len(out))
	le.PutUint32(b[0:], uint32(len(b)))
	le.PutUint64(b[8:], unique)
	copy(b[16:], out)
	return b
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}

func (m *MemFS) do(op uint32, nodeid uint64, body []byte) ([]byte, unix.Errno) {
	le := binary.LittleEndian
	file := func() (*memNode, unix.Errno) {
		nd := m.nodes[nodeid]
		if nd == nil {
			return nil, unix.ENOENT
		}
		return nd, 0
	}
	switch op {
	case opLookup:
		nd := m.names[cstr(body)]
		if nodeid != 1 || nd == nil {
			return nil, unix.ENOENT
		}
		return m.entry(nd), 0
	case opGetattr:
		if nodeid == 1 {
			return attrOut(m.rootAttr()), 0
		}
		nd, e := file()
		if e != 0 {
			return nil, e
		}
		return attrOut(m.attr(nd)), 0
	case opSetattr:
		nd, e := file()
		if e != 0 {
			return nil, e
		}
		valid := le.Uint32(body[0:])
		if valid&8 != 0 { // FATTR_SIZE
			size := le.Uint64(body[16:])
			nd.data = append(nd.data[:min(uint64(len(nd.data)), size)], make([]byte, size-min(uint64(len(nd.data)), size))...)
		}
		if valid&1 != 0 { // FATTR_MODE
			nd.mode = unix.S_IFREG | le.Uint32(body[68:])&0o7777
		}
		nd.ctime = time.Now()
		return attrOut(m.attr(nd)), 0
	case opCreate:
		name := cstr(body[16:])
		if m.names[name] != nil {
			return nil, unix.EEXIST
		}
		nd := m.put(name, nil, le.Uint32(body[4:])&0o7777&^le.Uint32(body[8:]))
		return append(m.entry(nd), openOut()...), 0
	case opUnlink:
		nd := m.names[cstr(body)]
		if nd == nil {
			return nil, unix.ENOENT
		}
		delete(m.names, cstr(body))
		m.unlinkNode(nd)
		return nil, 0
	case opRename:
		from := cstr(body[8:])
		to := cstr(body[8+len(from)+1:])
		nd := m.names[from]
		if nd == nil {
			return nil, unix.ENOENT
		}
		if old := m.names[to]; old != nil && old != nd {
			m.unlinkNode(old)
		}
		delete(m.names, from)
		m.names[to] = nd
		nd.ctime = time.Now()
		return nil, 0
	case opLink:
		nd := m.nodes[le.Uint64(body[0:])]
		name := cstr(body[8:])
		if nd == nil {
			return nil, unix.ENOENT
		}
		if m.names[name] != nil {
			return nil, unix.EEXIST
		}
		nd.nlink++
		nd.ctime = time.Now()
		m.names[name] = nd
		return m.entry(nd), 0
	case opOpen, opOpendir:
		return openOut(), 0
	case opRead:
		nd, e := file()
		if e != 0 {
			return nil, e
		}
		off, size := le.Uint64(body[8:]), uint64(le.Uint32(body[16:]))
		if off >= uint64(len(nd.data)) {
			return nil, 0
		}
		return append([]byte(nil), nd.data[off:min(off+size, uint64(len(nd.data)))]...), 0
	case opWrite:
		nd, e := file()
		if e != 0 {
			return nil, e
		}
		off, size := le.Uint64(body[8:]), le.Uint32(body[16:])
		data := body[40 : 40+size]
		if end := off + uint64(size); end > uint64(len(nd.data)) {
			nd.data = append(nd.data, make([]byte, end-uint64(len(nd.data)))...)
		}
		copy(nd.data[off:], data)
		nd.ctime = time.Now()
		out := make([]byte, 8)
		le.PutUint32(out, size)
		return out, 0
	case opReaddir:
		if le.Uint64(body[8:]) > 0 { // offset: everything went in one answer
			return nil, 0
		}
		names := make([]string, 0, len(m.names))
		for n := range m.names {
			names = append(names, n)
		}
		sort.Strings(names)
		var out []byte
		for i, n := range names {
			ent := make([]byte, 24+(len(n)+7)/8*8)
			le.PutUint64(ent[0:], m.names[n].ino)
			le.PutUint64(ent[8:], uint64(i+1))
			le.PutUint32(ent[16:], uint32(len(n)))
			le.PutUint32(ent[20:], unix.DT_REG)
			copy(ent[24:], n)
			out = append(out, ent...)
		}
		return out, 0
	case opRelease, opReleasedir, opFsync, opFsyncdir, opFlush, opAccess:
		return nil, 0
	}
	return nil, unix.ENOSYS // RENAME2 among them
}

// fuse_attr, 88 bytes at protocol 7.31.
func (m *MemFS) attr(nd *memNode) []byte {
	le := binary.LittleEndian
	a := make([]byte, 88)
	le.PutUint64(a[0:], nd.ino)
	le.PutUint64(a[8:], uint64(len(nd.data)))
	le.PutUint64(a[16:], (uint64(len(nd.data))+511)/512)
	for _, off := range []int{24, 32, 40} {
		le.PutUint64(a[off:], uint64(nd.ctime.Unix()))
	}
	for _, off := range []int{48, 52, 56} {
		le.PutUint32(a[off:], uint32(nd.ctime.Nanosecond()))
	}
	le.PutUint32(a[60:], nd.mode)
	le.PutUint32(a[64:], nd.nlink)
	le.PutUint32(a[80:], 4096)
	return a
}

func (m *MemFS) rootAttr() []byte {
	le := binary.LittleEndian
	a := make([]byte, 88)
	le.PutUint64(a[0:], 1)
	le.PutUint32(a[60:], unix.S_IFDIR|0o755)
	le.PutUint32(a[64:], 2)
	le.PutUint32(a[80:], 4096)
	return a
}

// entry is fuse_entry_out, nothing cached.
func (m *MemFS) entry(nd *memNode) []byte {
	e := make([]byte, 40, 128)
	binary.LittleEndian.PutUint64(e[0:], nd.ino)
	return append(e, m.attr(nd)...)
}

// attrOut is fuse_attr_out, nothing cached.
func attrOut(attr []byte) []byte { return append(make([]byte, 16, 104), attr...) }

// openOut is fuse_open_out: direct I/O, so every read reaches the server.
func openOut() []byte {
	o := make([]byte, 16)
	binary.LittleEndian.PutUint32(o[8:], fopenDirectIO)
	return o
}
