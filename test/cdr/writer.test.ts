import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CdrWriter, dailyFileStem } from '../../lib/cdr/writer.js';
import { buildCdrRecord, CallTag } from '../../lib/cdr/record.js';
import { CSV_HEADER, CsvCdrDecoder } from '../../lib/cdr/csv.js';
import { BinaryCdrDecoder } from '../../lib/cdr/binary.js';
import type { Problem } from '../../lib/cdr/problems.js';
import type { CdrRow } from '../../lib/cdr/row.js';

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'cdr-writer-'));
}

function rec(callId: string, startMs: number) {
  return buildCdrRecord({ callId, caller: '101', callerName: 'A, "B"', callee: '200', dialled: '200', route: 'local', startMs, answerMs: startMs + 1000, endMs: startMs + 5000, status: 200, tag: CallTag.CallerBye });
}

function readCsv(file: string) {
  const rows: CdrRow[] = [];
  const problems: Problem[] = [];
  const d = new CsvCdrDecoder({ file, onRow: (r) => rows.push(r), onProblem: (p) => problems.push(p) });
  d.push(fs.readFileSync(file, 'utf8'));
  d.end();
  return { rows, problems };
}

function readCdr(file: string) {
  const rows: CdrRow[] = [];
  const problems: Problem[] = [];
  const d = new BinaryCdrDecoder({ file, onRow: (r) => rows.push(r), onProblem: (p) => problems.push(p) });
  d.push(fs.readFileSync(file));
  d.end();
  return { rows, problems };
}

