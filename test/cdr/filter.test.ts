import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileFilter, globToRegExp, parseTimeArg, statusMatcher } from '../../lib/cdr/filter.js';
import { Progress } from '../../lib/cdr/progress.js';
import { parseSortSpec } from '../../lib/cdr/query.js';
import { listCdrFiles } from '../../lib/cdr/source.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

test('time arguments: dates, times, offsets; a bare --to date covers the whole day', () => {
  assert.equal(parseTimeArg('2026-11-26T10:00Z', 'from'), Date.UTC(2026, 10, 26, 10));
  assert.equal(parseTimeArg('2026-11-26T10:00:05.5+01:00', 'from'), Date.UTC(2026, 10, 26, 9, 0, 5, 500));
  assert.equal(parseTimeArg('2026-11-26', 'from'), new Date(2026, 10, 26).getTime());
  assert.equal(parseTimeArg('2026-11-26', 'to'), new Date(2026, 10, 27).getTime());
  assert.equal(parseTimeArg('2026-11-26Z', 'to'), Date.UTC(2026, 10, 27));
  assert.equal(parseTimeArg('2026-11-26 10:00', 'from'), new Date(2026, 10, 26, 10).getTime());
  for (const bad of ['yesterday', '2026-02-30', '2026-11-26T25:00', '26/11/2026', '']) assert.equal(parseTimeArg(bad, 'from'), null, bad);
});

test('globs, status classes, sort specs', () => {
  assert.ok(globToRegExp('10*').test('101'));
  assert.ok(globToRegExp('+33?').test('+331'));
  assert.ok(!globToRegExp('10?').test('1000'));
  assert.ok(!globToRegExp('1.1').test('101'), 'dots are literal');
  assert.ok(statusMatcher('4xx')!('486'));
  assert.ok(!statusMatcher('4xx')!('503'));
  assert.ok(statusMatcher('486')!('486'));
  assert.equal(statusMatcher('48'), null);
  assert.deepEqual(parseSortSpec('duration:desc'), { field: 'duration', desc: true });
  assert.deepEqual(parseSortSpec('caller'), { field: 'caller', desc: false });
  assert.equal(parseSortSpec('nope'), null);
  assert.equal(parseSortSpec('caller:sideways'), null);
});

test('an empty filter matches everything; filters combine with AND', () => {
  const row = { rec: { caller: '101', callee: '200', dialled: '9200', fci: 'callTag=1;cause=16', status: '200', duration: '12.5' }, startMs: 10, answerMs: 11, endMs: 20 } as never;
  assert.equal(compileFilter({})(row), true);
  assert.equal(compileFilter({ caller: '101', cause: 16, tag: 1, status: '2xx', minDuration: 12.5, answered: true, from: 10, to: 11 })(row), true);
  assert.equal(compileFilter({ caller: '101', failed: true })(row), false);
  assert.equal(compileFilter({ number: '92*' })(row), true);
  assert.equal(compileFilter({ to: 10 })(row), false, '--to is exclusive');
});

test('progress: silent for the first second and when not a terminal, then rows and rate', () => {
  let now = 0;
  const written: string[] = [];
  const err = { write: (s: string) => written.push(s) } as unknown as NodeJS.WritableStream;
  const p = new Progress(err, true, () => now);
  p.setFile('a.csv');
  p.addRows(1000);
  assert.deepEqual(written, []);
  now = 2000;
  p.addRows(1000);
  assert.equal(written.length, 1);
  assert.match(written[0]!, /^\r2000 rows, 1000 rows\/s, a\.csv/);
  p.done();
  assert.equal(written.at(-1), '\r\x1b[K');
  const quiet: string[] = [];
  const q = new Progress({ write: (s: string) => quiet.push(s) } as unknown as NodeJS.WritableStream, false, () => now);
  now = 10_000;
  q.addRows(5);
  q.done();
  assert.deepEqual(quiet, []);
});

test('directories: daily files in date order, one file per day (.csv preferred)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdr-list-'));
  try {
    for (const f of ['20261126.cdr', '20261126.csv', '20261125.csv.gz', '20261127.cdr', 'notes.txt']) fs.writeFileSync(path.join(dir, f), '');
    assert.deepEqual(listCdrFiles([dir]).map((f) => path.basename(f)), ['20261125.csv.gz', '20261126.csv', '20261127.cdr']);
    assert.throws(() => listCdrFiles([path.join(dir, 'missing')]), /ENOENT/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
