#!/usr/bin/env bash
# Cold start of the single executable against bare Node.js, side by side:
#   dist/minisipserver --version   vs   node -e 0
# alternating A B A B ... RUNS times (default 31) after 3 warm-up pairs, from an empty folder;
# prints each command's median wall time and the median of the per-pair ratios A/B.
# Also times `node bin/minisipserver --version` (the checkout, with node_modules) for reference.
#   scripts/bench/startup.sh        (BIN=dist/minisipserver, RUNS=31; builds BIN if missing)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${BIN:-dist/minisipserver}"
RUNS="${RUNS:-31}"
command -v node >/dev/null || { echo "startup.sh: node is needed for the reference command" >&2; exit 2; }
if [[ ! -x "$BIN" ]]; then
  [[ "$BIN" == dist/minisipserver ]] || { echo "startup.sh: $BIN is not an executable" >&2; exit 2; }
  node scripts/build-binary.mjs
fi
BIN="$(realpath "$BIN")"
CHECKOUT_BIN="$(realpath bin/minisipserver)"
NODE="$(command -v node)"
EMPTY="$(mktemp -d)"
trap 'rm -rf "$EMPTY"' EXIT
cd "$EMPTY"

# Wall time of one run in microseconds.
wall_us() {
  local start end
  start=$(date +%s%N)
  "$@" >/dev/null
  end=$(date +%s%N)
  echo $(( (end - start) / 1000 ))
}

median() {
  sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

for _ in 1 2 3; do wall_us "$BIN" --version >/dev/null; wall_us "$NODE" -e 0 >/dev/null; done
a=() b=() c=() ratios=()
for ((i = 0; i < RUNS; i++)); do
  ta=$(wall_us "$BIN" --version)
  tb=$(wall_us "$NODE" -e 0)
  tc=$(wall_us "$NODE" "$CHECKOUT_BIN" --version)
  a+=("$ta") b+=("$tb") c+=("$tc")
  ratios+=("$(awk -v x="$ta" -v y="$tb" 'BEGIN { printf "%.4f", x / y }')")
done

ms() { awk -v us="$1" 'BEGIN { printf "%.1f", us / 1000 }'; }
ma=$(printf '%s\n' "${a[@]}" | median)
mb=$(printf '%s\n' "${b[@]}" | median)
mc=$(printf '%s\n' "${c[@]}" | median)
mr=$(printf '%s\n' "${ratios[@]}" | median)
echo "runs: $RUNS pairs, $(nproc) cores, $(node --version), $(date -u '+%Y-%m-%d %H:%M UTC')"
printf '%-44s %10s\n' "command" "median ms"
printf '%-44s %10s\n' "dist/minisipserver --version" "$(ms "$ma")"
printf '%-44s %10s\n' "node -e 0" "$(ms "$mb")"
printf '%-44s %10s\n' "node bin/minisipserver --version (checkout)" "$(ms "$mc")"
echo "ratio dist/minisipserver --version / node -e 0: median of pairs $mr (limit 1.6)"
