#!/usr/bin/env bash
# HTTP benchmark: http_status's /status against nginx serving a static file,
# and against a constant-200 net/http server, all on loopback, driven by wrk.
# Then, in close mode, the HAProxy agent-check port against nginx and /status
# with bench/agentload (wrk speaks only HTTP; one client for the three keeps
# their ratio fair). Every figure is measured side by side in this one
# invocation and printed as a ratio against nginx; nothing here asserts a
# speed.
#
#   bench/run.sh             # DURATION=10s per run, ROUNDS=3
#   bench/run.sh --smoke     # DURATION=1s, ROUNDS=1, 16 connections: proves it works (~10 s warm)
#
# Environment:
#   DURATION=10s  wrk -d per run          ROUNDS=3   rounds (median, min-max)
#   THREADS=2     wrk -t                  CONNS=64   wrk -c
#   PIN=none      none: wrk and the server share both CPUs as the scheduler likes;
#                 split: servers on CPU 0, wrk on CPU 1 (taskset), so that they
#                 take turns on separate cores instead of competing for both
#   MODES="keepalive close"               which connection modes to run
#   ENGINES="fast net/http"               engines to compare when the daemon has --engine
#   AGENT=1       0 skips the agent-port table (it runs when MODES has close)
#   KEEP=1        keep the temp dir (configs, logs, raw wrk output)
#
# Exit status: non-zero when a target does not answer 200 before the run, or
# wrk reports socket errors or non-2xx answers for any run, or agentload
# errors or unexpected answers.
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
if [ "$SMOKE" = 1 ]; then
  DURATION=${DURATION:-1s} ROUNDS=${ROUNDS:-1} CONNS=${CONNS:-16}
fi
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
PIN=${PIN:-none}
MODES=${MODES:-keepalive close}
AGENT=${AGENT:-1}
case " $MODES " in *" close "*) ;; *) AGENT=0 ;; esac

for tool in nginx wrk curl go; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool not found (Debian: nginx-light, wrk, curl; Go 1.25+)" >&2; exit 2; }
done
case "$PIN" in
  none) SRV_PIN=() WRK_PIN=() ;;
  split)
    command -v taskset >/dev/null || { echo "run.sh: PIN=split needs taskset (util-linux)" >&2; exit 2; }
    [ "$(nproc)" -ge 2 ] || { echo "run.sh: PIN=split needs 2 CPUs" >&2; exit 2; }
    SRV_PIN=(taskset -c 0) WRK_PIN=(taskset -c 1) ;;
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

echo "== machine: $(nproc) CPUs, $(awk -F": " "/^model name/ { print \$2; exit }" /proc/cpuinfo), Linux $(uname -r), $(go env GOVERSION), $(nginx -v 2>&1 | sed "s/.*: //"), $(wrk -v 2>&1 | head -1 | cut -d" " -f1-2)"
echo "== build"
go build -o "$T/http_status" ./cmd/http_status
go build -o "$T/const200" ./bench/const200
go build -o "$T/agentload" ./bench/agentload

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

# --- const200 ----------------------------------------------------------------
CONST_PORT=$(free_port)
"${SRV_PIN[@]}" "$T/const200" -addr "127.0.0.1:$CONST_PORT" 2>"$T/const200.log" &
PIDS+=($!)

# --- http_status: one daemon per engine ---------------------------------------
# Target list: name|url. nginx first (the baseline).
TARGETS=("nginx /status.html|http://127.0.0.1:$NGINX_PORT/status.html")
ENGINE_LIST=("")
if "$T/http_status" --help 2>&1 | grep -qE '^ +--?engine'; then
  read -r -a ENGINE_LIST <<<"${ENGINES:-fast net/http}"
  echo "daemon has --engine: comparing ${ENGINE_LIST[*]}"
else
  echo "daemon has no --engine flag: one engine (net/http)"
