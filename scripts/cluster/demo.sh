#!/usr/bin/env bash
# Two minisipserver nodes behind Kamailio's dispatcher, one killed under load (docs/CLUSTER.md).
#
#   scripts/cluster/demo.sh
#
# Kamailio (deploy/kamailio/dispatcher.cfg) on 127.0.0.1, node 1 on 127.0.0.2 and node 2 on
# 127.0.0.3, sharing one store; each node has its own data folder (CDR files, admin token) and its
# own media port range, and relays media (media.relay: always). The demo:
#
#   1. imports PHONES extensions and registers PHONES SIPp phones through Kamailio (the hash over
#      the From user spreads them over both nodes);
#   2. makes CALLS calls between them through Kamailio, each from a phone registered through one
#      node to a phone registered through the other: every one must succeed and have its CDR line;
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
#   STORE        sqlite | mariadb                            default sqlite
#   KEEP=1       keep the work folder (logs, CDRs, store) and print its path
#   WORK         use this (empty or new) folder instead of a temporary one
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
lab=${LAB_SIPP:-$(cd "$repo/.." && pwd)/shared/lab/sipp}
phones=${PHONES:-1000}
calls=${CALLS:-200}
load_calls=${LOAD_CALLS:-600}
rate=${RATE:-50}
hold_ms=${HOLD_MS:-1000}
store=${STORE:-sqlite}
first_user=10000
# How long after the kill new calls must succeed again.
recover_s=10

die() { echo "demo: $*" >&2; exit 2; }
for n in phones calls load_calls rate hold_ms; do
  [[ ${!n} =~ ^[0-9]+$ ]] && [ "${!n}" -gt 0 ] || die "${n^^} must be a positive whole number, not '${!n}'"
done
[ "$phones" -ge 4 ] || die "PHONES must be at least 4"
case "$store" in
  sqlite) ;;
  mariadb)
    # The nodes would share a MariaDB database (store.kind: mariadb) served by a private mariadbd
    # in the work folder; that store is not part of this version of minisipserver.
    die "STORE=mariadb is not available yet: it needs the MariaDB store (store.kind: mariadb), which this version of minisipserver does not have; run with STORE=sqlite" ;;
  *) die "STORE must be sqlite or mariadb, not '$store'" ;;
esac
for tool in kamailio kamcmd sipp node ss; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (Debian: apt-get install kamailio sip-tester iproute2 nodejs)"
done
for f in reg_auth.xml uac_call.xml uas_call.xml gen-users.sh; do
  [ -f "$lab/$f" ] || die "$lab/$f is missing (set LAB_SIPP to the folder of the lab's SIPp scenarios)"
done
[ -f "$repo/build/cli/main.js" ] || die "the server is not built: run npm run build in $repo"

if [ -n "${WORK:-}" ]; then
  work=$WORK
  mkdir -p "$work"
  [ -z "$(ls -A "$work")" ] || die "WORK=$work is not empty"
else
  work=$(mktemp -d /tmp/mss-cluster-XXXXXX)
fi

# Everything this script starts, by pid; ended on exit (whatever the exit).
pids=()
cleanup() {
  local code=$?
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ "${KEEP:-0}" = 1 ] || [ $code -ne 0 ]; then echo "demo: work folder kept: $work" >&2; else rm -rf "$work"; fi
  exit $code
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { date +%s%3N; }
log() { printf '[%5.1fs] %s\n' "$(( $(now_ms) - t0 ))e-3" "$*"; }
t0=$(now_ms)

# A UDP port free on ADDRESS right now (the OS picks it).
free_udp_port() {
  node -e "const s=require('dgram').createSocket('udp4');s.bind(0,process.argv[1],()=>{console.log(s.address().port);s.close()})" "$1"
}

# waits (bounded) until COMMAND succeeds: wait_for SECONDS WHAT COMMAND...
wait_for() {
  local seconds=$1 what=$2; shift 2
  local deadline=$(( $(now_ms) + seconds * 1000 ))
  until "$@"; do
    [ "$(now_ms)" -lt "$deadline" ] || { echo "demo: $what not within $seconds s" >&2; return 1; }
    sleep 0.1
  done
}

udp_bound() { ss -H -lun "sport = :$2" 2>/dev/null | grep -q "$1:$2"; }

# ---- users and the shared store ----
"$lab/gen-users.sh" "$work/users" "$phones" "$first_user" >/dev/null
mkdir -p "$work/store"
node "$repo/bin/minisipserver" ext import "$work/users/users.txt" --data-dir "$work/store" >"$work/import.log" 2>&1 \
  || { cat "$work/import.log" >&2; die "ext import failed"; }

