#!/usr/bin/env bash
# REGISTER with digest authentication: minisipserver and the reference Kamailio, one after the
# other in the same run, under the same SIPp ramp (../shared/lab/run-bench.sh, SKIP_CALLS=1).
#
#   scripts/bench/register.sh            # both servers, default ramp
#   REG_RATES="4000 8000 12000" scripts/bench/register.sh
#   ONLY=minisipserver scripts/bench/register.sh
#
# Needs: sipp (sip-tester), kamailio, a built tree (npm ci). Everything stays on 127.0.0.1.
# Prints the two result tables and a side-by-side summary; raw files stay in $OUT.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
lab=${LAB:-$here/../shared/lab}
out=${OUT:-/tmp/mss-bench-register-$(date +%Y%m%d-%H%M%S)}
users=${USERS:-1000}
export REG_RATES=${REG_RATES:-"4000 8000 12000 16000 20000 24000 28000"}
export REG_STEP_S=${REG_STEP_S:-10}
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
  RUN_DIR="$out/kamailio-run" SIP_PORT=25060 "$lab/kamailio/start.sh" "$users" 1000
  OUT_DIR="$out/kamailio" SKIP_CALLS=1 LABEL="kamailio $(kamailio -v 2>/dev/null | head -1 | awk '{print $3}') lab cfg" \
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
  printf 'auth:\n  algorithms: [MD5, SHA-256]\nsip:\n  udpBufferBytes: 4194304\nlog:\n  level: warn\n' > "$out/mss.yaml"
  node "$here/bin/minisipserver" serve --config "$out/mss.yaml" --data-dir "$data" --bind 127.0.0.1 --sip-port 25080 \
    > "$out/mss-server.log" 2>&1 &
  mss_pid=$!
  for _ in $(seq 1 50); do grep -q "listening on port" "$out/mss-server.log" && break; sleep 0.2; done
  OUT_DIR="$out/minisipserver" SKIP_CALLS=1 SERVER_PID=$mss_pid LABEL="minisipserver $(node "$here/bin/minisipserver" --version)" \
    "$lab/run-bench.sh" 127.0.0.1 25080 > "$out/minisipserver.log" 2>&1 || true
  kill "$mss_pid"; wait "$mss_pid" 2>/dev/null || true; mss_pid=""
}

sysctl -w net.core.rmem_max=4194304 net.core.wmem_max=4194304 >/dev/null 2>&1 || true
[ "${ONLY:-}" = minisipserver ] || run_kamailio
[ "${ONLY:-}" = kamailio ] || run_minisipserver

for s in kamailio minisipserver; do
  [ -f "$out/$s/results.txt" ] || continue
  echo "=== $s"; grep -E '^(test|reg )|^max registrations' "$out/$s/results.txt"
done
echo
echo "| server | max REGISTER/s passing (<0.1% failed, p99 < 500 ms) | registrations per server CPU-second at that step |"
echo "| --- | --- | --- |"
for s in kamailio minisipserver; do
  [ -f "$out/$s/results.json" ] || continue
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const best = r.max_registrations_per_s;
    const step = r.steps.filter((x) => x.test === "reg" && x.target_rate === best && x.pass).pop();
    console.log(`| ${process.argv[2]} | ${best ?? "none"} | ${step ? Math.round(step.successful_per_server_cpu_s) : "-"} |`);
  ' "$out/$s/results.json" "$s"
done
echo "raw results: $out"
