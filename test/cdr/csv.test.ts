import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32 } from '../helpers/prng.js';
import { CsvByteFeed } from '../../lib/cdr/byte-feed.js';
import fs from 'node:fs';
import path from 'node:path';
import { CsvCdrDecoder, formatCsvLine, formatCsvRecord, CSV_HEADER } from '../../lib/cdr/csv.js';
import { formatProblem, type Problem } from '../../lib/cdr/problems.js';
import type { CdrRow } from '../../lib/cdr/row.js';
import { CDR_COLUMNS } from '../../lib/cdr/record.js';
import { stringify } from 'csv-stringify/sync';

const fixture = (name: string) => path.resolve(process.cwd(), 'test/fixtures/cdr', name);

function decode(text: string, opts: { chunk?: number; alwaysCsvParse?: boolean; file?: string } = {}) {
  const rows: CdrRow[] = [];
  const problems: Problem[] = [];
  const d = new CsvCdrDecoder({ file: opts.file ?? 'f.csv', onRow: (r) => rows.push(r), onProblem: (p) => problems.push(p), alwaysCsvParse: opts.alwaysCsvParse ?? false });
  const step = opts.chunk ?? text.length;
  for (let i = 0; i < text.length; i += step) d.push(text.slice(i, i + step));
  d.end();
  return { rows, problems };
}

test('quoted fields, embedded newline, non-ASCII and CRLF line ends are read exactly', () => {
  const text = fs.readFileSync(fixture('quoted-crlf.csv'), 'utf8');
  assert.ok(text.includes('\r\n'));
  const { rows, problems } = decode(text);
  assert.deepEqual(problems, []);
  assert.deepEqual(rows.map((r) => r.rec.caller_name), ['Smith, John', 'The "Boss"', 'two\nlines', 'Zoë 王']);
  assert.equal(rows[0]!.rec.node, 'pbx1', 'last column has no stray \\r');
});

test('the result does not depend on how the input is chunked, nor on the fast path', () => {
  for (const name of ['quoted-crlf.csv', 'bad.csv', 'repeated-headers.csv']) {
    const text = fs.readFileSync(fixture(name), 'utf8');
    const whole = decode(text);
    for (const chunk of [1, 7, 64]) assert.deepEqual(decode(text, { chunk }), whole, `${name} in chunks of ${chunk}`);
    const slow = decode(text, { alwaysCsvParse: true });
    assert.deepEqual(slow.rows.map((r) => r.rec), whole.rows.map((r) => r.rec), `${name} through csv-parse only`);
    assert.deepEqual(slow.problems.map((p) => p.line), whole.problems.map((p) => p.line));
  }
});

test('repeated header lines are skipped', () => {
  const { rows, problems } = decode(fs.readFileSync(fixture('repeated-headers.csv'), 'utf8'));
  assert.deepEqual(problems, []);
  assert.equal(rows.length, 8);
  assert.deepEqual(rows.map((r) => r.rec.call_id).slice(3, 5), ['a4@x', 'b1@x']);
});

test('damaged lines are reported with their line and skipped; a partial last line is dropped silently', () => {
  const { rows, problems } = decode(fs.readFileSync(fixture('bad.csv'), 'utf8'), { file: 'bad.csv' });
  assert.deepEqual(rows.map((r) => r.rec.call_id), ['b1@x', 'b4@x']);
  assert.deepEqual(problems.map(formatProblem), [
    'bad.csv:3: expected 22 fields, got 5',
    'bad.csv:4: bad start_time "2026-13-26T10:00:00.000+01:00"',
    'bad.csv:5: unterminated quoted field',
  ]);
});

test('a complete last record without its newline is kept', () => {
  const text = fs.readFileSync(fixture('days/20261126.csv'), 'utf8');
  assert.ok(text.endsWith('\n'));
  const { rows, problems } = decode(text.slice(0, -1));
  assert.equal(rows.length, 4);
  assert.deepEqual(problems, []);
});

test('a header in another order (and with a missing column) maps by name', () => {
  const { rows, problems } = decode(fs.readFileSync(fixture('reordered.csv'), 'utf8'));
  assert.deepEqual(problems, []);
  assert.equal(rows.length, 1);
  const r = rows[0]!;
  assert.equal(r.rec.caller, '301');
  assert.equal(r.rec.record_id, 'r1');
  assert.equal(r.rec.media, '');
  assert.equal(r.csvLine, undefined, 'not copied verbatim: the column order differs');
  assert.equal(r.answerMs! - r.startMs, 1000);
});

