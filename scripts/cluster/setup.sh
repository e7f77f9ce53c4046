# The set-up scripts/cluster/demo.sh and outage.sh share (sourced, not run): the store (a private
# MariaDB, or one SQLite file on this machine), the nodes, Kamailio in front, SIPp, and the
# clean-up of everything started here. The sourcing script sets `store` (mariadb | sqlite) and
# `phones`, then calls setup_store, start_node ..., start_kamailio.
#
# Everything runs on 127.0.0.x; every wait is bounded; on exit every process started here is
# ended (TERM, then KILL) and the work folder removed unless KEEP=1 or the run failed.

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
lab=${LAB_SIPP:-$(cd "$repo/.." && pwd)/shared/lab/sipp}
first_user=10000
script_name=$(basename "$0" .sh)

die() { echo "$script_name: $*" >&2; exit 2; }

# check_tools TOOL...: each must be installed.
check_tools() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (Debian: apt-get install kamailio sip-tester iproute2 nodejs mariadb-server)"
  done
  [ "$store" != mariadb ] || [ -x /usr/sbin/mariadbd ] || command -v mariadbd >/dev/null 2>&1 \
    || die "mariadbd is not installed (Debian: apt-get install mariadb-server), or run with STORE=sqlite"
  [ -f "$repo/build/cli/main.js" ] || die "the server is not built: run npm run build in $repo"
}

make_work() {
  if [ -n "${WORK:-}" ]; then
    work=$WORK
    mkdir -p "$work"
    [ -z "$(ls -A "$work")" ] || die "WORK=$work is not empty"
  else
    work=$(mktemp -d "/tmp/mss-$script_name-XXXXXX")
  fi
}

# Everything this script starts, by pid; ended on exit (whatever the exit). The private mariadbd
# is ended by its own script (mariadb.mjs), and by its pid file should that script be gone.
pids=()
mariadb_pid=""
work=""
cleanup() {
  local code=$?
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ -n "$mariadb_pid" ]; then
    kill -TERM "$mariadb_pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$mariadb_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$mariadb_pid" 2>/dev/null || true
    local pid_file
    pid_file=$(state_field pidFile 2>/dev/null || true)
    if [ -n "$pid_file" ] && [ -f "$pid_file" ]; then kill -KILL "$(cat "$pid_file")" 2>/dev/null || true; fi
  fi
  if [ -z "$work" ]; then :
  elif [ "${KEEP:-0}" = 1 ] || [ $code -ne 0 ]; then echo "$script_name: work folder kept: $work" >&2
  else rm -rf "$work"; fi
  exit $code
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { date +%s%3N; }
t0=$(now_ms)
log() { printf '[%5.1fs] %s\n' "$(( $(now_ms) - t0 ))e-3" "$*"; }

# A UDP port free on ADDRESS right now (the OS picks it).
free_udp_port() {
  node -e "const s=require('dgram').createSocket('udp4');s.bind(0,process.argv[1],()=>{console.log(s.address().port);s.close()})" "$1"
}

# waits (bounded) until COMMAND succeeds: wait_for SECONDS WHAT COMMAND...
wait_for() {
  local seconds=$1 what=$2; shift 2
  local deadline=$(( $(now_ms) + seconds * 1000 ))
  until "$@"; do
    [ "$(now_ms)" -lt "$deadline" ] || { echo "$script_name: $what not within $seconds s" >&2; return 1; }
    sleep 0.1
  done
}

udp_bound() { ss -H -lun "sport = :$2" 2>/dev/null | grep -q "$1:$2"; }

# json_field JSON PATH: one field of a JSON object (PATH as in a.b).
json_field() { node -e 'let v=JSON.parse(process.argv[1]);for(const k of process.argv[2].split("."))v=v?.[k];console.log(v??"")' "$1" "$2"; }
state_field() { json_field "$(cat "$work/mariadb/state.json")" "$1"; }

