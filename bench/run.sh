#!/usr/bin/env bash
# The goals of issue 13 measured in one run, on loopback, against nginx
# serving a static file in the same run:
#   1. a grid of wrk --latency runs: keep-alive and one connection per
#      request (Connection: close) at each connection count, nginx against
#      http_status's /status?SERVICE=x&PORT=80 (fast engine);
#   2. the HAProxy agent port at each agent connection count, with
#      bench/agentload (wrk speaks only HTTP; one client for nginx, /status
#      and the agent keeps their ratio fair);
#   3. the abuse cells (bench/abuse, fresh daemons): RSS with clients that
#      pipeline and never read, a real agent check among silent connections.
# Then it prints the goals table: every cell as a ratio against nginx in the
# same cell and round, with the goal and whether it is met. Nothing here
# asserts a speed; a goal not met is reported, not an error.
#
#   bench/run.sh             # DURATION=3s, ROUNDS=1: 25 runs of 3 s and the abuse cells, about 1.5 minutes
#   bench/run.sh --smoke     # 16 connections, 1 s a run, small abuse cells: proves it works (11-13 s warm)
#
# Environment:
#   DURATION=3s   wrk -d / agentload -d per run    ROUNDS=1  rounds (median, and ratio min-max)
#   CONNS_LIST="1 16 64 256"  wrk -c of the grid (CONNS=N alone means CONNS_LIST=N)
#   THREADS=2     wrk -t (at most the connection count)
#   MODES="keepalive close"   connection modes of the grid; GRID=0 skips the grid
#   AGENT_CONNS="1 16 64"     agentload -c of the agent cells; AGENT=0 skips them
#   ABUSE=1       0 skips the abuse cells; ABUSE_ARGS: more bench/abuse flags (as root
#                 they run in a network namespace of their own with small TCP send
#                 buffers, so that the daemon, not the kernel, holds unread answers)
#   EXTRA=""      more grid targets, not judged by a goal: status (fast /status),
#                 nethttp and nethttp-status (--engine net/http), const200 (a
#                 constant-200 net/http server)
#   OURS_BIN=PATH the daemon to measure instead of building ./cmd/http_status
#   ALT_BIN=PATH  a second daemon measured side by side (grid, agent and abuse
#                 cells, judged by the same goals), named ALT_NAME (alt), e.g.
#                 an older build: git worktree add /tmp/old COMMIT &&
#                 (cd /tmp/old && go build -o /tmp/http_status.old ./cmd/http_status)
#   PIN=none      none: servers and load share the CPUs; split: servers on CPU 0,
#                 load on CPU 1 (taskset)
#   KEEP=1        keep the temp dir (configs, logs, raw outputs, results.tsv;
#                 go run ./bench/goals table -md DIR/results.tsv prints Markdown)
#
# Exit status: non-zero when a target does not answer before the run, wrk
# reports socket errors or non-2xx answers, agentload errors or unexpected
# answers, or an abuse cell could not run.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

SMOKE=0
for a in "$@"; do
  case "$a" in
    --smoke) SMOKE=1 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
if [ -n "${CONNS:-}" ] && [ -z "${CONNS_LIST:-}" ]; then CONNS_LIST=$CONNS; fi
if [ "$SMOKE" = 1 ]; then
  DURATION=${DURATION:-1s} ROUNDS=${ROUNDS:-1} CONNS_LIST=${CONNS_LIST:-16} AGENT_CONNS=${AGENT_CONNS:-16}
  ABUSE_ARGS=${ABUSE_ARGS:--clients 200 -silent 300 -checks 5 -settle 300ms}
fi
DURATION=${DURATION:-3s}
ROUNDS=${ROUNDS:-1}
THREADS=${THREADS:-2}
CONNS_LIST=${CONNS_LIST:-1 16 64 256}
MODES=${MODES:-keepalive close}
GRID=${GRID:-1}
AGENT=${AGENT:-1}
AGENT_CONNS=${AGENT_CONNS:-1 16 64}
ABUSE=${ABUSE:-1}
ABUSE_ARGS=${ABUSE_ARGS:-}
EXTRA=${EXTRA:-}
ALT_NAME=${ALT_NAME:-alt}
PIN=${PIN:-none}

for tool in nginx wrk curl go; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool not found (Debian: nginx-light, wrk, curl; Go 1.25+)" >&2; exit 2; }
done
for m in $MODES; do
  case "$m" in keepalive | close) ;; *) echo "run.sh: MODES: $m is not keepalive or close" >&2; exit 2 ;; esac
