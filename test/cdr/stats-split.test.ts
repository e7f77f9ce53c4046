// `cdr stats` with the second half of a file read by a worker thread (stats-split.ts): whatever the
// file holds around the split, the results, the printed outputs and the bad-line reports (order and
// line numbers) must be those of a run in one thread; when the split is not certainly safe the
// worker's results are dropped and the reader continues on its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { computeStats, printStats, STATS_GROUPS, type StatsGroup } from '../../lib/cdr/stats.js';
import { fieldChecks } from '../../lib/cdr/prefilter.js';
import { SPLIT_SHARE } from '../../lib/cdr/stats-split.js';
import type { CdrFilter } from '../../lib/cdr/filter.js';
import type { Problem } from '../../lib/cdr/problems.js';
import { Collect } from '../helpers/collect.js';

const HEADER = 'record_id,record_type,party_kind,call_id,caller,caller_name,callee,dialled,route,start_time,answer_time,end_time,duration,billable,status,fci,caller_address,callee_address,media,codec,user_agent,node';
const TEMPLATES = [
  'ID,O,local,b1@x,101,Alice,200,200,local,2026-11-26THH:00:00.000+01:00,,2026-11-26THH:00:30.000+01:00,30.000,0,480,callTag=5;cause=19,192.0.2.10:5060,192.0.2.20:5060,audio,PCMA,Phone/1.0,pbx1',
  'ID,O,local,b2@x,104,Dave,201,201,local,2026-11-26THH:10:00.000+01:00,2026-11-26THH:10:02.000+01:00,2026-11-26THH:10:32.001+01:00,32.001,31,200,callTag=1;cause=16,192.0.2.10:5060,192.0.2.20:5060,audio+video,PCMA,Phone/1.0,pbx1',
  'ID,O,local,q1@x,101,"Smith, John",200,200,local,2026-11-26THH:20:00.000+01:00,2026-11-26THH:20:01.000+01:00,2026-11-26THH:21:00.000+01:00,60.000,59,200,callTag=1;cause=16,192.0.2.10:5060,192.0.2.20:5060,audio,PCMA,Phone/1.0,pbx1',
  'ID,O,local,q2@x,102,"The ""Boss""",203,203,local,2026-11-26THH:30:00.000+01:00,,2026-11-26THH:30:09.000+01:00,9.000,0,486,callTag=9;cause=17,192.0.2.10:5060,192.0.2.20:5060,audio,PCMA,Phone/1.0,pbx1',
  'ID,O,local,b3@x,102,Bob,200,200,local,2026-11-26THH:40:00.000+01:00,2026-11-26THH:40:00.500+01:00,2026-11-26THH:44:04.000+01:00,243.500,244,200,callTag=2;cause=102,192.0.2.10:5060,192.0.2.20:5060,audio,PCMA,Phone/1.0,pbx1',
];

/** `n` records of equal length per template, hours 00..23 in order. */
function records(n: number): string[] {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const hh = String(Math.floor((i * 24) / n)).padStart(2, '0');
    lines.push(TEMPLATES[i % TEMPLATES.length]!.replace('ID', `r${String(i).padStart(6, '0')}`).replaceAll('HH', hh));
  }
  return lines;
}

/** Index (in `lines`, joined with newlines) of the first line the worker reads: the line after the
 * first newline at or after byte size * SPLIT_SHARE (the rule of stats-split.ts). */
function splitLine(lines: string[], prefix = HEADER + '\n'): number {
  const text = prefix + lines.join('\n') + '\n';
  const size = Buffer.byteLength(text);
  const at = Buffer.from(text).indexOf(10, Math.floor(size * SPLIT_SHARE)) + 1;
  let pos = Buffer.byteLength(prefix);
  for (let i = 0; i < lines.length; i++) {
    if (pos === at) return i;
    pos += Buffer.byteLength(lines[i]!) + 1;
  }
  throw new Error('no split line');
}

/** Same-length damage: a bad start time, or a field too few. */
const badTime = (line: string) => line.replace('2026-11-26T', '2026-11-26X');
const fieldTooFew = (line: string) => line.replace(',O,', ';O,');

let dir: string;
test.before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdr-split-'));
});
test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

interface Run {
  result: unknown;
  outputs: string[];
  problems: Problem[];
  outcomes: string[];
}

