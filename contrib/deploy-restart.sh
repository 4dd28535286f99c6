#!/bin/sh
# deploy-restart.sh SERVICE PORT
#
# Restart a service behind a load balancer without cutting anyone off:
#
#   1. drain it and wait until its connections are gone (at most DRAIN_WAIT),
#      then maint: the load balancer sends it nothing new, and the clients
#      it had have finished;
#   2. restart it (RESTART_CMD, default "systemctl restart SERVICE", which
#      returns once a Type=notify service is ready);
#   3. wait until READY_CMD succeeds, when set (at most READY_WAIT seconds),
#      then activate it: back in rotation (probes, if configured, still
#      gate it).
#
# When the drain does not finish in time the service is left in drain, it
# is not restarted, and the script exits 1: look at who is still connected
# (http_status list, ss -tn state established state close-wait '( sport = :PORT )'), then
# rerun or raise DRAIN_WAIT. It never escalates on its own. A status
# directory that stops answering (a hung NFS or FUSE mount) fails the drain
# within 10 s (http_status --io-timeout): exit 1, not restarted.
#
# Environment: HTTP_STATUS_BIN (http_status), HTTP_STATUS_DIR
# (/var/run/http_status), REASON (deploy), DRAIN_WAIT (5m), MIN_WAIT (5s:
# time for the load balancer to see the drain), DRAIN_IDLE (unset: every
# connection counts; a duration D: connections idle for D, a balancer's
# pooled ones, do not: drain --idle, see README "Behind balancers that
# keep idle connections"), RESTART_CMD, READY_CMD, READY_WAIT (60).
set -eu

usage="usage: deploy-restart.sh SERVICE PORT"
name=${1:?$usage}
port=${2:?$usage}
bin=${HTTP_STATUS_BIN:-http_status}
dir=${HTTP_STATUS_DIR:-/var/run/http_status}
reason=${REASON:-deploy}
restart=${RESTART_CMD:-systemctl restart "$name"}

set -- --wait "${DRAIN_WAIT:-5m}" --min-wait "${MIN_WAIT:-5s}" --then maint
if [ -n "${DRAIN_IDLE:-}" ]; then
	set -- "$@" --idle "$DRAIN_IDLE"
fi
if ! "$bin" drain "$name" --port "$port" --dir "$dir" --reason "$reason" "$@"; then
	echo "deploy-restart: $name.$port not drained: left as it is, not restarted" >&2
	exit 1
fi

echo "deploy-restart: restarting $name"
sh -c "$restart"

if [ -n "${READY_CMD:-}" ]; then
	i=0
	until sh -c "$READY_CMD" >/dev/null 2>&1; do
		i=$((i + 1))
		if [ "$i" -ge "${READY_WAIT:-60}" ]; then
			echo "deploy-restart: $name not ready after ${READY_WAIT:-60}s: left in maint" >&2
			exit 1
		fi
		sleep 1
	done
fi

"$bin" activate "$name" --port "$port" --dir "$dir"
