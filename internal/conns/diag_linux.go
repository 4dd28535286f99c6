//go:build linux

package conns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Counter counts open TCP connections, IPv4 and IPv6, by local port: the
// ESTABLISHED ones and the CLOSE-WAIT ones (the peer closed its side, the
// service has not: a client that half-closes after its request is still
// waiting for the answer). It asks the kernel's sock_diag netlink
// interface (what ss uses). It needs
// no privilege. It counts the network namespace it was made in. It is safe
// for concurrent use; calls are serialised on one netlink socket.
type Counter struct {
	mu       sync.Mutex
	sh       *nl.SocketHandle
	noFilter bool // the kernel refused the port filter once: filter here
	seen     int  // sockets the kernel sent for the last Count (tests)
}

// NewCounter opens a counter in the current network namespace.
func NewCounter() (*Counter, error) { return NewCounterAt(netns.None()) }

// NewCounterAt opens a counter in the network namespace ns (netns.None():
// the current one). The namespace is only entered to open the socket.
func NewCounterAt(ns netns.NsHandle) (*Counter, error) {
	s, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_INET_DIAG)
	if err != nil {
		return nil, fmt.Errorf("conns: open sock_diag socket: %w", err)
	}
	// A dump of the filtered sockets takes microseconds; a bound keeps a
	// wedged kernel reply from hanging the sampler or a drain.
	tv := unix.Timeval{Sec: 5}
	_ = s.SetSendTimeout(&tv)
	_ = s.SetReceiveTimeout(&tv)
	return &Counter{sh: &nl.SocketHandle{Socket: s}}, nil
}

// Close closes the netlink socket.
func (c *Counter) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sh != nil {
		c.sh.Close()
		c.sh = nil
	}
	return nil
}

// maxFilterPorts bounds the in-kernel filter: the kernel runs it for every
// socket, one test per port, so beyond this many ports the dump takes every
// open socket and the ports are picked out here.
const maxFilterPorts = 64

// dumpRetries is how often an interrupted dump (the socket table changed
// under it: NLM_F_DUMP_INTR) is retried before the count is reported as an
// error. An interrupted dump may miss or repeat sockets, and a drain must
// never read a missed connection as zero.
const dumpRetries = 3

// ErrInterrupted is returned when every dump was interrupted by changes to
// the socket table; the counts are unknown.
var ErrInterrupted = errors.New("conns: sock_diag dump interrupted repeatedly")

