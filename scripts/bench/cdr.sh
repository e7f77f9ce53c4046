#!/usr/bin/env bash
# CDR tool benchmark: 1M generated records; `cdr query --caller` and `cdr stats --by cause`
# against awk doing the same filter / group-by, with wall time and peak RSS (GNU time).
#   scripts/bench/cdr.sh            (CDR_BUILD=build dir, default build/; BENCH_DIR=/tmp/cdr-bench; ROWS=1000000)
set -euo pipefail
cd "$(dirname "$0")/../.."
export CDR_BUILD="${CDR_BUILD:-build}"
DIR="${BENCH_DIR:-/tmp/cdr-bench}"
ROWS="${ROWS:-1000000}"
FILE="$DIR/cdr-$ROWS.csv"
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "needs GNU time: apt-get install -y time" >&2; exit 2; }
[ -f "$CDR_BUILD/cli/cdr.js" ] || { echo "not built: npx tsc -p tsconfig.json --outDir $CDR_BUILD" >&2; exit 2; }
mkdir -p "$DIR"
if [ ! -f "$FILE" ]; then
  echo "generating $ROWS records into $FILE ..." >&2
  node scripts/bench/cdr-gen.mjs "$FILE" "$ROWS"
fi
SIZE_MB=$(( $(stat -c %s "$FILE") / 1048576 ))

# run LABEL TOOL OUTFILE CMD... : prints a table row (wall seconds, peak RSS MB, output lines)
run() {
  local label="$1" tool="$2" out="$3"; shift 3
  "$TIME" -v -o "$DIR/time.txt" "$@" > "$out" 2> "$DIR/stderr.txt" || { echo "failed: $*" >&2; cat "$DIR/stderr.txt" >&2; exit 1; }
  local wall rss lines
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.2f", s }' "$DIR/time.txt")
  rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$DIR/time.txt")
  lines=$(wc -l < "$out")
  echo "| $label | $tool | $wall | $rss | $lines |"
}

CALLER=101
echo
echo "CDR benchmark: $ROWS records, ${SIZE_MB} MB, $(node --version), $(awk -W version 2>&1 | head -1 || true)"
echo
echo "| task | tool | wall s | peak RSS MB | output lines |"
echo "|---|---|---:|---:|---:|"
run "query --caller $CALLER --format csv" "minisipserver cdr" "$DIR/q-ours.csv" \
  node scripts/bench/cdr-run.mjs query "$FILE" --caller "$CALLER" --format csv
run "query --caller $CALLER" "awk -F," "$DIR/q-awk.csv" \
  awk -F, -v c="$CALLER" 'NR == 1 || $5 == c' "$FILE"
run "stats --by cause --format csv" "minisipserver cdr" "$DIR/s-ours.csv" \
  node scripts/bench/cdr-run.mjs stats "$FILE" --by cause --format csv
# awk: calls, answered and billable seconds per cause. Plain -F, miscounts fields on lines with a
# quoted comma, so the FCI is found by pattern and answered/billable read from the end of the line.
run "stats --by cause" "awk" "$DIR/s-awk.csv" \
  awk -F, 'NR > 1 && match($0, /callTag=[0-9]+;cause=[0-9]+/) { f = substr($0, RSTART, RLENGTH); sub(/.*cause=/, "", f); calls[f]++; if ($(NF-11) != "") { ans[f]++; bill[f] += $(NF-8) } }
           END { print "cause,calls,answered,billable_minutes"; for (k in calls) printf "%s,%d,%d,%.2f\n", k, calls[k], ans[k], bill[k] / 60 }' "$FILE"
run "read + filter, csv-parse stream only" "csv-parse" "$DIR/p1.txt" node scripts/bench/cdr-parse-only.mjs csv-parse "$FILE"
run "read + filter, our reader, csv-parse for every line" "lib/cdr" "$DIR/p2.txt" node scripts/bench/cdr-parse-only.mjs reader-slow "$FILE"
run "read + filter, our reader, no-quote fast path" "lib/cdr" "$DIR/p3.txt" node scripts/bench/cdr-parse-only.mjs reader-fast "$FILE"
echo
# Cross-checks: same rows selected, same per-cause call counts.
ours_rows=$(( $(wc -l < "$DIR/q-ours.csv") ))
awk_rows=$(( $(wc -l < "$DIR/q-awk.csv") ))
echo "query rows: ours $ours_rows, awk $awk_rows (lines; quoted newlines would make these differ)"
diff <(tail -n +2 "$DIR/s-ours.csv" | cut -d, -f1,2 | sort) <(tail -n +2 "$DIR/s-awk.csv" | cut -d, -f1,2 | sort) > /dev/null \
  && echo "stats --by cause: call counts per cause agree with awk" \
  || echo "stats --by cause: call counts per cause DIFFER from awk"
