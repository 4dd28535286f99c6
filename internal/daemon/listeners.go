//go:build linux

package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/rs/zerolog"
)

// Names of the sockets systemd may pass us (FileDescriptorName= in the
// .socket units).
const (
	listenerHTTP  = "http"
	listenerAgent = "agent"
	listenerPages = "pages"
)

// listeners are the sockets systemd passed us (LISTEN_FDS, LISTEN_FDNAMES),
// by name. Each responder takes its own with [listeners.listen]; sockets
// nobody takes are reported and closed by [listeners.closeUnused].
//
// While systemd holds a listening socket, a restart of the daemon refuses no
// connection: the kernel queues them in the socket's backlog until the next
// process accepts.
type listeners struct {
	byName map[string]net.Listener
	taken  map[net.Listener]bool // the passed sockets handed out
}

// inheritListeners takes the listening sockets systemd passed, if any, and
// unsets LISTEN_* so children do not see them. Unlike
// activation.ListenersWithNames, which silently drops a descriptor that is
// not a listening socket, it fails on such a descriptor and on two sockets
// with the same name.
func inheritListeners() (*listeners, error) {
	l := &listeners{byName: map[string]net.Listener{}}
	var errs []error
	for _, f := range activation.Files(true) {
		fd := f.Fd()
		ln, err := fileListener(f, fd)
		f.Close()
		switch {
		case err != nil:
			errs = append(errs, err)
		case l.byName[f.Name()] != nil:
			ln.Close()
			errs = append(errs, fmt.Errorf("systemd socket %q (fd %d): a second socket with that name; give each ListenStream= its own FileDescriptorName=", f.Name(), fd))
		default:
			l.byName[f.Name()] = ln
		}
	}
	if err := errors.Join(errs...); err != nil {
		l.closeUnused(zerolog.Nop())
		return nil, err
	}
	return l, nil
}

// fileListener checks that f is a listening stream socket and wraps it.
func fileListener(f *os.File, fd uintptr) (net.Listener, error) {
	accepting, serr := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
	if serr != nil {
		return nil, fmt.Errorf("systemd socket %q (fd %d): not a socket: %w", f.Name(), fd, serr)
	}
	if accepting == 0 {
		return nil, fmt.Errorf("systemd socket %q (fd %d): not a listening socket (want ListenStream= and Accept=no)", f.Name(), fd)
	}
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("systemd socket %q (fd %d): %w", f.Name(), fd, err)
	}
	return ln, nil
}

// listen returns the socket systemd passed under name, or else a new TCP
// listener on addr. For "http" a single socket with a name we do not know
// (systemd names it after the .socket unit when FileDescriptorName= is
// missing) counts too.
func (l *listeners) listen(name, addr string, log zerolog.Logger) (net.Listener, error) {
	return l.listenWith(name, addr, log, nil)
}

