#!/usr/bin/env bash
# One server on SQLite against the same server on MariaDB (store.kind: mariadb), one after the
# other in the same run, under the same SIPp ramps (../shared/lab/run-bench.sh): REGISTER with
# digest authentication, then calls (INVITE challenged, 1 s hold, BYE), with the server's CPU per
# step (the MariaDB server process counted with it: it works for this server alone).
#
#   scripts/bench/store.sh
#   REG_RATES="2000 4000 8000" CALL_RATES="400 800 1600" scripts/bench/store.sh
#   ONLY=mariadb scripts/bench/store.sh
#
# The MariaDB server is a private mariadbd in a temporary folder on a Unix socket
# (scripts/cluster/mariadb.mjs, as the tests start theirs). Needs: sipp (sip-tester),
# mariadb-server, a built tree with its tests (npm run build). Everything stays on 127.0.0.1.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
lab=${LAB:-$here/../shared/lab}
out=${OUT:-/tmp/mss-bench-store-$(date +%Y%m%d-%H%M%S)}
users=${USERS:-1000}
port=${PORT:-25380}
export REG_RATES=${REG_RATES:-"2000 4000 8000 12000 16000"}
export REG_STEP_S=${REG_STEP_S:-10}
export CALL_RATES=${CALL_RATES:-"400 800 1600 2400"}
export CALL_STEP_S=${CALL_STEP_S:-15}
command -v sipp >/dev/null || { echo "sipp not installed (apt-get install sip-tester)" >&2; exit 2; }
mkdir -p "$out"
"$lab/sipp/gen-users.sh" "$out/users" "$users" 1000 >/dev/null
sysctl -w net.core.rmem_max=4194304 net.core.wmem_max=4194304 >/dev/null 2>&1 || true

srv_pid=""
db_pid=""
cleanup() {
  [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null || true
  [ -n "$db_pid" ] && kill "$db_pid" 2>/dev/null && wait "$db_pid" 2>/dev/null || true
}
trap cleanup EXIT

base_config() {
  printf 'auth:\n  algorithms: [MD5, SHA-256]\nsip:\n  udpBufferBytes: 4194304\nlog:\n  level: warn\nmedia:\n  relay: never\ncalls:\n  maxTotal: 100000\n  maxPerExtension: 1000\n'
}

run_one() { # $1: sqlite | mariadb
  local name=$1 data=$out/$1-data cfg=$out/$1.yaml
  rm -rf "$data"
  base_config > "$cfg"
  if [ "$name" = mariadb ]; then
    mkdir -p "$out/mariadb"
    TMPDIR="$out/mariadb" node "$here/scripts/cluster/mariadb.mjs" "$out/mariadb/state.json" > "$out/mariadb/mariadb.log" 2>&1 &
    db_pid=$!
    for _ in $(seq 1 600); do grep -q '^ready' "$out/mariadb/mariadb.log" 2>/dev/null && break; sleep 0.1; done
    grep -q '^ready' "$out/mariadb/mariadb.log" || { echo "mariadbd did not start (see $out/mariadb/mariadb.log)" >&2; exit 1; }
    node -e '
      const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      console.log(`store:\n  kind: mariadb\n  mariadb:\n    socketPath: ${s.socketPath}\n    user: ${s.user}\n    passwordFile: ${s.passwordFile}\n    database: ${s.database}`);
    ' "$out/mariadb/state.json" >> "$cfg"
    node "$here/build/cli/main.js" db migrate --config "$cfg" >/dev/null
  fi
  node "$here/build/cli/main.js" ext import "$out/users/users.txt" --config "$cfg" --data-dir "$data" >/dev/null
  node "$here/build/cli/main.js" serve --config "$cfg" --data-dir "$data" --bind 127.0.0.1 --sip-port "$port" > "$out/$name-server.log" 2>&1 &
  srv_pid=$!
  for _ in $(seq 1 100); do grep -q "listening on port" "$out/$name-server.log" 2>/dev/null && break; sleep 0.1; done
  grep -q "listening on port" "$out/$name-server.log" || { echo "the server did not start (see $out/$name-server.log)" >&2; exit 1; }
  local pids=$srv_pid
  [ -n "$db_pid" ] && pids="$srv_pid $(cat "$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).pidFile)' "$out/mariadb/state.json")")"
  env OUT_DIR="$out/$name" SERVER_PID="$pids" LABEL="minisipserver on $name" \
    UAS_PORT=$((port + 1)) UAC_PORT=$((port + 2)) REG_PORT=$((port + 3)) OPT_PORT=$((port + 4)) \
    "$lab/run-bench.sh" 127.0.0.1 "$port" > "$out/$name.log" 2>&1 || true
  kill "$srv_pid"; wait "$srv_pid" 2>/dev/null || true; srv_pid=""
  if [ -n "$db_pid" ]; then kill "$db_pid"; wait "$db_pid" 2>/dev/null || true; db_pid=""; fi
}

case "${ONLY:-}" in
  sqlite | mariadb) run_one "$ONLY" ;;
  *) run_one sqlite; run_one mariadb ;;
esac

for s in sqlite mariadb; do
  [ -f "$out/$s/results.txt" ] || continue
  echo "=== $s"; grep -E "^(test|reg |call )|^max " "$out/$s/results.txt"
done
echo
echo "| store | max registrations/s passing | registrations per server CPU-second there | max calls/s passing | calls per server CPU-second there |"
echo "| --- | --- | --- | --- | --- |"
for s in sqlite mariadb; do
  [ -f "$out/$s/results.json" ] || continue
  node -e '
    const [file, name] = process.argv.slice(1);
    const r = JSON.parse(require("fs").readFileSync(file, "utf8"));
    const at = (kind, best) => { const st = r.steps.filter((x) => x.test === kind && x.target_rate === best && x.pass).pop(); return st ? Math.round(st.successful_per_server_cpu_s) : "-"; };
    console.log(`| ${name} | ${r.max_registrations_per_s ?? "none"} | ${at("reg", r.max_registrations_per_s)} | ${r.max_calls_per_s ?? "none"} | ${at("call", r.max_calls_per_s)} |`);
  ' "$out/$s/results.json" "$s"
done
echo "raw results: $out"
