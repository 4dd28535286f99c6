#!/usr/bin/env bash
# Syscalls per request: runs http_status under strace -f while wrk loads
# /status (keep-alive with a VIP lookup, then one connection per request),
# prints a summary of the syscalls made during the load (count and per
# request), and exits 1 if any file syscall (open, stat, access, readlink,
# getdents, ...) or any netlink socket activity shows up during the load:
# the design says no request touches the disk or asks the kernel for
# addresses. The same is done to nginx serving a static file, as a control
# that shows the check does catch file syscalls (nginx opens the file on
# every request); the control never fails the script.
#
#   bench/syscalls.sh                 # DURATION=2s per load
# Environment: DURATION=2s, CONNS=8, CONTROL=0 skips the nginx control,
#   ENGINES="fast net/http" when the daemon has --engine, KEEP=1 keeps the traces.
#
# strace follows the daemon from its start (so no ptrace attach rights are
# needed) with -tt timestamps; only lines stamped inside the load window
# count. strace slows every syscall a lot: the request rates printed here
# mean nothing, only the counts per request do.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
DURATION=${DURATION:-2s}
CONNS=${CONNS:-8}
CONTROL=${CONTROL:-1}
for tool in strace wrk curl go; do
  command -v "$tool" >/dev/null || { echo "syscalls.sh: $tool not found" >&2; exit 2; }
done

