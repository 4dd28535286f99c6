#!/bin/sh
# http_status package: .deb postinst and .rpm %post.
#   deb: $1 = configure, $2 = the version configured before ("" on a first
#        install); rpm: $1 = 1 on a first install, 2 or more on an upgrade.
# Creates the user and the status directory, then (re)starts the service:
# with systemd running, enable and start the units on a first install and
# try-restart the service on an upgrade (the socket stays open, and
# RuntimeDirectoryPreserve=yes keeps the status directory and its flags);
# without systemd, the same with the SysV init script (.deb only).
# Starting goes through deb-systemd-invoke/invoke-rc.d when present, so a
# policy-rc.d that forbids starting services (containers, chroots) is
# obeyed. A failed start is reported, not fatal.
set -e

# A .deb removed (not purged) and installed again is configured with the
# version it had ($2), like an upgrade, but its prerm stopped the service
# and disabled the units: postremove leaves a mark so that this counts as
# an install (enable, start) rather than an upgrade (try-restart, which
# would leave it stopped).
removed=/var/lib/http-status/removed
case "$1" in
configure)
	if [ -z "$2" ] || [ -e "$removed" ]; then action=install; else action=upgrade; fi
	rm -f "$removed"
	rmdir /var/lib/http-status 2>/dev/null || true
	;;
1) action=install ;;
[0-9]*) action=upgrade ;;
*) exit 0 ;;
esac

warn() { echo "http_status: $*" >&2; }

# The system user and group (same definition as the sysusers.d file).
if ! getent passwd http_status >/dev/null 2>&1; then
	if command -v systemd-sysusers >/dev/null 2>&1; then
		systemd-sysusers /usr/lib/sysusers.d/http_status.conf
	else
		nologin=$(command -v nologin || echo /bin/false)
		getent group http_status >/dev/null 2>&1 || groupadd -r http_status
		useradd -r -g http_status -d / -M -s "$nologin" -c "http_status health-check responder" http_status
	fi
fi

# The status directory, owned by http_status, mode 0775 (tmpfiles.d makes
# it again at each boot). An existing directory keeps its flags.
if command -v systemd-tmpfiles >/dev/null 2>&1; then
	systemd-tmpfiles --create /usr/lib/tmpfiles.d/http_status.conf || warn "systemd-tmpfiles failed"
fi
# Without systemd, the directory the daemon, the SysV script and the
# control command default to (the same one where /var/run links to /run).
if [ ! -d /var/run/http_status ]; then
	install -d -o http_status -g http_status -m 0775 /var/run/http_status
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	if [ "$action" = install ]; then
		systemctl enable http_status.socket http_status.service || warn "systemctl enable failed"
		if command -v deb-systemd-invoke >/dev/null 2>&1; then
			deb-systemd-invoke start http_status.socket http_status.service || warn "start failed: see systemctl status http_status"
		else
			systemctl start http_status.socket http_status.service || warn "start failed: see systemctl status http_status"
		fi
	else
		if command -v deb-systemd-invoke >/dev/null 2>&1; then
			deb-systemd-invoke try-restart http_status.service || warn "restart failed: see systemctl status http_status"
		else
			systemctl try-restart http_status.service || warn "restart failed: see systemctl status http_status"
		fi
	fi
elif [ -x /etc/init.d/http_status ]; then
	if [ "$action" = install ]; then
		if command -v update-rc.d >/dev/null 2>&1; then
			update-rc.d http_status defaults >/dev/null || warn "update-rc.d failed"
		elif command -v chkconfig >/dev/null 2>&1; then
			chkconfig --add http_status || warn "chkconfig failed"
		fi
		initaction=start
	else
		initaction=try-restart
	fi
	if command -v invoke-rc.d >/dev/null 2>&1; then
		rc=0
		invoke-rc.d http_status "$initaction" || rc=$?
		# 101: policy-rc.d forbids starting services here.
		[ $rc -eq 0 ] || [ $rc -eq 101 ] || warn "$initaction failed ($rc): see /var/log/http_status.log"
	else
		/etc/init.d/http_status "$initaction" || warn "$initaction failed: see /var/log/http_status.log"
	fi
fi
exit 0
