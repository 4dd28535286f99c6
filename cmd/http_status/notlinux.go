//go:build !linux

// http_status is Linux-only by design: it watches the status directory
// with inotify, the addresses with netlink, serves from epoll event loops
// and speaks systemd's protocols. Building it elsewhere stops here, with
// this name as the error.
package main

var _ = http_status_is_Linux_only_inotify_netlink_epoll
