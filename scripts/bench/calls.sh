#!/usr/bin/env bash
# Calls through the server, every INVITE challenged (407): minisipserver and the reference Kamailio
# (INVITE_AUTH=1), one after the other in the same run, under the same SIPp call ramp
# (../shared/lab/run-bench.sh, SKIP_REG=1). MEDIA_RELAY=always (the default here: never, as the
# reference proxy relays no media) makes every call also take relay ports.
#
#   scripts/bench/calls.sh            # both servers, default ramp
#   CALL_RATES="800 1600 2400" scripts/bench/calls.sh
#   ONLY=minisipserver scripts/bench/calls.sh
#
# Needs: sipp (sip-tester), kamailio, a built tree (npm ci). Everything stays on 127.0.0.1.
# Prints the two result tables and a side-by-side summary; raw files stay in $OUT.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
lab=${LAB:-$here/../shared/lab}
out=${OUT:-/tmp/mss-bench-calls-$(date +%Y%m%d-%H%M%S)}
users=${USERS:-1000}
export CALL_RATES=${CALL_RATES:-"800 1600 2400 3200 4000 4800 5600"}
export CALL_STEP_S=${CALL_STEP_S:-15}
mkdir -p "$out"
[ -x "$lab/run-bench.sh" ] || { echo "lab not found at $lab (set LAB)" >&2; exit 2; }
command -v sipp >/dev/null || { echo "sipp not installed (apt-get install sip-tester)" >&2; exit 2; }

mss_pid=""
cleanup() {
  [ -n "$mss_pid" ] && kill "$mss_pid" 2>/dev/null || true
  [ "${ONLY:-}" = minisipserver ] || "$lab/kamailio/stop.sh" >/dev/null 2>&1 || true
}
trap cleanup EXIT

run_kamailio() {
  INVITE_AUTH=1 RUN_DIR="$out/kamailio-run" SIP_PORT=25060 "$lab/kamailio/start.sh" "$users" 1000
  OUT_DIR="$out/kamailio" SKIP_REG=1 LABEL="kamailio $(kamailio -v 2>/dev/null | head -1 | awk '{print $3}') lab cfg, INVITE_AUTH=1" \
    "$lab/run-bench.sh" 127.0.0.1 25060 > "$out/kamailio.log" 2>&1 || true
  RUN_DIR="$out/kamailio-run" "$lab/kamailio/stop.sh" >/dev/null
}

run_minisipserver() {
  local data="$out/mss-data"
  rm -rf "$data"
  "$lab/sipp/gen-users.sh" "$out/users" "$users" 1000 >/dev/null
  node "$here/bin/minisipserver" ext import "$out/users/users.txt" --data-dir "$data" >/dev/null
  # SIPp answers only the first challenge and only knows MD5; the same 4 MB UDP buffer as the
  # reference Kamailio configuration.
  printf 'auth:\n  algorithms: [MD5, SHA-256]\nsip:\n  udpBufferBytes: 4194304\nlog:\n  level: warn\nmedia:\n  relay: %s\n  bind: 127.0.0.1\n  portMin: 10000\n  portMax: 60000\ncalls:\n  maxTotal: 100000\n  maxPerExtension: 1000\ncdr:\n  format: csv\n' "${MEDIA_RELAY:-never}" > "$out/mss.yaml"
  node "$here/bin/minisipserver" serve --config "$out/mss.yaml" --data-dir "$data" --bind 127.0.0.1 --sip-port 25080 \
    > "$out/mss-server.log" 2>&1 &
  mss_pid=$!
  for _ in $(seq 1 50); do grep -q "listening on port" "$out/mss-server.log" && break; sleep 0.2; done
  OUT_DIR="$out/minisipserver" SKIP_REG=1 SERVER_PID=$mss_pid LABEL="minisipserver $(node "$here/bin/minisipserver" --version)" \
    "$lab/run-bench.sh" 127.0.0.1 25080 > "$out/minisipserver.log" 2>&1 || true
  kill "$mss_pid"; wait "$mss_pid" 2>/dev/null || true; mss_pid=""
}

sysctl -w net.core.rmem_max=4194304 net.core.wmem_max=4194304 >/dev/null 2>&1 || true
[ "${ONLY:-}" = minisipserver ] || run_kamailio
[ "${ONLY:-}" = kamailio ] || run_minisipserver

for s in kamailio minisipserver; do
  [ -f "$out/$s/results.txt" ] || continue
  echo "=== $s"; grep -E '^(test|call )|^max calls' "$out/$s/results.txt"
done
echo
echo "| server | max calls/s passing (<0.1% failed, p99 < 500 ms) | calls per server CPU-second at that step |"
echo "| --- | --- | --- |"
for s in kamailio minisipserver; do
  [ -f "$out/$s/results.json" ] || continue
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const best = r.max_calls_per_s;
    const step = r.steps.filter((x) => x.test === "call" && x.target_rate === best && x.pass).pop();
    console.log(`| ${process.argv[2]} | ${best ?? "none"} | ${step ? Math.round(step.successful_per_server_cpu_s) : "-"} |`);
  ' "$out/$s/results.json" "$s"
done
echo "raw results: $out"
