#!/usr/bin/env bash
# The database stopped for OUTAGE_S seconds under REGISTER load, and started again
# (docs/CLUSTER.md, "What happens when something fails").
#
#   scripts/cluster/outage.sh
#
# The set-up of demo.sh (setup.sh): a private MariaDB, Kamailio on 127.0.0.1, node 1 on
# 127.0.0.2 and node 2 on 127.0.0.3 on the one database. SIPp registers PHONES phones over and
# over through Kamailio at RATE REGISTERs a second (reg_outage.xml, in which 503 is an expected
# answer) for BEFORE_S seconds, then mariadbd is stopped (SIGTERM) for OUTAGE_S seconds and started
# again, and the load goes on for AFTER_S seconds. No node is restarted. Then it prints the answers
# per second and checks (outage-report.mjs):
#   - before: every REGISTER 200;
#   - while the database is away: 503 with Retry-After (each node answers 503 and Kamailio tries
#     the other, which answers 503 too: the phone gets 503), no 200, no timeout;
#   - after: 200 again within RECOVER_S seconds of the database's return, with both nodes the
#     same processes as before;
#   - each node logged store.unavailable once and store.available once;
#   - Kamailio sent each REGISTER to two nodes at most (no loop).
# It exits 1 when a check failed, 2 when something it needs is missing; the last line is
# `RESULT {json}`.
#
# Environment (all optional):
#   PHONES     phones (extensions 10000..)                      default 200
#   RATE       REGISTERs a second                               default 50
#   BEFORE_S   load before the stop                             default 5
#   OUTAGE_S   how long the database is away                    default 10
#   AFTER_S    load after it is back                            default 15
#   RECOVER_S  200 again at most this long after its return    default 10
#   KEEP=1     keep the work folder; WORK: use this (empty or new) folder
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/setup.sh"

phones=${PHONES:-200}
rate=${RATE:-50}
before_s=${BEFORE_S:-5}
outage_s=${OUTAGE_S:-10}
after_s=${AFTER_S:-15}
recover_s=${RECOVER_S:-10}
store=mariadb

for n in phones rate before_s outage_s after_s recover_s; do
  [[ ${!n} =~ ^[0-9]+$ ]] && [ "${!n}" -gt 0 ] || die "${n^^} must be a positive whole number, not '${!n}'"
done
[ "$after_s" -gt "$recover_s" ] || die "AFTER_S ($after_s) must be longer than RECOVER_S ($recover_s)"
check_tools kamailio kamcmd sipp node ss
[ -f "$lab/gen-users.sh" ] || die "$lab/gen-users.sh is missing (set LAB_SIPP to the folder of the lab's SIPp scenarios)"
make_work

setup_store
start_node node1 127.0.0.2 40000
start_node node2 127.0.0.3 44000
start_kamailio node1 node2

# ---- the REGISTER load ----
mkdir -p "$work/load"
load_port=$(free_udp_port 127.0.0.1)
total_s=$(( before_s + outage_s + after_s ))
(cd "$work/load" && exec sipp -sf "$here/reg_outage.xml" -inf "$work/users/users.csv" -key contact_host 127.0.0.1 \
  -key contact_port "$load_port" -key expires 300 -r "$rate" -m $(( rate * total_s )) -timeout $(( total_s + 60 )) \
  -i 127.0.0.1 -p "$load_port" -nostdin -default_behaviors abortunexp -trace_err -trace_stat -stf stat.csv -fd 1 "127.0.0.1:$kam_port" >sipp.log 2>&1) &
load_pid=$!
pids+=("$load_pid")
load_started_ms=$(now_ms)
log "sipp: $rate REGISTERs a second through kamailio for about $total_s s"

wait_until_ms() { while [ "$(now_ms)" -lt "$1" ] && kill -0 "$load_pid" 2>/dev/null; do sleep 0.1; done; }
wait_until_ms $(( load_started_ms + before_s * 1000 ))
kill -0 "$load_pid" 2>/dev/null || die "SIPp stopped early: $(tail -5 "$work/load/sipp.log")"

pids_before="${node_pid[node1]} ${node_pid[node2]}"
stop_ms=$(now_ms)
stopped_ms=$(mariadb_signal USR1 stopped) || exit 1
log "mariadb stopped"
wait_until_ms $(( stop_ms + outage_s * 1000 ))
started_ms=$(mariadb_signal USR2 started) || exit 1
log "mariadb started again $(( (started_ms - stop_ms) / 1000 )) s after it was told to stop"

# The load ends by itself (-m); bounded here all the same.
wait_until_ms $(( started_ms + (after_s + 30) * 1000 ))
kill -TERM "$load_pid" 2>/dev/null || true
wait "$load_pid" 2>/dev/null || true

failures=()
for name in node1 node2; do
  kill -0 "${node_pid[$name]}" 2>/dev/null || failures+=("$name is not running any more")
done

echo
echo "REGISTERs through Kamailio, answers per second ($rate/s, $phones phones, 2 nodes on one MariaDB):"
set +e
report=$(node "$here/outage-report.mjs" "$work/load/stat.csv" "$stop_ms" "$stopped_ms" "$started_ms" "$recover_s" "$work/kamailio/kamailio.log" \
  "node1=$work/node1.log" "node2=$work/node2.log")
report_code=$?
set -e
echo "$report" | grep -v '^RESULT '
result=$(echo "$report" | sed -n 's/^RESULT //p')
[ -n "$result" ] || failures+=("outage-report.mjs printed no result (exit $report_code)")
echo
if [ -n "$result" ]; then
  while IFS= read -r f; do [ -z "$f" ] || failures+=("$f"); done < <(node -e 'for (const f of JSON.parse(process.argv[1]).failures) console.log(f)' "$result")
  echo "Summary: database away $(json_field "$result" outageMs) ms; 503 while away: $(json_field "$result" unavailableWhileAway)," \
    "200 while away: $(json_field "$result" okWhileAway); 200 again $(json_field "$result" recoveredMs) ms after its return;" \
    "timeouts: $(json_field "$result" timeouts); nodes not restarted (pids $pids_before)"
fi
final=$(node -e 'const [r, ...f] = process.argv.slice(1); const o = r ? JSON.parse(r) : {}; o.ok = f.length === 0; o.failures = f; console.log(JSON.stringify(o))' "${result:-}" "${failures[@]}")
if [ ${#failures[@]} -gt 0 ]; then
  echo "FAILED:"
  for f in "${failures[@]}"; do echo "  - $f"; done
else
  echo "OK: 503 with Retry-After while the database was away, 200 again without restarting a node."
fi
echo "RESULT $final"
[ ${#failures[@]} -eq 0 ]
