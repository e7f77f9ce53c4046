# Shared by register.sh and calls.sh (sourced, not run): runs ../shared/lab/run-bench.sh against
# the reference Kamailio and then against minisipserver, one after the other in the same run, and
# prints both result tables and a side-by-side summary. The caller sets:
#   KIND           reg | call        (which ramp of run-bench.sh is compared)
#   SKIP           SKIP_CALLS | SKIP_REG (the other ramp, skipped)
#   KAMAILIO_ENV   extra environment for lab/kamailio/start.sh (e.g. INVITE_AUTH=1)
#   MSS_CONFIG     the minisipserver configuration (YAML text)
#   out, users, here, lab
set -euo pipefail
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
  env $KAMAILIO_ENV RUN_DIR="$out/kamailio-run" SIP_PORT=25060 "$lab/kamailio/start.sh" "$users" 1000
  env OUT_DIR="$out/kamailio" "$SKIP=1" LABEL="kamailio $(kamailio -v 2>/dev/null | head -1 | awk '{print $3}') lab cfg $KAMAILIO_ENV" \
    "$lab/run-bench.sh" 127.0.0.1 25060 > "$out/kamailio.log" 2>&1 || true
  RUN_DIR="$out/kamailio-run" "$lab/kamailio/stop.sh" >/dev/null
}

run_minisipserver() {
  local data="$out/mss-data"
  rm -rf "$data"
  "$lab/sipp/gen-users.sh" "$out/users" "$users" 1000 >/dev/null
  node "$here/bin/minisipserver" ext import "$out/users/users.txt" --data-dir "$data" >/dev/null
  printf '%s\n' "$MSS_CONFIG" > "$out/mss.yaml"
  node "$here/bin/minisipserver" serve --config "$out/mss.yaml" --data-dir "$data" --bind 127.0.0.1 --sip-port 25080 \
    > "$out/mss-server.log" 2>&1 &
  mss_pid=$!
  for _ in $(seq 1 50); do grep -q "listening on port" "$out/mss-server.log" && break; sleep 0.2; done
  env OUT_DIR="$out/minisipserver" "$SKIP=1" SERVER_PID=$mss_pid LABEL="minisipserver $(node "$here/bin/minisipserver" --version)" \
    "$lab/run-bench.sh" 127.0.0.1 25080 > "$out/minisipserver.log" 2>&1 || true
  kill "$mss_pid"; wait "$mss_pid" 2>/dev/null || true; mss_pid=""
}

sysctl -w net.core.rmem_max=4194304 net.core.wmem_max=4194304 >/dev/null 2>&1 || true
[ "${ONLY:-}" = minisipserver ] || run_kamailio
[ "${ONLY:-}" = kamailio ] || run_minisipserver

for s in kamailio minisipserver; do
  [ -f "$out/$s/results.txt" ] || continue
  echo "=== $s"; grep -E "^(test|$KIND )|^max " "$out/$s/results.txt"
done
echo
if [ "$KIND" = reg ]; then what=registrations; field=max_registrations_per_s; else what=calls; field=max_calls_per_s; fi
echo "| server | max $what/s passing (<0.1% failed, p99 < 500 ms) | $what per server CPU-second at that step |"
echo "| --- | --- | --- |"
for s in kamailio minisipserver; do
  [ -f "$out/$s/results.json" ] || continue
  node -e '
    const [file, name, kind, field] = process.argv.slice(1);
    const r = JSON.parse(require("fs").readFileSync(file, "utf8"));
    const best = r[field];
    const step = r.steps.filter((x) => x.test === kind && x.target_rate === best && x.pass).pop();
    console.log(`| ${name} | ${best ?? "none"} | ${step ? Math.round(step.successful_per_server_cpu_s) : "-"} |`);
  ' "$out/$s/results.json" "$s" "$KIND" "$field"
done
echo "raw results: $out"
