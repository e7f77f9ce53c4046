#!/usr/bin/env bash
# Two minisipserver nodes behind Kamailio's dispatcher, one killed under load (docs/CLUSTER.md).
#
#   scripts/cluster/demo.sh
#
# A private MariaDB (mariadb.mjs: mariadbd on a Unix socket in the work folder), Kamailio
# (deploy/kamailio/dispatcher.cfg) on 127.0.0.1, node 1 on 127.0.0.2 and node 2 on 127.0.0.3,
# both on the one database (store.kind: mariadb); each node has its own data folder (CDR files,
# admin token), its own media port range, and relays media (media.relay: always). The database
# is migrated (`db migrate`) and the extensions imported (`ext import`) once, before the nodes
# start. The demo:
#
#   1. registers PHONES SIPp phones through Kamailio (the hash over the From user spreads them
#      over both nodes; Kamailio adds Path, so each node reaches every phone through Kamailio);
#   2. makes CALLS calls between them through Kamailio, each from a phone registered through one
#      node to a phone registered through the other: every one must succeed, reach its callee
#      through Kamailio (the node's INVITE routed by the Path) and have its CDR line;
#   3. starts a call load (LOAD_CALLS calls at RATE/s, HOLD_MS each) and SIGKILLs node 2 in the
#      middle of it;
#   4. checks that new calls succeed within 10 s of the kill, that every phone re-registers
#      through Kamailio (now all on node 1), and that every call that had ended before the kill
#      has its CDR line.
#
# It prints a summary (and a last line `RESULT {json}`) and exits 1 on any loss, 2 when something
# it needs is missing. Everything runs on 127.0.0.x; it ends what it started on exit.
#
# Environment (all optional):
#   PHONES       phones (extensions 10000..)                 default 1000
#   CALLS        calls before the kill                       default 200
#   LOAD_CALLS   calls of the load the kill falls into       default 600
#   RATE         calls per second of both                    default 50
#   HOLD_MS      how long each call lasts                    default 1000
#   STORE        mariadb | sqlite                            default mariadb
#                (sqlite: the nodes share one SQLite file, registrar.shared: one machine only)
#   KEEP=1       keep the work folder (logs, CDRs, store) and print its path
#   WORK         use this (empty or new) folder instead of a temporary one
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/setup.sh"

phones=${PHONES:-1000}
calls=${CALLS:-200}
load_calls=${LOAD_CALLS:-600}
rate=${RATE:-50}
hold_ms=${HOLD_MS:-1000}
store=${STORE:-mariadb}
# How long after the kill new calls must succeed again.
recover_s=10

for n in phones calls load_calls rate hold_ms; do
  [[ ${!n} =~ ^[0-9]+$ ]] && [ "${!n}" -gt 0 ] || die "${n^^} must be a positive whole number, not '${!n}'"
done
[ "$phones" -ge 4 ] || die "PHONES must be at least 4"
case "$store" in
  sqlite | mariadb) ;;
  *) die "STORE must be mariadb or sqlite, not '$store'" ;;
esac
check_tools kamailio kamcmd sipp node ss
for f in reg_auth.xml uac_call.xml uas_call.xml gen-users.sh; do
  [ -f "$lab/$f" ] || die "$lab/$f is missing (set LAB_SIPP to the folder of the lab's SIPp scenarios)"
done
make_work

setup_store
start_node node1 127.0.0.2 40000
start_node node2 127.0.0.3 44000
start_kamailio node1 node2
start_uas

census() { node "$here/census.mjs" "$(store_spec)" "$work/kamailio/kamailio.log" "127.0.0.2=$work/node1/cdr" "127.0.0.3=$work/node2/cdr" "$@"; }

register_all() {
  run_sipp "$1" -sf "$lab/reg_auth.xml" -inf "$work/users/users.csv" -key contact_host 127.0.0.1 -key contact_port "$uas_port" \
    -key expires 3600 -m "$phones" -r 200 -timeout 120
}

# INVITEs Kamailio received from the nodes with a Route naming it: the callee legs the nodes
# sent through the phones' Path.
invites_from_nodes() { grep -cE "INVITE \S+ from 127\.0\.0\.[23]:[0-9]+ route <sip:127\.0\.0\.1:$kam_port;lr>" "$work/kamailio/kamailio.log" || true; }

failures=()