done
for c in $CONNS_LIST $AGENT_CONNS; do
  [[ "$c" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: connection count $c is not a positive number" >&2; exit 2; }
done
for e in $EXTRA; do
  case "$e" in status | nethttp | nethttp-status | const200) ;; *) echo "run.sh: EXTRA: unknown target $e" >&2; exit 2 ;; esac
done
has_extra() { case " $EXTRA " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
for b in OURS_BIN ALT_BIN; do
  if [ -n "${!b:-}" ] && [ ! -x "${!b}" ]; then echo "run.sh: $b=${!b} is not an executable" >&2; exit 2; fi
done
case "$PIN" in
  none) SRV_PIN=() LOAD_PIN=() ;;
  split)
    command -v taskset >/dev/null || { echo "run.sh: PIN=split needs taskset (util-linux)" >&2; exit 2; }
    [ "$(nproc)" -ge 2 ] || { echo "run.sh: PIN=split needs 2 CPUs" >&2; exit 2; }
    SRV_PIN=(taskset -c 0) LOAD_PIN=(taskset -c 1) ;;
  *) echo "run.sh: PIN must be none or split" >&2; exit 2 ;;
esac

T=$(mktemp -d "${TMPDIR:-/tmp}/http_status-bench.XXXXXX")
chmod 755 "$T" # nginx workers run as nobody when started as root
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

NAME=run.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh # after the cd to the repository root

start_s=$(date +%s)
echo "== machine: $(nproc) CPUs, $(awk -F": " "/^model name/ { print \$2; exit }" /proc/cpuinfo), Linux $(uname -r), $(go env GOVERSION), $(nginx -v 2>&1 | sed "s/.*: //"), $(wrk -v 2>&1 | head -1 | cut -d" " -f1-2)"
echo "== load before: $(uptime)"
echo "== build"
if [ -n "${OURS_BIN:-}" ]; then
  cp "$OURS_BIN" "$T/http_status"
  echo "ours: $OURS_BIN"
else
  go build -o "$T/http_status" ./cmd/http_status
  echo "ours: ./cmd/http_status at $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- 2>/dev/null || echo ' (with uncommitted changes)')"
fi
[ -n "${ALT_BIN:-}" ] && echo "$ALT_NAME: $ALT_BIN"
tools=(./bench/goals ./bench/agentload ./bench/abuse)
has_extra const200 && tools+=(./bench/const200)
go build -o "$T/" "${tools[@]}"

# --- nginx: static status.html, its own config and prefix -------------------
NGINX_PORT=$(free_port)
mkdir -p "$T/nginx/www" "$T/nginx/tmp" "$T/nginx/logs"
printf 'OK - service fine!\n' > "$T/nginx/www/status.html"
chmod -R a+rX "$T/nginx"
cat > "$T/nginx/nginx.conf" <<EOF
worker_processes auto;
pid $T/nginx/nginx.pid;
error_log $T/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  default_type text/plain;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path $T/nginx/tmp/body;
  proxy_temp_path $T/nginx/tmp/proxy;
  fastcgi_temp_path $T/nginx/tmp/fastcgi;
  uwsgi_temp_path $T/nginx/tmp/uwsgi;
  scgi_temp_path $T/nginx/tmp/scgi;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $T/nginx/www;
  }
}
EOF
"${SRV_PIN[@]}" nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" -g 'daemon off;' 2>>"$T/nginx/logs/stderr.log" &
PIDS+=($!)

# Targets: name|url|role, nginx first (the baseline). Agent targets alike.
TARGETS=("nginx /status.html|http://127.0.0.1:$NGINX_PORT/status.html|base")
AGENT_TARGETS=("nginx /status.html=http://127.0.0.1:$NGINX_PORT/status.html|base")

