#!/usr/bin/env bash
# CPU cost of one call through the server, per thread of the server process.
#
# What it measures: a fixed number of calls A -> server -> B made by SIPp at a fixed rate well
# below saturation (every INVITE challenged with 407, SDP offer/answer, no media relay unless
# MEDIA_RELAY=always, CSV CDR
# written), and the CPU time (utime/stime from /proc/PID/task/*/stat) each thread of the server
# spent during those calls, divided by the number of calls: microseconds of CPU per call, for the
# main (JS) thread and for the others (V8 GC helper threads, libuv pool), with SIPp's success and
# failure counts. Registration of the callees happens before the first sample and is not counted.
#
# How: users from ../shared/lab/sipp/gen-users.sh imported with `minisipserver ext import`; a
# config with auth.algorithms [MD5, SHA-256], media.relay never, log.level warn and call limits
# high enough; `serve` on 127.0.0.1; a SIPp UAS (uas_call.xml) in the background; the callees
# registered to it with reg_auth.xml (contact_port = UAS port); then uac_call.xml at RATE calls/s
# for COUNT calls with -d 1000 (one second of talk time).
#
#   scripts/bench/call-cpu.sh                    # 800 calls/s, 6400 calls, build/
#   RATE=1000 COUNT=8000 scripts/bench/call-cpu.sh
#   CLI=build-perf/cli/main.js scripts/bench/call-cpu.sh          # another compiled tree
#   NODE_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/p --cpu-prof-interval 50" scripts/bench/call-cpu.sh
#   REPEAT=3 scripts/bench/call-cpu.sh           # several runs, one line each (the machine is noisy)
#   MEDIA_RELAY=always scripts/bench/call-cpu.sh # every call also sets up a relay session (SDP rewritten both ways)
#   UDP_ENGINE=node scripts/bench/call-cpu.sh    # sip.udpEngine (default auto: the native I/O thread)
#   WARM=4000 RATE=400 COUNT=4000 scripts/bench/call-cpu.sh   # 4000 calls first, not counted (JIT warmed up)
#
# Needs: sipp (sip-tester) and a built tree. Everything stays on 127.0.0.1 (ports PORT..PORT+3).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
lab=${LAB:-$here/../shared/lab}
cli=${CLI:-$here/build/cli/main.js}
case "$cli" in /*) ;; *) cli=$here/$cli ;; esac
rate=${RATE:-800}
count=${COUNT:-6400}
users=${USERS:-1000}
port=${PORT:-25190}
repeat=${REPEAT:-1}
work=${WORK:-$(mktemp -d /tmp/mss-call-cpu.XXXXXX)}
hz=$(getconf CLK_TCK)
command -v sipp >/dev/null || { echo "sipp not installed (apt-get install sip-tester)" >&2; exit 2; }
[ -f "$cli" ] || { echo "no compiled CLI at $cli (build first, or set CLI)" >&2; exit 2; }

"$lab/sipp/gen-users.sh" "$work/users" "$users" 1000 >/dev/null
printf 'auth:\n  algorithms: [MD5, SHA-256]\nsip:\n  udpEngine: %s\nlog:\n  level: warn\nmedia:\n  relay: %s\ncalls:\n  maxTotal: 100000\n  maxPerExtension: 1000\ncdr:\n  format: csv\n' "${UDP_ENGINE:-auto}" "${MEDIA_RELAY:-never}" > "$work/config.yaml"

srv_pid=""
uas_pid=""
cleanup() {
  [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null || true
  [ -n "$uas_pid" ] && kill "$uas_pid" 2>/dev/null || true
}
trap cleanup EXIT

# "tid comm utime stime" for every thread of $1 (comm may hold blanks: read fields after the ')').
thread_times() {
  for t in /proc/"$1"/task/*; do
    local stat
    stat=$(cat "$t/stat" 2>/dev/null) || continue
    local comm=${stat#*(}; comm=${comm%)*}; comm=${comm// /_}
    local rest=${stat##*) }
    # shellcheck disable=SC2086
    set -- $rest
    echo "${t##*/} $comm ${12} ${13}"
  done | sort
}

for run in $(seq 1 "$repeat"); do
  data=$work/data-$run
  rm -rf "$data"
  node "$cli" ext import "$work/users/users.txt" --data-dir "$data" >/dev/null
  # shellcheck disable=SC2086
  node ${NODE_FLAGS:-} "$cli" serve --config "$work/config.yaml" --data-dir "$data" --bind 127.0.0.1 --sip-port "$port" > "$work/server-$run.log" 2>&1 &
  srv_pid=$!
  for _ in $(seq 1 50); do grep -q "listening on port" "$work/server-$run.log" 2>/dev/null && break; sleep 0.2; done
  sipp -sf "$lab/sipp/uas_call.xml" -i 127.0.0.1 -p $((port + 1)) -nostdin -timeout 300 > "$work/uas-$run.log" 2>&1 &
  uas_pid=$!
  sipp -sf "$lab/sipp/reg_auth.xml" -i 127.0.0.1 -p $((port + 2)) -inf "$work/users/callees.csv" -key contact_host 127.0.0.1 \
    -key contact_port $((port + 1)) -key expires 3600 -m $((users - users / 2)) -r 500 -timeout 30 -nostdin "127.0.0.1:$port" >/dev/null 2>&1 || true
  if [ "${WARM:-0}" -gt 0 ]; then
    # The same calls first, not counted: what the measured ones cost on a warmed-up server.
    sipp -sf "$lab/sipp/uac_call.xml" -i 127.0.0.1 -p $((port + 3)) -inf "$work/users/calls.csv" -m "$WARM" -r "$rate" -d 1000 \
      -timeout 300 -nostdin "127.0.0.1:$port" >/dev/null 2>&1 || true
    sleep 2
  fi
  sleep 0.5
  thread_times "$srv_pid" > "$work/before-$run.txt"
  sipp -sf "$lab/sipp/uac_call.xml" -i 127.0.0.1 -p $((port + 3)) -inf "$work/users/calls.csv" -m "$count" -r "$rate" -d 1000 \
    -timeout 300 -nostdin -trace_stat -stf "$work/stat-$run.csv" -trace_err -error_file "$work/uac-errors-$run.log" \
    "127.0.0.1:$port" >/dev/null 2>&1 || true
  thread_times "$srv_pid" > "$work/after-$run.txt"
  result=$(tail -1 "$work/stat-$run.csv" | awk -F';' '{print "ok=" $16 " failed=" $18}')
  join "$work/before-$run.txt" "$work/after-$run.txt" | awk -v n="$count" -v hz="$hz" -v pid="$srv_pid" -v r="$result" -v run="$run" -v rate="$rate" '
    { du = ($6 - $3) * 1e6 / hz / n; ds = ($7 - $4) * 1e6 / hz / n
      if ($1 == pid) { mu = du; ms = ds } else { ou += du; os += ds
        if (du + ds > 0) detail = detail sprintf(" %s=%.0f", $2, du + ds) } }
    END { printf "run %d: %d calls at %d/s, %s | us CPU per call: main user %.0f sys %.0f total %.0f | other threads %.0f (%s ) | all %.0f\n",
            run, n, rate, r, mu, ms, mu + ms, ou + os, detail, mu + ms + ou + os }'
  kill "$srv_pid"; wait "$srv_pid" 2>/dev/null || true; srv_pid=""
  kill "$uas_pid" 2>/dev/null; wait "$uas_pid" 2>/dev/null || true; uas_pid=""
done
echo "files: $work"