// Count returns, for each port in ports, the number of open TCP sockets
// (ESTABLISHED or CLOSE-WAIT, IPv4 and IPv6) whose local port it is. Every port asked is in
// the map, with 0 when it has none.
func (c *Counter) Count(ports []uint16) (map[uint16]int, error) {
	out := make(map[uint16]int, len(ports))
	for _, p := range ports {
		out[p] = 0
	}
	if len(ports) == 0 {
		return out, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.each(ports, nil, func(s sock) { out[s.port] += s.n })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PortConns is what [Counter.CountIdle] found on one port.
type PortConns struct {
	Open int // open connections (ESTABLISHED or CLOSE-WAIT)
	Idle int // of Open, the ones idle by [Counter.CountIdle]'s rule
}

// Busy is the connections that are not idle.
func (p PortConns) Busy() int { return p.Open - p.Idle }

// CountIdle is [Counter.Count] that also tells, of each port's connections,
// how many are idle for at least idle. A connection is idle when the kernel
// says (tcp_info, read with the socket) that, for at least idle, it has
// neither received nor sent data; nothing is queued either way (no byte
// received but unread, none written but unacknowledged or unsent); the
// service sent last (its last data sent is no older than its last data
// received: the peer's last request was answered, as on a balancer's
// pooled connection after a response); and it is not a connection whose
// peer sent data and that never sent any. A connection without tcp_info
// (Linux before 4.6) is not idle.
//
// The kernel keeps those times in ticks (1 to 10 ms): a request that came
// in the tick its previous answer left looks answered, and balancers that
// send a request on the connection they used last, at once, make that
// common (nginx does). For such a request only the silence tells, so
// idle must be longer than any silence in the middle of a request.
func (c *Counter) CountIdle(ports []uint16, idle time.Duration) (map[uint16]PortConns, error) {
	out := make(map[uint16]PortConns, len(ports))
	for _, p := range ports {
		out[p] = PortConns{}
	}
	if len(ports) == 0 {
		return out, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	isIdle := func(m []byte) bool { return idleFor(m, idle) }
	err := c.each(ports, isIdle, func(s sock) {
		pc := out[s.port]
		pc.Open += s.n
		if s.idle {
			pc.Idle += s.n
		}
		out[s.port] = pc
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// each calls f with the open sockets on ports, IPv4 then IPv6, by
// port and, when isIdle is not nil, by what isIdle says of the socket's
// inet_diag_msg with its tcp_info (asked of the kernel only then). c.mu is
// held. Nothing is passed to f unless both dumps succeed, so a failed count
// adds nothing.
func (c *Counter) each(ports []uint16, isIdle func(m []byte) bool, f func(sock)) error {
	if c.sh == nil {
		return errors.New("conns: counter closed")
	}
	c.seen = 0
	want := make(map[uint16]bool, len(ports))
	for _, p := range ports {
		want[p] = true
	}
	var filter []byte
	if len(ports) <= maxFilterPorts && !c.noFilter {
		filter = portFilter(ports)
	}
	var got []sock
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		keep := func(s sock) { got = append(got, s) }
		err := c.dump(fam, filter, isIdle, want, keep)
		if errors.Is(err, unix.EINVAL) && filter != nil {
			// An old kernel that refuses the filter: count without it.
			c.noFilter, filter = true, nil
			err = c.dump(fam, nil, isIdle, want, keep)
		}
		if err != nil {
			return err
		}
	}
	for _, s := range got {
		f(s)
	}
	return nil
}

// sock is what a dump found: n sockets on port, idle or not.
type sock struct {
	port uint16
	idle bool
	n    int
}

// dump runs one sock_diag dump of family and, once it completed, calls
// keep with what it found on the ports of want (see each). An interrupted
// dump is retried whole; a failed one calls keep not at all.
func (c *Counter) dump(family uint8, filter []byte, isIdle func([]byte) bool, want map[uint16]bool, keep func(sock)) error {
	return c.dumpStates(family, openStates, filter, isIdle, want, keep)
}

// dumpStates is dump of the sockets in states (a mask of 1<<state).
func (c *Counter) dumpStates(family uint8, states uint32, filter []byte, isIdle func([]byte) bool, want map[uint16]bool, keep func(sock)) error {
	for try := 0; ; try++ {
		counts := map[sock]int{} // by port and idleness; kept only for a dump that completes
		req := nl.NewNetlinkRequest(nl.SOCK_DIAG_BY_FAMILY, unix.NLM_F_DUMP)
		req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_INET_DIAG: c.sh}
		req.AddData(&diagReq{family: family, info: isIdle != nil, states: states})
		if filter != nil {
			req.AddData(nl.NewRtAttr(inetDiagReqBytecode, filter))
		}
		err := req.ExecuteIter(unix.NETLINK_INET_DIAG, nl.SOCK_DIAG_BY_FAMILY, func(m []byte) bool {
			// struct inet_diag_msg: family, state, timer, retrans, then
			// the socket id starting with the source port (big-endian).
			c.seen++
			if len(m) < 6 || m[1] >= 32 || states&(1<<m[1]) == 0 {
				return true
			}
			p := binary.BigEndian.Uint16(m[4:6])
			if want[p] {
				counts[sock{port: p, idle: isIdle != nil && isIdle(m)}]++
			}
			return true
		})
		switch {
		case err == nil:
			for s, n := range counts {
				s.n = n
				keep(s)
			}
			return nil
		case errors.Is(err, nl.ErrDumpInterrupted) && try+1 < dumpRetries:
			continue
		case errors.Is(err, nl.ErrDumpInterrupted):
			return ErrInterrupted
		default:
			return fmt.Errorf("conns: sock_diag dump: %w", err)
		}
	}
}

// openStates are the states a connection counts in.
const openStates = 1<<tcpEstablished | 1<<tcpCloseWait

// Listening reports whether a socket listens on port (IPv4 or IPv6) in the
// counter's network namespace: where none does, a service's connections
// may be in another namespace (a container with a network of its own),
// where no count made here sees them.
func (c *Counter) Listening(port uint16) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sh == nil {
		return false, errors.New("conns: counter closed")
	}
	found := false
	want := map[uint16]bool{port: true}
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		var filter []byte
		if !c.noFilter {
			filter = portFilter([]uint16{port})
		}
		err := c.dumpStates(fam, 1<<tcpListen, filter, nil, want, func(sock) { found = true })
		if errors.Is(err, unix.EINVAL) && filter != nil {
			c.noFilter = true
			err = c.dumpStates(fam, 1<<tcpListen, nil, nil, want, func(sock) { found = true })
		}
		if err != nil {
			return false, err
		}
	}
	return found, nil
}

// Kernel constants (linux/inet_diag.h, net/tcp_states.h).
const (
	tcpEstablished      = 1
	tcpCloseWait        = 8
	tcpListen           = 10
	inetDiagReqBytecode = 1
	inetDiagBcJmp       = 1
	inetDiagBcSCond     = 7
	sizeofDiagReq       = 56 // struct inet_diag_req_v2
	inetDiagInfo        = 2  // the tcp_info attribute
	sizeofDiagMsg       = 72 // struct inet_diag_msg, before its attributes
)

// idleFor applies CountIdle's rule to one inet_diag_msg and its attributes.
func idleFor(m []byte, idle time.Duration) bool {
	if len(m) < sizeofDiagMsg {
		return false
	}
	ne := nl.NativeEndian()
	rqueue, wqueue := ne.Uint32(m[56:60]), ne.Uint32(m[60:64])
	if m[1] == tcpCloseWait && rqueue > 0 {
		// The peer's FIN takes a sequence number: until the service
		// reads the end of stream it is "received but unread". A
		// service that leaves it unread after answering is idle.
		rqueue--
	}
	if rqueue != 0 || wqueue != 0 {
		return false
	}
	info := diagAttr(m[sizeofDiagMsg:], inetDiagInfo)
	var ti unix.TCPInfo
	u32 := func(off uintptr) uint32 { return ne.Uint32(info[off : off+4]) }
	// The kernel's struct tcp_info only grows at its end; an older one
	// without the data segment counts (Linux 4.6) cannot tell.
	if uintptr(len(info)) < unsafe.Offsetof(ti.Data_segs_out)+4 {
		return false
	}
	ms := func(off uintptr) time.Duration { return time.Duration(u32(off)) * time.Millisecond }
	sent, recv := ms(unsafe.Offsetof(ti.Last_data_sent)), ms(unsafe.Offsetof(ti.Last_data_recv))
	switch {
	case u32(unsafe.Offsetof(ti.Unacked)) != 0:
		return false
	case u32(unsafe.Offsetof(ti.Data_segs_in)) != 0 && u32(unsafe.Offsetof(ti.Data_segs_out)) == 0:
		// The peer spoke and the service never answered: the first
		// request is being served (it may have come in the very tick of
		// the accept, where sent and recv below are equal).
		return false
	}
	// Both times are in kernel ticks: equal when the answer left in the
	// tick its request came in, the common case for a quick response.
	return sent >= idle && recv >= idle && sent <= recv
}

// diagAttr returns the payload of the first netlink attribute of type typ
// in b, or nil.
func diagAttr(b []byte, typ uint16) []byte {
	ne := nl.NativeEndian()
	for len(b) >= 4 {
		l, t := int(ne.Uint16(b[0:2])), ne.Uint16(b[2:4])
		if l < 4 || l > len(b) {
			return nil
		}
		if t == typ {
			return b[4:l]
		}
		next := (l + 3) &^ 3
		if next >= len(b) {
			return nil
		}
		b = b[next:]
	}
	return nil
}

// diagReq is struct inet_diag_req_v2 asking for TCP sockets in states
// (ESTABLISHED or CLOSE-WAIT unless set), with no socket id, and with
// tcp_info when info is set.
type diagReq struct {
	family uint8
	info   bool
	states uint32 // a mask of 1<<state; 0: ESTABLISHED and CLOSE-WAIT
}

func (r *diagReq) Len() int { return sizeofDiagReq }

func (r *diagReq) Serialize() []byte {
	b := make([]byte, sizeofDiagReq)
	b[0] = r.family
	b[1] = unix.IPPROTO_TCP
	if r.info {
		b[2] = 1 << (inetDiagInfo - 1) // idiag_ext
	}
	states := r.states
	if states == 0 {
		states = openStates
	}
	nl.NativeEndian().PutUint32(b[4:8], states)
	return b
}

// portFilter is the inet_diag bytecode for "local port is one of ports",
// built as ss builds an OR: for each port a source-port test (a hostcond of
// family AF_UNSPEC and prefix 0, so only the port is compared) whose yes
// goes to a jump to the end (accept) and whose no skips that jump to the
// next test; the last test's no lands past the end (reject).
//
//	S_COND(p1) yes→JMP no→S_COND(p2)
//	JMP → end
//	...
//	S_COND(pn) yes→end no→end+4
func portFilter(ports []uint16) []byte {
	const cond = 4 + 8 // inet_diag_bc_op + inet_diag_hostcond without address
	const jmp = 4
	total := len(ports)*cond + (len(ports)-1)*jmp
	b := make([]byte, 0, total)
	ne := nl.NativeEndian()
	for i, p := range ports {
		op := make([]byte, cond)
		op[0] = inetDiagBcSCond
		op[1] = cond                      // yes: the next op (the jump, or the end)
		ne.PutUint16(op[2:4], cond+jmp)   // no: skip the jump (past the end for the last)
		op[4] = unix.AF_UNSPEC            // hostcond.family
		op[5] = 0                         // hostcond.prefix_len
		ne.PutUint32(op[8:12], uint32(p)) // hostcond.port (int)
		b = append(b, op...)
		if i < len(ports)-1 {
			rest := total - len(b) // bytes from this jump to the end
			j := make([]byte, jmp)
			j[0] = inetDiagBcJmp
			j[1] = jmp
			ne.PutUint16(j[2:4], uint16(rest))
			b = append(b, j...)
		}
	}
	return b
}
