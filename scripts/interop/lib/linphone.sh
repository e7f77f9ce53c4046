# Sourced by the interop scripts that drive linphonec phones (as ../shared/lab/clients/linphone-call.sh
# does). Needs: $work (a temp folder), $port (the server's SIP port) and a fail() function. For SIP
# over TLS also set $transport=tls, $transport_port (the server's TLS port) and $cafile (what it trusts).

# make_wav BASE TEXT SECS: speech in BASE.wav (8 kHz mono PCM16, one utterance: the reference for
# the analysis) and BASE-loop.wav (repeated to outlast a call of SECS seconds).
make_wav() {
  espeak-ng -s 150 -w "$1.tmp.wav" "$2" && sox "$1.tmp.wav" -r 8000 -c 1 -b 16 "$1.wav" || fail "cannot make $1.wav"
  sox "$1.wav" "$1-loop.wav" repeat $(( ($3 + 20) / 4 + 1 )) || fail "cannot make $1-loop.wav"
  rm -f "$1.tmp.wav"
}

# mk_linphone NAME SIP_PORT RTP_RANGE USER [RC_LINES]: a linphonec folder $work/NAME with its
# linphonerc (account USER, password pass<USER>, PCMU/PCMA only, no ICE), RC_LINES appended to its
# [sip] section (e.g. media_encryption=srtp), and a fifo $work/NAME.in for its commands.
mk_linphone() {
  local d="$work/$1"; mkdir -p "$d/home/.local/share/linphone"
  cat > "$d/linphonerc" <<EOF
[sip]
sip_port=$2
sip_tcp_port=-1
sip_tls_port=-1
bind_address=127.0.0.1
ipv6_enabled=0
default_proxy=0
register_only_when_network_is_up=0
${cafile:+root_ca=$cafile}
${5:-}
[net]
firewall_policy=0
[rtp]
audio_rtp_port=$3
[sound]
echocancellation=0
[audio_codec_0]
mime=PCMU
rate=8000
enabled=1
[audio_codec_1]
mime=PCMA
rate=8000
enabled=1
[proxy_0]
reg_proxy=<sip:127.0.0.1:${transport_port:-$port};transport=${transport:-udp}>
reg_identity=sip:$4@127.0.0.1:$port
reg_expires=300
reg_sendregister=1
publish=0
[auth_info_0]
username=$4
userid=$4
passwd=pass$4
EOF
  mkfifo "$work/$1.in" || fail "mkfifo $1"
}

# start_linphone NAME FD: runs linphonec for $work/NAME (commands from its fifo, opened on FD by
# the caller first; console in $work/NAME.log, debug log in $work/NAME-debug.log; pid added to
# $pids) and waits until it has registered.
start_linphone() {
  HOME="$work/$1/home" stdbuf -oL -eL linphonec -c "$work/$1/linphonerc" -d 5 -l "$work/$1-debug.log" \
    < "$work/$1.in" > "$work/$1.log" 2>&1 & pids+=($!)
  local i
  for i in $(seq 1 20); do
    echo "status register" >&"$2"; sleep 0.5
    grep -aqE 'registered, identity=' "$work/$1.log" && return 0
  done
  fail "linphone $1 did not register: $(grep -aoE 'Register refresher \[[0-9]+\][^]]*\]' "$work/$1-debug.log" | tail -2 | tr '\n' ' ')"
}

# wait_for FILE REGEX TENTHS; count FILE REGEX; wait_more FILE REGEX PREVIOUS_COUNT TENTHS
wait_for() { for _ in $(seq 1 "$3"); do grep -qaE "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
count() { grep -acE "$2" "$1" 2>/dev/null; }
wait_more() { for _ in $(seq 1 "$4"); do [ "$(count "$1" "$2")" -gt "$3" ] && return 0; sleep 0.1; done; return 1; }

# check_audio LABEL RX_WAV EXPECTED_TX_WAV OTHER_TX_WAV: the received audio is not silence and its
# envelope correlates with the sent speech better than RMS_MIN / CORR_MIN (as the lab's drivers
# check it); appends "LABEL:rms=..,corr=..;" to $results.
check_audio() {
  local i r c co l
  for i in $(seq 1 30); do [ "$(head -c 4 "$2" 2>/dev/null)" = RIFF ] && break; sleep 0.1; done
  [ -s "$2" ] || fail "$1: no received audio file $2"
  [ -f "$work/corr.py" ] || write_corr_py
  r=$(sox "$2" -n stat 2>&1 | awk '/RMS +amplitude/ {print $3}')
  read -r c co l < <(python3 "$work/corr.py" "$2" "$3" "$4")
  echo "$1: RMS $r (min ${RMS_MIN:-0.01}), corr $c (other speaker's wav $co, min ${CORR_MIN:-0.5})"
  python3 -c "import sys; sys.exit(0 if float('${r:-0}') >= float('${RMS_MIN:-0.01}') else 1)" || fail "$1: received silence (RMS $r)"
  python3 -c "import sys; sys.exit(0 if float('${c:-0}') >= float('${CORR_MIN:-0.5}') else 1)" || fail "$1: received audio does not match the sent speech (corr $c)"
  results="${results:-}$1:rms=$r,corr=$c; "
}

# The envelope correlation of ../shared/lab/clients/linphone-call.sh: 20 ms log-energy frames of
# the received file against cyclic shifts of the sent utterance (it is played in a loop).
write_corr_py() {
  cat > "$work/corr.py" <<'PY'
import sys, wave, array, math
def load(p):
    w = wave.open(p, 'rb'); n = w.getnframes(); raw = w.readframes(n)
    a = array.array('h', raw)
    if w.getnchannels() > 1: a = a[::w.getnchannels()]
    return a, w.getframerate()
def env(a, sr, ms=20):
    f = int(sr * ms / 1000); out = []
    for i in range(0, len(a) - f + 1, f):
        s = sum(x * x for x in a[i:i + f]) / f
        out.append(math.log10(s + 1.0))
    return out
def ncc(x, y):
    n = min(len(x), len(y))
    if n < 25: return 0.0
    x, y = x[:n], y[:n]; mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x); syy = sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else 0.0
def best(rx, tx):
    best_c, best_l = -1.0, 0
    rep = tx * (len(rx) // max(1, len(tx)) + 2)
    for lag in range(len(tx)):
        c = ncc(rx, rep[lag:lag + len(rx)])
        if c > best_c: best_c, best_l = c, lag
    return best_c, best_l
rx, sr = load(sys.argv[1]); tx, sr2 = load(sys.argv[2]); other, _ = load(sys.argv[3])
E = env(rx, sr)[10:]; T = env(tx, sr2); O = env(other, sr2)
c, lag = best(E, T); co, _ = best(E, O)
print("%.3f %.3f %d" % (c, co, lag * 20))
PY
}
