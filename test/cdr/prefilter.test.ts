import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32 } from '../helpers/prng.js';
import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'csv-stringify/sync';
import { LinePrefilter, fieldChecks } from '../../lib/cdr/prefilter.js';
import { CsvCdrDecoder, CSV_HEADER } from '../../lib/cdr/csv.js';
import { compileFilter, type CdrFilter } from '../../lib/cdr/filter.js';
import type { Problem } from '../../lib/cdr/problems.js';
import type { CdrRow } from '../../lib/cdr/row.js';

const fixture = (name: string) => path.resolve(process.cwd(), 'test/fixtures/cdr', name);

/** Decodes `bytes` fed in `chunk`-byte pieces through one reused buffer, with or without the pre-filter. */
function read(bytes: Buffer, filter: CdrFilter, usePrefilter: boolean, chunk: number) {
  const rows: CdrRow[] = [];
  const problems: Problem[] = [];
  const decoder = new CsvCdrDecoder({ file: 'f.csv', onRow: (r) => rows.push(r), onProblem: (p) => problems.push(p) });
  const pre = usePrefilter ? new LinePrefilter(fieldChecks(filter)!, { text: (t) => decoder.push(t), skip: (n) => decoder.skipLines(n) }) : null;
  const reused = Buffer.alloc(chunk);
  for (let i = 0; i < bytes.length; i += chunk) {
    const n = bytes.copy(reused, 0, i, i + chunk);
    if (pre) pre.push(reused.subarray(0, n));
    else decoder.push(reused.toString('utf8', 0, n)); // only called with one whole-input chunk
  }
  pre?.end();
  decoder.end();
  const keep = compileFilter(filter);
  return { rows: rows.filter(keep).map((r) => r.rec), problems };
}

test('fieldChecks: only exact caller/callee values that need no quoting', () => {
  assert.equal(fieldChecks({ number: '10*' }), undefined);
  assert.equal(fieldChecks({ caller: 'a,b' }), undefined);
  assert.deepEqual(fieldChecks({ caller: '101', callee: '200' })!.map((c) => [c.index, c.value.toString()]), [[4, '101'], [6, '200']]);
});

test('property: with the pre-filter a query finds exactly the same records (seeded, damaged input)', () => {
  const good = fs.readFileSync(fixture('days/20261126.csv'), 'utf8').split('\n').slice(1, 5);
  const reordered = 'caller,callee,record_id,start_time,end_time,answer_time,fci,status';
  const junk = ['"', '""', ',', '\n', 'x'];
  for (const seed of [21, 22, 23, 24]) {
    const rand = mulberry32(seed);
    const lines = [CSV_HEADER];
    for (let i = 0; i < 400; i++) {
      const r = rand();
      if (r < 0.01) { lines.push(CSV_HEADER); continue; }
      if (r < 0.015) { lines.push(reordered, '104,201,r1,2026-11-26T09:00:00.000+01:00,2026-11-26T09:00:10.000+01:00,,callTag=1;cause=16,200', CSV_HEADER); continue; }
      const fields = good[Math.floor(rand() * good.length)]!.split(',');
      if (rand() < 0.3) {
        const at = Math.floor(rand() * fields.length);
        const bit = junk[Math.floor(rand() * junk.length)]!;
        fields[at] = rand() < 0.6 ? stringify([[fields[at] + bit]], { record_delimiter: '\n' }).slice(0, -1) : fields[at] + bit;
      }
      if (rand() < 0.05) fields.pop();
      lines.push(fields.join(','));
    }
    const bytes = Buffer.from(lines.join(rand() < 0.5 ? '\n' : '\r\n') + (rand() < 0.5 ? '\n' : ''));
    for (const filter of [{ caller: '101' }, { caller: '104', callee: '201' }, { callee: '200' }] as CdrFilter[]) {
      const full = read(bytes, filter, false, bytes.length);
      for (const chunk of [bytes.length, 97]) {
        const fast = read(bytes, filter, true, chunk);
        assert.deepEqual(fast.rows, full.rows, `seed ${seed} ${JSON.stringify(filter)} chunk ${chunk}`);
        const fullLines = new Set(full.problems.map((p) => `${p.line}: ${p.message}`));
        for (const p of fast.problems) assert.ok(fullLines.has(`${p.line}: ${p.message}`), `reported with the right line: ${p.line}: ${p.message}`);
      }
      assert.ok(full.rows.length > 0);
    }
  }
});

test('lines dropped by the pre-filter keep later line numbers right', () => {
  const text = fs.readFileSync(fixture('bad.csv'));
  const { rows, problems } = read(text, { caller: '102' }, true, 50);
  assert.deepEqual(rows, []);
  assert.deepEqual(problems.map((p) => p.line), [5], 'only the line that could be caller 102 is examined');
});

test('a quote after the tested field does not stop the line from being dropped', () => {
  const header = CSV_HEADER + '\n';
  const line = (caller: string, name: string) => `id,O,local,c@x,${caller},${name},200,200,local,2026-11-26T10:00:00.000+01:00,,2026-11-26T10:00:01.000+01:00,1.000,0,486,callTag=9;cause=17,,,,,,\n`;
  const seen: string[] = [];
  let skipped = 0;
  const pre = new LinePrefilter(fieldChecks({ caller: '101' })!, { text: (t) => seen.push(t), skip: (n) => (skipped += n) });
  pre.push(Buffer.from(header + line('999', '"Smith, J"') + line('101', '"Smith, J"') + line('1010', 'x') + `"i,d",O,local,c,999\n`));
  pre.end();
  assert.equal(skipped, 2, 'caller 999 (quote later in the line) and caller 1010');
  assert.equal(seen.join('').split('\n').filter(Boolean).length, 3, 'header, the 101 line, and the undecidable one');
});