# ---- 1. register every phone through Kamailio ----
register_all register
registered=$sipp_ok
# Every binding in the store (written in batches) before calls look for them there.
bindings_all() { [ "$(json_field "$(census)" bindings)" -ge "$registered" ]; }
wait_for 5 "every binding in the store" bindings_all || true
c=$(census)
on1=$(node -e 'console.log(JSON.parse(process.argv[1]).registeredOn["127.0.0.2"]??0)' "$c")
on2=$(node -e 'console.log(JSON.parse(process.argv[1]).registeredOn["127.0.0.3"]??0)' "$c")
log "registered $registered of $phones phones through kamailio: $on1 through node 1, $on2 through node 2"
[ "$registered" = "$phones" ] || failures+=("only $registered of $phones phones registered")
[ "$on1" -gt 0 ] && [ "$on2" -gt 0 ] || failures+=("the phones did not spread over both nodes ($on1 / $on2)")

# ---- 2. calls through both nodes ----
# Every call from a phone registered through one node to one registered through the other.
node "$here/cross-calls.mjs" "$work/kamailio/kamailio.log" "$work/users/users.txt" "$work/users/cross-calls.csv" >/dev/null \
  || failures+=("no calls between the nodes could be made up")
run_sipp calls -sf "$lab/uac_call.xml" -inf "$work/users/cross-calls.csv" -m "$calls" -r "$rate" -d "$hold_ms" -timeout 120
calls_ok=$sipp_ok
through_proxy=$(invites_from_nodes)
calls_failed=$sipp_failed
cdr_total() { [ "$(node -e 'const c=JSON.parse(process.argv[1]).cdr;console.log(Object.values(c).reduce((a,b)=>a+b,0))' "$(census)")" -ge "$1" ]; }
wait_for 5 "$calls_ok CDR lines" cdr_total "$calls_ok" || true
c=$(census)
cdr_calls=$(node -e 'const c=JSON.parse(process.argv[1]).cdr;console.log(Object.values(c).reduce((a,b)=>a+b,0))' "$c")
cross=$(node -e 'console.log(JSON.parse(process.argv[1]).crossNode)' "$c")
log "calls: $calls_ok of $calls succeeded ($calls_failed failed), $cross of them to a phone registered through the other node; CDR lines: $cdr_calls"
log "INVITEs the nodes sent to the phones through Kamailio (Route from the Path): $through_proxy"
[ "$calls_ok" = "$calls" ] || failures+=("$(( calls - calls_ok )) of $calls calls before the kill failed")
[ "$cdr_calls" = "$calls_ok" ] || failures+=("$cdr_calls CDR lines for $calls_ok calls before the kill")
[ "$cross" -gt 0 ] || failures+=("no call went to a phone registered through the other node")
[ "$through_proxy" -ge "$calls_ok" ] || failures+=("only $through_proxy of $calls_ok callee legs went through Kamailio (Path)")

# ---- 3. a call load, and node 2 killed in the middle of it ----
mkdir -p "$work/load"
load_port=$(free_udp_port 127.0.0.1)
(cd "$work/load" && exec sipp -sf "$lab/uac_call.xml" -inf "$work/users/cross-calls.csv" -m "$load_calls" -r "$rate" -d "$hold_ms" \
  -timeout $(( load_calls / rate + 60 )) -i 127.0.0.1 -p "$load_port" -nostdin -trace_stat -stf stat.csv -fd 1 \
  "127.0.0.1:$kam_port" >sipp.log 2>&1) &
load_pid=$!
pids+=("$load_pid")
load_half() { read -r ok _ < <(stat_counts "$work/load/stat.csv" 0); [ "$ok" -ge $(( load_calls / 3 )) ]; }
wait_for $(( load_calls / rate + 30 )) "a third of the load" load_half || failures+=("the load did not get going")
kill -KILL "${node_pid[node2]}"
kill_ms=$(now_ms)
read -r load_ok_before _ < <(stat_counts "$work/load/stat.csv" "$kill_ms")
log "node 2 (pid ${node_pid[node2]}) killed with SIGKILL; $load_ok_before calls of the load had ended by SIPp's last count before"

# ---- 4. new calls within 10 s, phones re-registered, no CDR lost ----
recovered_ms=""
probe=0
while [ "$(now_ms)" -lt $(( kill_ms + recover_s * 1000 )) ]; do
  probe=$(( probe + 1 ))
  # Ten calls from ten different callers, half of whom registered through the killed node.
  run_sipp "probe$probe" -sf "$lab/uac_call.xml" -inf "$work/users/cross-calls.csv" -m 10 -r 20 -d 100 -timeout 15
  if [ "$sipp_ok" = 10 ]; then recovered_ms=$(( $(now_ms) - kill_ms )); break; fi
done
if [ -n "$recovered_ms" ]; then
  log "new calls: 10 of 10 succeeded, done $(( recovered_ms / 1000 )).$(( recovered_ms % 1000 / 100 )) s after the kill"
  [ "$recovered_ms" -le $(( recover_s * 1000 )) ] || failures+=("new calls succeeded only ${recovered_ms} ms after the kill")