fi
for eng in "${ENGINE_LIST[@]}"; do
  port=$(free_port)
  tag=${eng//\//}
  dir="$T/status${tag:+-$tag}"
  mkdir -p "$dir"
  touch "$dir/status.html" "$dir/x.80"
  args=(--dir "$dir" --ip 127.0.0.1 --port "$port" --log-level warn --log-file "$T/ours${tag:+-$tag}.log")
  [ -n "$eng" ] && args+=(--engine "$eng")
  if [ "$AGENT" = 1 ] && [ -z "${AGENT_PORT:-}" ]; then
    # The first daemon also answers agent checks (the agent does not
    # depend on the engine); agentload compares it with this /status.
    AGENT_PORT=$(free_port)
    AGENT_STATUS="ours${eng:+ $eng} /status|http://127.0.0.1:$port/status"
    args+=(--agent-port "$AGENT_PORT")
  fi
  "${SRV_PIN[@]}" "$T/http_status" "${args[@]}" &
  PIDS+=($!)
  label="ours${eng:+ $eng}"
  TARGETS+=("$label ?SERVICE=x&PORT=80|http://127.0.0.1:$port/status?SERVICE=x&PORT=80")
  TARGETS+=("$label /status|http://127.0.0.1:$port/status")
done
TARGETS+=("const200 net/http|http://127.0.0.1:$CONST_PORT/")

FAIL=0
for t in "${TARGETS[@]}"; do
  wait_200 "${t#*|}" || FAIL=1
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
if [ "$AGENT" = 1 ]; then wait_agent "$AGENT_PORT" || FAIL=1; fi
[ "$FAIL" = 0 ] || { echo "run.sh: a target is not answering 200; see $T (KEEP=1 keeps it)" >&2; exit 1; }

# run_wrk MODE URL OUT: one wrk run, raw output in OUT.
run_wrk() {
  local hdr=()
  [ "$1" = close ] && hdr=(-H 'Connection: close')
  "${WRK_PIN[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "${hdr[@]}" "$2" >"$3" 2>&1
}

# parse_wrk FILE: prints "rps p99_ms errors non2xx".
parse_wrk() {
  awk '
    function ms(v) {
      if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
      if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
      return v + 0
    }
    /^Requests\/sec:/ { rps = $2 }
    /^ +99%/ { p99 = ms($2) }
    /Socket errors:/ { gsub(/,/, ""); err = $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/ { bad = $NF }
    END { printf "%s %s %d %d\n", (rps == "" ? "NaN" : rps), (p99 == "" ? "NaN" : p99), err, bad }
  ' "$1"
}

echo "== wrk -t$THREADS -c$CONNS -d$DURATION --latency; ROUNDS=$ROUNDS PIN=$PIN; $(nproc) CPUs"
RES="$T/results.tsv"
: >"$RES"
n=${#TARGETS[@]}
for ((r = 1; r <= ROUNDS; r++)); do
  for mode in $MODES; do
    # Rotate the starting target each round so no target always runs
    # first (after a pause) or right after the same neighbour.
    for ((k = 0; k < n; k++)); do
      i=$(((k + r - 1) % n))
      name=${TARGETS[i]%%|*} url=${TARGETS[i]#*|}
      out="$T/wrk-r$r-$mode-$i.txt"
      if ! run_wrk "$mode" "$url" "$out"; then
        echo "wrk failed for $name ($mode):" >&2; cat "$out" >&2; FAIL=1
      fi
      read -r rps p99 err bad < <(parse_wrk "$out")
      printf '%d\t%s\t%d\t%s\t%s\t%s\t%s\n' "$r" "$mode" "$i" "$rps" "$p99" "$err" "$bad" >>"$RES"
      printf '  round %d %-9s %-34s %10.0f req/s  p99 %7.2f ms%s\n' "$r" "$mode" "$name" "$rps" "$p99" \
        "$([ "$err$bad" = 00 ] || echo "  ERRORS: socket $err, non-2xx $bad")"
      if [ "$err" != 0 ] || [ "$bad" != 0 ] || [ "$rps" = NaN ]; then FAIL=1; fi
    done
  done
done

# Summary: per mode and target, median and min-max of req/s and p99 over the
# rounds, and the ratio to nginx computed per round (same round, same mode),
# then its median and min-max.
echo
echo "== results: median (min-max) over $ROUNDS round(s); ratio = req/s / nginx req/s in the same round"
names=$(printf '%s\n' "${TARGETS[@]}" | cut -d'|' -f1)
awk -F'\t' -v names="$names" -v modes="$MODES" '
  function sortv(a, k,   i, j, t) { for (i = 2; i <= k; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t } }
  function med(a, k) { return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2 }
  { rps[$2, $3, $1] = $4; p99[$2, $3, $1] = $5; if ($1 > R) R = $1 }
  END {
    nt = split(names, nm, "\n"); nmo = split(modes, mo, " ")
    printf "%-9s %-34s %22s %22s %20s\n", "mode", "target", "req/s", "p99 ms", "vs nginx"
    for (m = 1; m <= nmo; m++) for (t = 1; t <= nt; t++) {
      k = 0
      for (r = 1; r <= R; r++) {
        k++; a[k] = rps[mo[m], t - 1, r]; b[k] = p99[mo[m], t - 1, r]
        base = rps[mo[m], 0, r]; c[k] = (base > 0) ? a[k] / base : 0
      }
      sortv(a, k); sortv(b, k); sortv(c, k)
      printf "%-9s %-34s %8.0f (%5.0f-%5.0f) %7.2f (%5.2f-%5.2f) %6.2fx (%4.2f-%4.2f)\n", mo[m], nm[t], med(a, k), a[1], a[k], med(b, k), b[1], b[k], med(c, k), c[1], c[k]
    }
  }' "$RES"

# --- the agent port: one connection per check, so close mode only ----------
# agentload (epoll client, like wrk) drives nginx and /status with HTTP/1.0
# GETs and the agent port with "x.80\n", interleaved, same rounds.
if [ "$AGENT" = 1 ]; then
  echo
  echo "== agent port (close mode), bench/agentload -c $CONNS -d $DURATION -rounds $ROUNDS"
  url=${AGENT_STATUS#*|}
  if ! "${WRK_PIN[@]}" "$T/agentload" -c "$CONNS" -d "$DURATION" -rounds "$ROUNDS" \
    "nginx /status.html=http://127.0.0.1:$NGINX_PORT/status.html" \
    "${AGENT_STATUS%%|*}=http://${url#http://}" \
    "ours agent x.80=agent://127.0.0.1:$AGENT_PORT/x.80"; then
    FAIL=1
  fi
fi

if [ "$FAIL" != 0 ]; then
  echo "run.sh: FAILED: some run reported errors or non-2xx answers (KEEP=1 keeps the raw output)" >&2
  exit 1
fi
