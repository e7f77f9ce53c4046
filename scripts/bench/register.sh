#!/usr/bin/env bash
# REGISTER with digest authentication: minisipserver and the reference Kamailio, one after the
# other in the same run, under the same SIPp ramp (../shared/lab/run-bench.sh, SKIP_CALLS=1).
#
#   scripts/bench/register.sh            # both servers, default ramp
#   REG_RATES="4000 8000 12000" scripts/bench/register.sh
#   ONLY=minisipserver scripts/bench/register.sh
#
# Needs: sipp (sip-tester), kamailio, a built tree (npm ci). Everything stays on 127.0.0.1.
# Prints the two result tables and a side-by-side summary; raw files stay in $OUT.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
lab=${LAB:-$here/../shared/lab}
out=${OUT:-/tmp/mss-bench-register-$(date +%Y%m%d-%H%M%S)}
users=${USERS:-1000}
export REG_RATES=${REG_RATES:-"4000 8000 12000 16000 20000 24000 28000"}
export REG_STEP_S=${REG_STEP_S:-10}
KIND=reg SKIP=SKIP_CALLS KAMAILIO_ENV=""
# SIPp answers only the first challenge and only knows MD5; the same 4 MB UDP buffer as the
# reference Kamailio configuration.
MSS_CONFIG=$'auth:\n  algorithms: [MD5, SHA-256]\nsip:\n  udpBufferBytes: 4194304\nlog:\n  level: warn'
. "$here/scripts/bench/lab-compare.sh"
