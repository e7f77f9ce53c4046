#!/usr/bin/env bash
# Real soft-clients in a call-back: `minisipserver callback send --wait` asks the server to connect
# baresip 100 (user1) and baresip 101 (user2), both answering automatically. Checked: user1 hears
# the ringback, then user2's audio; user2 hears user1's; user2 hangs up after a few seconds and
# the command exits 0 with RESPONSE result 0 and the talk time; both legs are in the records.
# Last line PASS or FAIL. Everything stays on 127.0.0.1.
#
#   scripts/interop/callback-clients.sh
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/mss-callback-client.XXXXXX)
port=${PORT:-15260}
cbport=${CALLBACK_PORT:-15262}
moddir=${BARESIP_MODDIR:-/usr/lib/baresip/modules}
pids=()
fail() { echo "FAIL $* (logs in $work)"; exit 1; }
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
for t in baresip sox espeak-ng; do command -v "$t" >/dev/null || fail "missing tool $t"; done

data="$work/data"
mkdir -p "$data"
printf '100:pass100\n101:pass101\n' > "$work/users.txt"
node "$here/bin/minisipserver" ext import "$work/users.txt" --data-dir "$data" >/dev/null || fail "ext import"
printf 'media:\n  bind: 127.0.0.1\n  portMin: 21000\n  portMax: 21999\n' > "$work/config.yaml"
node "$here/bin/minisipserver" serve --config "$work/config.yaml" --bind 127.0.0.1 --sip-port "$port" --callback-port "$cbport" --data-dir "$data" --log-format json > "$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do grep -q "listening on port" "$work/server.log" && break; sleep 0.2; done
grep -q "callback.listening" "$work/server.log" || fail "server did not start with the call-back service"

. "$here/scripts/interop/lib/baresip.sh"
make_speech_wav
mk_phone user1 15270 31100-31119 100
mk_phone user2 15274 31120-31139 101
exec 7<>"$work/user2/in" 8<>"$work/user1/in"
start_phone user1
start_phone user2

node "$here/bin/minisipserver" callback send --user1 100 --user2 101 --caller1 8005551000 --id interop-1 --server "127.0.0.1:$cbport" --wait --json > "$work/send.out" 2> "$work/send.err" &
send=$!
wait_for "$work/user2.log" 'Call established' 150 || fail "user2 was not connected (server log: $(grep -aoE '"event":"callback\.[a-z_]+"[^}]{0,120}' "$work/server.log" | tail -3 | tr '\n' ' '))"
sleep 4
echo "/hangup" >&7
wait_for "$work/user1.log" 'terminated|session closed' 50 || fail "user1 did not see the BYE"
for _ in $(seq 1 50); do kill -0 "$send" 2>/dev/null || break; sleep 0.2; done
wait "$send"; code=$?
[ "$code" = 0 ] || fail "callback send exited $code: $(cat "$work/send.out" "$work/send.err")"
grep -q '"event":"response".*"result":0' "$work/send.out" || fail "no bridged RESPONSE: $(cat "$work/send.out")"
duration=$(grep -o '"duration":[0-9]*' "$work/send.out" | head -1 | cut -d: -f2)
echo "/quit" >&8; echo "/quit" >&7
sleep 1

rx1=$(ls "$work"/user1/rec/*-dec.wav 2>/dev/null | head -1)
rx2=$(ls "$work"/user2/rec/*-dec.wav 2>/dev/null | head -1)
[ -n "$rx1" ] && [ -n "$rx2" ] || fail "no received-audio dump"
rms1=$(sox "$rx1" -n stat 2>&1 | awk '/RMS +amplitude/ {print $3}')
rms2=$(sox "$rx2" -n stat 2>&1 | awk '/RMS +amplitude/ {print $3}')
awk -v r="$rms1" 'BEGIN { exit !(r > 0.01) }' || fail "user1 heard silence (RMS $rms1)"
awk -v r="$rms2" 'BEGIN { exit !(r > 0.01) }' || fail "user2 heard silence from user1 (RMS $rms2)"
csv=$(ls "$data"/cdr/*.csv 2>/dev/null | head -1)
[ "$(grep -c 'callback:interop-1' "$csv")" = 2 ] || fail "not two records with route callback:interop-1"
cleanup; pids=(); rm -rf "$work"
echo "PASS callback send: baresip 100 (user1) and baresip 101 (user2) bridged, talked ${duration} s, user2 hung up; audio RMS $rms1 at user1, $rms2 at user2; both legs recorded"
