# Shell helpers shared by bench/run.sh and bench/syscalls.sh (sourced).
# The caller sets NAME (used in error messages).

# free_port [TAKEN...] prints a TCP port nobody listens on, starting from a
# random one, and none of TAKEN (ports already handed out for a server that
# has not bound them yet: the two ports of one daemon must differ).
free_port() {
  local p=$((20000 + RANDOM % 30000)) i
  for ((i = 0; i < 200; i++, p++)); do
    if [[ " $* " == *" $p "* ]]; then continue; fi
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null &&
      ! grep -q ":$(printf '%04X' "$p") " /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
      echo "$p"; return
    fi
  done
  echo "$NAME: no free port" >&2; exit 1
}

# wait_200 URL [TRIES]: waits for a 200, TRIES times 0.1 s (default 100).
wait_200() {
  local i code
  for ((i = 0; i < ${2:-100}; i++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1" || true)
    [ "$code" = 200 ] && return 0
    sleep 0.1
  done
  echo "$NAME: $1 answers $code, not 200" >&2
  return 1
}