# start_daemon NAME BIN ENGINE AGENT(0/1): starts one http_status on a fresh
# status directory; sets PORT (and APORT when AGENT is 1).
start_daemon() {
  local name=$1 bin=$2 eng=$3 tag dir args help
  tag=${name//[^a-zA-Z0-9]/_}
  dir="$T/status-$tag"
  mkdir -p "$dir"
  touch "$dir/status.html" "$dir/x.80"
  PORT=$(free_port)
  args=(--dir "$dir" --ip 127.0.0.1 --port "$PORT" --log-level warn --log-file "$T/$tag.log")
  if [ -n "$eng" ]; then
    help=$("$bin" --help 2>&1 || true)
    if grep -qE '^ +--?engine' <<<"$help"; then
      args+=(--engine "$eng")
    elif [ "$eng" != net/http ]; then
      echo "run.sh: $bin has no --engine flag (net/http only): $name runs net/http" >&2
    fi
  fi
  if [ "$4" = 1 ]; then
    APORT=$(free_port "$PORT")
    args+=(--agent-port "$APORT")
  fi
  "${SRV_PIN[@]}" "$bin" "${args[@]}" &
  PIDS+=($!)
}

start_daemon ours "$T/http_status" fast 1
TARGETS+=("ours fast ?SERVICE=x&PORT=80|http://127.0.0.1:$PORT/status?SERVICE=x&PORT=80|goal")
has_extra status && TARGETS+=("ours fast /status|http://127.0.0.1:$PORT/status|info")
AGENT_TARGETS+=("ours fast /status=http://127.0.0.1:$PORT/status|info" "ours agent x.80=agent://127.0.0.1:$APORT/x.80|goal")
AGENT_PORTS=("$APORT")
if [ -n "${ALT_BIN:-}" ]; then
  start_daemon "$ALT_NAME" "$ALT_BIN" fast 1
  TARGETS+=("$ALT_NAME fast ?SERVICE=x&PORT=80|http://127.0.0.1:$PORT/status?SERVICE=x&PORT=80|goal")
  AGENT_TARGETS+=("$ALT_NAME agent x.80=agent://127.0.0.1:$APORT/x.80|goal")
  AGENT_PORTS+=("$APORT")
fi
if has_extra nethttp || has_extra nethttp-status; then
  start_daemon nethttp "$T/http_status" net/http 0
  has_extra nethttp && TARGETS+=("ours net/http ?SERVICE=x&PORT=80|http://127.0.0.1:$PORT/status?SERVICE=x&PORT=80|info")
  has_extra nethttp-status && TARGETS+=("ours net/http /status|http://127.0.0.1:$PORT/status|info")
fi
if has_extra const200; then
  CONST_PORT=$(free_port)
  "${SRV_PIN[@]}" "$T/const200" -addr "127.0.0.1:$CONST_PORT" 2>"$T/const200.log" &
  PIDS+=($!)
  TARGETS+=("const200 net/http|http://127.0.0.1:$CONST_PORT/|info")
fi

# servers_alive: every server started above still runs. wrk catches SIGINT
# and exits 0, and bash then runs no INT trap (it takes the child to have
# handled the signal), while the servers in the same process group have
# died of it: stop here rather than measure nothing.
servers_alive() {
  local p
  for p in "${PIDS[@]}"; do
    kill -0 "$p" 2>/dev/null || { echo "run.sh: a server (pid $p) has exited (interrupted?); stopping" >&2; exit 1; }
  done
}

FAIL=0
for t in "${TARGETS[@]}"; do
  u=${t#*|}
  wait_200 "${u%|*}" || FAIL=1
done
# wait_agent PORT: waits up to 10 s for "up ..." to "x.80".
wait_agent() {
  local i reply=""
  for ((i = 0; i < 100; i++)); do
    reply=$( (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'x.80\n' >&3 && timeout 1 head -n1 <&3) 2>/dev/null || true)
    case "$reply" in up*) return 0 ;; esac
    sleep 0.1
  done
  echo "run.sh: agent port $1 answers '$reply', not up" >&2
  return 1
}
if [ "$AGENT" = 1 ]; then
  for p in "${AGENT_PORTS[@]}"; do wait_agent "$p" || FAIL=1; done
fi
[ "$FAIL" = 0 ] || { echo "run.sh: a target is not answering; see $T (KEEP=1 keeps it)" >&2; exit 1; }

read -r -a MODE_A <<<"$MODES"
[ "$GRID" = 1 ] || MODE_A=()
read -r -a CONN_A <<<"$CONNS_LIST"
read -r -a ACONN_A <<<"$AGENT_CONNS"
secs=${DURATION%s}
if [[ "$secs" =~ ^[0-9]+$ ]]; then
  n_runs=$((ROUNDS * ${#MODE_A[@]} * ${#CONN_A[@]} * ${#TARGETS[@]}))
  [ "$AGENT" = 1 ] && n_runs=$((n_runs + ROUNDS * ${#ACONN_A[@]} * ${#AGENT_TARGETS[@]}))
  echo "== $n_runs runs of $DURATION: about $((n_runs * secs)) s of load, then the abuse cells"
fi

# The results: round mode conns target role rps p99_ms errors bad.
RES="$T/results.tsv"
: >"$RES"

# --- 1. the grid: wrk --latency, every target in every cell ---------------
if [ "$GRID" = 1 ]; then echo "== grid: wrk -t$THREADS (at most -c) -d$DURATION --latency; modes: $MODES; connections: $CONNS_LIST; ROUNDS=$ROUNDS PIN=$PIN"; fi
n=${#TARGETS[@]}
for ((r = 1; r <= ROUNDS; r++)); do
  cell=0
  for mode in "${MODE_A[@]}"; do
    hdr=()
    [ "$mode" = close ] && hdr=(-H 'Connection: close')
    for c in "${CONN_A[@]}"; do
      # Rotate the first target by cell and round, so that no target
      # always runs first (after a pause) or after the same neighbour.
      for ((k = 0; k < n; k++)); do
        i=$(((k + cell + r - 1) % n))
        IFS='|' read -r name url role <<<"${TARGETS[i]}"
        out="$T/wrk-r$r-$mode-c$c-$i.txt"
        if ! "${LOAD_PIN[@]}" wrk -t"$((THREADS < c ? THREADS : c))" -c"$c" -d"$DURATION" --latency "${hdr[@]}" "$url" >"$out" 2>&1; then
          echo "wrk failed for $name ($mode, $c connections):" >&2; cat "$out" >&2; FAIL=1
        fi
        servers_alive
        if ! fig=$("$T/goals" wrk "$out" 2>&1); then
          echo "run.sh: $fig" >&2; FAIL=1
          fig="NaN NaN 0 0"
        fi
        read -r rps p99 err bad <<<"$fig"
        printf '%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$mode" "$c" "$name" "$role" "$rps" "$p99" "$err" "$bad" >>"$RES"
        printf '  round %d %-9s %4d conn  %-32s %9.0f req/s  p99 %8.3f ms%s\n' "$r" "$mode" "$c" "$name" "$rps" "$p99" \
          "$([ "$err$bad" = 00 ] || echo "  ERRORS: socket $err, non-2xx $bad")"
        if [ "$err" != 0 ] || [ "$bad" != 0 ] || [ "$rps" = NaN ]; then FAIL=1; fi
      done
      cell=$((cell + 1))
    done
  done
done

# --- 2. the agent port: agentload, one connection per check ----------------
# agentload (epoll client, like wrk) drives nginx and /status with HTTP/1.0
# GETs and the agent port with "x.80\n", interleaved, same rounds.
if [ "$AGENT" = 1 ]; then
  declare -A AROLE=()
  aargs=()
  for t in "${AGENT_TARGETS[@]}"; do
    AROLE[${t%%=*}]=${t##*|}
    aargs+=("${t%|*}")
  done
  for c in "${ACONN_A[@]}"; do
    echo
    echo "== agent port: bench/agentload -c $c -d $DURATION -rounds $ROUNDS"
    tsv="$T/agentload-c$c.tsv"
    : >"$tsv"
    if ! "${LOAD_PIN[@]}" "$T/agentload" -c "$c" -d "$DURATION" -rounds "$ROUNDS" -tsv "$tsv" "${aargs[@]}"; then
      FAIL=1
    fi
    servers_alive
    while IFS=$'\t' read -r r name rps p50 p99 err bad; do
      printf '%d\tagent\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$c" "$name" "${AROLE[$name]:-info}" "$rps" "$p99" "$err" "$bad" >>"$RES"
    done <"$tsv"
  done
fi

# --- 3. the abuse cells: fresh daemons, see bench/abuse ---------------------
ABUSE_SUM="$T/abuse-summary.txt"
if [ "$ABUSE" = 1 ]; then
  read -r -a abuse_args <<<"$ABUSE_ARGS"
  bins=("ours|$T/http_status")
  [ -n "${ALT_BIN:-}" ] && bins+=("$ALT_NAME|$ALT_BIN")
  for b in "${bins[@]}"; do
    echo
    if ! "$T/abuse" -bin "${b#*|}" -name "${b%%|*}" -summary "$ABUSE_SUM" "${abuse_args[@]}"; then
      FAIL=1
    fi
  done
fi

echo
"$T/goals" table "$RES"
if [ -s "$ABUSE_SUM" ]; then
  echo
  cat "$ABUSE_SUM"
fi
echo
echo "== load after: $(uptime)"
echo "== took $(($(date +%s) - start_s)) s"

if [ "$FAIL" != 0 ]; then
  echo "run.sh: FAILED: some run reported errors or non-2xx answers, or did not run (KEEP=1 keeps the raw output)" >&2
  exit 1
fi