# ---- the store ----
# mariadb: a private mariadbd (mariadb.mjs), `db migrate` once, then `ext import` once, before any
# node starts (nodes starting on an empty database would each create the first-start defaults).
# sqlite: one file in $work/store that every node's data folder links to.
setup_store() {
  "$lab/gen-users.sh" "$work/users" "$phones" "$first_user" >/dev/null
  case "$store" in
    mariadb)
      mkdir -p "$work/mariadb"
      TMPDIR="$work/mariadb" node "$here/mariadb.mjs" "$work/mariadb/state.json" >"$work/mariadb/mariadb.log" 2>&1 &
      mariadb_pid=$!
      wait_for 90 "MariaDB ready" grep -q '^ready' "$work/mariadb/mariadb.log" || { tail -20 "$work/mariadb/mariadb.log" >&2; exit 2; }
      cat >"$work/store.yaml" <<EOF2
store:
  kind: mariadb
  mariadb:
    socketPath: $(state_field socketPath)
    user: $(state_field user)
    passwordFile: $(state_field passwordFile)
    database: $(state_field database)
    poolSize: 4
EOF2
      # The command line's own configuration: the store, and a data folder of its own.
      { cat "$work/store.yaml"; printf 'data:\n  dir: %s\n' "$work/cli"; } >"$work/cli.yaml"
      node "$repo/bin/minisipserver" db migrate --config "$work/cli.yaml" >"$work/migrate.log" 2>&1 \
        || { cat "$work/migrate.log" >&2; die "db migrate failed"; }
      node "$repo/bin/minisipserver" ext import "$work/users/users.txt" --config "$work/cli.yaml" >"$work/import.log" 2>&1 \
        || { cat "$work/import.log" >&2; die "ext import failed"; }
      log "mariadb: pid $(cat "$(state_field pidFile)") on $(state_field socketPath), database $(state_field database) migrated, $phones extensions imported"
      ;;
    sqlite)
      mkdir -p "$work/store"
      : >"$work/store.yaml"
      node "$repo/bin/minisipserver" ext import "$work/users/users.txt" --data-dir "$work/store" >"$work/import.log" 2>&1 \
        || { cat "$work/import.log" >&2; die "ext import failed"; }
      ;;
  esac
}

# mariadb_signal USR1|USR2 WORD: stops (USR1) or starts (USR2) mariadbd; waits for mariadb.mjs to
# say WORD (stopped | started) and prints the epoch ms it gave.
mariadb_signal() {
  local before
  before=$(grep -c "^$2 " "$work/mariadb/mariadb.log" || true)
  kill -"$1" "$mariadb_pid"
  wait_for 60 "MariaDB $2" mariadb_said "$2" "$before" || return 1
  grep "^$2 " "$work/mariadb/mariadb.log" | tail -1 | cut -d' ' -f2
}
# mariadb_said WORD COUNT: mariadb.mjs has said WORD more than COUNT times.
mariadb_said() { [ "$(grep -c "^$1 " "$work/mariadb/mariadb.log" || true)" -gt "$2" ]; }

# ---- the nodes ----
# Each node has its own data folder (CDR files, admin token), address and media port range.
# With SQLite the data folder's store file is the shared one: SQLite follows the link, so its WAL
# and locks are the shared file's.
declare -A node_port node_pid node_address
start_node() {
  local name=$1 address=$2 media_min=$3
  local dir="$work/$name"
  mkdir -p "$dir"
  [ "$store" != sqlite ] || ln -s "$work/store/minisipserver.db" "$dir/minisipserver.db"
  {
    cat <<EOF2
node:
  name: $name
sip:
  transports: [udp]
  # Behind a proxy the Request-URI names the proxy: Via, Contact and SDP must name the node.
  advertise: $address
auth:
  algorithms: [MD5]
media:
  relay: always
  portMin: $media_min
  portMax: $(( media_min + 3999 ))
security:
  # Kamailio: its REGISTERs may carry Path, and its address is every phone's.
  trusted: [127.0.0.1/32]
EOF2
    # On MariaDB every node reads the others' registrations by itself; one SQLite file needs it said.
    if [ "$store" = sqlite ]; then printf 'registrar:\n  shared: true\n'; else cat "$work/store.yaml"; fi
  } >"$work/$name.yaml"
  node "$repo/bin/minisipserver" serve --config "$work/$name.yaml" --data-dir "$dir" --bind "$address" --sip-port 0 \
    --callback-port 0 --event-channel-port 0 --admin-listen "$address:0" --log-format json >"$work/$name.log" 2>&1 &
  node_pid[$name]=$!
  node_address[$name]=$address
  pids+=("$!")
  # A SIGKILL of a node is the point of the demo, not news for bash to report.
  disown "$!"
  wait_for 30 "$name listening" grep -q 'listening on port' "$work/$name.log" || { tail -20 "$work/$name.log" >&2; exit 1; }
  node_port[$name]=$(sed -n 's/.*listening on port \([0-9]*\) .*/\1/p' "$work/$name.log" | head -1)
  log "$name: pid ${node_pid[$name]} on udp:$address:${node_port[$name]}, media $media_min-$(( media_min + 3999 ))"
}

