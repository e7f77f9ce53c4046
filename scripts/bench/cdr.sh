#!/usr/bin/env bash
# CDR tool benchmark: 1M generated records; `cdr query --caller` and `cdr stats --by cause`
# against awk doing the same filter / group-by, with wall time and peak RSS (GNU time).
#   scripts/bench/cdr.sh   (CDR_BUILD=build dir, default build/; BENCH_DIR=/tmp/cdr-bench; ROWS=1000000;
#                           ROUNDS=3 alternating rounds, median wall; PARSERS=1 adds parser baselines)
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

ROUNDS="${ROUNDS:-3}"
# measure OUTFILE CMD... : one timed run; appends "wall rss" to $DIR/m-<basename OUTFILE>.txt
measure() {
  local out="$1"; shift
  "$TIME" -v -o "$DIR/time.txt" "$@" > "$out" 2> "$DIR/stderr.txt" || { echo "failed: $*" >&2; cat "$DIR/stderr.txt" >&2; exit 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.2f", s }' "$DIR/time.txt")
  rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$DIR/time.txt")
  echo "$wall $rss" >> "$DIR/m-$(basename "$out").txt"
}
# row LABEL TOOL OUTFILE CMD : table row from the rounds measured (median wall, max RSS, all walls)
row() {
  local label="$1" tool="$2" out="$3" cmd="$4"
  local f="$DIR/m-$(basename "$out").txt"
  local med rss all
  med=$(cut -d' ' -f1 "$f" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : sprintf("%.2f", (a[NR / 2] + a[NR / 2 + 1]) / 2) }')
  rss=$(cut -d' ' -f2 "$f" | sort -n | tail -1)
  all=$(cut -d' ' -f1 "$f" | paste -sd' ')
  echo "| $label | $tool | $med | $all | $rss | $(wc -l < "$out") | \`$cmd\` |"
}

CALLER=101
AWK_STATS='NR > 1 && match($0, /callTag=[0-9]+;cause=[0-9]+/) { f = substr($0, RSTART, RLENGTH); sub(/.*cause=/, "", f); calls[f]++; if ($(NF-11) != "") { ans[f]++; bill[f] += $(NF-8) } }
           END { print "cause,calls,answered,billable_minutes"; for (k in calls) printf "%s,%d,%d,%.2f\n", k, calls[k], ans[k], bill[k] / 60 }'
# The command a user types (bin/minisipserver runs build/); another build dir goes through the
# small runner that imports that build's runCdr.
if [ "$CDR_BUILD" = build ]; then OURS=(node bin/minisipserver cdr); else OURS=(node scripts/bench/cdr-run.mjs); fi
rm -f "$DIR"/m-*.txt
# Our tool and awk alternate, round after round, so a noisy machine hits both alike.
for ((r = 1; r <= ROUNDS; r++)); do
  echo "round $r/$ROUNDS ..." >&2
  measure "$DIR/q-ours.csv" "${OURS[@]}" query "$FILE" --caller "$CALLER" --format csv
  measure "$DIR/q-awk.csv" awk -F, -v c="$CALLER" 'NR == 1 || $5 == c' "$FILE"
  measure "$DIR/s-ours.csv" "${OURS[@]}" stats "$FILE" --by cause --format csv
  # awk: calls, answered and billable seconds per cause. Plain -F, miscounts fields on lines with a
  # quoted comma, so the FCI is found by pattern and answered/billable read from the end of the line.
  measure "$DIR/s-awk.csv" awk -F, "$AWK_STATS" "$FILE"
  measure "$DIR/c-ours.txt" "${OURS[@]}" convert "$FILE" "$DIR/conv.cdr" --force
done
if [ "${PARSERS:-0}" = 1 ]; then
  measure "$DIR/p1.txt" node scripts/bench/cdr-parse-only.mjs csv-parse "$FILE"
  measure "$DIR/p2.txt" node scripts/bench/cdr-parse-only.mjs reader-slow "$FILE"
  measure "$DIR/p3.txt" node scripts/bench/cdr-parse-only.mjs reader-fast "$FILE"
fi

echo
echo "CDR benchmark: $ROWS records, ${SIZE_MB} MB, $(node --version), $(awk -W version 2>&1 | head -1 || true), $ROUNDS alternating rounds, $(nproc) CPUs"
echo
echo "| task | tool | median wall s | walls s | peak RSS MB | output lines | command |"
echo "|---|---|---:|---|---:|---:|---|"
row "query --caller $CALLER" "minisipserver cdr" "$DIR/q-ours.csv" "minisipserver cdr query FILE --caller $CALLER --format csv"
row "query --caller $CALLER" "awk" "$DIR/q-awk.csv" "awk -F, -v c=$CALLER 'NR == 1 || \$5 == c' FILE"
row "stats --by cause" "minisipserver cdr" "$DIR/s-ours.csv" "minisipserver cdr stats FILE --by cause --format csv"
row "stats --by cause" "awk" "$DIR/s-awk.csv" "awk -F, '<group by cause, see cdr.sh>' FILE"
row "convert csv -> cdr" "minisipserver cdr" "$DIR/c-ours.txt" "minisipserver cdr convert FILE OUT.cdr --force"
if [ "${PARSERS:-0}" = 1 ]; then
  row "read + filter, csv-parse stream only" "csv-parse" "$DIR/p1.txt" "node scripts/bench/cdr-parse-only.mjs csv-parse FILE"
  row "read + filter, csv-parse for every line" "lib/cdr" "$DIR/p2.txt" "node scripts/bench/cdr-parse-only.mjs reader-slow FILE"
  row "read + filter, fast path" "lib/cdr" "$DIR/p3.txt" "node scripts/bench/cdr-parse-only.mjs reader-fast FILE"
fi
echo
echo "FILE: $FILE (node scripts/bench/cdr-gen.mjs FILE $ROWS); minisipserver cdr = ${OURS[*]} (CDR_BUILD=$CDR_BUILD)"
echo
# Cross-checks: same rows selected, same per-cause call counts.
ours_rows=$(( $(wc -l < "$DIR/q-ours.csv") ))
awk_rows=$(( $(wc -l < "$DIR/q-awk.csv") ))
diff "$DIR/q-ours.csv" "$DIR/q-awk.csv" > /dev/null && echo "query: output identical to awk's selection" || echo "query: output DIFFERS from awk's selection"
echo "query rows: ours $ours_rows, awk $awk_rows (lines; quoted newlines would make these differ)"
diff <(tail -n +2 "$DIR/s-ours.csv" | cut -d, -f1,2 | sort) <(tail -n +2 "$DIR/s-awk.csv" | cut -d, -f1,2 | sort) > /dev/null \
  && echo "stats --by cause: call counts per cause agree with awk" \
  || echo "stats --by cause: call counts per cause DIFFER from awk"