// listenWith is listen with the bind function for an address of our own.
func (l *listeners) listenWith(name, addr string, log zerolog.Logger, bind func(addr string) (net.Listener, error)) (net.Listener, error) {
	if ln := l.take(name); ln != nil {
		log.Info().Str("listener", name).Str("addr", ln.Addr().String()).Msg("using the socket passed by systemd")
		return ln, nil
	}
	if name == listenerHTTP && len(l.byName) == 1 {
		for other := range l.byName {
			if other != listenerAgent && other != listenerPages {
				ln := l.take(other)
				log.Info().Str("listener", name).Str("fdname", other).Str("addr", ln.Addr().String()).Msg("using the only socket passed by systemd")
				return ln, nil
			}
		}
	}
	if len(l.byName) > 0 {
		log.Warn().Str("listener", name).Str("addr", addr).Msg("systemd passed sockets but none named " + name + "; binding the address from the flags")
	}
	if bind == nil {
		bind = func(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
	}
	ln, err := bind(addr)
	if err != nil {
		return nil, fmt.Errorf("listen for %s on %s: %w", name, addr, err)
	}
	return ln, nil
}

func (l *listeners) take(name string) net.Listener {
	ln := l.byName[name]
	delete(l.byName, name)
	if ln != nil {
		if l.taken == nil {
			l.taken = map[net.Listener]bool{}
		}
		l.taken[ln] = true
	}
	return ln
}

// passed reports whether ln is a socket systemd passed.
func (l *listeners) passed(ln net.Listener) bool { return l.taken[ln] }

// flagsVsSocket compares a socket systemd passed with the address the
// command line set explicitly (ipSet, portSet: the flags were given; ipFlag
// and portFlag name them). The passed socket wins, as socket activation
// wants (systemd holds it across restarts, and may have bound a port we
// could not); but an operator who wrote "-i 0.0.0.0" expects remote load
// balancers to reach us, so a disagreement is said loudly. It returns the
// warning for the log and a short form for systemd's STATUS line, or "".
func flagsVsSocket(name string, got net.Addr, ip string, ipSet bool, ipFlag string, port int, portSet bool, portFlag string) (warning, short string) {
	ta, ok := got.(*net.TCPAddr)
	if !ok {
		return "", ""
	}
	gotIP, _ := netip.AddrFromSlice(ta.IP)
	gotIP = gotIP.Unmap()
	var differ []string
	if ipSet {
		want, err := netip.ParseAddr(strings.Trim(ip, "[]"))
		if err != nil || want.Unmap() != gotIP {
			differ = append(differ, ipFlag+" "+ip)
		}
	}
	if portSet && port != 0 && port != ta.Port {
		differ = append(differ, portFlag+" "+strconv.Itoa(port))
	}
	if len(differ) == 0 {
		return "", ""
	}
	flags := strings.Join(differ, " ")
	warning = fmt.Sprintf("systemd passed the %s socket %s, but the command line says %s: the passed socket is used, those flags are ignored for it; "+
		"to listen elsewhere change ListenStream= in the socket unit with a drop-in (systemctl edit http_status.socket, see README \"Socket activation\")",
		name, ta, flags)
	short = fmt.Sprintf("WARNING: %s on %s from systemd, not %s (edit the socket unit)", name, ta, flags)
	return warning, short
}

// closeUnused closes the sockets nobody took. Connections to them would wait
// in the backlog forever, so each one is a warning.
func (l *listeners) closeUnused(log zerolog.Logger) {
	names := make([]string, 0, len(l.byName))
	for name := range l.byName {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ln := l.byName[name]
		log.Warn().Str("fdname", name).Str("addr", ln.Addr().String()).Msg("systemd passed a socket nothing here uses; closing our copy")
		ln.Close()
		delete(l.byName, name)
	}
}

// has reports whether systemd passed a socket named name.
func (l *listeners) has(name string) bool {
	_, ok := l.byName[name]
	return ok
}

// pagesVsSocket is flagsVsSocket for --pages, whose one value names both
// the address and the port (or "port", the check port).
func pagesVsSocket(got net.Addr, pages string) (warning, short string) {
	ta, ok := got.(*net.TCPAddr)
	if !ok {
		return "", ""
	}
	if host, port, err := net.SplitHostPort(pages); err == nil {
		want, err := netip.ParseAddr(host)
		gotIP, _ := netip.AddrFromSlice(ta.IP)
		if err == nil && want.Unmap() == gotIP.Unmap() && (port == "0" || port == strconv.Itoa(ta.Port)) {
			return "", ""
		}
	}
	warning = fmt.Sprintf("systemd passed the pages socket %s, but the command line says --pages %s: the passed socket is used, the flag is ignored for it; "+
		"to serve the pages elsewhere change ListenStream= in the pages socket unit, or remove that unit (see README \"Socket activation\")", ta, pages)
	short = fmt.Sprintf("WARNING: pages on %s from systemd, not --pages %s (edit the socket unit)", ta, pages)
	return warning, short
}