test('one header per file, records appended after it, across writer instances', () => {
  const dir = tmpDir();
  try {
    const day = new Date(2026, 10, 26, 10, 0, 0);
    const w1 = new CdrWriter({ dir, format: 'csv', now: () => day });
    w1.write(rec('c1', day.getTime()));
    w1.write(rec('c2', day.getTime()));
    w1.close();
    const w2 = new CdrWriter({ dir, format: 'csv', now: () => day, sync: true });
    w2.write(rec('c3', day.getTime()));
    w2.close();
    const file = path.join(dir, '20261126.csv');
    const text = fs.readFileSync(file, 'utf8');
    assert.equal(text.split(CSV_HEADER).length - 1, 1, 'header written once');
    assert.ok(text.startsWith(CSV_HEADER + '\n'));
    assert.deepEqual(readCsv(file).rows.map((r) => r.rec.call_id), ['c1', 'c2', 'c3']);
    assert.deepEqual(fs.readdirSync(dir), ['20261126.csv']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a new file with its header at local midnight (injected clock)', () => {
  const dir = tmpDir();
  try {
    let now = new Date(2026, 10, 26, 23, 59, 59, 999);
    const w = new CdrWriter({ dir, format: 'both', now: () => now });
    w.write(rec('before', now.getTime()));
    now = new Date(2026, 10, 27, 0, 0, 0, 0);
    w.write(rec('after', now.getTime()));
    now = new Date(2026, 10, 27, 0, 0, 1, 0);
    w.write(rec('after2', now.getTime()));
    w.close();
    assert.deepEqual(fs.readdirSync(dir).sort(), ['20261126.cdr', '20261126.csv', '20261127.cdr', '20261127.csv']);
    assert.deepEqual(readCsv(path.join(dir, '20261126.csv')).rows.map((r) => r.rec.call_id), ['before']);
    assert.deepEqual(readCsv(path.join(dir, '20261127.csv')).rows.map((r) => r.rec.call_id), ['after', 'after2']);
    const bin = readCdr(path.join(dir, '20261127.cdr'));
    assert.deepEqual(bin.problems, []);
    assert.deepEqual(bin.rows.map((r) => r.rec), readCsv(path.join(dir, '20261127.csv')).rows.map((r) => r.rec));
    assert.equal(dailyFileStem(new Date(2026, 0, 5, 12)), '20260105');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a pre-existing partial last line (crash mid-append) does not swallow the next record', () => {
  const dir = tmpDir();
  try {
    const day = new Date(2026, 10, 26, 10, 0, 0);
    const file = path.join(dir, '20261126.csv');
    const complete = CSV_HEADER + '\n' + fs.readFileSync(path.resolve(process.cwd(), 'test/fixtures/cdr/days/20261126.csv'), 'utf8').split('\n')[1] + '\n';
    fs.writeFileSync(file, complete + '0mwx7d5s0-0099,O,local,half@x,101,Ali');
    const w = new CdrWriter({ dir, format: 'csv', now: () => day });
    w.write(rec('next', day.getTime()));
    w.close();
    const { rows, problems } = readCsv(file);
    assert.deepEqual(rows.map((r) => r.rec.call_id), ['b1@x', 'next']);
    assert.equal(problems.length, 1, 'the half line is reported, once, as a bad line');
    assert.equal(problems[0]!.line, 3);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a killed writer leaves every finished record readable (child process, SIGKILL)', async () => {
  const dir = tmpDir();
  try {
    const { spawn } = await import('node:child_process');
    const writerModule = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../lib/cdr/writer.js');
    const recordModule = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../lib/cdr/record.js');
    const script = `
      const { CdrWriter } = await import(${JSON.stringify(writerModule)});
      const { buildCdrRecord } = await import(${JSON.stringify(recordModule)});
      const w = new CdrWriter({ dir: ${JSON.stringify(dir)}, format: 'both', now: () => new Date(2026, 10, 26, 12) });
      for (let i = 0; ; i++) {
        w.write(buildCdrRecord({ callId: 'k' + i, caller: '1', callee: '2', dialled: '2', route: 'local', startMs: 1e12 + i, endMs: 1e12 + i + 10, status: 486, tag: 9 }));
        if (i === 200) process.stdout.write('ready\\n');
      }`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    const csv = readCsv(path.join(dir, '20261126.csv'));
    assert.ok(csv.rows.length > 200);
    assert.deepEqual(csv.problems, [], 'at most a partial last line, which is silent');
    csv.rows.forEach((r, i) => assert.equal(r.rec.call_id, 'k' + i));
    const bin = readCdr(path.join(dir, '20261126.cdr'));
    assert.ok(bin.rows.length > 200);
    assert.ok(bin.problems.every((p) => /^truncated record at the end/.test(p.message)));
    bin.rows.forEach((r, i) => assert.equal(r.rec.call_id, 'k' + i));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('writers in several threads opening the same new day at once: one header per file, every record kept', async () => {
  const dir = tmpDir();
  const threads = 6;
  const days = 25;
  try {
    const { Worker } = await import('node:worker_threads');
    const here = path.dirname(new URL(import.meta.url).pathname);
    const writerModule = path.resolve(here, '../../lib/cdr/writer.js');
    const recordModule = path.resolve(here, '../../lib/cdr/record.js');
    // Every thread waits at a barrier per day, then all write their first record of that day.
    const arrived = new Int32Array(new SharedArrayBuffer(4 * days));
    const script = `
      const { workerData } = await import('node:worker_threads');
      const { CdrWriter } = await import(${JSON.stringify(writerModule)});
      const { buildCdrRecord } = await import(${JSON.stringify(recordModule)});
      const { arrived, dir, threads, days, me } = workerData;
      let day = 0;
      const w = new CdrWriter({ dir, format: 'both', now: () => new Date(2026, 0, 1 + day, 12) });
      for (; day < ${days}; day++) {
        Atomics.add(arrived, day, 1);
        const until = Date.now() + 5000;
        while (Atomics.load(arrived, day) < threads && Date.now() < until) {}
        w.write(buildCdrRecord({ callId: 't' + me + 'd' + day, caller: '1', callee: '2', dialled: '2', route: 'local', startMs: 1e12, endMs: 1e12 + 10, status: 486, tag: 9 }));
      }
      w.close();`;
    await Promise.all(Array.from({ length: threads }, (_, me) => new Promise<void>((resolve, reject) => {
      const worker = new Worker(script, { eval: true, workerData: { arrived, dir, threads, days, me } });
      worker.once('error', reject);
      worker.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`thread exited ${code}`))));
    })));
    for (let day = 0; day < days; day++) {
      const stem = dailyFileStem(new Date(2026, 0, 1 + day, 12));
      const text = fs.readFileSync(path.join(dir, stem + '.csv'), 'utf8');
      assert.equal(text.split(CSV_HEADER).length - 1, 1, `${stem}.csv: header written once`);
      const csv = readCsv(path.join(dir, stem + '.csv'));
      assert.deepEqual(csv.problems, []);
      assert.deepEqual(csv.rows.map((r) => r.rec.call_id).sort(), Array.from({ length: threads }, (_, me) => 't' + me + 'd' + day).sort());
      const bin = readCdr(path.join(dir, stem + '.cdr'));
      assert.deepEqual(bin.problems, [], `${stem}.cdr: one file header, then records`);
      assert.equal(bin.rows.length, threads);
    }
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('write errors go to onError when given, and the writer keeps working', () => {
  const dir = tmpDir();
  try {
    const blocked = path.join(dir, 'not-a-dir');
    fs.writeFileSync(blocked, 'x');
    const errors: Error[] = [];
    const w = new CdrWriter({ dir: blocked, format: 'csv', onError: (e) => errors.push(e) });
    w.write(rec('lost', Date.now()));
    assert.equal(errors.length, 1);
    const strict = new CdrWriter({ dir: blocked, format: 'csv' });
    assert.throws(() => strict.write(rec('lost', Date.now())));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