async function run(files: string[], split: boolean, opts: { by?: StatsGroup; filter?: CdrFilter; maxProblems?: number } = {}): Promise<Run> {
  const problems: Problem[] = [];
  const outcomes: string[] = [];
  const filter = opts.filter ?? {};
  const result = await computeStats({
    files, filter, format: 'csv', onProblem: (p) => problems.push(p), fieldChecks: fieldChecks(filter),
    ...(opts.by ? { by: opts.by } : {}),
    parallel: split ? { minBytes: 0, ...(opts.maxProblems !== undefined ? { maxProblems: opts.maxProblems } : {}), onSplit: (f, o) => outcomes.push(`${path.basename(f)}: ${o}`) } : undefined,
  });
  const outputs: string[] = [];
  for (const format of ['table', 'csv', 'json'] as const) {
    const out = new Collect();
    await printStats(result, { ...(opts.by ? { by: opts.by } : {}), format }, out);
    outputs.push(out.text);
  }
  return { result, outputs, problems, outcomes };
}

/** Split and one-thread runs agree in every respect; returns the split run's outcomes. */
async function same(files: string[], opts: Parameters<typeof run>[2] = {}): Promise<{ outcomes: string[]; problems: Problem[] }> {
  const one = await run(files, false, opts);
  const two = await run(files, true, opts);
  assert.deepEqual(two.result, one.result);
  assert.deepEqual(two.outputs, one.outputs);
  assert.deepEqual(two.problems, one.problems);
  assert.deepEqual(one.outcomes, []);
  return { outcomes: two.outcomes, problems: two.problems };
}

test('split and one-thread runs agree for every grouping, bad lines next to the split included', async () => {
  const lines = records(500);
  const k = splitLine(lines);
  lines[k - 2] = fieldTooFew(lines[k - 2]!);
  lines[k - 1] = badTime(lines[k - 1]!);
  lines[k] = badTime(lines[k]!);
  lines[k + 1] = fieldTooFew(lines[k + 1]!);
  lines[3] = badTime(lines[3]!);
  lines[lines.length - 2] = fieldTooFew(lines[lines.length - 2]!);
  assert.equal(splitLine(lines), k); // same-length damage: the split stays where it was
  const file = write('bad-near-split.csv', HEADER + '\n' + lines.join('\n') + '\n');
  for (const by of [undefined, ...STATS_GROUPS]) {
    const { outcomes, problems } = await same([file], by ? { by } : {});
    assert.deepEqual(outcomes, ['bad-near-split.csv: merged'], String(by));
    // Line numbers count the header: record i is on line i + 2.
    assert.deepEqual(problems.map((p) => p.line), [5, k, k + 1, k + 2, k + 3, lines.length], String(by));
  }
});

test('split: filters, --caller checks, a last line without newline, a byte order mark', async () => {
  const lines = records(400);
  const file = write('bom.csv', '\uFEFF' + HEADER + '\n' + lines.join('\n') + '\n' + lines[7]!.replace('r000007', 'r999999'));
  for (const filter of [{}, { caller: '101' }, { callee: '203' }, { answered: true }, { cause: 16 }] as CdrFilter[]) {
    const { outcomes } = await same([file], { by: 'cause', filter });
    assert.deepEqual(outcomes, ['bom.csv: merged'], JSON.stringify(filter));
  }
  // An unterminated last line that is not a complete record is dropped silently either way.
  const cut = write('cut.csv', HEADER + '\n' + lines.join('\n') + '\n' + lines[7]!.slice(0, 50));
  assert.deepEqual((await same([cut], { by: 'caller' })).outcomes, ['cut.csv: merged']);
});

test('split: several files, each split, line numbers per file', async () => {
  const a = records(300);
  const b = records(350);
  const ka = splitLine(a, '');
  a[ka] = badTime(a[ka]!);
  b[splitLine(b) - 1] = fieldTooFew(b[splitLine(b) - 1]!);
  const fa = write('20261101.csv', a.join('\n') + '\n'); // no header line: standard order
  const fb = write('20261102.csv', HEADER + '\n' + b.join('\n') + '\n');
  const { outcomes, problems } = await same([fa, fb], { by: 'day' });
  assert.deepEqual(outcomes, ['20261101.csv: merged', '20261102.csv: merged']);
  assert.deepEqual(problems.map((p) => `${path.basename(p.file)}:${p.line}`), [`20261101.csv:${ka + 1}`, `20261102.csv:${splitLine(b) + 1}`]);
});

