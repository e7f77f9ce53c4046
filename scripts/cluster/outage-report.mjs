#!/usr/bin/env node
// What scripts/cluster/outage.sh checks, from SIPp's statistics (reg_outage.xml run with
// -trace_stat -fd 1), the times the database was stopped and started again, the nodes' logs and
// Kamailio's log:
//
//   outage-report.mjs STAT_CSV STOP_MS STOPPED_MS STARTED_MS RECOVER_S KAMAILIO_LOG NAME=NODE_LOG...
//
// (STOP_MS: mariadbd was told to stop; STOPPED_MS: it had exited; STARTED_MS: it accepted
// connections again.) Prints a table of the answers per second (relative to the stop), then one line
// `RESULT {json}`; exits 1 when a check failed.
//   - before the stop: every REGISTER answered 200;
//   - while the database is away (after a grace of GRACE_S for the nodes to notice): 503 with
//     Retry-After and no 200;
//   - after it is back: 200 again, and no 503 later than RECOVER_S after its return;
//   - never: a timeout, a 503 without Retry-After, any other answer;
//   - each node logged store.unavailable once and store.available once;
//   - Kamailio sent no REGISTER to more than the two nodes (no loop on 503).
import { readFileSync } from 'node:fs';

const GRACE_S = 2;
const [statFile, stopArg, stoppedArg, startedArg, recoverArg, kamailioLog, ...nodeArgs] = process.argv.slice(2);
const stopMs = Number(stopArg);
const stoppedMs = Number(stoppedArg);
const startedMs = Number(startedArg);
const recoverS = Number(recoverArg);
if (!statFile || !Number.isFinite(stopMs) || !Number.isFinite(stoppedMs) || !Number.isFinite(startedMs) || !(recoverS > 0) || !kamailioLog || nodeArgs.length === 0) {
  process.stderr.write('usage: outage-report.mjs STAT_CSV STOP_MS STOPPED_MS STARTED_MS RECOVER_S KAMAILIO_LOG NAME=NODE_LOG...\n');
  process.exit(2);
}

// ---- SIPp's statistics: one row a second, the (P) columns count that period ----
const lines = readFileSync(statFile, 'utf8').split('\n').filter((l) => l.trim() !== '');
const header = lines[0].split(';');
const col = (name) => {
  const i = header.indexOf(name);
  if (i < 0) throw new Error(`${statFile}: no column ${name}`);
  return i;
};
// reg_outage.xml puts each outcome in its own column.
const at = {
  time: col('CurrentTime'),
  ok: col('SuccessfulCall(P)'),
  unavailable: col('FailedRegexpShouldntMatch(P)'),
  noRetryAfter: col('FailedRegexpDoesntMatch(P)'),
  noRetryAfterHeader: col('FailedRegexpHdrNotFound(P)'),
  timeout: col('FailedMaxUDPRetrans(P)'),
  other: col('FailedUnexpectedMessage(P)'),
  failed: col('FailedCall(P)'),
};
const rows = lines.slice(1).map((line) => {
  const f = line.split(';');
  // CurrentTime is "date<TAB>time<TAB>epoch seconds".
  const ms = Math.round(Number(f[at.time].split('\t')[2]) * 1000);
  const n = (k) => Number(f[at[k]]) || 0;
  const unavailable = n('unavailable');
  const noRetryAfter = n('noRetryAfter') + n('noRetryAfterHeader');
  const timeout = n('timeout');
  const other = n('other');
  // Anything failed that none of the columns above names.
  const unexplained = Math.max(0, n('failed') - unavailable - noRetryAfter - timeout - other);
  return { ms, ok: n('ok'), unavailable, noRetryAfter, timeout, other: other + unexplained };
});

const failures = [];
const sum = (list, k) => list.reduce((a, r) => a + r[k], 0);
// A row counts the second before its time.
const before = rows.filter((r) => r.ms <= stopMs);
const away = rows.filter((r) => r.ms > stoppedMs + GRACE_S * 1000 && r.ms <= startedMs);
const after = rows.filter((r) => r.ms > startedMs);

