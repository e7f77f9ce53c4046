#!/usr/bin/env bash
# What the admin API, the event stream and the metrics cost under REGISTER load: the same server
# and the same SIPp REGISTER step (../shared/lab/run-bench.sh, SKIP_CALLS=1, digest auth) run with
# the admin listener off and then on with a `status`-like client on the event stream
# (GET /api/v1/events), a WebSocket event-channel client and a Prometheus-like scraper
# (GET /metrics every SCRAPE_S seconds) attached. Rounds alternate off/on so that a busy
# neighbour on the machine hits both alike. The figure compared is the server's CPU per
# registration (run-bench.sh's registrations per server CPU-second at the step).
#
#   scripts/bench/admin-cost.sh                  # 5000 REGISTER/s, 20 s steps, 3 rounds
#   RATE=5000 STEP_S=20 ROUNDS=3 SCRAPE_S=1 scripts/bench/admin-cost.sh
#
# Needs: sipp (sip-tester), curl, a built tree (npm ci). Everything stays on 127.0.0.1.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
lab=${LAB:-$here/../shared/lab}
out=${OUT:-/tmp/mss-bench-admin-$(date +%Y%m%d-%H%M%S)}
users=${USERS:-1000}
rate=${RATE:-5000}
step_s=${STEP_S:-20}
rounds=${ROUNDS:-3}
scrape_s=${SCRAPE_S:-1}
sip_port=25090
admin_port=25091
channel_port=25092
mkdir -p "$out"
command -v sipp >/dev/null || { echo "sipp not installed (apt-get install sip-tester)" >&2; exit 2; }
command -v curl >/dev/null || { echo "curl not installed" >&2; exit 2; }

pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

data="$out/data"
"$lab/sipp/gen-users.sh" "$out/users" "$users" 1000 >/dev/null
node "$here/bin/minisipserver" ext import "$out/users/users.txt" --data-dir "$data" >/dev/null
sysctl -w net.core.rmem_max=4194304 net.core.wmem_max=4194304 >/dev/null 2>&1 || true

run_mode() { # $1 = off | on, $2 = round
  local mode=$1 round=$2 listen="" channel=0
  if [ "$mode" = on ]; then listen="127.0.0.1:$admin_port"; channel=$channel_port; fi
  printf 'auth:\n  algorithms: [MD5, SHA-256]\nsip:\n  udpBufferBytes: 4194304\nlog:\n  level: warn\nadmin:\n  listen: "%s"\neventChannel:\n  port: %s\ncallback:\n  port: 0\n' "$listen" "$channel" > "$out/mss.yaml"
  node "$here/bin/minisipserver" serve --config "$out/mss.yaml" --data-dir "$data" --bind 127.0.0.1 --sip-port $sip_port > "$out/server-$mode-$round.log" 2>&1 &
  local server=$!
  pids+=("$server")
  for _ in $(seq 1 100); do grep -q "listening on port" "$out/server-$mode-$round.log" && break; sleep 0.1; done
  local clients=()
  if [ "$mode" = on ]; then
    local token; token=$(cat "$data/admin.token")
    for _ in $(seq 1 50); do curl -sf -o /dev/null -H "Authorization: Bearer $token" "http://127.0.0.1:$admin_port/api/v1/summary" && break; sleep 0.1; done
    # The status client: the snapshots once, then the event stream.
    for what in summary extensions calls; do curl -sf -o /dev/null -H "Authorization: Bearer $token" "http://127.0.0.1:$admin_port/api/v1/$what"; done
    curl -sN -H "Authorization: Bearer $token" "http://127.0.0.1:$admin_port/api/v1/events" > "$out/events-$round.txt" &
    clients+=($!)
    node -e '
      const WebSocket = require(process.argv[1] + "/node_modules/ws");
      const ws = new WebSocket("ws://127.0.0.1:" + process.argv[2]);
      let n = 0; ws.on("message", () => n++); process.on("SIGTERM", () => { console.log(n); process.exit(0); });
    ' "$here" "$channel_port" > "$out/channel-$round.txt" &
    clients+=($!)
    ( while sleep "$scrape_s"; do curl -sf -o /dev/null -H "Authorization: Bearer $token" "http://127.0.0.1:$admin_port/metrics" || true; done ) &
    clients+=($!)
  fi
  env OUT_DIR="$out/$mode-$round" SKIP_CALLS=1 REG_RATES="$rate" REG_STEP_S="$step_s" STOP_AFTER_FAILS=1 REFINE=0 SERVER_PID=$server \
    LABEL="minisipserver admin $mode" "$lab/run-bench.sh" 127.0.0.1 $sip_port > "$out/bench-$mode-$round.log" 2>&1 || true
  for c in "${clients[@]:-}"; do [ -n "$c" ] && kill "$c" 2>/dev/null || true; done
  kill "$server"; wait "$server" 2>/dev/null || true
}

for r in $(seq 1 "$rounds"); do
  run_mode off "$r"
  run_mode on "$r"
done

node -e '
  const fs = require("fs");
  const [out, rounds, rate] = process.argv.slice(1);
  const rows = [];
  const per = { off: [], on: [] };
  for (let r = 1; r <= Number(rounds); r++) {
    const row = [r];
    for (const mode of ["off", "on"]) {
      const f = `${out}/${mode}-${r}/results.json`;
      const res = fs.existsSync(f) ? JSON.parse(fs.readFileSync(f, "utf8")) : null;
      const step = res?.steps.find((s) => s.test === "reg" && s.target_rate === Number(rate));
      const v = step?.pass ? step.successful_per_server_cpu_s : null;
      if (v) per[mode].push(v);
      row.push(step ? (step.pass ? `${Math.round(v)} (cpu ${Math.round(step.server_cpu_pct ?? 0)}%)` : "step failed") : "no result");
    }
    rows.push(row);
  }
  console.log(`| round | admin off: registrations per server CPU-second | admin on + event stream + event channel + /metrics scraper |`);
  console.log("| --- | --- | --- |");
  for (const r of rows) console.log(`| ${r.join(" | ")} |`);
  const median = (a) => { const s = [...a].sort((x, y) => x - y); return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN; };
  const off = median(per.off), on = median(per.on);
  console.log(`\nmedian: off ${Math.round(off)}, on ${Math.round(on)} registrations per CPU-second; CPU per registration with the admin on: ${((off / on - 1) * 100).toFixed(1)}% more`);
' "$out" "$rounds" "$rate"
echo "raw results: $out"
