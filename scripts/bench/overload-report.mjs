// Reads the SIPp files of one run of scripts/bench/overload.sh and prints what the issue judges:
// goodput during the overload (calls completed per second, from the per-second SuccessfulCall
// counts of the 2R caller within its first OVER_S seconds) against R, and whether the R/2 calls
// pass once the overload has ended, judged as a ramp step of ../shared/lab/run-bench.sh is
// (< 0.1% failed, every call created, >= 90% of the rate achieved, p99 set-up < 500 ms).
//
//   node scripts/bench/overload-report.mjs RUN_DIR R OVER_S
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const [dir, rateText, overText] = process.argv.slice(2);
if (!dir || !rateText || !overText) {
  console.error('usage: overload-report.mjs RUN_DIR R OVER_S');
  process.exit(2);
}
const rate = Number(rateText);
const overS = Number(overText);

/** SIPp's -trace_stat rows as objects (the periodic ones, then the final one). */
function statRows(name) {
  const lines = readFileSync(join(dir, name, 'stat.csv'), 'utf8').trim().split('\n');
  const head = lines[0].split(';');
  return lines.slice(1).map((l) => Object.fromEntries(l.split(';').map((v, i) => [head[i], v])));
}

/** "HH:MM:SS:uuuuuu" -> seconds. */
function seconds(elapsed) {
  const [h, m, s, us] = elapsed.split(':').map(Number);
  return h * 3600 + m * 60 + s + (us ?? 0) / 1e6;
}

function setupTimes(name) {
  const file = readdirSync(join(dir, name)).find((f) => f.endsWith('_rtt.csv'));
  if (!file) return { times: [], ends: [] };
  const rows = readFileSync(join(dir, name, file), 'utf8').trim().split('\n').slice(1).map((l) => l.split(';'));
  const rtd1 = rows.filter((r) => r[2] === '1');
  return { times: rtd1.map((r) => Number(r[1])).sort((a, b) => a - b), ends: rtd1.map((r) => Number(r[0])).sort((a, b) => a - b) };
}

function pct(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((sorted.length * p) / 100) - 1)];
}

function summary(name, target, count) {
  const rows = statRows(name);
  const last = rows[rows.length - 1];
  const created = Number(last['TotalCallCreated']);
  const ok = Number(last['SuccessfulCall(C)']);
  const failed = Number(last['FailedCall(C)']);
  const { times, ends } = setupTimes(name);
  const achieved = ends.length > 1 ? ((ends.length - 1) * 1000) / (ends[ends.length - 1] - ends[0]) : null;
  const p50 = pct(times, 50);
  const p99 = pct(times, 99);
  const failPct = created === 0 ? 100 : (100 * failed) / created;
  const pass = failPct < 0.1 && created >= count && achieved !== null && achieved >= target * 0.9 && p99 !== null && p99 < 500;
  return { rows, created, ok, failed, failPct, achieved, p50, p99, pass };
}

const over = summary('over', 2 * rate, 2 * rate * overS);
// Completed calls per second during the overload, from the per-second rows within it.
let completed = 0;
let offered = 0;
for (const r of over.rows.slice(0, -1)) {
  if (seconds(r['ElapsedTime(C)']) > overS + 0.5) break;
  completed += Number(r['SuccessfulCall(P)']);
  offered += Number(r['OutgoingCall(P)'] ?? r['IncomingCall(P)'] ?? 0);
}
const goodput = completed / overS;
const first = summary('after-0-5s', rate / 2, (rate / 2) * 5);
const judged = summary('after-5-20s', rate / 2, (rate / 2) * 15);
const f = (v, d = 0) => (v === null ? '-' : v.toFixed(d));

console.log(`overload (${2 * rate}/s offered for ${overS} s): ${f(offered / overS)}/s offered by SIPp, ${completed} calls completed in it = goodput ${f(goodput)}/s = ${f((100 * goodput) / rate, 1)}% of R (target >= 80%)`);
console.log(`  all its calls: created ${over.created}, ok ${over.ok}, failed ${over.failed}; set-up p50 ${f(over.p50)} ms p99 ${f(over.p99)} ms`);
for (const [label, s] of [
  ['R/2, first 5 s after', first],
  ['R/2, 5-20 s after', judged],
]) {
  console.log(
    `${label}: created ${s.created}, ok ${s.ok}, failed ${s.failed} (${f(s.failPct, 2)}%), achieved ${f(s.achieved, 1)}/s, set-up p50 ${f(s.p50)} ms p99 ${f(s.p99)} ms: ${s.pass ? 'PASS' : 'FAIL'}`,
  );
}
console.log(`verdict: goodput ${goodput >= 0.8 * rate ? 'meets' : 'misses'} the 80% target; the R/2 step ${judged.pass ? 'passes' : 'does not pass'} from 5 s after the overload`);
