#!/usr/bin/env bash
# A real soft-client reaches an IVR: baresip 100 calls number 800 (the shipped automatic
# attendant, examples/ivr), hears the welcome prompt, keys in 101# (RFC 4733 from baresip), and is
# sent on to baresip 101 (auto-answer); then hangs up. Checked: the prompt arrived as audio at the
# caller, the callee answered, and the records hold the IVR part (route ivr:auto_attendant.xml)
# and the onward call to 101. Last line PASS or FAIL. Everything stays on 127.0.0.1.
#
#   scripts/interop/ivr-client.sh
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/mss-ivr-client.XXXXXX)
port=${PORT:-15160}
moddir=${BARESIP_MODDIR:-/usr/lib/baresip/modules}
pids=()
fail() { echo "FAIL $* (logs in $work)"; exit 1; }
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
for t in baresip sox espeak-ng; do command -v "$t" >/dev/null || fail "missing tool $t"; done

data="$work/data"
mkdir -p "$data/ivr/prompts/en"
cp "$here"/examples/ivr/*.xml "$data/ivr/"
cp "$here"/examples/ivr/prompts/en/*.wav "$data/ivr/prompts/en/"
printf '100:pass100\n101:pass101\n' > "$work/users.txt"
node "$here/bin/minisipserver" ext import "$work/users.txt" --data-dir "$data" >/dev/null || fail "ext import"
printf 'media:\n  bind: 127.0.0.1\n  portMin: 21000\n  portMax: 21999\nivr:\n  numbers:\n    "800": auto_attendant.xml\n' > "$work/config.yaml"
node "$here/bin/minisipserver" serve --config "$work/config.yaml" --bind 127.0.0.1 --sip-port "$port" --data-dir "$data" --log-format json > "$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do grep -q "listening on port" "$work/server.log" && break; sleep 0.2; done
grep -q "listening on port" "$work/server.log" || fail "server did not start"

. "$here/scripts/interop/lib/baresip.sh"
make_speech_wav
mk_phone caller 15170 31000-31019 100
mk_phone callee 15174 31020-31039 101
exec 7<>"$work/callee/in" 8<>"$work/caller/in"
start_phone callee
start_phone caller

echo "/dial sip:800@127.0.0.1:$port" >&8
wait_for "$work/caller.log" 'Call established' 100 || fail "the IVR did not answer"
sleep 2.5                                   # the welcome prompt plays
for k in 1 0 1 '#'; do printf '%s' "$k" >&8; sleep 0.4; done
wait_for "$work/callee.log" 'Call established' 150 || fail "the call did not reach 101 (server log: $(grep -aoE '"event":"ivr\.[a-z_]+"[^}]{0,120}' "$work/server.log" | tail -3 | tr '\n' ' '))"
sleep 3
echo "/hangup" >&8
wait_for "$work/callee.log" 'terminated|session closed' 50 || fail "the callee did not see the BYE"
echo "/quit" >&8; echo "/quit" >&7
sleep 1

rx=$(ls "$work"/caller/rec/*-dec.wav 2>/dev/null | head -1)
[ -n "$rx" ] || fail "no received-audio dump at the caller"
# The first 2 s the caller heard are the welcome prompt (PCM from the server's endpoint).
rms=$(sox "$rx" -n trim 0 2 stat 2>&1 | awk '/RMS +amplitude/ {print $3}')
awk -v r="$rms" 'BEGIN { exit !(r > 0.01) }' || fail "the caller heard silence where the prompt should be (RMS $rms)"
# The last 2 s are the callee's voice, after it took over the relay port from the IVR.
rmsjoined=$(sox "$rx" -n trim -2 stat 2>&1 | awk '/RMS +amplitude/ {print $3}')
awk -v r="$rmsjoined" 'BEGIN { exit !(r > 0.01) }' || fail "the caller heard silence once joined to the callee (RMS $rmsjoined)"
rxcallee=$(ls "$work"/callee/rec/*-dec.wav 2>/dev/null | head -1)
rmscallee=$(sox "$rxcallee" -n stat 2>&1 | awk '/RMS +amplitude/ {print $3}')
awk -v r="$rmscallee" 'BEGIN { exit !(r > 0.01) }' || fail "the callee heard silence from the caller (RMS $rmscallee)"
csv=$(ls "$data"/cdr/*.csv 2>/dev/null | head -1)
grep -q 'ivr:auto_attendant.xml' "$csv" || fail "no record with route ivr:auto_attendant.xml"
grep -qE ',100,[^,]*,101,101,local,' "$csv" || fail "no record of the onward call to 101"
cleanup; pids=(); rm -rf "$work"
echo "PASS baresip 100 -> IVR 800 (auto attendant) -> keys 101# (RFC 4733) -> baresip 101 answered; prompt RMS $rms at the caller, then callee audio RMS $rmsjoined, caller audio RMS $rmscallee at the callee; records: ivr:auto_attendant.xml and local 101"