test('a quoted record open across the split: the worker is not used', async () => {
  const lines = records(500);
  const k = splitLine(lines);
  // Same length: the last field of line k-1 opens a quote, the first field of line k closes it.
  lines[k - 1] = lines[k - 1]!.replace(/pbx1$/, '"bx1');
  lines[k] = lines[k]!.replace(/^(r\d{5})\d,/, '$1",');
  assert.equal(splitLine(lines), k);
  const file = write('open-quote.csv', HEADER + '\n' + lines.join('\n') + '\n');
  for (const by of ['cause', 'caller'] as const) {
    const { outcomes, problems } = await same([file], { by });
    assert.deepEqual(outcomes, ['open-quote.csv: not at a record boundary']);
    assert.equal(problems.length, 1);
    assert.equal(problems[0]!.line, k + 1);
  }
});

test('a quoted newline just before the split, closed before it: merged, same results', async () => {
  const lines = records(500);
  const k = splitLine(lines);
  // Line k-2 opens a quote that line k-1 closes: one record of two lines, ending at the split.
  lines[k - 2] = lines[k - 2]!.replace(/,Phone\/1\.0,pbx1$/, ',"hone/1.0,pbx1');
  lines[k - 1] = lines[k - 1]!.replace(/^r(\d{6}),O,/, 'r$1",O');
  assert.equal(splitLine(lines), k);
  const file = write('closed-quote.csv', HEADER + '\n' + lines.join('\n') + '\n');
  const { outcomes, problems } = await same([file], { by: 'cause' });
  assert.deepEqual(outcomes, ['closed-quote.csv: merged']);
  assert.equal(problems.length, 1); // the two-line record has too many fields
  assert.equal(problems[0]!.line, k);
});

test('a header changing the column order before the split: the worker is not used', async () => {
  const lines = records(400);
  const reordered = HEADER.split(',');
  [reordered[0], reordered[1]] = [reordered[1]!, reordered[0]!];
  const swap = (l: string) => {
    const f = l.split(',');
    [f[0], f[1]] = [f[1]!, f[0]!];
    return f.join(',');
  };
  const text = HEADER + '\n' + lines.slice(0, 10).join('\n') + '\n' + reordered.join(',') + '\n' + lines.slice(10).map(swap).join('\n') + '\n';
  const file = write('reordered.csv', text);
  const { outcomes } = await same([file], { by: 'cause' });
  assert.deepEqual(outcomes, ['reordered.csv: not at a record boundary']);
});

test('sums that are not whole numbers, or too many bad lines in the worker: read in one thread', async () => {
  const lines = records(400);
  const k = splitLine(lines);
  const fractions = [...lines];
  for (let i = k; i < lines.length; i++) fractions[i] = fractions[i]!.replace(',32.001,31,', ',32.001,.5,');
  const f1 = write('fraction-after.csv', HEADER + '\n' + fractions.join('\n') + '\n');
  assert.deepEqual((await same([f1], { by: 'cause' })).outcomes, ['fraction-after.csv: sums not exact']);
  const before = [...lines];
  let i = k - 4;
  while (i % TEMPLATES.length !== 1) i--; // an answered call: its billable seconds are summed
  before[i] = before[i]!.replace(',32.001,31,', ',32.001,.5,');
  assert.equal(splitLine(before), k);
  const f2 = write('fraction-before.csv', HEADER + '\n' + before.join('\n') + '\n');
  assert.deepEqual((await same([f2], { by: 'cause' })).outcomes, ['fraction-before.csv: sums not exact']);
  const bad = [...lines];
  for (let i = k + 1; i < k + 5; i++) bad[i] = badTime(bad[i]!);
  const f3 = write('many-bad.csv', HEADER + '\n' + bad.join('\n') + '\n');
  const r = await same([f3], { by: 'cause', maxProblems: 3 });
  assert.deepEqual(r.outcomes, ['many-bad.csv: too many bad lines']);
  assert.equal(r.problems.length, 4);
  const r2 = await same([f3], { by: 'cause', maxProblems: 4 });
  assert.deepEqual(r2.outcomes, ['many-bad.csv: merged']);
});

test('files too small and gz files are read in one thread', async () => {
  const lines = records(100);
  const file = write('small.csv', HEADER + '\n' + lines.join('\n') + '\n');
  const outcomes: string[] = [];
  const base = { files: [file], filter: {}, format: 'csv' as const, onProblem: () => undefined };
  const small = await computeStats({ ...base, parallel: { minBytes: 1 << 20, onSplit: (_f, o) => outcomes.push(o) } });
  const gz = write('small.csv.gz', '');
  fs.writeFileSync(gz, (await import('node:zlib')).gzipSync(fs.readFileSync(file)));
  const zipped = await computeStats({ ...base, files: [gz], parallel: { minBytes: 0, onSplit: (_f, o) => outcomes.push(o) } });
  assert.deepEqual(outcomes, []);
  assert.deepEqual(zipped, small);
});
