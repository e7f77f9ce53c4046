import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTimestamp } from '../../lib/cdr/record.js';
import { BytesTable, TimestampReader } from '../../lib/cdr/view.js';

/** read() of `s` placed inside a larger buffer, as the CSV reader calls it. */
function readAt(r: TimestampReader, s: string): number | null {
  const buf = Buffer.from(`x,${s},y`, 'utf8');
  return r.read(buf, 2, buf.length - 2);
}

test('TimestampReader equals parseTimestamp, whatever was read before, and tells the right hour', () => {
  const base = '2026-11-26T09:15:02.123+01:00';
  const variants = [base, '2026-11-26T09:59:59.999+01:00', '2026-11-26T10:00:00Z', '2026-11-26T09:15:02+01:00', '2026-11-26T09:15:02.123-05:30'];
  // Every single-character change of the canonical form: digits out of range, separators, letters.
  for (let i = 0; i < base.length; i++) {
    for (const c of ['0', '5', '6', '9', ':', '.', '-', '+', 'T', 'x', ',']) variants.push(base.slice(0, i) + c + base.slice(i + 1));
  }
  const r = new TimestampReader();
  for (const first of [base, '2026-11-26T10:00:00Z', '2026-11-26T08:00:00.000+01:00']) {
    for (const v of variants) {
      readAt(r, first);
      const got = readAt(r, v);
      assert.equal(got, parseTimestamp(v), `${v} after ${first}`);
      if (got !== null) assert.equal(r.hour, v.slice(0, 13), `hour of ${v} after ${first}`);
    }
  }
  // A timestamp in another form, then one of the hour read before it: the hour is told again.
  readAt(r, base);
  readAt(r, '2026-11-26T10:00:00Z');
  assert.equal(readAt(r, '2026-11-26T09:20:00.000+01:00'), parseTimestamp('2026-11-26T09:20:00.000+01:00'));
  assert.equal(r.hour, '2026-11-26T09');
});

test('BytesTable finds the values of the byte strings it was given, and only those', () => {
  const t = new BytesTable<number>(2, 9);
  const buf = Buffer.from('callTag=1,callTag=2,ab,abc,callTag=10');
  t.add(buf, 27, 37, 10); // 10 bytes, longer than maxLength: not kept
  t.add(buf, 0, 9, 1);
  t.add(buf, 20, 22, 7);
  t.add(buf, 10, 19, 2); // the table is full (2 entries): not kept
  assert.equal(t.get(buf, 0, 9), 1);
  assert.equal(t.get(buf, 20, 22), 7);
  assert.equal(t.get(buf, 10, 19), undefined);
  assert.equal(t.get(buf, 27, 37), undefined);
  assert.equal(t.get(buf, 24, 26), undefined, '"bc" is not "ab"');
  assert.equal(t.get(buf, 23, 26), undefined, '"abc" is not "ab"');
  const copy = Buffer.from(buf);
  buf.fill(0x41);
  assert.equal(t.get(copy, 20, 22), 7, 'keys are copies of the bytes');
});
