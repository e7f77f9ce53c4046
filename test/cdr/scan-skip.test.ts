// The byte reader steps over timestamp fields of the written length (29 bytes) without scanning
// them, then makes sure they were timestamps in the written form (no comma, quote or newline), or
// scans the line again in full. Lines whose timestamp fields hold anything else in those 29 bytes
// (a comma, a quote, a newline, other forms of time, an empty answer time before a field of the
// same shape) must be read exactly as the text path and csv-parse read them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32 } from '../helpers/prng.js';
import { CsvByteFeed } from '../../lib/cdr/byte-feed.js';
import fs from 'node:fs';
import path from 'node:path';
import { CsvCdrDecoder, CSV_HEADER } from '../../lib/cdr/csv.js';
import type { Problem } from '../../lib/cdr/problems.js';
import type { CdrRow } from '../../lib/cdr/row.js';

const fixture = (name: string) => path.resolve(process.cwd(), 'test/fixtures/cdr', name);

/** The text path (push()), or csv-parse for every line. */
function decodeText(text: string, alwaysCsvParse: boolean) {
  const rows: CdrRow[] = [];
  const problems: Problem[] = [];
  const d = new CsvCdrDecoder({ file: 'f.csv', onRow: (r) => rows.push(r), onProblem: (p) => problems.push(p), alwaysCsvParse });
  d.push(text);
  d.end();
  return { rows, problems };
}

/** The byte path, as readCdrFile drives it (reused buffer of `size`, grown for long lines). */
function decodeBytes(text: string, size: number, views: boolean) {
  const rows: CdrRow[] = [];
  const problems: Problem[] = [];
  const d = new CsvCdrDecoder({
    file: 'f.csv', onProblem: (p) => problems.push(p),
    ...(views ? { onView: (v) => rows.push(v.toRow()) } : { onRow: (r) => rows.push(r) }),
  });
  const feed = new CsvByteFeed(d, size);
  feed.append(Buffer.from(text, 'utf8'));
  feed.flush();
  d.end();
  return { rows, problems };
}

function same(text: string, what: string): void {
  const slow = decodeText(text, true);
  const plain = decodeText(text, false);
  for (const size of [64, 1000, 1 << 16]) {
    for (const views of [false, true]) {
      const fast = decodeBytes(text, size, views);
      assert.deepEqual(fast.rows.map((r) => r.rec), slow.rows.map((r) => r.rec), `${what}: rows, size ${size}`);
      assert.deepEqual(fast.rows.map((r) => [r.startMs, r.answerMs, r.endMs]), slow.rows.map((r) => [r.startMs, r.answerMs, r.endMs]), `${what}: times`);
      assert.deepEqual(fast.problems.map((p) => p.line), slow.problems.map((p) => p.line), `${what}: problem lines, size ${size}`);
      assert.deepEqual(fast.problems, plain.problems, `${what}: reports as the text path's, size ${size}`);
    }
  }
}

const GOOD = fs.readFileSync(fixture('days/20261126.csv'), 'utf8').split('\n').slice(1, 5);
const TS = [9, 10, 11];

test('timestamp fields of 29 bytes holding a comma, a quote, a newline or another form', () => {
  const line = GOOD[1]!; // answered: three timestamps
  const f = line.split(',');
  const cases: string[] = [];
  for (const col of TS) {
    const ts = f[col]!;
    assert.equal(ts.length, 29);
    for (let at = 0; at < 29; at++) {
      for (const c of [',', '"', '\n', '\r', 'x', '9', ' ']) {
        const g = [...f];
        g[col] = ts.slice(0, at) + c + ts.slice(at + 1);
        cases.push(g.join(','));
      }
    }
    // Other forms of 29 bytes, and quoted timestamps.
    for (const other of ['2026-11-26 10:00:02.000+01:00', '2026-11-26T10:00:02.000000000Z', '"2026-11-26T10:00:02.00+01:00"', '2026-11-26T10:00:02,000+01:00']) {
      const g = [...f];
      g[col] = other.slice(0, 29).padEnd(29, '0');
      cases.push(g.join(','));
    }
  }
  // An empty answer time followed by an end time, then a field, of the shape stepped over.
  const u = GOOD[0]!.split(',');
  cases.push([...u.slice(0, 11), '2026-11-26T08:00:30.000+01:0', ...u.slice(12)].join(','));
  cases.push([...u.slice(0, 10), '', '2026-11-26T08:00:30.000+01:00', '123456789012345678901234567890', ...u.slice(13)].join(','));
  // A quoted record whose quoted part spans the timestamps.
  cases.push([...f.slice(0, 9), '"' + f[9], f[10], f[11] + '"', ...f.slice(12)].join(','));
  cases.push([...f.slice(0, 9), '"' + f[9], f[10] + '\n' + f[11] + '"', ...f.slice(12)].join(','));
  // Each case between good lines, the hour cache warm or not.
  for (const [i, c] of cases.entries()) same([CSV_HEADER, GOOD[0], c, GOOD[1], c, GOOD[2]].join('\n') + '\n', `case ${i}: ${JSON.stringify(c)}`);
});

test('property: random damage to timestamp fields, byte path equals csv-parse (seeded)', () => {
  const pieces = [',', '"', '\n', '\r', 'x', '0', ':', '.', '+', '-', 'T', 'é'];
  for (const seed of [31, 32, 33, 34]) {
    const rand = mulberry32(seed);
    const lines = [CSV_HEADER];
    for (let i = 0; i < 300; i++) {
      const f = GOOD[Math.floor(rand() * GOOD.length)]!.split(',');
      const k = Math.floor(rand() * 3);
      for (let j = 0; j < k; j++) {
        const col = TS[Math.floor(rand() * TS.length)]!;
        const at = Math.floor(rand() * 29);
        const c = pieces[Math.floor(rand() * pieces.length)]!;
        f[col] = rand() < 0.8 ? f[col]!.slice(0, at) + c + f[col]!.slice(at + 1) : f[col]!.slice(0, at) + c + f[col]!.slice(at);
      }
      lines.push(f.join(','));
    }
    same(lines.join('\n') + '\n', `seed ${seed}`);
  }
});