# ---- the nodes ----
# Each node has its own data folder (its CDR files, admin token and address) whose store file is
# the shared one: SQLite follows the link, so its WAL and locks are the shared file's.
declare -A node_port node_pid
start_node() {
  local name=$1 address=$2 media_min=$3
  local dir="$work/$name"
  mkdir -p "$dir"
  ln -s "$work/store/minisipserver.db" "$dir/minisipserver.db"
  cat >"$work/$name.yaml" <<EOF
sip:
  transports: [udp]
  # Behind a proxy the Request-URI names the proxy: Via, Contact and SDP must name the node.
  advertise: $address
registrar:
  shared: true
auth:
  algorithms: [MD5]
media:
  relay: always
  portMin: $media_min
  portMax: $(( media_min + 3999 ))
security:
  trusted: [127.0.0.0/8]
EOF
  node "$repo/bin/minisipserver" serve --config "$work/$name.yaml" --data-dir "$dir" --bind "$address" --sip-port 0 \
    --callback-port 0 --event-channel-port 0 --admin-listen "$address:0" --log-format json >"$work/$name.log" 2>&1 &
  node_pid[$name]=$!
  pids+=("$!")
  # Its SIGKILL below is the point of the demo, not news for bash to report.
  disown "$!"
  wait_for 20 "$name listening" grep -q 'listening on port' "$work/$name.log" || { tail -20 "$work/$name.log" >&2; exit 1; }
  node_port[$name]=$(sed -n 's/.*listening on port \([0-9]*\) .*/\1/p' "$work/$name.log" | head -1)
  log "$name: pid ${node_pid[$name]} on udp:$address:${node_port[$name]}, media $media_min-$(( media_min + 3999 ))"
}
start_node node1 127.0.0.2 40000
start_node node2 127.0.0.3 44000

# ---- Kamailio ----
kam_port=$(free_udp_port 127.0.0.1)
mkdir -p "$work/kamailio"
cat >"$work/kamailio/dispatcher.list" <<EOF
1 sip:127.0.0.2:${node_port[node1]} 0 0
1 sip:127.0.0.3:${node_port[node2]} 0 0
EOF
ctl="$work/kamailio/ctl"
kam_defs=(-A "LISTEN=udp:127.0.0.1:$kam_port" -A "DSLIST=\"$work/kamailio/dispatcher.list\"" -A "CTLSOCK=\"unix:$ctl\"" -A CHILDREN=4 -A WITH_DEBUG)
kamailio -f "$repo/deploy/kamailio/dispatcher.cfg" "${kam_defs[@]}" -c >"$work/kamailio/check.log" 2>&1 \
  || { cat "$work/kamailio/check.log" >&2; die "kamailio -c refused deploy/kamailio/dispatcher.cfg"; }
# -DD: in the foreground (its children still fork), so that $! is its main process.
kamailio -f "$repo/deploy/kamailio/dispatcher.cfg" "${kam_defs[@]}" -DD -E -w "$work/kamailio" -m 256 -M 16 \
  >"$work/kamailio/kamailio.log" 2>&1 </dev/null &
kam_pid=$!
pids+=("$kam_pid")
wait_for 10 "kamailio bound to 127.0.0.1:$kam_port" udp_bound 127.0.0.1 "$kam_port" || { tail -20 "$work/kamailio/kamailio.log" >&2; exit 1; }
# Both nodes answer the OPTIONS probes: flags "AP" (active, probing) for each.
nodes_active() { [ "$(kamcmd -s "unix:$ctl" dispatcher.list 2>/dev/null | grep -c 'FLAGS: AP')" = 2 ]; }
wait_for 10 "both nodes active in the dispatcher" nodes_active || { kamcmd -s "unix:$ctl" dispatcher.list >&2 || true; exit 1; }
log "kamailio: pid $kam_pid on udp:127.0.0.1:$kam_port, both nodes active"

# ---- SIPp: the phones' answering side ----
start_uas() {
  mkdir -p "$work/uas"
  for _ in 1 2 3 4 5; do
    uas_port=$(free_udp_port 127.0.0.1)
    (cd "$work/uas" && exec sipp -sf "$lab/uas_call.xml" -i 127.0.0.1 -p "$uas_port" -nostdin -timeout 600 >sipp.log 2>&1) &
    uas_pid=$!
    pids+=("$uas_pid")
    # Calls sent before SIPp holds its port would be lost: wait for it (another program may have
    # taken the port meanwhile: then SIPp exits and another port is tried).
    if wait_for 5 "SIPp UAS on $uas_port" udp_bound 127.0.0.1 "$uas_port" 2>/dev/null && kill -0 "$uas_pid" 2>/dev/null; then return 0; fi
    kill -KILL "$uas_pid" 2>/dev/null || true
  done
  die "SIPp UAS did not start: $(tail -3 "$work/uas/sipp.log")"
}
start_uas
log "sipp uas: pid $uas_pid on udp:127.0.0.1:$uas_port"

