#!/bin/bash
# idlepair.sh BIN: run it with unshare -n (a fresh network namespace, port
# 18801 free there): BIN as a daemon with one flag and no probes, then
# idlecpu.sh on it. A measurement for BENCHMARKS.md ("Soak"), not a test.
set -e
bin=$1 d=$(mktemp -d)
ip link set lo up
"$bin" --dir "$d" --port 18801 --log-level warn &
pid=$!
sleep 1
touch "$d/status.html"
"$(dirname "$0")/idlecpu.sh" "$pid" 18801 20
kill "$pid"
wait "$pid" || true
rm -rf "$d"