if (sum(before, 'ok') === 0) failures.push('no REGISTER succeeded before the database was stopped');
if (sum(before, 'unavailable') + sum(before, 'timeout') + sum(before, 'other') > 0) failures.push('REGISTERs failed before the database was stopped');
if (sum(away, 'unavailable') === 0) failures.push('no 503 while the database was away');
if (sum(away, 'ok') > 0) failures.push(`${sum(away, 'ok')} REGISTERs answered 200 while the database was away (after ${GRACE_S} s)`);
const last503 = [...rows].reverse().find((r) => r.unavailable > 0);
const firstOkAfter = after.find((r) => r.ok > 0);
const recoveredMs = firstOkAfter === undefined ? null : Math.max(0, (last503 && last503.ms > startedMs ? last503.ms : firstOkAfter.ms) - startedMs);
if (firstOkAfter === undefined) failures.push('no REGISTER succeeded after the database was back');
else if (recoveredMs > recoverS * 1000) failures.push(`503 still ${Math.round(recoveredMs / 1000)} s after the database was back (at most ${recoverS} s)`);
const tail = after.filter((r) => r.ms > startedMs + recoverS * 1000);
if (tail.length === 0) failures.push('the load ended before the recovery could be seen');
else if (sum(tail, 'ok') === 0) failures.push('no REGISTER succeeded at the end');
const total = (k) => sum(rows, k);
if (total('noRetryAfter') > 0) failures.push(`${total('noRetryAfter')} answers 503 without Retry-After`);
if (total('timeout') > 0) failures.push(`${total('timeout')} REGISTERs timed out`);
if (total('other') > 0) failures.push(`${total('other')} REGISTERs got another answer than 200 or 503`);

// ---- the nodes' logs: the outage reported once and its end once, by each ----
const nodes = {};
for (const arg of nodeArgs) {
  const eq = arg.indexOf('=');
  const name = arg.slice(0, eq);
  const events = { 'store.unavailable': 0, 'store.available': 0 };
  for (const line of readFileSync(arg.slice(eq + 1), 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const event = JSON.parse(line).event;
      if (event in events) events[event]++;
    } catch {
      // not a log line
    }
  }
  nodes[name] = { unavailable: events['store.unavailable'], available: events['store.available'] };
  if (events['store.unavailable'] !== 1 || events['store.available'] !== 1) {
    failures.push(`${name} logged store.unavailable ${events['store.unavailable']} times and store.available ${events['store.available']} times (once each expected)`);
  }
}

// ---- Kamailio: each REGISTER to one node, or to both when the first said 503; never more ----
const kam = readFileSync(kamailioLog, 'utf8');
const received = (kam.match(/^.*REGISTER \S+ from 127\.0\.0\.1:/gm) ?? []).length;
const dispatched = (kam.match(/dispatch REGISTER from /g) ?? []).length;
if (dispatched > 2 * received) failures.push(`Kamailio sent ${dispatched} REGISTERs to the nodes for ${received} from the phones (a loop)`);

// ---- the table: one row a second, 0 = the database stopped; * while it was away ----
const pad = (v, n) => String(v).padStart(n);
process.stdout.write(`     s    200    503 timeout  other   (mariadbd told to stop at 0 s, gone at ${((stoppedMs - stopMs) / 1000).toFixed(1)} s, back at ${((startedMs - stopMs) / 1000).toFixed(1)} s)\n`);
for (const r of rows) {
  const mark = r.ms > stopMs && r.ms <= startedMs + 1000 ? '  *' : '';
  process.stdout.write(`  ${pad(Math.round((r.ms - stopMs) / 1000), 4)} ${pad(r.ok, 6)} ${pad(r.unavailable + r.noRetryAfter, 6)} ${pad(r.timeout, 7)} ${pad(r.other, 6)}${mark}\n`);
}
const result = {
  ok: failures.length === 0,
  outageMs: startedMs - stopMs,
  ok200: total('ok'),
  unavailable503: total('unavailable'),
  noRetryAfter: total('noRetryAfter'),
  timeouts: total('timeout'),
  other: total('other'),
  okWhileAway: sum(away, 'ok'),
  unavailableWhileAway: sum(away, 'unavailable'),
  recoveredMs,
  nodes,
  registersFromPhones: received,
  registersToNodes: dispatched,
  failures,
};
process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
process.exit(failures.length === 0 ? 0 : 1);
