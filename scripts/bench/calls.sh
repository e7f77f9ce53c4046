#!/usr/bin/env bash
# Calls through the server, every INVITE challenged (407): minisipserver and the reference
# Kamailio (INVITE_AUTH=1), one after the other in the same run, under the same SIPp call ramp
# (../shared/lab/run-bench.sh, SKIP_REG=1): INVITE/407/ACK/INVITE/100/180/200/ACK, 1 s hold,
# BYE/200. MEDIA_RELAY=always makes every call also take relay ports (the default here is never,
# as the reference proxy relays no media), from the default range 10000-30000 (PORT_MIN,
# PORT_MAX). WORKERS=N runs minisipserver with sip.workers N (UDP only); with SIPp's single
# socket all calls still reach one worker, so pair it with a SIPP wrapper that adds `-t un` (one
# socket per call, as many phones would be).
#
#   scripts/bench/calls.sh
#   CALL_RATES="800 1600 2400" scripts/bench/calls.sh
#   ONLY=minisipserver MEDIA_RELAY=always scripts/bench/calls.sh
#
# Needs: sipp (sip-tester), kamailio, a built tree (npm ci). Everything stays on 127.0.0.1.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
lab=${LAB:-$here/../shared/lab}
out=${OUT:-/tmp/mss-bench-calls-$(date +%Y%m%d-%H%M%S)}
users=${USERS:-1000}
export CALL_RATES=${CALL_RATES:-"800 1600 2400 3200 4000 4800 5600"}
export CALL_STEP_S=${CALL_STEP_S:-15}
KIND=call SKIP=SKIP_REG KAMAILIO_ENV="INVITE_AUTH=1"
MSS_CONFIG=$(printf 'auth:\n  algorithms: [MD5, SHA-256]\nsip:\n  udpBufferBytes: 4194304\n  workers: %s\n  transports: [%s]\nlog:\n  level: warn\nmedia:\n  relay: %s\n  portMin: %s\n  portMax: %s\ncalls:\n  maxTotal: 100000\n  maxPerExtension: 1000' \
  "${WORKERS:-1}" "$([ "${WORKERS:-1}" -gt 1 ] && echo udp || echo 'udp, tcp')" "${MEDIA_RELAY:-never}" "${PORT_MIN:-10000}" "${PORT_MAX:-30000}")
. "$here/scripts/bench/lab-compare.sh"
