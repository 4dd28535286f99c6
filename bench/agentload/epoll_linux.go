//go:build linux

package main

import (
	"bytes"
	"fmt"
	"net"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

const epollSupported = true

// econn is one connection of the epoll client.
type econn struct {
	fd        int
	start     time.Time
	connected bool
	n         int
	buf       []byte
}

// runEpoll drives t with c connections spread over loops event loops, one OS
// thread each, with non-blocking sockets: what wrk does, so that the client
// costs as little CPU as it can and the servers get the rest.
func runEpoll(t *target, c, loops int, d, timeout time.Duration, expect []byte) result {
	ap, err := net.ResolveTCPAddr("tcp", t.addr)
	if err != nil {
		return result{errs: 1, firstErr: err}
	}
	// newSockaddr: one per loop (unix.Connect writes into it).
	family := unix.AF_INET
	if ap.IP.To4() == nil {
		family = unix.AF_INET6
	}
	newSockaddr := func() unix.Sockaddr {
		if ip4 := ap.IP.To4(); ip4 != nil {
			s := &unix.SockaddrInet4{Port: ap.Port}
			copy(s.Addr[:], ip4)
			return s
		}
		s := &unix.SockaddrInet6{Port: ap.Port}
		copy(s.Addr[:], ap.IP.To16())
		return s
	}
	loops = max(1, min(loops, c))
	out := make([]part, loops)
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for li := 0; li < loops; li++ {
		nconn := c / loops
		if li < c%loops {
			nconn++
		}
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			r := &out[li]
			r.lat = make([]time.Duration, 0, 1<<16)
			sa := newSockaddr()
			fail := func(e error) {
				r.errs++
				if r.err == nil {
					r.err = e
				}
			}
			epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
			if err != nil {
				fail(err)
				return
			}
			defer unix.Close(epfd)
			byFD := map[int]*econn{}
			var open func(ec *econn) bool
			closeConn := func(ec *econn) {
				delete(byFD, ec.fd)
				unix.Close(ec.fd) // also leaves the epoll set
				ec.fd = -1
			}
			send := func(ec *econn) bool {
				ec.connected = true
				if len(t.payload) > 0 {
					if m, err := unix.Write(ec.fd, t.payload); err != nil || m != len(t.payload) {
						fail(fmt.Errorf("write: %v (%d bytes)", err, m))
						return false
					}
				}
				ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(ec.fd)}
				if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_MOD, ec.fd, &ev); err != nil {
					fail(err)
					return false
				}
				return true
			}
			open = func(ec *econn) bool {
				ec.start = time.Now()
				ec.connected = false
				ec.n = 0
				fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					fail(err)
					return false
				}
				ec.fd = fd
				byFD[fd] = ec
				err = unix.Connect(fd, sa)
				if err != nil && err != unix.EINPROGRESS {
					fail(fmt.Errorf("connect: %w", err))
					closeConn(ec)
					return false
				}
				ev := unix.EpollEvent{Events: unix.EPOLLOUT, Fd: int32(fd)}
				if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
					fail(err)
					closeConn(ec)
					return false
				}
				return true
			}
			// next opens ec's next connection, retrying after a failure
			// (paced, so that a refused connect does not spin).
			next := func(ec *econn) {
				for time.Now().Before(end) {
					if open(ec) {
						return
					}
					time.Sleep(time.Millisecond)
				}
			}
			conns := make([]*econn, nconn)
			for i := range conns {
				conns[i] = &econn{fd: -1, buf: make([]byte, 4096)}
				next(conns[i])
			}
			// done ends ec's connection and starts the next one.
			done := func(ec *econn, res error) {
				now := time.Now()
				closeConn(ec)
				switch {
				case res == errBad:
					r.bad++
				case res != nil:
					fail(res)
				case now.Before(end):
					r.ok++
					r.lat = append(r.lat, now.Sub(ec.start))
				}
				next(ec)
			}
			events := make([]unix.EpollEvent, 128)
			lastSweep := time.Now()
			for {
				now := time.Now()
				if !now.Before(end) {
					break
				}
				if now.Sub(lastSweep) > 50*time.Millisecond {
					lastSweep = now
					for _, ec := range conns {
						if ec.fd >= 0 && now.Sub(ec.start) > timeout {
							done(ec, fmt.Errorf("timeout after %v (connected %v, %d bytes)", timeout, ec.connected, ec.n))
						}
					}
				}
				n, err := unix.EpollWait(epfd, events, 50)
				if err != nil && err != unix.EINTR {
					fail(err)
					break
				}
				for i := 0; i < n; i++ {
					ec := byFD[int(events[i].Fd)]
					if ec == nil {
						continue
					}
					if !ec.connected {
						if e, err := unix.GetsockoptInt(ec.fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || e != 0 {
							done(ec, fmt.Errorf("connect: %v", unix.Errno(e)))
							continue
						}
						if !send(ec) {
							closeConn(ec)
							next(ec)
						}
						continue
					}
					res, finished := readSome(t, ec, expect)
					if finished {
						done(ec, res)
					}
				}
			}
			for _, ec := range conns {
				if ec.fd >= 0 {
					closeConn(ec)
				}
			}
		})
	}
	wg.Wait()
	return merge(out, min(time.Since(start), d))
}

// readSome reads what is there; finished is true once the reply is whole
// (res nil), wrong (errBad) or failed.
func readSome(t *target, ec *econn, expect []byte) (res error, finished bool) {
	for {
		if ec.n == len(ec.buf) {
			return errBad, true
		}
		m, err := unix.Read(ec.fd, ec.buf[ec.n:])
		if err == unix.EAGAIN {
			return nil, false
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("read: %w", err), true
		}
		if m > 0 {
			ec.n += m
			if t.mode == "agent" {
				if i := bytes.IndexByte(ec.buf[:ec.n], '\n'); i >= 0 {
					if !bytes.HasPrefix(ec.buf[:i], expect) {
						return errBad, true
					}
					return nil, true
				}
			}
			continue
		}
		// EOF
		if t.mode == "agent" {
			return errBad, true
		}
		return checkHTTP(ec.buf[:ec.n]), true
	}
}
