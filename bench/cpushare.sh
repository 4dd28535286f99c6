#!/usr/bin/env bash
# cpushare.sh: one bench/agentload run against one target, with where the
# CPU went: the machine's idle and softirq share, the server's CPU and
# voluntary context switches per request (all its threads, from /proc),
# and the client's CPU per request.
#
#   bench/cpushare.sh [-c CONNS] [-d SECONDS] SERVER_PID[,PID...] NAME=URL
#
# SERVER_PID: the server's processes, comma-separated (nginx: the master
# and its workers, "$M,$(pgrep -d, -P $M)"). NAME=URL as for bench/agentload (http:// or agent://).
# Build the client first: go build -o /tmp/agentload ./bench/agentload
# (AGENTLOAD names another path). Used for BENCHMARKS "The yield" item 9.
set -euo pipefail
conns=16 secs=4
while getopts c:d: o; do
  case $o in
    c) conns=$OPTARG ;;
    d) secs=$OPTARG ;;
    *) sed -n '2,13p' "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# = 2 ] || { sed -n '2,13p' "$0" >&2; exit 2; }
IFS=, read -r -a spids <<<"$1"
target=$2
al=${AGENTLOAD:-/tmp/agentload}

# cpu_of PID...: user+system clock ticks of every thread.
cpu_of() {
  local s=0 p t a
  for p in "$@"; do
    for t in /proc/"$p"/task/*/stat; do
      read -r -a a <"$t" 2>/dev/null || continue
      s=$((s + a[13] + a[14]))
    done
  done
  echo "$s"
}
# vsw_of PID...: voluntary context switches of every thread.
vsw_of() {
  local s=0 p v
  for p in "$@"; do
    for v in $(awk '/^voluntary_ctxt/ {print $2}' /proc/"$p"/task/*/status 2>/dev/null); do
      s=$((s + v))
    done
  done
  echo "$s"
}
stat_of() { awk '/^cpu / {print $2+$3+$4+$5+$6+$7+$8, $5, $8}' /proc/stat; }

tsv=$(mktemp)
trap 'rm -f "$tsv"' EXIT
read -r tot0 idle0 si0 < <(stat_of)
s0=$(cpu_of "${spids[@]}")
w0=$(vsw_of "${spids[@]}")
"$al" -c "$conns" -d "${secs}s" -rounds 1 -tsv "$tsv" "$target" >/dev/null &
ap=$!
# The client's own CPU, sampled inside the run (it exits at the end).
sleep 0.2
c0=$(cpu_of "$ap")
win=$(awk -v s="$secs" 'BEGIN {print s - 0.4}')
sleep "$win"
c1=$(cpu_of "$ap")
wait "$ap" || true
s1=$(cpu_of "${spids[@]}")
w1=$(vsw_of "${spids[@]}")
read -r tot1 idle1 si1 < <(stat_of)
IFS=$'\t' read -r _ name rps _ p99 errs bad <"$tsv"
hz=$(getconf CLK_TCK)
awk -v name="$name" -v rps="$rps" -v p99="$p99" -v errs="$errs" -v bad="$bad" \
  -v tot=$((tot1 - tot0)) -v idle=$((idle1 - idle0)) -v si=$((si1 - si0)) \
  -v s=$((s1 - s0)) -v w=$((w1 - w0)) -v c=$((c1 - c0)) -v secs="$secs" -v win="$win" -v hz="$hz" 'BEGIN {
  req = rps * secs
  printf "%-24s %7.0f req/s  p99 %6.2f ms  idle %4.1f%%  softirq %4.1f%%  server %5.1f us/req, %.2f voluntary switches/req  client %5.1f us/req",
    name, rps, p99, 100 * idle / tot, 100 * si / tot, s * 1e6 / hz / req, w / req, c * 1e6 / hz / (rps * win)
  if (errs + bad > 0) printf "  (%d errors, %d unexpected)", errs, bad
  printf "\n"
}'
