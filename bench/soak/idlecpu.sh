#!/bin/bash
# idlecpu.sh PID PORT SECONDS: the CPU a daemon (PID, listening on
# 127.0.0.1:PORT) uses over SECONDS with no connection, then with one idle
# kept-alive connection open, in clock ticks (10 ms) from /proc/PID/stat.
# A measurement for BENCHMARKS.md ("Soak"), not a test.
pid=$1 port=$2 s=$3
cpu() { awk '{print $14+$15}' "/proc/$pid/stat"; }
a=$(cpu); sleep "$s"; b=$(cpu)
echo "no connection: $((b-a)) ticks in ${s}s"
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET /status HTTP/1.1\r\nHost: x\r\n\r\n' >&3
sleep 1
a=$(cpu); sleep "$s"; b=$(cpu)
echo "one idle keep-alive connection: $((b-a)) ticks in ${s}s"
exec 3<&-
