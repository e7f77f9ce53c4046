#!/usr/bin/env bash
# Registers real soft-clients (baresip, linphone, GNOME Calls) to `minisipserver serve` with
# digest passwords, using the client drivers of ../shared/lab/clients, and prints one
# PASS/FAIL line per client for the registration part. Everything stays on 127.0.0.1
# (GNOME Calls runs in a private network namespace, with the server started inside it).
#
#   scripts/interop/register-clients.sh            # needs: lab/install-deps.sh packages, npm ci
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
clients=${CLIENTS_DIR:-$here/../shared/lab/clients}
work=$(mktemp -d /tmp/mss-interop-XXXXXX)
port=${SERVER_PORT:-15060}
data="$work/data"
printf '100:pass100\n101:pass101\n102:pass102\n' > "$work/users.txt"
node "$here/bin/minisipserver" ext import "$work/users.txt" --data-dir "$data" >/dev/null || exit 2
serve=(node "$here/bin/minisipserver" serve --bind 127.0.0.1 --sip-port "$port" --data-dir "$data" --log-format json)

"${serve[@]}" > "$work/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
for _ in $(seq 1 50); do grep -q "listening on port" "$work/server.log" && break; sleep 0.2; done

failures=0
report() { # name, regex, file
  if grep -aqE "$2" "$3"; then echo "PASS $1 registered: $(grep -aoE "$2" "$3" | head -1)"; else echo "FAIL $1 did not register (see $3)"; failures=$((failures + 1)); fi
}

( cd "$clients" && timeout 120 ./baresip-call.sh START_SERVER=no SERVER_PORT="$port" CALLER_USER=100 CALLEE_USER=101 MAX_SECS=60 ) > "$work/baresip.out" 2>&1
report baresip 'registered: 100@[^ ]+ \{0/UDP/v4\} 200 OK \(minisipserver\)' "$work/baresip.out"

( cd "$clients" && timeout 150 ./linphone-call.sh START_SERVER=no SERVER_PORT="$port" LIN_USER=102 LIN_PASS=pass102 BS_USER=101 BS_PASS=pass101 MAX_SECS=90 ) > "$work/linphone.out" 2>&1
report linphone 'linphone: registered, identity=sip:102@[^ ]+' "$work/linphone.out"

kill $pid 2>/dev/null; wait $pid 2>/dev/null
# GNOME Calls advertises the host's address unless it runs where only loopback exists, so it
# runs in its own network namespace and the server is started inside it.
( cd "$clients" && timeout 200 ./gnome-calls.sh START_SERVER=no NETNS=1 SERVER_PORT="$port" DIRECTIONS=OUT MAX_SECS=90 \
    SERVER_CMD="exec ${serve[*]} " GC_USER=102 GC_PASS=pass102 BS_USER=101 BS_PASS=pass101 ) > "$work/gnome-calls.out" 2>&1
report "GNOME Calls" 'Calls: REGISTER successful' "$work/gnome-calls.out"

echo "logs: $work"
exit $((failures > 0))
