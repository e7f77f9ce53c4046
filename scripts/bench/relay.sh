#!/usr/bin/env bash
# Media relay benchmark, side by side with the C reference relay of ../shared/lab/rtp-reference.
#   scripts/bench/relay.sh            (run from the repository root after a build)
# env: BUILD (compiled tree, default build), PPS (default 50000), SECS (default 10), SKIP_PER_PACKET=1,
#      CALLS (default "250 500 750 1000"), CALL_SECS (default 10), ENGINES (default "native node")
# 1. CPU per relayed packet at PPS: C reference, our native engine, our node engine, the naive
#    Node relay, each through ../shared/lab/rtp-reference/measure.sh (172-byte packets).
# 2. Concurrent G.711 calls: for each N in CALLS, N sessions of our relay, 2 phones per call
#    sending 50 packets/s each (100 relayed packets/s per call), loss and relay CPU; and the C
#    reference relaying the same packet rate in the same step.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd); cd "$root"
ref=${REF:-$root/../shared/lab/rtp-reference}
[ -d "$ref" ] || ref=/work/shared/lab/rtp-reference
export BUILD=${BUILD:-build}
pps=${PPS:-50000}; secs=${SECS:-10}; calls=${CALLS:-250 500 750 1000}; call_secs=${CALL_SECS:-10}
engines=${ENGINES:-native node}
[ -f "$BUILD/lib/media/relay.js" ] || { echo "no $BUILD/lib/media/relay.js: build first" >&2; exit 1; }
[ -f native/relay/build/Release/relay.node ] || node scripts/build-native.mjs
bin=${TMPDIR:-/tmp}/relay-bench-bin; mkdir -p "$bin"
gcc -O2 -o "$bin/relay-phones" scripts/bench/relay-phones.c -lpthread
tck=$(getconf CLK_TCK)
echo "# $(date -u '+%Y-%m-%d %H:%M UTC') $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), node $(node --version)"

if [ -z "${SKIP_PER_PACKET:-}" ]; then
  echo "## CPU per relayed packet at $pps pps, $secs s"
  for r in c "node scripts/bench/relay-one.mjs native" "node scripts/bench/relay-one.mjs node" node; do
    bash "$ref/measure.sh" "$r" "$pps" "$secs" 2>/dev/null || echo "relay=$r failed"
  done
fi

echo "## Concurrent calls (100 relayed packets/s per call), $call_secs s per step"
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
for n in $calls; do
  bash "$ref/measure.sh" c $((n * 100)) "$call_secs" 2>/dev/null | sed "s/^/calls=$n reference: /" || true
  for e in $engines; do
    ports=$bin/ports.$n; out=$bin/relay.$n.out; rm -f "$ports"
    node scripts/bench/relay-calls.mjs "$e" "$n" "$ports" > "$out" 2>&1 & rp=$!
    for _ in $(seq 1 300); do grep -q ready "$out" 2>/dev/null && break; kill -0 $rp 2>/dev/null || break; sleep 0.1; done
    if ! grep -q ready "$out"; then echo "calls=$n engine=$e: relay did not start"; cat "$out"; kill $rp 2>/dev/null || true; continue; fi
    t0=$(cpu $rp); w0=$(date +%s.%N)
    res=$("$bin/relay-phones" "$ports" "$n" 50 "$call_secs")
    t1=$(cpu $rp); w1=$(date +%s.%N)
    kill -TERM $rp; wait $rp 2>/dev/null || true
    echo "$res" | awk -v n="$n" -v e="$e" -v c=$((t1 - t0)) -v k="$tck" -v w0="$w0" -v w1="$w1" '{
      s=$2; g=$4; printf "calls=%d engine=%s sent=%d forwarded=%d loss=%.3f%% cpu_s=%.2f cpu_pct=%.0f%% us_per_packet=%.2f\n",
        n, e, s, g, 100*(s-g)/s, c/k, 100*c/k/(w1-w0), (g ? 1e6*c/k/g : 0) }'
  done
done
