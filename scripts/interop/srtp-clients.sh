#!/usr/bin/env bash
# SRTP through the relay with real soft-clients: two linphonec phones (100 and 101) with SDES-SRTP
# mandatory (linphonerc: media_encryption=srtp, media_encryption_mandatory=1) register to a
# `minisipserver serve` started here (media relay on, loopback only), then
#   call A: 100 calls 101 (auto-answer), 100 hangs up;  call B: 101 calls 100, 101 hangs up.
# Each phone plays its own spoken WAV and records what it receives; the received audio must be
# non-silent and correlate with the other phone's speech (as scripts/interop/call-clients.sh and
# ../shared/lab/clients check it). Also checked: both phones negotiated SRTP (RTP/SAVP with
# a=crypto, "Negotiated media encryption is ...SRTP" in their logs), the media went through the
# relay ports, the server logged the keys crossing UDP (call.srtp_keys_in_clear). Then
#   step C: 100 (SRTP mandatory) calls baresip 102, which does plain RTP only: 100 gets 488 (cause
#           88) and 102 is left with no call;
#   step R: with media.requireSrtpOverTls on (server restarted), 100's SRTP call over UDP gets 488
#           with the reason text, and a call.srtp_refused log line.
# Last line PASS or FAIL. Everything stays on 127.0.0.1.
#
#   scripts/interop/srtp-clients.sh        # TALK_SECS=5 CALLS=ABCR SERVER_PORT=15260 by default
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/mss-srtp-clients.XXXXXX)
port=${SERVER_PORT:-15260}
TALK_SECS=${TALK_SECS:-5}
CALLS=${CALLS:-ABCR}
RELAY_MIN=22000 RELAY_MAX=22999
pids=()
server=""
fail() { echo "FAIL $* (logs in $work)"; exit 1; }
cleanup() { for p in "${pids[@]}" $server; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
trap 'fail "interrupted"' INT TERM
for t in linphonec sox espeak-ng python3 stdbuf; do command -v "$t" >/dev/null || fail "missing tool $t"; done
. "$here/scripts/interop/lib/linphone.sh"

data="$work/data"
printf '100:pass100\n101:pass101\n102:pass102\n' > "$work/users.txt"
node "$here/bin/minisipserver" ext import "$work/users.txt" --data-dir "$data" >/dev/null || fail "ext import"
# start_server [YAML_LINES]: serve with the relay on loopback (ports clear of the phones'), log in $work/server.log.
start_server() {
  printf 'media:\n  relay: always\n  bind: 127.0.0.1\n  portMin: %s\n  portMax: %s\n%s' "$RELAY_MIN" "$RELAY_MAX" "${1:-}" > "$work/config.yaml"
  : > "$work/server.log"
  node "$here/bin/minisipserver" serve --config "$work/config.yaml" --bind 127.0.0.1 --sip-port "$port" --data-dir "$data" --log-format json > "$work/server.log" 2>&1 &
  server=$!
  wait_for "$work/server.log" 'listening on port' 100 || fail "server did not start"
}
stop_server() { [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null; server=""; }
start_server

make_wav "$work/tx-100" "Linphone one hundred speaking. Alpha bravo charlie, one two three four five six." "$TALK_SECS"
make_wav "$work/tx-101" "Hello. One oh one here, testing the return path. Seven eight nine ten." "$TALK_SECS"
SRTP='media_encryption=srtp
media_encryption_mandatory=1'
mk_linphone p100 15280 30200-30219 100 "$SRTP"
mk_linphone p101 15282 30220-30239 101 "$SRTP"
exec 7<>"$work/p100.in" 8<>"$work/p101.in"
l100() { echo "$*" >&7; sleep 0.3; }
l101() { echo "$*" >&8; sleep 0.3; }
start_linphone p100 7
start_linphone p101 8
for l in l100 l101; do $l "soundcard use files"; $l "autoanswer enable"; done
l100 "play $work/tx-100-loop.wav"
l101 "play $work/tx-101-loop.wav"

# call NAME FROM TO: FROM calls TO (auto-answer), they talk TALK_SECS, FROM hangs up; the audio of both is checked.
call() {
  local name=$1 from=$2 to=$3 nf nt ef et
  "l$from" "record $work/rx-$name-$from.wav"; "l$to" "record $work/rx-$name-$to.wav"
  nf=$(count "$work/p$from.log" 'Call [0-9]+ with .* connected'); nt=$(count "$work/p$to.log" 'Call [0-9]+ with .* connected')
  ef=$(count "$work/p$from.log" 'Call [0-9]+ with .* ended'); et=$(count "$work/p$to.log" 'Call [0-9]+ with .* ended')
  "l$from" "call sip:$to@127.0.0.1:$port"
  wait_more "$work/p$from.log" 'Call [0-9]+ with .* connected' "$nf" 150 \
    || fail "call $name ($from -> $to) not established: $(grep -aE 'Call [0-9]+|Not Acceptable|failed' "$work/p$from.log" | tail -2 | tr '\n' ' ') server: $(grep -aoE '"event":"call\.[a-z_]+"[^}]{0,160}' "$work/server.log" | tail -3 | tr '\n' ' ')"
  wait_more "$work/p$to.log" 'Call [0-9]+ with .* connected' "$nt" 50 || fail "call $name: $to did not report connected"
  echo "call $name established: $(grep -aoE 'Call [0-9]+ with .* connected' "$work/p$from.log" | tail -1)"
  sleep "$TALK_SECS"
  "l$from" "terminate"
  wait_more "$work/p$from.log" 'Call [0-9]+ with .* ended' "$ef" 50 || fail "call $name: $from did not end the call"
  wait_more "$work/p$to.log" 'Call [0-9]+ with .* ended' "$et" 50 || fail "call $name: $to did not see the BYE"
  sleep 1
  check_audio "$name:$to<-$from" "$work/rx-$name-$to.wav" "$work/tx-$from.wav" "$work/tx-$to.wav"
  check_audio "$name:$from<-$to" "$work/rx-$name-$from.wav" "$work/tx-$to.wav" "$work/tx-$from.wav"
}
[[ "$CALLS" == *A* ]] && call A 100 101
[[ "$CALLS" == *B* ]] && { sleep 1; call B 101 100; }

# SRTP was negotiated, end to end and through the relay: what each phone sent and received.
[[ "$CALLS" == *[AB]* ]] && for p in p100 p101; do
  grep -aq 'Negotiated media encryption is LinphoneMediaEncryptionSRTP' "$work/$p-debug.log" || fail "$p: SRTP was not negotiated"
  grep -aqE 'Negotiated media encryption is LinphoneMediaEncryption(None|ZRTP|DTLS)' "$work/$p-debug.log" && fail "$p: a call negotiated another media encryption than SRTP"
  grep -aqE 'm=audio [0-9]+ RTP/SAVP' "$work/$p-debug.log" || fail "$p: no RTP/SAVP m= line in its SIP traffic"
  grep -aqE 'a=crypto:[0-9]+ AES' "$work/$p-debug.log" || fail "$p: no a=crypto line in its SIP traffic"
  grep -aqE 'm=audio [0-9]+ RTP/AVP' "$work/$p-debug.log" && fail "$p: an RTP/AVP m= line was negotiated"
done
summary=""
if [[ "$CALLS" == *[AB]* ]]; then
relayed=$(grep -aoE 'm=audio (2[2][0-9]{3}) RTP/SAVP' "$work/p101-debug.log" | awk -v lo=$RELAY_MIN -v hi=$RELAY_MAX '{ if ($2 >= lo && $2 <= hi) n++ } END { print n + 0 }')
[ "$relayed" -gt 0 ] || fail "the phones were not given relay ports ($RELAY_MIN-$RELAY_MAX) in their SDP"
suite=$(grep -aoE 'a=crypto:[0-9]+ [A-Z0-9_]+' "$work/p101-debug.log" | sort | uniq -c | sort -rn | head -1 | awk '{print $3}')
clear=$(grep -ac '"call.srtp_keys_in_clear"' "$work/server.log")
[ "$clear" -ge 1 ] || fail "no call.srtp_keys_in_clear line in the server log"
ended=$(grep -aoE '"event":"call.ended"[^}]*' "$work/server.log" | grep -c '"status":200')
summary="linphonec 100 <-> linphonec 101 with SRTP mandatory (RTP/SAVP, a=crypto $suite) through the relay (ports $RELAY_MIN-$RELAY_MAX): $ended calls answered and hung up, audio both ways: $results"
fi

# last_488 FILE: the last 488 status line a linphone received (with its reason text).
last_488() { grep -aoE 'SIP/2.0 488 [^[:cntrl:]]*' "$1" | tail -1; }

# Step C: SRTP mandatory towards a phone that does plain RTP only (baresip without an SRTP mediaenc).
if [[ "$CALLS" == *C* ]]; then
  moddir=${BARESIP_MODDIR:-/usr/lib/baresip/modules}
  command -v baresip >/dev/null || fail "missing tool baresip"
  . "$here/scripts/interop/lib/baresip.sh"
  make_speech_wav
  mk_phone b102 15284 30240-30259 102
  exec 9<>"$work/b102/in"
  start_phone b102
  n488=$(count "$work/p100-debug.log" 'SIP/2.0 488')
  l100 "call sip:102@127.0.0.1:$port"
  wait_more "$work/p100-debug.log" 'SIP/2.0 488' "$n488" 100 \
    || fail "step C: no 488 for the SRTP call to a plain-RTP phone: $(grep -aoE '"event":"call\.[a-z_]+"[^}]{0,200}' "$work/server.log" | tail -3 | tr '\n' ' ')"
  sleep 2
  est=$(count "$work/b102.log" 'Call established'); term=$(count "$work/b102.log" 'terminated|session closed')
  [ "$est" -le "$term" ] || fail "step C: baresip 102 was left in a call (established $est, terminated $term)"
  plain488=$(last_488 "$work/p100-debug.log")
  why=$(grep -aoE '"event":"call\.(srtp_mismatch|ended)"[^}]*"callee":"102"[^}]*' "$work/server.log" | head -2 | tr '\n' ' ')
  echo "step C: 100 got '$plain488'; baresip 102: established $est, terminated $term; server: $why"
  summary="$summary | SRTP mandatory -> plain-RTP baresip: '$plain488'"
  echo "/quit" >&9
fi

# Step R: media.requireSrtpOverTls: the same offer over UDP is refused 488.
if [[ "$CALLS" == *R* ]]; then
  stop_server
  start_server $'  requireSrtpOverTls: true\n'
  for _ in 1 2 3 4; do l100 "status register"; sleep 0.5; done   # the bindings were kept in the store anyway
  n488=$(count "$work/p100-debug.log" 'SIP/2.0 488')
  l100 "call sip:101@127.0.0.1:$port"
  wait_more "$work/p100-debug.log" 'SIP/2.0 488' "$n488" 100 \
    || fail "step R: requireSrtpOverTls: no 488 for the SRTP offer over UDP: $(grep -aoE '"event":"call\.[a-z_]+"[^}]{0,160}' "$work/server.log" | tail -2 | tr '\n' ' ')"
  refused=$(grep -aoE '"event":"call.srtp_refused"[^}]*' "$work/server.log" | head -1)
  [ -n "$refused" ] || fail "step R: no call.srtp_refused log line"
  tls488=$(last_488 "$work/p100-debug.log")
  echo "step R: 100 got '$tls488'; server: $refused"
  summary="$summary | media.requireSrtpOverTls: '$tls488'"
fi
l100 "quit"; l101 "quit"
sleep 1
echo "PASS ${summary# | }"