# run_sipp NAME ARGS...: one SIPp run to its end (bounded by -m and -timeout) in $work/NAME; sets
# sipp_ok and sipp_failed from its final statistics.
run_sipp() {
  local name=$1; shift
  mkdir -p "$work/$name"
  local port
  port=$(free_udp_port 127.0.0.1)
  (cd "$work/$name" && sipp "$@" -i 127.0.0.1 -p "$port" -nostdin -trace_stat -stf stat.csv -fd 1 "127.0.0.1:$kam_port" >sipp.log 2>&1) || true
  read -r sipp_ok sipp_failed < <(stat_counts "$work/$name/stat.csv" 0)
}

# stat_counts FILE BEFORE_MS: SuccessfulCall(C) and FailedCall(C) of the last line of SIPp's
# statistics written before BEFORE_MS (0: the last line).
stat_counts() {
  [ -f "$1" ] || { echo "0 0"; return; }
  awk -F';' -v before="$2" '
    NR == 1 { for (i = 1; i <= NF; i++) { if ($i == "CurrentTime") t = i; if ($i == "SuccessfulCall(C)") s = i; if ($i == "FailedCall(C)") f = i } next }
    { split($t, parts, "\t"); ms = parts[3] * 1000; if (before == 0 || ms < before) { ok = $s; bad = $f } }
    END { print (ok == "" ? 0 : ok), (bad == "" ? 0 : bad) }' "$1"
}

census() { node "$here/census.mjs" "$work/store/minisipserver.db" "$work/kamailio/kamailio.log" "127.0.0.2=$work/node1/cdr" "127.0.0.3=$work/node2/cdr" "$@"; }

register_all() {
  run_sipp "$1" -sf "$lab/reg_auth.xml" -inf "$work/users/users.csv" -key contact_host 127.0.0.1 -key contact_port "$uas_port" \
    -key expires 3600 -m "$phones" -r 200 -timeout 120
}

failures=()

# ---- 1. register every phone through Kamailio ----
register_all register
registered=$sipp_ok
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
calls_failed=$sipp_failed
cdr_total() { [ "$(node -e 'const c=JSON.parse(process.argv[1]).cdr;console.log(Object.values(c).reduce((a,b)=>a+b,0))' "$(census)")" -ge "$1" ]; }
wait_for 5 "$calls_ok CDR lines" cdr_total "$calls_ok" || true
c=$(census)
cdr_calls=$(node -e 'const c=JSON.parse(process.argv[1]).cdr;console.log(Object.values(c).reduce((a,b)=>a+b,0))' "$c")
cross=$(node -e 'console.log(JSON.parse(process.argv[1]).crossNode)' "$c")
log "calls: $calls_ok of $calls succeeded ($calls_failed failed), $cross of them to a phone registered through the other node; CDR lines: $cdr_calls"
[ "$calls_ok" = "$calls" ] || failures+=("$(( calls - calls_ok )) of $calls calls before the kill failed")
[ "$cdr_calls" = "$calls_ok" ] || failures+=("$cdr_calls CDR lines for $calls_ok calls before the kill")
[ "$cross" -gt 0 ] || failures+=("no call went to a phone registered through the other node")

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
echo "  new calls after the kill:         ${recovered_ms:-never} ms"
echo "  re-registered after the kill:     $reregistered / $phones, $moved through node 1"
echo "  CDR lines of calls ended before:  $ended_before (at least $must_have needed)"
echo "  load calls lost with node 2:      $load_failed (calls in progress on a failed node are lost)"
echo "  Note: the nodes do not yet route calls to a phone through Kamailio (RFC 3327 Path); they send"
echo "        to its Contact directly, which works here as everything is on loopback."
result=$(node -e 'const [a,...r]=process.argv.slice(1);console.log(JSON.stringify({ok:a==="0",registered:+r[0],phones:+r[1],calls:+r[2],callsOk:+r[3],crossNode:+r[4],cdrCalls:+r[5],recoveredMs:r[6]===""?null:+r[6],reregistered:+r[7],movedToSurvivor:+r[8],endedBeforeKill:+r[9],mustHaveCdr:+r[10],loadFailed:+r[11],failures:r.slice(12)}))' \
  "${#failures[@]}" "$registered" "$phones" "$calls" "$calls_ok" "$cross" "$cdr_calls" "${recovered_ms:-}" "$reregistered" "$moved" "$ended_before" "$must_have" "$load_failed" "${failures[@]}")
if [ ${#failures[@]} -gt 0 ]; then
  echo "FAILED:"
  for f in "${failures[@]}"; do echo "  - $f"; done
else
  echo "OK: nothing lost but the calls in progress on the killed node."
fi
echo "RESULT $result"
[ ${#failures[@]} -eq 0 ]