# ---- Kamailio ----
start_kamailio() {
  kam_port=$(free_udp_port 127.0.0.1)
  mkdir -p "$work/kamailio"
  : >"$work/kamailio/dispatcher.list"
  for name in "$@"; do echo "1 sip:${node_address[$name]}:${node_port[$name]} 0 0" >>"$work/kamailio/dispatcher.list"; done
  ctl="$work/kamailio/ctl"
  local defs=(-A "LISTEN=udp:127.0.0.1:$kam_port" -A "DSLIST=\"$work/kamailio/dispatcher.list\"" -A "CTLSOCK=\"unix:$ctl\"" -A CHILDREN=4)
  # A line per request in its log (census.mjs reads it); QUIET_PROXY=1 for a benchmark.
  [ "${QUIET_PROXY:-0}" = 1 ] || defs+=(-A WITH_DEBUG)
  kamailio -f "$repo/deploy/kamailio/dispatcher.cfg" "${defs[@]}" -c >"$work/kamailio/check.log" 2>&1 \
    || { cat "$work/kamailio/check.log" >&2; die "kamailio -c refused deploy/kamailio/dispatcher.cfg"; }
  # -DD: in the foreground (its children still fork), so that $! is its main process.
  kamailio -f "$repo/deploy/kamailio/dispatcher.cfg" "${defs[@]}" -DD -E -w "$work/kamailio" -m "${KAMAILIO_SHM_MB:-256}" -M 16 \
    >"$work/kamailio/kamailio.log" 2>&1 </dev/null &
  kam_pid=$!
  pids+=("$kam_pid")
  wait_for 10 "kamailio bound to 127.0.0.1:$kam_port" udp_bound 127.0.0.1 "$kam_port" || { tail -20 "$work/kamailio/kamailio.log" >&2; exit 1; }
  # Every node answers the OPTIONS probes: flags "AP" (active, probing) for each.
  nodes_active() { [ "$(kamcmd -s "unix:$ctl" dispatcher.list 2>/dev/null | grep -c 'FLAGS: AP')" = "$#" ]; }
  wait_for 10 "every node active in the dispatcher" nodes_active "$@" || { kamcmd -s "unix:$ctl" dispatcher.list >&2 || true; exit 1; }
  log "kamailio: pid $kam_pid on udp:127.0.0.1:$kam_port, $# nodes active"
}

# ---- SIPp ----
# The phones' answering side.
start_uas() {
  mkdir -p "$work/uas"
  for _ in 1 2 3 4 5; do
    uas_port=$(free_udp_port 127.0.0.1)
    (cd "$work/uas" && exec sipp -sf "$lab/uas_call.xml" -i 127.0.0.1 -p "$uas_port" -nostdin -timeout 600 >sipp.log 2>&1) &
    uas_pid=$!
    pids+=("$uas_pid")
    # Calls sent before SIPp holds its port would be lost: wait for it (another program may have
    # taken the port meanwhile: then SIPp exits and another port is tried).
    if wait_for 5 "SIPp UAS on $uas_port" udp_bound 127.0.0.1 "$uas_port" 2>/dev/null && kill -0 "$uas_pid" 2>/dev/null; then
      log "sipp uas: pid $uas_pid on udp:127.0.0.1:$uas_port"
      return 0
    fi
    kill -KILL "$uas_pid" 2>/dev/null || true
  done
  die "SIPp UAS did not start: $(tail -3 "$work/uas/sipp.log")"
}

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

# The store census.mjs reads: the MariaDB state file or the SQLite file.
store_spec() {
  if [ "$store" = mariadb ]; then echo "mariadb:$work/mariadb/state.json"; else echo "sqlite:$work/store/minisipserver.db"; fi
}
