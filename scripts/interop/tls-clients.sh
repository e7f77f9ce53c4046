#!/usr/bin/env bash
# SIP over TLS with real soft-clients. `minisipserver tls self-signed` makes a certificate for
# 127.0.0.1; `minisipserver serve` listens for TLS with it (media relay on, loopback only); a plain
# TCP client on the TLS port must be closed, and `openssl s_client` must verify the certificate
# against itself as CA. Then baresip (100) and linphonec (101) register over TLS with that
# certificate as their only CA (linphonec checks the server's certificate and name against it;
# baresip 1.0 loads the file but checks no certificate), and
#   call A: baresip 100 calls linphonec 101 (auto-answer), 100 hangs up;
#   call B: linphonec 101 calls baresip 100 at its sips: address (auto-answer), 101 hangs up.
# Each phone plays its own spoken WAV and records what it receives: the received audio must be
# non-silent and correlate with the other phone's speech (as call-clients.sh and srtp-clients.sh
# check it). Also checked: the server has both phones bound over TLS (`minisipserver status
# --json`), and every request it received from them came over TLS (its debug log).
# Last line PASS or FAIL. Everything stays on 127.0.0.1.
#
#   scripts/interop/tls-clients.sh        # TALK_SECS=5 SERVER_PORT=15360 (TLS on SERVER_PORT+1) by default
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/mss-tls-clients.XXXXXX)
port=${SERVER_PORT:-15360}
tls_port=$((port + 1))
TALK_SECS=${TALK_SECS:-5}
RELAY_MIN=23000 RELAY_MAX=23999
moddir=${BARESIP_MODDIR:-/usr/lib/baresip/modules}
pids=()
server=""
fail() { echo "FAIL $* (logs in $work)"; exit 1; }
cleanup() { for p in "${pids[@]}" $server; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
trap 'fail "interrupted"' INT TERM
for t in baresip linphonec openssl sox espeak-ng python3 stdbuf timeout; do command -v "$t" >/dev/null || fail "missing tool $t"; done
mss() { node "$here/bin/minisipserver" "$@"; }

# The certificate, as an administrator would make it for a lab.
mss tls self-signed --host 127.0.0.1 --out "$work/tls" > "$work/self-signed.out" || fail "tls self-signed: $(cat "$work/self-signed.out")"
cafile="$work/tls/cert.pem"
fingerprint=$(grep -oE 'SHA-256 fingerprint: [0-9A-F:]+' "$work/self-signed.out")
echo "certificate: $fingerprint"

data="$work/data"
printf '100:pass100\n101:pass101\n' > "$work/users.txt"
mss ext import "$work/users.txt" --data-dir "$data" >/dev/null || fail "ext import"
cat > "$work/config.yaml" <<EOF
sip:
  transports: [udp, tcp, tls]
  tls:
    port: $tls_port
    cert: tls/cert.pem
    key: tls/key.pem
media:
  relay: always
  bind: 127.0.0.1
  portMin: $RELAY_MIN
  portMax: $RELAY_MAX
admin:
  listen: 127.0.0.1:0
EOF
node "$here/bin/minisipserver" serve --config "$work/config.yaml" --bind 127.0.0.1 --sip-port "$port" --data-dir "$data" --log-format json --log-level debug > "$work/server.log" 2>&1 &
server=$!
. "$here/scripts/interop/lib/linphone.sh"
wait_for "$work/server.log" 'listening on port' 100 || fail "server did not start: $(tail -3 "$work/server.log")"
grep -aoE 'listening on port [0-9]+ .*TLS on port [0-9]+' "$work/server.log" || fail "the server does not say it listens for TLS"

# A plain TCP client on the TLS port is closed (and logged), without harm to anyone.
timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$tls_port; printf 'OPTIONS sip:127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n' >&3; cat <&3 >/dev/null" \
  || fail "a plain TCP client on the TLS port was not closed within 10 s"
wait_for "$work/server.log" '"event":"tls.handshake_failed"' 50 || fail "no tls.handshake_failed line for the plain TCP client"
plain=$(grep -aoE '"event":"tls.handshake_failed"[^}]*' "$work/server.log" | head -1)
echo "plain TCP on the TLS port: closed; server: $plain"

# The certificate verifies against itself as the only CA, over TLS 1.3, and TLS 1.1 is refused.
verify=$(openssl s_client -connect "127.0.0.1:$tls_port" -CAfile "$cafile" -verify_return_error -verify_ip 127.0.0.1 </dev/null 2>&1)
grep -q 'Verify return code: 0 (ok)' <<<"$verify" || fail "openssl s_client does not verify the certificate: $(grep -i verify <<<"$verify" | head -3 | tr '\n' ' ')"
protocol=$(grep -oE 'New, TLSv[0-9.]+' <<<"$verify" | head -1 | cut -d' ' -f2)
openssl s_client -connect "127.0.0.1:$tls_port" -tls1_1 </dev/null >/dev/null 2>&1 && fail "a TLS 1.1 handshake succeeded"
echo "openssl s_client: verified (${protocol:-?}); TLS 1.1 refused"

transport=tls transport_port=$tls_port
make_wav "$work/tx-100" "Baresip one hundred speaking over TLS. Alpha bravo charlie, one two three four five six." "$TALK_SECS"
make_wav "$work/tx-101" "Hello. Linphone one oh one here, testing the return path. Seven eight nine ten." "$TALK_SECS"
. "$here/scripts/interop/lib/baresip.sh"
cp "$work/tx-100-loop.wav" "$work/tx.wav"      # what mk_phone's baresip plays
mk_phone b100 15380 30300-30319 100
mk_linphone p101 15384 30320-30339 101 'verify_server_certs=1
verify_server_cn=1'
exec 7<>"$work/b100/in" 8<>"$work/p101.in"
b100() { echo "$*" >&7; sleep 0.3; }
l101() { echo "$*" >&8; sleep 0.3; }
start_phone b100
start_linphone p101 8
l101 "soundcard use files"; l101 "autoanswer enable"; l101 "play $work/tx-101-loop.wav"

# Both bindings are over TLS, as the server's admin API shows them.
mss status --data-dir "$data" --json > "$work/status.json" 2>&1 || fail "status: $(cat "$work/status.json")"
bound=$(python3 - "$work/status.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(' '.join(f"{e['number']}:{c['transport']}" for e in s['extensions'] for c in e['contacts']))
PY
)
[ "$bound" = "100:tls 101:tls" ] || fail "bindings are not all over TLS: $bound"
echo "registered over TLS: $bound"

# newest FILES...: the most recent of them.
newest() { ls -t "$@" 2>/dev/null | head -1; }
# ended_calls: how many calls the server logged as ended.
ended_calls() { count "$work/server.log" '"event":"call.ended"'; }

# Call A: baresip 100 calls linphonec 101.
l101 "record $work/rx-A-101.wav"
n=$(ended_calls); e=$(count "$work/p101.log" 'Call [0-9]+ with .* ended')
b100 "/dial sip:101@127.0.0.1:$tls_port;transport=tls"
wait_for "$work/b100.log" 'Call established' 150 || fail "call A not established: $(grep -aE 'call:|terminated|[456][0-9][0-9] ' "$work/b100.log" | tail -2 | tr '\n' ' ')"
echo "call A established: $(grep -aoE 'Call established: [^[:cntrl:]]*' "$work/b100.log" | tail -1)"
sleep "$TALK_SECS"
b100 "/hangup"
wait_more "$work/p101.log" 'Call [0-9]+ with .* ended' "$e" 50 || fail "call A: linphonec 101 did not see the BYE"
wait_more "$work/server.log" '"event":"call.ended"' "$n" 50 || fail "call A: the server did not end the call"
sleep 1
check_audio "A:101<-100" "$work/rx-A-101.wav" "$work/tx-100.wav" "$work/tx-101.wav"
check_audio "A:100<-101" "$(newest "$work"/b100/rec/*-dec.wav)" "$work/tx-101.wav" "$work/tx-100.wav"

# Call B: linphonec 101 calls baresip 100 at its sips: address (reached over TLS only).
sleep 1
l101 "record $work/rx-B-101.wav"
before=$(newest "$work"/b100/rec/*-dec.wav)
n=$(ended_calls); c=$(count "$work/p101.log" 'Call [0-9]+ with .* connected'); e=$(count "$work/p101.log" 'Call [0-9]+ with .* ended')
l101 "call sips:100@127.0.0.1:$tls_port"
wait_more "$work/p101.log" 'Call [0-9]+ with .* connected' "$c" 150 \
  || fail "call B not established: $(grep -aE 'Call [0-9]+|failed' "$work/p101.log" | tail -2 | tr '\n' ' ') server: $(grep -aoE '"event":"call\.[a-z_]+"[^}]{0,160}' "$work/server.log" | tail -2 | tr '\n' ' ')"
echo "call B established: $(grep -aoE 'Call [0-9]+ with .* connected' "$work/p101.log" | tail -1)"
sleep "$TALK_SECS"
l101 "terminate"
wait_more "$work/p101.log" 'Call [0-9]+ with .* ended' "$e" 50 || fail "call B: linphonec 101 did not end the call"
wait_more "$work/server.log" '"event":"call.ended"' "$n" 50 || fail "call B: the server did not end the call"
sleep 1
after=$(newest "$work"/b100/rec/*-dec.wav)
[ "$after" != "$before" ] || fail "call B: baresip 100 recorded nothing new"
check_audio "B:100<-101" "$after" "$work/tx-101.wav" "$work/tx-100.wav"
check_audio "B:101<-100" "$work/rx-B-101.wav" "$work/tx-100.wav" "$work/tx-101.wav"

# Everything the phones sent reached the server over TLS (the debug log names each message's transport).
ins=$(grep -aoE '"event":"sip.in","from":"[a-z]+:127\.0\.0\.1:[0-9]+","message":"[A-Z]+ ' "$work/server.log" | grep -vE '"message":"(SIP|OPTIONS)' )
clear=$(grep -vc '"from":"tls:' <<<"$ins")
[ "$clear" -eq 0 ] || fail "$clear requests reached the server outside TLS: $(grep -v '"from":"tls:' <<<"$ins" | head -2 | tr '\n' ' ')"
requests=$(grep -oE '"message":"[A-Z]+' <<<"$ins" | cut -d'"' -f4 | sort | uniq -c | awk '{printf "%s %s, ", $1, $2}')
answered=$(grep -aoE '"event":"call.ended"[^}]*' "$work/server.log" | grep -c '"status":200')
b100 "/quit"; l101 "quit"
sleep 1
echo "PASS baresip 100 <-> linphonec 101 over TLS (linphonec verifying the self-signed certificate, $fingerprint): $answered calls answered and hung up (B dialled sips:), requests over TLS only (${requests%, }), audio both ways: ${results%; }; plain TCP on the TLS port closed, TLS 1.1 refused"
