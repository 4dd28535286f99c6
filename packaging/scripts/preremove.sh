#!/bin/sh
# http_status package: .deb prerm and .rpm %preun.
#   deb: $1 = remove (or upgrade, deconfigure, failed-upgrade);
#   rpm: $1 = 0 on removal, 1 on an upgrade.
# On removal only (an upgrade restarts in postinstall instead): stop the
# service and, under systemd, disable the units. Without systemd the SysV
# runlevel links stay until purge, like the config file (a "systemctl
# disable" there would turn them into K links through systemd-sysv-install,
# and a reinstall would then not start at boot).
set -e

case "$1" in
remove | deconfigure | 0) ;;
*) exit 0 ;;
esac

if [ -d /run/systemd/system ]; then
	systemctl stop http_status.service http_status.socket || true
	systemctl --quiet disable http_status.service http_status.socket || true
fi
# A daemon started by the SysV init script (stopping is always allowed, so
# not through invoke-rc.d and policy-rc.d).
if [ -x /etc/init.d/http_status ] && [ -s /run/http_status.pid ]; then
	/etc/init.d/http_status stop || true
fi
exit 0
