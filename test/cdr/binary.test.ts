import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32 } from '../helpers/prng.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BinaryCdrDecoder, encodeFileHeader, encodeRecord, decodeFileHeader } from '../../lib/cdr/binary.js';
import { crc32 } from '../../lib/cdr/crc32.js';
import { CsvCdrDecoder, formatCsvRecord, CSV_HEADER } from '../../lib/cdr/csv.js';
import { CDR_COLUMNS, formatTimestamp, type CdrRecord } from '../../lib/cdr/record.js';
import { convertFile } from '../../lib/cdr/convert.js';
import { formatProblem, type Problem } from '../../lib/cdr/problems.js';
import type { CdrRow } from '../../lib/cdr/row.js';

const fixture = (name: string) => path.resolve(process.cwd(), 'test/fixtures/cdr', name);

function decodeBinary(buf: Buffer, chunk = buf.length) {
  const rows: CdrRow[] = [];
  const problems: Problem[] = [];
  const d = new BinaryCdrDecoder({ file: 'x.cdr', onRow: (r) => rows.push(r), onProblem: (p) => problems.push(p) });
  for (let i = 0; i < buf.length; i += chunk) d.push(buf.subarray(i, i + chunk));
  d.end();
  return { rows, problems };
}

test('crc32 matches the standard check value', () => {
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  assert.equal(crc32(Buffer.alloc(0)), 0);
});

test('file header round trip, and garbage is refused', () => {
  const h = encodeFileHeader(1_700_000_000_123);
  const back = decodeFileHeader(h);
  assert.ok(typeof back === 'object');
  assert.deepEqual(back.columns, [...CDR_COLUMNS]);
  assert.equal(back.createdAtMs, 1_700_000_000_123);
  assert.equal(back.size, h.length);
  assert.equal(decodeFileHeader(h.subarray(0, 10)), 'short');
  assert.equal(decodeFileHeader(Buffer.from('record_id,record_type,whatever')), 'not a .cdr file (bad magic)');
  const damaged = Buffer.from(h);
  damaged[30] ^= 1;
  assert.equal(decodeFileHeader(damaged), 'file header checksum mismatch');
});

test('a good .cdr fixture reads whole, in any chunking', () => {
  const buf = fs.readFileSync(fixture('good.cdr'));
  const whole = decodeBinary(buf);
  assert.deepEqual(whole.problems, []);
  assert.deepEqual(whole.rows.map((r) => r.rec.call_id), ['b1@x', 'b2@x', 'b3@x', 'b4@x']);
  for (const chunk of [1, 5, 100]) assert.deepEqual(decodeBinary(buf, chunk), whole);
});

test('a record with a bad checksum is skipped with its byte offset; the next ones are read', () => {
  const buf = fs.readFileSync(fixture('bad-crc.cdr'));
  for (const chunk of [buf.length, 3]) {
    const { rows, problems } = decodeBinary(buf, chunk);
    assert.deepEqual(rows.map((r) => r.rec.call_id), ['b1@x', 'b3@x', 'b4@x']);
    assert.equal(problems.length, 1);
    const headerLen = encodeFileHeader(0).length;
    const firstLen = fs.readFileSync(fixture('good.cdr')).readUInt32LE(headerLen) + 8;
    assert.equal(problems[0]!.offset, headerLen + firstLen);
    assert.match(formatProblem(problems[0]!), /^x\.cdr@\d+: bad record \(checksum mismatch/);
  }
});

test('a truncated tail stops cleanly and is reported', () => {
  const { rows, problems } = decodeBinary(fs.readFileSync(fixture('truncated.cdr')));
  assert.deepEqual(rows.map((r) => r.rec.call_id), ['b1@x', 'b2@x', 'b3@x']);
  assert.equal(problems.length, 1);
  assert.match(problems[0]!.message, /^truncated record at the end of the file/);
});

test('a damaged length field does not lose the records after it', () => {
  const good = fs.readFileSync(fixture('good.cdr'));
  const headerLen = encodeFileHeader(0).length;
  const damaged = Buffer.from(good);
  damaged.writeUInt32LE(0xfffffff0, headerLen); // first record's length
  const { rows, problems } = decodeBinary(damaged);
  assert.deepEqual(rows.map((r) => r.rec.call_id), ['b2@x', 'b3@x', 'b4@x']);
  assert.equal(problems.length, 1);
  assert.equal(problems[0]!.offset, headerLen);
  const longer = Buffer.from(good);
  longer.writeUInt32LE(5000, headerLen); // plausible but runs past the end of the file
  assert.deepEqual(decodeBinary(longer).rows.map((r) => r.rec.call_id), ['b2@x', 'b3@x', 'b4@x']);
});

test('a file that is not .cdr is refused with one problem', () => {
  const { rows, problems } = decodeBinary(Buffer.from(CSV_HEADER + '\n'));
  assert.equal(rows.length, 0);
  assert.deepEqual(problems.map((p) => p.message), ['not a .cdr file (bad magic)']);
});

// ---- property test: csv -> cdr -> csv is lossless ---------------------------------------------

const ALPHABET = ['a', 'Z', '0', '9', ' ', ',', '"', '\n', '\r\n', ';', '=', 'é', 'ß', '王', '😀', "'", '\t', '+'];

function randomText(rand: () => number, max: number): string {
  const n = Math.floor(rand() * (max + 1));
  let s = '';
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(rand() * ALPHABET.length)];
  return s;
}

function randomRecord(rand: () => number): CdrRecord {
  const rec = {} as CdrRecord;
  for (const c of CDR_COLUMNS) rec[c] = randomText(rand, 12);
  const start = 1_600_000_000_000 + Math.floor(rand() * 1e11);
  const offset = Math.floor(rand() * 27 - 12) * 60;
  rec.start_time = formatTimestamp(start, offset);
  rec.answer_time = rand() < 0.4 ? '' : formatTimestamp(start + Math.floor(rand() * 60_000), offset);
  rec.end_time = formatTimestamp(start + Math.floor(rand() * 3_600_000), offset);
  if (rand() < 0.2) rec.caller_name = '';
  return rec;
}

test('property: random records survive csv -> cdr -> csv unchanged (seeded)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdr-prop-'));
  try {
    for (const seed of [1, 2, 3, 42, 2026]) {
      const rand = mulberry32(seed);
      const records = Array.from({ length: 300 }, () => randomRecord(rand));
      const csvText = CSV_HEADER + '\n' + records.map(formatCsvRecord).join('');
      const csvIn = path.join(dir, `in-${seed}.csv`);
      const cdr = path.join(dir, `mid-${seed}.cdr`);
      const csvOut = path.join(dir, `out-${seed}.csv`);
      fs.writeFileSync(csvIn, csvText);
      const problems: Problem[] = [];
      const onProblem = (p: Problem) => problems.push(p);
      assert.equal((await convertFile(csvIn, cdr, { onProblem })).rows, 300);
      assert.equal((await convertFile(cdr, csvOut, { onProblem })).rows, 300);
      assert.deepEqual(problems, []);
      assert.equal(fs.readFileSync(csvOut, 'utf8'), csvText, `seed ${seed}`);
      // And the decoded records equal the originals field by field.
      const rows: CdrRecord[] = [];
      const d = new CsvCdrDecoder({ file: csvOut, onRow: (r) => rows.push(r.rec), onProblem });
      d.push(csvText);
      d.end();
      assert.deepEqual(rows, records);
      assert.deepEqual(decodeBinary(Buffer.concat([encodeFileHeader(0), ...records.map(encodeRecord)])).rows.map((r) => r.rec), records);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
