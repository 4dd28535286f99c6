//go:build linux

package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/rs/zerolog"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/watcher"
)

// heartbeatMaxAge is how old the watcher loop's heartbeat may be for us to
// keep pinging systemd's watchdog. The loop turns at least every 250 ms, so
// three seconds without a turn means it is stuck (or starved); systemd then
// restarts us WatchdogSec= after the last ping.
const heartbeatMaxAge = 3 * time.Second

// minPingEvery is the shortest time between two watchdog pings, whatever
// WATCHDOG_USEC says.
const minPingEvery = 50 * time.Millisecond

// reloadTimeout bounds how long a SIGHUP waits for the rescan before it
// reports READY=1 again.
const reloadTimeout = 10 * time.Second

// notifier speaks sd_notify(3) to systemd. Without NOTIFY_SOCKET every
// message is a no-op (go-systemd returns false, nil), so the daemon behaves
// the same under systemd, SysV init or a terminal.
//
// Its methods are safe for concurrent use.
type notifier struct {
	log     zerolog.Logger
	failing atomic.Bool // a send failed; log again only after a success
	status  atomic.Pointer[string]
	// notify delivers one message: go-systemd's SdNotify, or a recorder in
	// tests that run the supervisor on a fake clock.
	notify  func(state string) (sent bool, err error)
	warning atomic.Pointer[string] // leads every STATUS= line when set
	conn    *notifyConn            // nil without NOTIFY_SOCKET
}

// warn puts w (a configuration problem the operator must see) at the start
// of every STATUS= line from now on; "" clears it.
func (n *notifier) warn(w string) { n.warning.Store(&w) }

func newNotifier(log zerolog.Logger) *notifier {
	nc := newNotifyConn(os.Getenv("NOTIFY_SOCKET"))
	return &notifier{log: log, notify: nc.send, conn: nc}
}

// close releases the socket to systemd (Run's end: tests run many daemons
// in one process).
func (n *notifier) close() { n.conn.close() }

// notifyConn is one socket to NOTIFY_SOCKET, opened when the daemon starts
// and kept. go-systemd's SdNotify opens a socket for every message: a
// daemon out of file descriptors (a connection flood under a low
// LimitNOFILE=) could then neither report READY=1 nor ping the watchdog,
// and systemd would kill it while it still answers checks truthfully.
type notifyConn struct {
	mu   sync.Mutex
	addr *net.UnixAddr
	c    *net.UnixConn // nil until a dial succeeds
}

// notifyWriteTimeout bounds a send to a systemd that does not read its
// socket: the supervisor must not hang on it.
const notifyWriteTimeout = time.Second

// newNotifyConn dials name now, so the descriptor is held from the start;
// a failed dial is retried at the first send. "" (not under systemd): nil,
// whose send is a no-op.
func newNotifyConn(name string) *notifyConn {
	if name == "" {
		return nil
	}
	nc := &notifyConn{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}
	nc.c, _ = net.DialUnix("unixgram", nil, nc.addr)
	return nc
}

func (nc *notifyConn) close() {
	if nc == nil {
		return
	}
	nc.mu.Lock()
	defer nc.mu.Unlock()
	if nc.c != nil {
		nc.c.Close()
		nc.c = nil
	}
}

// send writes one message, as SdNotify does: sent is false without
// NOTIFY_SOCKET. A write that fails (the socket was re-created: systemd
// re-executed itself) is tried once more on a fresh socket.
func (nc *notifyConn) send(state string) (sent bool, err error) {
	if nc == nil {
		return false, nil
	}
	nc.mu.Lock()
	defer nc.mu.Unlock()
	for try := 0; ; try++ {
		if nc.c == nil {
			if nc.c, err = net.DialUnix("unixgram", nil, nc.addr); err != nil {
				nc.c = nil
				return false, err
			}
		}
		_ = nc.c.SetWriteDeadline(time.Now().Add(notifyWriteTimeout))
		if _, err = nc.c.Write([]byte(state)); err == nil {
			return true, nil
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The reader is behind (its queue holds
			// net.unix.max_dgram_qlen messages): a new socket would
			// wait on the same queue. Drop this one message.
			return false, fmt.Errorf("send to %s (its reader is behind): %w", nc.addr.Name, err)
		}
		nc.c.Close()
		nc.c = nil
		if try == 1 {
			return false, err
		}
	}
}

// notifyMessage joins assignments into one sd_notify message, one per line.
// Empty parts are dropped and each part's trailing newline trimmed
// (go-systemd's SdNotifyMonotonicUsec ends in one), so the message never
// holds an empty line.
func notifyMessage(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		p = strings.TrimRight(p, "\n")
		if p == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p)
	}
	return b.String()
}

