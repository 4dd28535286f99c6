#!/bin/sh
# Active parent health for Apache Traffic Server, from http_status.
#
# Polls each parent's http_status and marks the parent down or up in Traffic
# Server with "traffic_ctl host". Run it on every Traffic Server host (a
# systemd service, or a loop under your supervisor):
#
#   http_status-parent-check.sh parent1.example.com parent2.example.com
#
# Environment: HTTP_STATUS_PORT (8001), HTTP_STATUS_SERVICE (ats),
# HTTP_STATUS_SERVICE_PORT (80), INTERVAL seconds (5); ONCE=1 makes one
# pass over the parents and exits, non-zero when a traffic_ctl call failed
# (for a cron job or a systemd timer instead of the loop; the tests run it
# so). TS_RUNROOT, if set, is passed on to traffic_ctl.
# Only 200 counts as up: drain (404), maint and down (503) and an
# unreachable http_status all mark the parent down for new requests.
# Checked by the tests with Traffic Server 9.2 (TestContribTrafficServer).

port=${HTTP_STATUS_PORT:-8001}
service=${HTTP_STATUS_SERVICE:-ats}
sport=${HTTP_STATUS_SERVICE_PORT:-80}
interval=${INTERVAL:-5}
once=${ONCE:-0}

[ $# -gt 0 ] || { echo "usage: $0 PARENT..." >&2; exit 2; }

while :; do
    rc=0
    for host in "$@"; do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
            "http://$host:$port/status?SERVICE=$service&PORT=$sport")
        if [ "$code" = 200 ]; then
            traffic_ctl host up --reason active "$host" >/dev/null || rc=1
        else
            traffic_ctl host down --reason active "$host" >/dev/null || rc=1
        fi
    done
    [ "$once" = 1 ] && exit "$rc"
    sleep "$interval"
done
