# Sourced by the interop scripts that drive baresip phones. Needs: $work (a temp folder), $port
# (the server's SIP port), $moddir (baresip's modules) and a fail() function. For SIP over TLS
# also set $transport=tls, $transport_port (the server's TLS port) and $cafile (what it trusts).

# A talking caller's audio: speech, 8 kHz mono PCM16, in $work/tx.wav.
make_speech_wav() {
  espeak-ng -s 150 -w "$work/t.wav" "Hello, this is a test caller speaking for a while." && sox "$work/t.wav" -r 8000 -c 1 -b 16 "$work/tx.wav" repeat 10 || fail "cannot make wav"
}

# mk_phone NAME SIP_PORT RTP_RANGE USER: a baresip folder $work/NAME (config, account with
# password pass<USER> answering at once, a fifo `in` for its commands, received audio dumped in rec/).
mk_phone() {
  local d="$work/$1"; mkdir -p "$d/rec"
  cat > "$d/config" <<CFG
poll_method		epoll
sip_listen		127.0.0.1:$2
net_interface		127.0.0.1
module_path		$moddir
module			stdio.so
module			g711.so
module			aufile.so
module			alsa.so
module			sndfile.so
module_app		account.so
module_app		menu.so
audio_source		aufile,$work/tx.wav
audio_player		alsa,null
audio_alert		alsa,null
ausrc_srate		8000
auplay_srate		8000
ausrc_channels		1
auplay_channels		1
rtp_ports		$3
snd_path		$d/rec
${cafile:+sip_cafile		$cafile}
CFG
  echo "<sip:$4@127.0.0.1:${transport_port:-$port};transport=${transport:-udp}>;auth_pass=pass$4;answermode=auto;audio_codecs=PCMU/8000/1,PCMA/8000/1;regint=300" > "$d/accounts"
  mkfifo "$d/in"
}

# wait_for FILE REGEX TENTHS: whether REGEX shows up in FILE within TENTHS tenths of a second.
wait_for() { for _ in $(seq 1 "$3"); do grep -qaE "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# start_phone NAME: runs the baresip of $work/NAME (commands from its fifo, log in $work/NAME.log;
# its pid added to $pids) and waits until it has registered. Open the fifo for writing first.
start_phone() {
  baresip -4 -f "$work/$1" < "$work/$1/in" > "$work/$1.log" 2>&1 & pids+=($!)
  wait_for "$work/$1.log" 'registered successfully|200 OK.*binding' 100 || fail "$1 did not register"
}