// send writes one notification; state holds newline-separated assignments.
func (n *notifier) send(state string) {
	sent, err := n.notify(state)
	if err != nil {
		if !n.failing.Swap(true) {
			n.log.Warn().Err(err).Str("msg", strings.SplitN(state, "\n", 2)[0]).Msg("sd_notify failed")
		}
		return
	}
	if sent && n.failing.Swap(false) {
		n.log.Info().Msg("sd_notify works again")
	}
}

// statusLine is STATUS=summary (after the warning, if any), remembered so
// supervise sends only changes.
func (n *notifier) statusLine(summary string) string {
	n.status.Store(&summary)
	if w := n.warning.Load(); w != nil && *w != "" {
		return "STATUS=" + *w + "; " + summary
	}
	return "STATUS=" + summary
}

// ready sends READY=1 with the current summary.
func (n *notifier) ready(store *cache.Store) {
	n.send(notifyMessage(daemon.SdNotifyReady, n.statusLine(store.Load().Summary(time.Now()))))
}

// stopping sends STOPPING=1.
func (n *notifier) stopping() {
	n.send(notifyMessage(daemon.SdNotifyStopping, "STATUS=stopping"))
}

// reload is SIGHUP: RELOADING=1, a full rescan of the directory and the
// addresses (the watcher logs each change it finds), then READY=1 once the
// rescan is done or reloadTimeout passed.
func (n *notifier) reload(ctx context.Context, w *watcher.Watcher, store *cache.Store) {
	n.send(notifyMessage(daemon.SdNotifyReloading, daemon.SdNotifyMonotonicUsec(), "STATUS=reloading"))
	deadline := time.NewTimer(reloadTimeout)
	defer deadline.Stop()
	select {
	case <-w.Rescan(): // published: READY=1 reports the rescanned state
	case <-ctx.Done():
		return
	case <-deadline.C:
		n.log.Warn().Dur("waited", reloadTimeout).Msg("reload: the rescan did not finish in time")
	}
	summary := store.Load().Summary(time.Now())
	n.send(notifyMessage(daemon.SdNotifyReady, n.statusLine(summary)))
	n.log.Info().Str("state", summary).Msg("reload done")
}

// supervise runs until ctx is done. Every second it sends STATUS= when the
// summary changed. When watchdog > 0 (WATCHDOG_USEC) it also sends
// WATCHDOG=1 every watchdog/2, but only while heartbeat (the watcher loop's
// last turn) is younger than maxAge: a stuck loop stops the pings and systemd
// restarts us.
func (n *notifier) supervise(ctx context.Context, store *cache.Store, heartbeatAge func() time.Duration, watchdog, maxAge time.Duration) {
	status := time.NewTicker(time.Second)
	defer status.Stop()
	var pings <-chan time.Time
	if watchdog > 0 {
		every := watchdog / 2
		if every < minPingEvery {
			// WATCHDOG_USEC=1 would make a busy loop flooding systemd
			// with pings (hundreds of thousands a second).
			every = minPingEvery
			n.log.Warn().Dur("interval", watchdog).Dur("ping_every", every).
				Msg("systemd watchdog interval too short to honour: pinging every " + every.String() + "; set WatchdogSec= to a few seconds (the watcher loop is judged stuck after " + heartbeatMaxAge.String() + ")")
		}
		t := time.NewTicker(every)
		defer t.Stop()
		pings = t.C
		n.log.Info().Dur("interval", watchdog).Msg("systemd watchdog enabled")
	}
	gen := store.Load().Generation()
	stuck := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-status.C:
			s := store.Load()
			if s.Generation() == gen {
				continue
			}
			gen = s.Generation()
			summary := s.Summary(time.Now())
			if old := n.status.Load(); old == nil || *old != summary {
				n.send(n.statusLine(summary))
			}
		case <-pings:
			age := heartbeatAge()
			if age < maxAge {
				if stuck {
					n.log.Warn().Dur("age", age).Msg("watcher loop alive again; watchdog pings resume")
					stuck = false
				}
				n.send(daemon.SdNotifyWatchdog)
				continue
			}
			if !stuck {
				n.log.Error().Dur("age", age).Msg("watcher loop stuck; no more watchdog pings, systemd will restart us")
				stuck = true
			}
		}
	}
}

// watchdogInterval is WATCHDOG_USEC when it is meant for this process.
func watchdogInterval(log zerolog.Logger) time.Duration {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn().Err(err).Msg("ignoring WATCHDOG_USEC")
		return 0
	}
	return d
}
