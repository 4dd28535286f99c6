//go:build linux

package evloop

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ListenerFDs returns the listening sockets for a [Server]: the sockets of a
// [ReusePortListener] (taken from it: the server owns and closes them), or
// a duplicate of ln's socket that every loop polls (also the server's to
// close; ln itself stays the caller's). With deferAccept, TCP_DEFER_ACCEPT
// is set on a duplicated socket: a connection is accepted only once its
// first bytes are there (not for a protocol whose clients may stay silent).
func ListenerFDs(ln net.Listener, deferAccept bool) ([]int, error) {
	if rp, ok := ln.(*ReusePortListener); ok {
		fds := rp.takeFDs()
		if len(fds) == 0 {
			return nil, errors.New("evloop: ReusePortListener already used or closed")
		}
		return fds, nil
	}
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("evloop: listener %T has no file descriptor", ln)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var derr error
	if err := raw.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("evloop: dup listener: %w", derr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if deferAccept {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 1)
	}
	return []int{fd}, nil
}

// ReusePortListener is one SO_REUSEPORT listening socket per event loop, all
// bound to the same address, so that the kernel spreads new connections over
// the loops and no two loops contend for one accept queue. Its Accept is not
// used (it returns an error): a [Server] reads the sockets itself.
type ReusePortListener struct {
	mu   sync.Mutex
	fds  []int
	addr net.Addr
}

// ListenReusePort binds n SO_REUSEPORT sockets to addr (host:port; port 0
// picks one port for all). TCP_DEFER_ACCEPT is set: a connection is
// accepted once its first bytes are there.
func ListenReusePort(addr string, n int) (*ReusePortListener, error) {
	n = max(n, 1)
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, err
	}
	if ta.Port != 0 {
		// SO_REUSEPORT would let a second daemon of the same user bind
		// the port too and silently take half the checks. A plain bind
		// first fails, as net.Listen does, when anything holds the port.
		// Two daemons starting at once could both pass it before either
		// listens, so the check and the binds run under a lock on the
		// port that every process of this package in the network
		// namespace takes (released when the binds are done, or by the
		// kernel when the process dies).
		unlock, err := lockPort(ta.Port, portLockWait)
		if err != nil {
			return nil, fmt.Errorf("listen tcp %s: %w", addr, err)
		}
		defer unlock()
		ln, err := net.ListenTCP("tcp", ta)
		if err != nil {
			return nil, err
		}
		ln.Close()
	}
	rp := &ReusePortListener{}
	port := ta.Port
	for i := range n {
		fd, bound, err := reusePortSocket(ta.IP, port, ta.Zone)
		if err != nil {
			rp.Close()
			return nil, fmt.Errorf("listen tcp %s: %w", addr, err)
		}
		rp.fds = append(rp.fds, fd)
		if i == 0 {
			rp.addr = bound
			port = bound.Port
		}
	}
	return rp, nil
}

// portLockWait bounds the wait for another process binding the same port;
// it holds the lock for the microseconds of a few binds.
const portLockWait = 2 * time.Second

// lockPort takes the lock on port: a Unix socket bound to an abstract name
// (scoped, as TCP ports are, by the network namespace; no file to leave
// behind). It waits up to wait for another holder, then fails.
func lockPort(port int, wait time.Duration) (unlock func(), err error) {
	name := "@http_status/evloop/bind/" + strconv.Itoa(port)
	deadline := time.Now().Add(wait)
	for {
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
		if err == nil {
			return func() { ln.Close() }, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			// No Unix socket here (a sandbox that forbids them): the
			// lock only guards a race of two starts; do without it
			// rather than not start.
			return func() {}, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("port %d: another process has been binding it for %v (lock %s held)", port, wait, name)
		}
		time.Sleep(time.Millisecond)
	}
}

func reusePortSocket(ip net.IP, port int, zone string) (int, *net.TCPAddr, error) {
	family := unix.AF_INET
	var sa unix.Sockaddr
	if ip4 := ip.To4(); ip == nil || ip4 != nil {
		s := &unix.SockaddrInet4{Port: port}
		if ip4 != nil {
			copy(s.Addr[:], ip4)
		}
		sa = s
	} else {
		family = unix.AF_INET6
		s := &unix.SockaddrInet6{Port: port}
		copy(s.Addr[:], ip.To16())
		if zone != "" {
			if ifi, err := net.InterfaceByName(zone); err == nil {
				s.ZoneId = uint32(ifi.Index)
			}
		}
		sa = s
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, nil, os.NewSyscallError("socket", err)
	}
	fail := func(op string, err error) (int, *net.TCPAddr, error) {
		unix.Close(fd)
		return -1, nil, os.NewSyscallError(op, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("setsockopt", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return fail("setsockopt", err)
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 1)
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	if err := unix.Listen(fd, 4096); err != nil {
		return fail("listen", err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	a := &net.TCPAddr{}
	switch s := got.(type) {
	case *unix.SockaddrInet4:
		a.IP, a.Port = net.IP(append([]byte(nil), s.Addr[:]...)), s.Port
	case *unix.SockaddrInet6:
		a.IP, a.Port, a.Zone = net.IP(append([]byte(nil), s.Addr[:]...)), s.Port, zone
	}
	return fd, a, nil
}

// Accept is not supported: a [Server] reads the sockets itself.
func (rp *ReusePortListener) Accept() (net.Conn, error) {
	return nil, errors.New("evloop: ReusePortListener is served by evloop.Server")
}

// Addr is the bound address.
func (rp *ReusePortListener) Addr() net.Addr { return rp.addr }

// Close closes the sockets no server has taken.
func (rp *ReusePortListener) Close() error {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	for _, fd := range rp.fds {
		unix.Close(fd)
	}
	rp.fds = nil
	return nil
}

func (rp *ReusePortListener) takeFDs() []int {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	fds := rp.fds
	rp.fds = nil
	return fds
}

// Loops is the number of sockets (one per loop).
func (rp *ReusePortListener) Loops() int {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return len(rp.fds)
}
