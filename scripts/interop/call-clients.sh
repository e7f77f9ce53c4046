#!/usr/bin/env bash
# Calls between real soft-clients through `minisipserver serve` with digest authentication,
# audio checked in both directions by the client drivers of ../shared/lab/clients:
#   baresip -> baresip, linphone <-> baresip (both directions), GNOME Calls <-> baresip.
# Prints each driver's final PASS/FAIL line; exit 0 only when all pass. Everything stays on
# 127.0.0.1 (GNOME Calls runs in a private network namespace with the server started inside).
#
#   scripts/interop/call-clients.sh [baresip] [linphone] [gnome-calls]   # default: all three
#   MEDIA_RELAY=never scripts/interop/call-clients.sh                       # direct media instead
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
clients=${CLIENTS_DIR:-$here/../shared/lab/clients}
work=$(mktemp -d /tmp/mss-calls-XXXXXX)
port=${SERVER_PORT:-15060}
relay=${MEDIA_RELAY:-always}
which=("$@"); [ ${#which[@]} -gt 0 ] || which=(baresip linphone gnome-calls)
data="$work/data"
printf '100:pass100\n101:pass101\n102:pass102\n' > "$work/users.txt"
node "$here/bin/minisipserver" ext import "$work/users.txt" --data-dir "$data" >/dev/null || exit 2
# The relay listens on loopback only, in a port range clear of the clients' own RTP ports.
printf 'media:\n  relay: %s\n  bind: 127.0.0.1\n  portMin: 20000\n  portMax: 20999\n' "$relay" > "$work/config.yaml"
serve=(node "$here/bin/minisipserver" serve --config "$work/config.yaml" --bind 127.0.0.1 --sip-port "$port" --data-dir "$data" --log-format json ${LOG_LEVEL:+--log-level $LOG_LEVEL})

pid=""
start_server() {
  "${serve[@]}" >> "$work/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 50); do grep -q "listening on port" "$work/server.log" && return 0; sleep 0.2; done
  echo "FAIL server did not start (see $work/server.log)"; exit 1
}
stop_server() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=""; }
trap stop_server EXIT

failures=0
result() { # name, output file
  local last; last=$(tail -1 "$2")
  echo "$1: $last"
  case "$last" in PASS*) ;; *) failures=$((failures + 1)) ;; esac
}

for c in "${which[@]}"; do
  case "$c" in
    baresip)
      start_server
      ( cd "$clients" && timeout 120 ./baresip-call.sh START_SERVER=no SERVER_PORT="$port" CALLER_USER=100 CALLEE_USER=101 MAX_SECS=90 ) > "$work/baresip.out" 2>&1
      result baresip "$work/baresip.out"; stop_server ;;
    linphone)
      start_server
      ( cd "$clients" && timeout 200 ./linphone-call.sh START_SERVER=no SERVER_PORT="$port" LIN_USER=102 LIN_PASS=pass102 BS_USER=101 BS_PASS=pass101 MAX_SECS=150 ) > "$work/linphone.out" 2>&1
      result linphone "$work/linphone.out"; stop_server ;;
    gnome-calls)
      ( cd "$clients" && timeout 240 ./gnome-calls.sh START_SERVER=no NETNS=1 SERVER_PORT="$port" MAX_SECS=200 TALK_SECS="${GC_TALK_SECS:-10}" \
          SERVER_CMD="exec ${serve[*]} " GC_USER=102 GC_PASS=pass102 BS_USER=101 BS_PASS=pass101 ) > "$work/gnome-calls.out" 2>&1
      result "GNOME Calls" "$work/gnome-calls.out" ;;
    *) echo "unknown client $c (baresip, linphone, gnome-calls)"; exit 2 ;;
  esac
done
grep -h '"call.ended"' "$work"/*.log "$work"/gnome-calls.out 2>/dev/null | head -20
echo "logs: $work"
exit $((failures > 0))