test('a stray quote swallowing lines is given up after a bounded number of lines', () => {
  const good = fs.readFileSync(fixture('days/20261126.csv'), 'utf8').split('\n')[1]!;
  const lines = [CSV_HEADER, 'a,"b', ...Array.from({ length: 100 }, () => good)];
  const { rows, problems } = decode(lines.join('\n') + '\n');
  assert.equal(problems.length, 1);
  assert.equal(problems[0]!.line, 2);
  assert.equal(rows.length, 100, 'no good line is lost');
});

test('a BOM and blank lines are tolerated', () => {
  const text = '\uFEFF' + fs.readFileSync(fixture('days/20261126.csv'), 'utf8').replace('\n', '\n\n');
  const { rows, problems } = decode(text);
  assert.equal(rows.length, 4);
  assert.deepEqual(problems, []);
});

test('formatCsvLine equals csv-stringify for plain and awkward values', () => {
  const samples = [['a', 'b', ''], ['x,y', 'q"q', 'new\nline'], ['cr\r', ' lead', 'ünï'], ['', '', '']];
  for (const s of samples) assert.equal(formatCsvLine(s), stringify([s], { record_delimiter: '\n' }));
  assert.ok(formatCsvRecord(decode(fs.readFileSync(fixture('quoted-crlf.csv'), 'utf8')).rows[1]!.rec).includes('"The ""Boss"""'));
});

test('property: the fast path gives the same rows and the same bad lines as csv-parse alone (seeded)', () => {
  const good = fs.readFileSync(fixture('days/20261126.csv'), 'utf8').split('\n').slice(1, 5);
  const pieces = ['"', '""', ',', '\n', '\r\n', 'x', ' ', 'é'];
  for (const seed of [7, 8, 9, 10, 11]) {
    const rand = mulberry32(seed);
    const lines = [CSV_HEADER];
    for (let i = 0; i < 300; i++) {
      const base = good[Math.floor(rand() * good.length)]!;
      const fields = base.split(',');
      const k = Math.floor(rand() * 4);
      for (let j = 0; j < k; j++) {
        const at = Math.floor(rand() * fields.length);
        const mode = rand();
        const junk = pieces[Math.floor(rand() * pieces.length)]!;
        if (mode < 0.5) fields[at] = stringify([[fields[at] + junk]], { record_delimiter: '\n' }).slice(0, -1); // valid quoting
        else if (mode < 0.8) fields[at] = fields[at] + junk; // possibly malformed
        else fields[at] = '"' + fields[at]; // unbalanced
      }
      lines.push(fields.join(','));
    }
    const text = lines.join('\n') + '\n';
    const fast = decode(text);
    const slow = decode(text, { alwaysCsvParse: true });
    assert.deepEqual(fast.rows.map((r) => r.rec), slow.rows.map((r) => r.rec), `seed ${seed}`);
    assert.deepEqual(fast.problems.map((p) => p.line), slow.problems.map((p) => p.line), `seed ${seed}`);
    assert.ok(fast.rows.length > 50 && fast.problems.length > 10, 'both good and bad lines were generated');
  }
});

/** Decodes `text` the way readCdrFile does: bytes through pushBytes() in a reused buffer of `size`. */
function decodeBytes(text: string, size: number, opts: { views?: boolean; checks?: { index: number; value: Buffer }[] } = {}) {
  const rows: CdrRow[] = [];
  const problems: Problem[] = [];
  const d = new CsvCdrDecoder({
    file: 'f.csv', onProblem: (p) => problems.push(p), fieldChecks: opts.checks,
    ...(opts.views ? { onView: (v) => rows.push(v.toRow()) } : { onRow: (r) => rows.push(r) }),
  });
  const feed = new CsvByteFeed(d, size);
  feed.append(Buffer.from(text, 'utf8'));
  feed.flush();
  d.end();
  return { rows, problems };
}

