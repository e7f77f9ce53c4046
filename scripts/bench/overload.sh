#!/usr/bin/env bash
# Overload control under SIPp (docs/SECURITY.md, Overload).
#
# 1. The highest passing call rate R of `serve`: the call ramp of ../shared/lab/run-bench.sh
#    (SKIP_REG=1; INVITE -> 407 -> ACK -> INVITE -> 100/180/200 -> ACK, 1 s hold, BYE; a step
#    passes with < 0.1% failed, p99 set-up < 500 ms, >= 90% of the rate). RATE=R skips it.
# 2. A fresh server; calls offered at 2R for 30 s (one SIPp, uac_call.xml), then at R/2: the first
#    5 s by one SIPp (reported) and the next 15 s by another, judged as a ramp step is. Goodput:
#    calls completed per second during the 30 s (SIPp's per-second SuccessfulCall counts).
# 3. The same with `overload.enabled: false`, as the reference measured in the same run.
#
#   scripts/bench/overload.sh                     # ramp, then both runs
#   RATE=1600 scripts/bench/overload.sh           # skip the ramp
#   ONLY=on RATE=1600 scripts/bench/overload.sh   # overload control on only (or off)
#   UDP_ENGINE=node scripts/bench/overload.sh     # sip.udpEngine (default auto: the native I/O thread)
#   NODE_FLAGS=--trace-gc ONLY=on RATE=1200 scripts/bench/overload.sh   # flags for the server's node
#   PIN=1 scripts/bench/overload.sh               # the server on CPU 0, every SIPp on CPU 1 (taskset)
#
# PIN=1 is for a 2-core machine: unpinned, the SIPp processes offering 2R take the CPU the server
# needs exactly while it is overloaded, and what is measured is how the two share a core.
#
# Needs: sipp (sip-tester), a built tree. Everything stays on 127.0.0.1 (ports PORT..PORT+9 and the
# SIPp media ports 40900-40990).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
lab=${LAB:-$here/../shared/lab}
cli=${CLI:-$here/build/cli/main.js}
users=${USERS:-1000}
port=${PORT:-25280}
out=${OUT:-/tmp/mss-bench-overload-$(date +%Y%m%d-%H%M%S)}
over_s=${OVER_S:-30}
command -v sipp >/dev/null || { echo "sipp not installed (apt-get install sip-tester)" >&2; exit 2; }
[ -f "$cli" ] || { echo "no compiled CLI at $cli (npm run build first, or set CLI)" >&2; exit 2; }
mkdir -p "$out"
server_cpu=()
load_cpu=()
if [ -n "${PIN:-}" ]; then
  command -v taskset >/dev/null || { echo "PIN=1 needs taskset (util-linux)" >&2; exit 2; }
  server_cpu=(taskset -c "${SERVER_CPUS:-0}")
  load_cpu=(taskset -c "${LOAD_CPUS:-1}")
fi
"$lab/sipp/gen-users.sh" "$out/users" "$users" 1000 >/dev/null
sysctl -w net.core.rmem_max=4194304 net.core.wmem_max=4194304 >/dev/null 2>&1 || true