else
  failures+=("new calls did not all succeed within $recover_s s of the kill")
fi

register_all reregister
reregistered=$sipp_ok
# The surviving node writes the refreshed bindings in batches: wait (bounded) until they are in.
refreshed_all() { [ "$(json_field "$(census --registered-since "$kill_ms")" refreshed)" -ge "$reregistered" ]; }
wait_for 5 "the refreshed bindings in the store" refreshed_all || true
c=$(census --registered-since "$kill_ms")
moved=$(node -e 'console.log(JSON.parse(process.argv[1]).registeredOn["127.0.0.2"]??0)' "$c")
refreshed=$(node -e 'console.log(JSON.parse(process.argv[1]).refreshed)' "$c")
log "re-registered $reregistered of $phones phones through kamailio, $moved now through node 1; bindings refreshed since the kill: $refreshed"
[ "$reregistered" = "$phones" ] || failures+=("only $reregistered of $phones phones re-registered after the kill")
[ "$moved" = "$phones" ] || failures+=("$moved of $phones phones re-registered through the surviving node")
[ "$refreshed" = "$phones" ] || failures+=("$refreshed of $phones bindings refreshed in the store after the kill")

# SIPp's -timeout does not end a run whose last calls still wait: a call whose INVITE the killed
# node had answered with 100 Trying waits for Kamailio's ring timer. Those calls were in progress
# on the killed node; the run is ended here once the others are long done.
load_end=$(( $(now_ms) + (load_calls / rate + 15) * 1000 ))
while kill -0 "$load_pid" 2>/dev/null && [ "$(now_ms)" -lt "$load_end" ]; do sleep 0.2; done
kill -TERM "$load_pid" 2>/dev/null || true
wait "$load_pid" 2>/dev/null || true
read -r load_ok _ < <(stat_counts "$work/load/stat.csv" 0)
load_failed=$(( load_calls - load_ok ))
c=$(census --ended-before "$kill_ms")
ended_before=$(node -e 'console.log(JSON.parse(process.argv[1]).endedBefore)' "$c")
duplicates=$(node -e 'console.log(JSON.parse(process.argv[1]).duplicates)' "$c")
must_have=$(( calls_ok + load_ok_before ))
log "load: $load_ok of $load_calls calls succeeded, $load_failed did not (the calls in progress on node 2 end with it)"
log "CDR lines of calls that ended before the kill: $ended_before (SIPp counted at least $must_have); recorded twice: $duplicates"
[ "$ended_before" -ge "$must_have" ] || failures+=("$(( must_have - ended_before )) calls that ended before the kill have no CDR line")
[ "$duplicates" = 0 ] || failures+=("$duplicates calls recorded twice")

echo
echo "Summary ($store store, $phones phones, 2 nodes behind Kamailio, node 2 killed under load):"
echo "  registered through Kamailio:      $registered / $phones (node 1: $on1, node 2: $on2)"
echo "  calls before the kill:            $calls_ok / $calls, $cross to the other node's phones, $cdr_calls CDR lines"
echo "  callee legs through Kamailio:     $through_proxy (each node reaches the phones by their Path)"
echo "  new calls after the kill:         ${recovered_ms:-never} ms"
echo "  re-registered after the kill:     $reregistered / $phones, $moved through node 1"
echo "  CDR lines of calls ended before:  $ended_before (at least $must_have needed)"
echo "  load calls lost with node 2:      $load_failed (calls in progress on a failed node are lost)"
result=$(node -e 'const [a,s,...r]=process.argv.slice(1);console.log(JSON.stringify({ok:a==="0",store:s,registered:+r[0],phones:+r[1],calls:+r[2],callsOk:+r[3],crossNode:+r[4],cdrCalls:+r[5],recoveredMs:r[6]===""?null:+r[6],reregistered:+r[7],movedToSurvivor:+r[8],endedBeforeKill:+r[9],mustHaveCdr:+r[10],loadFailed:+r[11],throughProxy:+r[12],failures:r.slice(13)}))' \
  "${#failures[@]}" "$store" "$registered" "$phones" "$calls" "$calls_ok" "$cross" "$cdr_calls" "${recovered_ms:-}" "$reregistered" "$moved" "$ended_before" "$must_have" "$load_failed" "$through_proxy" "${failures[@]}")
if [ ${#failures[@]} -gt 0 ]; then
  echo "FAILED:"
  for f in "${failures[@]}"; do echo "  - $f"; done
else
  echo "OK: nothing lost but the calls in progress on the killed node."
fi
echo "RESULT $result"
[ ${#failures[@]} -eq 0 ]