test('property: the byte-level reader (pushBytes, views) equals csv-parse alone, any buffer size (seeded)', () => {
  const good = fs.readFileSync(fixture('days/20261126.csv'), 'utf8').split('\n').slice(1, 5);
  const pieces = ['"', '""', ',', '\n', '\r\n', 'x', ' ', 'é', '王', 'start_time', '\r'];
  const texts = ['quoted-crlf.csv', 'bad.csv', 'repeated-headers.csv', 'reordered.csv'].map((n) => fs.readFileSync(fixture(n), 'utf8'));
  for (const seed of [21, 22, 23, 24, 25, 26]) {
    const rand = mulberry32(seed);
    const lines = [CSV_HEADER];
    for (let i = 0; i < 300; i++) {
      const fields = good[Math.floor(rand() * good.length)]!.split(',');
      const k = Math.floor(rand() * 4);
      for (let j = 0; j < k; j++) {
        const at = Math.floor(rand() * fields.length);
        const mode = rand();
        const junk = pieces[Math.floor(rand() * pieces.length)]!;
        if (mode < 0.4) fields[at] = stringify([[fields[at] + junk]], { record_delimiter: '\n' }).slice(0, -1);
        else if (mode < 0.7) fields[at] = fields[at] + junk;
        else if (mode < 0.8) fields[at] = '"' + fields[at];
        else if (mode < 0.9) fields.splice(at, 1);
        else fields[at] = rand() < 0.5 ? '' : fields[at]!.slice(1);
      }
      if (rand() < 0.02) lines.push(rand() < 0.5 ? CSV_HEADER : '');
      lines.push(fields.join(','));
    }
    texts.push('\ufeff' + lines.join('\n') + (rand() < 0.5 ? '\n' : ''));
  }
  for (const [n, text] of texts.entries()) {
    const slow = decode(text, { alwaysCsvParse: true });
    const text_ = decode(text); // the text path: same lines reported, with the same messages
    assert.deepEqual(text_.problems.map((p) => p.line), slow.problems.map((p) => p.line));
    for (const size of [1, 3, 100, 4096]) {
      for (const views of [false, true]) {
        const fast = decodeBytes(text, size, { views });
        assert.deepEqual(fast.rows.map((r) => r.rec), slow.rows.map((r) => r.rec), `text ${n}, buffer ${size}`);
        assert.deepEqual(fast.problems, text_.problems, `text ${n}, buffer ${size}`);
      }
    }
    // --caller: no matching row is lost (the filter proper runs afterwards), and a line is only
    // ever dropped unchecked, never reported when it would not be otherwise.
    for (const caller of ['101', '2002', '10']) {
      const fast = decodeBytes(text, 4096, { views: true, checks: [{ index: 4, value: Buffer.from(caller) }] });
      assert.deepEqual(fast.rows.map((r) => r.rec).filter((r) => r.caller === caller), slow.rows.map((r) => r.rec).filter((r) => r.caller === caller), `text ${n}, caller ${caller}`);
      const reported = new Set(slow.problems.map((p) => p.line));
      for (const p of fast.problems) assert.ok(reported.has(p.line), `text ${n}: line ${p.line} reported only with --caller`);
    }
  }
});

test('a header that changes the column order takes effect at once in the byte-level reader, also with --caller', () => {
  // Seeded text 5 above, reduced: a quoted record that csv-parse reads as a header (a field
  // `start_time`) used to wait in the batch queue for csv-parse while the plain lines after it were
  // read by the byte path in the old column order; and a plain header line whose caller field
  // differed was dropped by the early --caller rejection before being seen as a header.
  const good = fs.readFileSync(fixture('days/20261126.csv'), 'utf8').split('\n').slice(1, 5).filter((l) => l.split(',')[4] === '101');
  assert.ok(good.length > 0);
  const reordered = [...CDR_COLUMNS.slice(0, 4), 'caller_name', 'caller', ...CDR_COLUMNS.slice(6)];
  const quotedHeader = reordered.map((c, i) => (i === 3 ? `"${c}"` : c)).join(',');
  const plainHeader = CDR_COLUMNS.map((c) => (c === 'caller' ? '102' : c)).join(',');
  let tag = 0;
  // A quoted record (new text each time: csv-parse results are cached) is waiting in the queue.
  const queued = () => good[0]!.split(',').map((f, i) => (i === 5 ? `"q,${tag++}"` : f)).join(',');
  const withHeader = (header: string) => [CSV_HEADER, queued(), header, ...good, ...good].join('\n') + '\n';
  for (const header of [quotedHeader, plainHeader]) {
    for (const views of [false, true]) {
      const text = withHeader(header);
      const slow = decode(text, { alwaysCsvParse: true });
      const fast = decodeBytes(text, 1 << 16, { views });
      assert.deepEqual(fast.rows.map((r) => r.rec), slow.rows.map((r) => r.rec));
      assert.deepEqual(fast.problems.map((p) => p.line), slow.problems.map((p) => p.line));
    }
    for (const caller of ['101', 'Alice']) {
      const text = withHeader(header);
      const slow = decode(text, { alwaysCsvParse: true });
      const fast = decodeBytes(text, 1 << 16, { views: true, checks: [{ index: 4, value: Buffer.from(caller) }] });
      assert.deepEqual(fast.rows.map((r) => r.rec).filter((r) => r.caller === caller), slow.rows.map((r) => r.rec).filter((r) => r.caller === caller), `caller ${caller}`);
    }
  }
});