T=$(mktemp -d "${TMPDIR:-/tmp}/http_status-syscalls.XXXXXX")
chmod 755 "$T"
PIDS=()
cleanup() {
  local p c
  # strace runs each server as its child: stop the server, strace follows.
  for p in "${PIDS[@]}"; do
    for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do kill "$c" 2>/dev/null || true; done
  done
  sleep 0.2
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

NAME=syscalls.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh # after the cd to the repository root
now() { date +%H:%M:%S.%6N; }

# load NAME URL...: runs wrk on each URL (keep-alive for the first, one
# connection per request for the second), records the window and the
# number of requests served.
load() {
  local name=$1 i=0 url hdr
  shift
  echo "$(now)" >"$T/$name.start"
  : >"$T/$name.requests"
  for url in "$@"; do
    hdr=()
    [ $((i % 2)) = 1 ] && hdr=(-H 'Connection: close')
    wrk -t1 -c"$CONNS" -d"$DURATION" "${hdr[@]}" "$url" >"$T/$name.wrk$i" 2>&1 || true
    awk '/requests in/ { print $1 }' "$T/$name.wrk$i" >>"$T/$name.requests"
    i=$((i + 1))
  done
  echo "$(now)" >"$T/$name.end"
}

# report NAME STRICT: summarises the trace lines inside the window; with
# STRICT=1 returns 1 when file syscalls or netlink activity appear.
report() {
  local name=$1 strict=$2 limit=${3:-20} start end reqs
  start=$(cat "$T/$name.start") end=$(cat "$T/$name.end")
  reqs=$(awk '{ s += $1 } END { print s + 0 }' "$T/$name.requests")
  echo
  echo "== $name: syscalls during the load ($reqs requests, $start to $end)"
  # Trace lines: "PID HH:MM:SS.us name(args...) = ret" or "<... name resumed>".
  awk -v s="$start" -v e="$end" '$2 >= s && $2 <= e' "$T/$name.trace" >"$T/$name.window"
  awk -v reqs="$reqs" '
    $3 ~ /^[a-z_0-9]+\(/ { n = $3; sub(/\(.*/, "", n); c[n]++; tot++ }
    END {
      printf "  %-20s %10s %12s\n", "syscall", "calls", "per request"
      for (k in c) printf "  %-20s %10d %12.3f\n", k, c[k], (reqs > 0 ? c[k] / reqs : 0) | "sort -k2,2nr"
      close("sort -k2,2nr")
      printf "  %-20s %10d %12.3f\n", "total", tot, (reqs > 0 ? tot / reqs : 0)
    }' "$T/$name.window"
  local filere='^(open|openat|openat2|creat|stat|lstat|fstatat64|newfstatat|statx|access|faccessat|faccessat2|readlink|readlinkat|getdents|getdents64|inotify_add_watch|mkdir|mkdirat|unlink|unlinkat|rename|renameat|renameat2|truncate|chdir|execve)$'
  # Background, not requests: the watcher looks at the status directory's
  # path and its parent once a tick (250 ms: mounts and symlink swaps make
  # no inotify event), and the Go runtime looks at the CPU count and cgroup
  # limits about once a second (its container-aware GOMAXPROCS). Those are
  # counted apart, and fail the check only if they come more than once per
  # 100 requests; any other file syscall fails. Only a call's first line is
  # checked (it carries the path); "<... resumed>" lines finish a call
  # already checked.
  local files netlink bg
  local bgre="^\"($T/status-$name|$T|/sys/devices/system/cpu/online|/sys/fs/cgroup/.*|/proc/self/(cgroup|mountinfo))\""
  files=$(awk -v re="$filere" -v bg="$bgre" '
    { n = $3; sub(/\(.*/, "", n); p = $0; sub(/^[^"]*/, "", p); sub(/,.*/, "", p) }
    n ~ re && p ~ bg { next }
    n ~ re { print }' "$T/$name.window" | head -"$limit" || true)
  bg=$(awk -v re="$filere" -v bg="$bgre" '
    { n = $3; sub(/\(.*/, "", n); p = $0; sub(/^[^"]*/, "", p); sub(/,.*/, "", p) }
    n ~ re && p ~ bg { c++ }
    END { print c + 0 }' "$T/$name.window")
  netlink=$(grep -E 'NETLINK|AF_NETLINK' "$T/$name.window" | head -"$limit" || true)
  if [ "$reqs" = 0 ]; then
    echo "  no request was served during the load: the check proves nothing" >&2
    [ "$strict" = 1 ] && return 1
  fi
  if [ "$bg" -gt 0 ]; then
    echo "  background (the watcher's tick, the runtime's CPU count; not per request): $bg file syscalls"
    if [ $((bg * 100)) -gt "$reqs" ]; then
      echo "  more than one per 100 requests: not background"
      files="${files:-background file syscalls scale with requests}"
    fi
  fi
  if [ -n "$files" ]; then
    echo "  file syscalls during the load (first $limit):"; sed 's/^/    /' <<<"$files"
  else
    echo "  file syscalls during the load: none"
  fi
  if [ -n "$netlink" ]; then
    echo "  netlink activity during the load (first $limit):"; sed 's/^/    /' <<<"$netlink"
  else
    echo "  netlink activity during the load: none"
  fi
  if [ "$strict" = 1 ] && { [ -n "$files" ] || [ -n "$netlink" ]; }; then
    echo "  FAIL: $name touched the disk or netlink while answering requests" >&2
    return 1
  fi
  return 0
}

echo "== build"
go build -o "$T/http_status" ./cmd/http_status

ENGINE_LIST=("")
if "$T/http_status" --help 2>&1 | grep -qE '^ +--?engine'; then
  read -r -a ENGINE_LIST <<<"${ENGINES:-fast net/http}"
fi
FAIL=0
for eng in "${ENGINE_LIST[@]}"; do
  tag=${eng//\//}
  name="http_status${tag:+-$tag}"
  dir="$T/status-$name"
  mkdir -p "$dir"
  touch "$dir/status.html" "$dir/x.80"
  port=$(free_port)
  args=(--dir "$dir" --ip 127.0.0.1 --port "$port" --log-level warn --log-file "$T/$name.log")
  [ -n "$eng" ] && args+=(--engine "$eng")
  strace -f -qq -tt -yy -s 64 -o "$T/$name.trace" "$T/http_status" "${args[@]}" &
  PIDS+=($!)
  base="http://127.0.0.1:$port"
  wait_200 "$base/status?SERVICE=x&PORT=80&VIP=127.0.0.1" 200
  wait_200 "$base/status" 200
  sleep 0.5 # let startup settle
  load "$name" "$base/status?SERVICE=x&PORT=80&VIP=127.0.0.1" "$base/status"
  report "$name" 1 || FAIL=1
done

if [ "$CONTROL" = 1 ] && command -v nginx >/dev/null; then
  port=$(free_port)
  mkdir -p "$T/nginx/www" "$T/nginx/tmp"
  printf 'OK - service fine!\n' >"$T/nginx/www/status.html"
  chmod -R a+rX "$T/nginx"
  cat >"$T/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  default_type text/plain;
  client_body_temp_path $T/nginx/tmp/body;
  proxy_temp_path $T/nginx/tmp/proxy;
  fastcgi_temp_path $T/nginx/tmp/fastcgi;
  uwsgi_temp_path $T/nginx/tmp/uwsgi;
  scgi_temp_path $T/nginx/tmp/scgi;
  server { listen 127.0.0.1:$port; root $T/nginx/www; }
}
EOF
  strace -f -qq -tt -yy -s 64 -o "$T/nginx.trace" nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" -g 'daemon off;' &
  PIDS+=($!)
  wait_200 "http://127.0.0.1:$port/status.html" 200
  sleep 0.5
  load nginx "http://127.0.0.1:$port/status.html" "http://127.0.0.1:$port/status.html"
  echo
  echo "(control: nginx serving a static file; expected to show file syscalls, never fails the run)"
  report nginx 0 3
fi

echo
if [ "$FAIL" != 0 ]; then
  echo "syscalls.sh: FAIL: file syscalls or netlink activity while answering /status" >&2
  exit 1
fi
echo "syscalls.sh: OK: no file syscall and no netlink activity while answering /status"
