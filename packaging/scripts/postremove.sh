#!/bin/sh
# http_status package: .deb postrm and .rpm %postun.
#   deb: $1 = remove, purge, upgrade, ...; rpm: $1 = 0 on removal, 1 on an
#   upgrade.
# Remove keeps the configuration (/etc/default/http_status) and the flags
# in /var/run/http_status, and marks the removal in /var/lib/http-status
# (see postinstall); purge (.deb) removes them, the SysV runlevel links
# and the log. The http_status user and group are kept (files elsewhere may
# belong to them), as Debian does for system users.
set -e

case "$1" in
remove)
	# For postinstall, should the package be installed again (.deb only:
	# rpm -e forgets the package, and its %post sees a first install).
	mkdir -p /var/lib/http-status && : >/var/lib/http-status/removed
	if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
	;;
0)
	if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
	;;
purge)
	rm -rf /var/lib/http-status
	if command -v update-rc.d >/dev/null 2>&1; then
		update-rc.d http_status remove >/dev/null || true
	fi
	rm -rf /var/run/http_status
	rm -f /run/http_status.pid /var/log/http_status.log /var/log/http_status.log.*
	if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
	;;
esac
exit 0