srv_pid=""
uas_pid=""
cleanup() {
  [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null || true
  [ -n "$uas_pid" ] && kill "$uas_pid" 2>/dev/null || true
}
trap cleanup EXIT

config() { # $1: overload.enabled
  printf 'auth:\n  algorithms: [MD5, SHA-256]\nsip:\n  udpBufferBytes: 4194304\n  udpEngine: %s\nlog:\n  level: warn\nmedia:\n  relay: never\ncalls:\n  maxTotal: 100000\n  maxPerExtension: 1000\noverload:\n  enabled: %s\n' "${UDP_ENGINE:-auto}" "$1"
}

start_server() { # $1: name, $2: overload.enabled
  local data=$out/$1-data
  rm -rf "$data"
  config "$2" > "$out/$1.yaml"
  node "$cli" ext import "$out/users/users.txt" --data-dir "$data" >/dev/null
  # shellcheck disable=SC2086
  "${server_cpu[@]}" node ${NODE_FLAGS:-} "$cli" serve --config "$out/$1.yaml" --data-dir "$data" --bind 127.0.0.1 --sip-port "$port" > "$out/$1-server.log" 2>&1 &
  srv_pid=$!
  for _ in $(seq 1 100); do grep -q "listening on port" "$out/$1-server.log" 2>/dev/null && return 0; sleep 0.1; done
  echo "the server did not start (see $out/$1-server.log)" >&2
  exit 1
}

stop_server() {
  kill "$srv_pid" 2>/dev/null || true
  wait "$srv_pid" 2>/dev/null || true
  srv_pid=""
}

# The highest passing call rate, by the lab's ramp.
if [ -z "${RATE:-}" ]; then
  start_server ramp true
  OUT_DIR="$out/ramp" SKIP_REG=1 SERVER_PID=$srv_pid CALL_RATES="${CALL_RATES:-1200 1600 2000 2400}" \
    UAS_PORT=$((port + 1)) UAC_PORT=$((port + 2)) REG_PORT=$((port + 3)) OPT_PORT=$((port + 4)) \
    "${load_cpu[@]}" "$lab/run-bench.sh" 127.0.0.1 "$port" > "$out/ramp.log" 2>&1 || true
  stop_server
  RATE=$(awk '/^max calls\/s passing:/ { print $4 }' "$out/ramp/results.txt")
  [ -n "$RATE" ] && [ "$RATE" != null ] || { echo "no passing step in the ramp (see $out/ramp/results.txt)" >&2; exit 1; }
  grep -E '^(test|call )' "$out/ramp/results.txt"
fi
high=$((RATE * 2))
low=$((RATE / 2))
echo "highest passing call rate R = $RATE/s: offered ${high}/s for ${over_s} s, then ${low}/s (first 5 s, then 15 s judged)"

# uac NAME RATE COUNT LOCAL_PORT MEDIA_PORT: one SIPp caller, its files in $run/NAME.
uac() {
  local d=$run/$1
  mkdir -p "$d"
  (
    cd "$d" || exit 1
    rc=0 # SIPp exits 1 when a call failed: expected here
    "${load_cpu[@]}" timeout -k 5 200 sipp "127.0.0.1:$port" -sf "$lab/sipp/uac_call.xml" -inf "$out/users/calls.csv" \
      -i 127.0.0.1 -p "$4" -mp "$5" -r "$2" -m "$3" -d 1000 -nostdin -timeout 180 -recv_timeout 5000 \
      -trace_stat -stf stat.csv -fd 1 -trace_rtt -rtt_freq 100 -buff_size 4194304 -trace_err -max_log_size 5000000 \
      > sipp.out 2>&1 || rc=$?
    echo "$rc" > rc
  )
}

one_run() { # $1: on | off
  run=$out/$1
  mkdir -p "$run"
  start_server "$1" "$([ "$1" = on ] && echo true || echo false)"
  (cd "$run" && exec "${load_cpu[@]}" sipp -sf "$lab/sipp/uas_call.xml" -i 127.0.0.1 -p $((port + 5)) -mp 40980 -nostdin -timeout 400 \
    -recv_timeout 10000 -buff_size 4194304 > uas.out 2>&1) &
  uas_pid=$!
  sleep 0.5
  "${load_cpu[@]}" sipp -sf "$lab/sipp/reg_auth.xml" -i 127.0.0.1 -p $((port + 6)) -inf "$out/users/callees.csv" -key contact_host 127.0.0.1 \
    -key contact_port $((port + 5)) -key expires 3600 -m $((users - users / 2)) -r 500 -timeout 30 -nostdin "127.0.0.1:$port" \
    > "$run/callee-reg.out" 2>&1 || true
  sleep 1
  uac over "$high" $((high * over_s)) $((port + 7)) 40900 &
  local over_pid=$!
  sleep "$over_s"
  uac after-0-5s "$low" $((low * 5)) $((port + 8)) 40920 &
  local first_pid=$!
  sleep 5
  uac after-5-20s "$low" $((low * 15)) $((port + 9)) 40940
  wait "$over_pid" "$first_pid" || true
  node "$here/scripts/bench/overload-report.mjs" "$run" "$RATE" "$over_s" | tee "$run/report.txt"
  grep -E '"event":"overload\.(started|ended)"' "$out/$1-server.log" | head -3 || true
  stop_server
  kill "$uas_pid" 2>/dev/null || true
  wait "$uas_pid" 2>/dev/null || true
  uas_pid=""
}

case "${ONLY:-}" in
  on) one_run on ;;
  off) one_run off ;;
  *) one_run on; sleep 3; one_run off ;;
esac
echo "files: $out"
