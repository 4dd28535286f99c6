//go:build linux

package conns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Counter counts ESTABLISHED TCP connections, IPv4 and IPv6, by local port,
// through the kernel's sock_diag netlink interface (what ss uses). It needs
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
// established socket and the ports are picked out here.
const maxFilterPorts = 64

// dumpRetries is how often an interrupted dump (the socket table changed
// under it: NLM_F_DUMP_INTR) is retried before the count is reported as an
// error. An interrupted dump may miss or repeat sockets, and a drain must
// never read a missed connection as zero.
const dumpRetries = 3

// ErrInterrupted is returned when every dump was interrupted by changes to
// the socket table; the counts are unknown.
var ErrInterrupted = errors.New("conns: sock_diag dump interrupted repeatedly")

// Count returns, for each port in ports, the number of ESTABLISHED TCP
// sockets (IPv4 and IPv6) whose local port it is. Every port asked is in
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
	if c.sh == nil {
		return nil, errors.New("conns: counter closed")
	}
	c.seen = 0
	var filter []byte
	if len(ports) <= maxFilterPorts && !c.noFilter {
		filter = portFilter(ports)
	}
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		n, err := c.dump(fam, filter, out)
		if errors.Is(err, unix.EINVAL) && filter != nil {
			// An old kernel that refuses the filter: count without it.
			c.noFilter, filter = true, nil
			n, err = c.dump(fam, nil, out)
		}
		if err != nil {
			return nil, err
		}
		for p, k := range n {
			out[p] += k
		}
	}
	return out, nil
}

// dump runs one sock_diag dump of family and tallies the sockets on the
// ports of want (its keys).
func (c *Counter) dump(family uint8, filter []byte, want map[uint16]int) (map[uint16]int, error) {
	for try := 0; ; try++ {
		n := map[uint16]int{}
		req := nl.NewNetlinkRequest(nl.SOCK_DIAG_BY_FAMILY, unix.NLM_F_DUMP)
		req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_INET_DIAG: c.sh}
		req.AddData(&diagReq{family: family})
		if filter != nil {
			req.AddData(nl.NewRtAttr(inetDiagReqBytecode, filter))
		}
		err := req.ExecuteIter(unix.NETLINK_INET_DIAG, nl.SOCK_DIAG_BY_FAMILY, func(m []byte) bool {
			// struct inet_diag_msg: family, state, timer, retrans, then
			// the socket id starting with the source port (big-endian).
			c.seen++
			if len(m) < 6 || m[1] != tcpEstablished {
				return true
			}
			p := binary.BigEndian.Uint16(m[4:6])
			if _, ok := want[p]; ok {
				n[p]++
			}
			return true
		})
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, nl.ErrDumpInterrupted) && try+1 < dumpRetries:
			continue
		case errors.Is(err, nl.ErrDumpInterrupted):
			return nil, ErrInterrupted
		default:
			return nil, fmt.Errorf("conns: sock_diag dump: %w", err)
		}
	}
}

// Kernel constants (linux/inet_diag.h, net/tcp_states.h).
const (
	tcpEstablished      = 1
	inetDiagReqBytecode = 1
	inetDiagBcJmp       = 1
	inetDiagBcSCond     = 7
	sizeofDiagReq       = 56 // struct inet_diag_req_v2
)

// diagReq is struct inet_diag_req_v2 asking for TCP sockets in
// ESTABLISHED, with no extensions and no socket id.
type diagReq struct{ family uint8 }

func (r *diagReq) Len() int { return sizeofDiagReq }

func (r *diagReq) Serialize() []byte {
	b := make([]byte, sizeofDiagReq)
	b[0] = r.family
	b[1] = unix.IPPROTO_TCP
	nl.NativeEndian().PutUint32(b[4:8], 1<<tcpEstablished)
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
