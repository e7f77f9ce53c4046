// `minisipserver cdr` run in-process on the fixture files. The fixtures are at +01:00, so the
// local zone is pinned to one that matches it in November (bare --from/--to dates are local).
process.env.TZ = 'Europe/Paris';

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { runCdr } from '../../cli/cdr.js';
import { Collect } from '../helpers/collect.js';

const fixture = (name: string) => path.resolve(process.cwd(), 'test/fixtures/cdr', name);
const DAYS = fixture('days');
const ALL = ['a1@x', 'a2@x', 'a3@x', 'a4@x', 'b1@x', 'b2@x', 'b3@x', 'b4@x', 'c1@x'];

async function cdr(args: string[], isTTY = false) {
  const out = new Collect();
  const err = new Collect();
  const code = await runCdr(args, { out, err, isTTY });
  return { code, out: out.text, err: err.text };
}

function callIds(csv: string): string[] {
  return (parse(csv, { columns: true }) as Record<string, string>[]).map((r) => r.call_id!);
}

async function ids(args: string[]): Promise<string[]> {
  const r = await cdr(['query', DAYS, '--format', 'csv', ...args]);
  assert.equal(r.code, 0, r.err);
  return callIds(r.out);
}

test('query: a directory of daily files (.csv and .csv.gz) reads as one stream in date order', async () => {
  assert.deepEqual(await ids([]), ALL);
});

test('query: --data-dir supplies the default path <data-dir>/cdr', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdr-cli-'));
  try {
    fs.mkdirSync(path.join(dir, 'cdr'));
    fs.copyFileSync(path.join(DAYS, '20261126.csv'), path.join(dir, 'cdr', '20261126.csv'));
    const r = await cdr(['query', '--data-dir', dir, '--format', 'csv']);
    assert.equal(r.code, 0);
    assert.deepEqual(callIds(r.out), ['b1@x', 'b2@x', 'b3@x', 'b4@x']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('query: --from / --to (inclusive / exclusive; a bare --to date is the whole day)', async () => {
  assert.deepEqual(await ids(['--from', '2026-11-26']), ['b1@x', 'b2@x', 'b3@x', 'b4@x', 'c1@x']);
  assert.deepEqual(await ids(['--to', '2026-11-25']), ['a1@x', 'a2@x', 'a3@x', 'a4@x']);
  assert.deepEqual(await ids(['--from', '2026-11-25T10:00', '--to', '2026-11-25T10:30']), ['a2@x']);
  assert.deepEqual(await ids(['--from', '2026-11-26T09:00:00Z', '--to', '2026-11-26T09:30Z']), ['b2@x', 'b3@x']);
  const bad = await cdr(['query', DAYS, '--from', 'last week']);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--from: not a date\/time/);
});

test('query: --caller, --callee, --number', async () => {
  assert.deepEqual(await ids(['--caller', '101']), ['a1@x', 'a3@x', 'b1@x', 'b4@x']);
  assert.deepEqual(await ids(['--callee', '200']), ['a1@x', 'b1@x', 'b3@x', 'c1@x']);
  assert.deepEqual(await ids(['--number', '900*']), ['a3@x'], 'matches the dialled number');
  assert.deepEqual(await ids(['--number', '10?', '--callee', '201']), ['a2@x', 'b2@x']);
});

test('query: --cause, --tag (name or number), --status (code or class)', async () => {
  assert.deepEqual(await ids(['--cause', '17']), ['a2@x']);
  assert.deepEqual(await ids(['--tag', 'busy']), ['a2@x']);
  assert.deepEqual(await ids(['--tag', '3']), ['b4@x']);
  assert.deepEqual(await ids(['--tag', 'media-timeout']), ['c1@x']);
  assert.deepEqual(await ids(['--status', '4xx']), ['a2@x', 'a4@x', 'b1@x', 'b4@x']);
  assert.deepEqual(await ids(['--status', '6xx']), ['b3@x']);
  assert.deepEqual(await ids(['--status', '603']), ['b3@x']);
  const badTag = await cdr(['query', DAYS, '--tag', 'hung-up']);
  assert.equal(badTag.code, 2);
  assert.match(badTag.err, /unknown call tag/);
  assert.equal((await cdr(['query', DAYS, '--status', 'four'])).code, 2);
});

test('query: --min-duration, --answered, --failed (mutually exclusive)', async () => {
  assert.deepEqual(await ids(['--min-duration', '60']), ['a1@x', 'a3@x']);
  assert.deepEqual(await ids(['--answered']), ['a1@x', 'a3@x', 'b2@x', 'c1@x']);
  assert.deepEqual(await ids(['--failed']), ['a2@x', 'a4@x', 'b1@x', 'b3@x', 'b4@x']);
  assert.equal((await cdr(['query', DAYS, '--answered', '--failed'])).code, 2);
});

test('query: --limit, --sort (with and without a limit, asc/desc, stable)', async () => {
  assert.deepEqual(await ids(['--limit', '3']), ['a1@x', 'a2@x', 'a3@x']);
  assert.deepEqual(await ids(['--sort', 'duration:desc', '--limit', '2']), ['a1@x', 'a3@x']);
  assert.deepEqual(await ids(['--sort', 'duration', '--limit', '2']), ['a4@x', 'a2@x']);
  assert.deepEqual(await ids(['--sort', 'caller']), ['a1@x', 'a3@x', 'b1@x', 'b4@x', 'a2@x', 'b3@x', 'a4@x', 'b2@x', 'c1@x']);
  assert.deepEqual(await ids(['--sort', 'start_time:desc', '--limit', '1']), ['c1@x']);
  assert.equal((await cdr(['query', DAYS, '--sort', 'colour'])).code, 2);
  assert.equal((await cdr(['query', DAYS, '--limit', '-1'])).code, 2);
});

test('query: --format json, ndjson, table; csv is the default off a terminal, table on one', async () => {
  const json = await cdr(['query', DAYS, '--format', 'json', '--caller', '104']);
  const parsed = JSON.parse(json.out) as Record<string, string>[];
  assert.equal(parsed.length, 1);
  assert.equal(parsed[0]!.media, 'audio+video');
  assert.equal(parsed[0]!.billable, '31');
  assert.deepEqual(JSON.parse((await cdr(['query', DAYS, '--format', 'json', '--caller', 'nobody'])).out), []);
  const nd = (await cdr(['query', DAYS, '--format', 'ndjson'])).out.trim().split('\n').map((l) => JSON.parse(l) as { call_id: string });
  assert.deepEqual(nd.map((r) => r.call_id), ALL);
  const table = (await cdr(['query', DAYS, '--format', 'table', '--tag', 'busy'])).out.split('\n');
  assert.match(table[0]!, /^start\s+caller\s+callee\s+route\s+duration\s+bill\s+status\s+tag\s+cause$/);
  assert.match(table[1]!, /^2026-11-25 10:15:00\s+102\s+201\s+local\s+3\.000\s+0\s+486\s+busy\s+17$/);
  assert.match((await cdr(['query', DAYS, '--caller', '104'], true)).out, /^start\s+caller/);
  assert.match((await cdr(['query', DAYS, '--caller', '104'])).out, /^record_id,record_type,/);
  assert.equal((await cdr(['query', DAYS, '--format', 'xml'])).code, 2);
});

test('query: quoted text is written back as valid CSV', async () => {
  const r = await cdr(['query', fixture('quoted-crlf.csv'), '--format', 'csv']);
  const rows = parse(r.out, { columns: true }) as Record<string, string>[];
  assert.deepEqual(rows.map((x) => x.caller_name), ['Smith, John', 'The "Boss"', 'two\nlines', 'Zoë 王']);
});

test('query: bad lines are reported file:line and skipped; --strict turns them into exit 1', async () => {
  const lenient = await cdr(['query', fixture('bad.csv'), '--format', 'csv']);
  assert.equal(lenient.code, 0);
  assert.deepEqual(callIds(lenient.out), ['b1@x', 'b4@x']);
  assert.match(lenient.err, /bad\.csv:3: expected 22 fields, got 5\n/);
  assert.match(lenient.err, /bad\.csv:4: bad start_time/);
  assert.match(lenient.err, /bad\.csv:5: unterminated quoted field/);
  assert.match(lenient.err, /3 bad input record\(s\) skipped/);
  const strict = await cdr(['query', fixture('bad.csv'), '--format', 'csv', '--strict']);
  assert.equal(strict.code, 1);
  assert.deepEqual(callIds(strict.out), ['b1@x', 'b4@x'], 'the work is still done');
});

test('query: repeated headers, binary files with a bad CRC or a truncated tail', async () => {
  const rep = await cdr(['query', fixture('repeated-headers.csv'), '--format', 'csv']);
  assert.equal(callIds(rep.out).length, 8);
  assert.equal(rep.err, '');
  const crc = await cdr(['query', fixture('bad-crc.cdr'), '--format', 'csv']);
  assert.equal(crc.code, 0);
  assert.deepEqual(callIds(crc.out), ['b1@x', 'b3@x', 'b4@x']);
  assert.match(crc.err, /bad-crc\.cdr@\d+: bad record \(checksum mismatch/);
  const cut = await cdr(['query', fixture('truncated.cdr'), '--format', 'csv', '--strict']);
  assert.equal(cut.code, 1);
  assert.deepEqual(callIds(cut.out), ['b1@x', 'b2@x', 'b3@x']);
  assert.match(cut.err, /truncated\.cdr@\d+: truncated record at the end of the file/);
});

test('query: an unreadable file is exit 1; an unknown flag or command is exit 2', async () => {
  const missing = await cdr(['query', fixture('no-such-file.csv')]);
  assert.equal(missing.code, 1);
  assert.match(missing.err, /cannot read .*no-such-file\.csv: ENOENT/);
  const unknown = await cdr(['query', DAYS, '--callr', '101']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /Unknown argument/);
  assert.equal((await cdr(['frobnicate'])).code, 2);
  assert.equal((await cdr([])).code, 2);
});

test('--help documents the exit codes and the --sort memory note', async () => {
  const top = await cdr(['--help']);
  assert.equal(top.code, 0);
  assert.match(top.out, /Exit codes: 0 ok; 1 bad input with --strict, or an unreadable file or store; 2 usage error/);
  const q = await cdr(['query', '--help']);
  assert.match(q.out, /Holds the matching rows in memory/);
  assert.match(q.out, /--store\s+read the records from the cdr table of the store/);
});

test('stats: totals, ASR, ACD, billable minutes and busiest hour', async () => {
  const r = await cdr(['stats', DAYS, '--format', 'json']);
  assert.equal(r.code, 0);
  const s = JSON.parse(r.out);
  assert.deepEqual(s.total, { calls: 9, answered: 4, failed: 5, asr: 44.44, acd: 53.8, billableMinutes: 3.62 });
  assert.deepEqual(s.busiestHour, { hour: '2026-11-26 10:00', calls: 3 });
  const table = (await cdr(['stats', DAYS])).out;
  assert.match(table, /^calls\s+9$/m);
  assert.match(table, /^ASR\s+44\.44 %$/m);
  assert.match(table, /^busiest hour\s+2026-11-26 10:00 \(3 calls\)$/m);
  const csv = parse((await cdr(['stats', DAYS, '--format', 'csv', '--answered'])).out, { columns: true }) as Record<string, string>[];
  assert.deepEqual(csv, [{ calls: '4', answered: '4', failed: '0', asr_percent: '100', acd_seconds: '53.8', billable_minutes: '3.62', busiest_hour: '2026-11-25 09:00', busiest_hour_calls: '1' }]);
});

test('stats --by cause | tag | caller | callee | hour | day', async () => {
  const byCause = parse((await cdr(['stats', DAYS, '--by', 'cause', '--format', 'csv'])).out, { columns: true }) as Record<string, string>[];
  assert.deepEqual(byCause.map((g) => [g.cause, g.calls]), [['1', '1'], ['16', '4'], ['17', '1'], ['19', '1'], ['21', '1'], ['102', '1']]);
  const byTag = JSON.parse((await cdr(['stats', DAYS, '--by', 'tag', '--format', 'json'])).out);
  assert.equal(byTag.by, 'tag');
  assert.deepEqual(byTag.groups.map((g: { key: string }) => g.key), ['1 caller-bye', '2 callee-bye', '3 caller-cancel', '4 callee-rejected', '5 no-answer', '9 busy', '10 unknown-number', '12 media-timeout']);
  const byCaller = parse((await cdr(['stats', DAYS, '--by', 'caller', '--format', 'csv'])).out, { columns: true }) as Record<string, string>[];
  assert.deepEqual(byCaller.find((g) => g.caller === '101'), { caller: '101', calls: '4', answered: '2', failed: '2', asr_percent: '50', acd_seconds: '90.1', billable_minutes: '3.02' });
  const byCallee = parse((await cdr(['stats', DAYS, '--by', 'callee', '--format', 'csv'])).out, { columns: true }) as Record<string, string>[];
  assert.equal(byCallee.find((g) => g.callee === '200')!.calls, '4');
  const byHour = parse((await cdr(['stats', DAYS, '--by', 'hour', '--format', 'csv'])).out, { columns: true }) as Record<string, string>[];
  assert.deepEqual(byHour.map((g) => [g.hour, g.calls]), [['08', '1'], ['09', '1'], ['10', '5'], ['11', '1'], ['23', '1']]);
  const byDay = (await cdr(['stats', DAYS, '--by', 'day'])).out;
  assert.match(byDay, /^2026-11-25\s+4\s+2\s+2\s+50\.00/m);
  assert.match(byDay, /^2026-11-27\s+1\s+1\s+0\s+100\.00/m);
  assert.equal((await cdr(['stats', DAYS, '--by', 'weekday'])).code, 2);
});

test('convert: csv -> cdr -> csv is exact; .csv.gz in; refuses to overwrite without --force', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdr-conv-'));
  try {
    const src = path.join(DAYS, '20261126.csv');
    const bin = path.join(dir, 'day.cdr');
    const back = path.join(dir, 'day.csv');
    assert.equal((await cdr(['convert', src, bin])).code, 0);
    const r = await cdr(['convert', bin, back]);
    assert.equal(r.code, 0);
    assert.match(r.err, /4 records written/);
    assert.equal(fs.readFileSync(back, 'utf8'), fs.readFileSync(src, 'utf8'));

    const refused = await cdr(['convert', src, back]);
    assert.equal(refused.code, 1);
    assert.match(refused.err, /exists \(use --force to overwrite\)/);
    assert.equal((await cdr(['convert', path.join(DAYS, '20261127.csv.gz'), back, '--force'])).code, 0);
    assert.deepEqual(callIds(fs.readFileSync(back, 'utf8')), ['c1@x']);
    assert.equal((await cdr(['convert', src, path.join(dir, 'x.txt')])).code, 2);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['day.cdr', 'day.csv'], 'no temporary files left');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('convert: bad input is skipped and reported; with --strict exit 1 and no output file', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdr-conv-'));
  try {
    const out = path.join(dir, 'out.cdr');
    const lenient = await cdr(['convert', fixture('bad.csv'), out]);
    assert.equal(lenient.code, 0);
    assert.match(lenient.err, /bad\.csv:3:/);
    assert.match(lenient.err, /2 records written/);
    const strict = await cdr(['convert', fixture('bad.csv'), path.join(dir, 'strict.cdr'), '--strict']);
    assert.equal(strict.code, 1);
    assert.equal(fs.existsSync(path.join(dir, 'strict.cdr')), false);
    assert.deepEqual(fs.readdirSync(dir), ['out.cdr']);
    assert.equal((await cdr(['convert', fixture('missing.cdr'), path.join(dir, 'm.csv')])).code, 1);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('--caller skips lines that cannot match unchecked; --strict checks and reports every line', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdr-pre-'));
  try {
    const lines = fs.readFileSync(path.join(DAYS, '20261126.csv'), 'utf8').split('\n');
    // b2 (caller 104) gets a bad end time; b1 (caller 101) stays good.
    lines[2] = lines[2]!.replace('2026-11-26T10:00:32.001+01:00', '2026-11-26T10:00:99.001+01:00');
    const file = path.join(dir, 'x.csv');
    fs.writeFileSync(file, lines.join('\n'));
    const quick = await cdr(['query', file, '--caller', '101', '--format', 'csv']);
    assert.equal(quick.code, 0);
    assert.deepEqual(callIds(quick.out), ['b1@x', 'b4@x']);
    assert.equal(quick.err, '', 'the bad line could not match --caller 101');
    const strict = await cdr(['query', file, '--caller', '101', '--format', 'csv', '--strict']);
    assert.equal(strict.code, 1);
    assert.deepEqual(callIds(strict.out), ['b1@x', 'b4@x']);
    assert.match(strict.err, /x\.csv:3: bad end_time/);
    const could = await cdr(['query', file, '--caller', '104', '--format', 'csv']);
    assert.deepEqual(callIds(could.out), []);
    assert.match(could.err, /x\.csv:3: bad end_time/, 'a bad line that could match is reported');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('dashed options are read without camelCase aliases (cli/main.ts turns camel-case expansion off)', async () => {
  const { executeCdr } = await import('../../cli/cdr.js');
  const out = new Collect();
  const err = new Collect();
  const code = await executeCdr('query', { 'min-duration': 60, 'data-dir': fixture(''), paths: [], format: 'csv' }, { out, err });
  assert.equal(code, 1, 'data-dir honoured: <fixtures>/cdr does not exist');
  assert.match(err.text, /fixtures\/cdr\/cdr: ENOENT/);
  const out2 = new Collect();
  assert.equal(await executeCdr('query', { 'min-duration': 60, paths: [DAYS], format: 'csv' }, { out: out2, err }), 0);
  assert.deepEqual(callIds(out2.text), ['a1@x', 'a3@x']);
});

test('the quick argument reader gives the handler what yargs gives it, or leaves the list to yargs', async () => {
  const { quickArgs, defineCdrSubcommands } = await import('../../cli/cdr.js');
  const { STATS_GROUPS } = await import('../../lib/cdr/stats.js');
  const { default: yargs } = await import('yargs');
  const viaYargs = async (argv: string[]) => {
    let got: { cmd: string; args: Record<string, unknown> } | undefined;
    await defineCdrSubcommands(yargs(), (cmd, args) => {
      got = { cmd, args };
    }).strict().exitProcess(false).parse(argv);
    return got;
  };
  const read = ['strict', 'from', 'to', 'caller', 'callee', 'number', 'cause', 'tag', 'status', 'min-duration', 'answered', 'failed', 'paths', 'data-dir', 'sort', 'limit', 'format', 'by'];
  const pick = (a: Record<string, unknown>) => Object.fromEntries(read.filter((k) => a[k] !== undefined).map((k) => [k, a[k]]));
  const quick = [
    ['stats', '--by', 'cause'],
    ['stats', 'a.csv', '--by', 'hour', '--format', 'csv', '--strict'],
    ['query', 'a.csv', 'b', '--caller', '0101', '--strict', 'c.cdr'],
    ['query', '--answered', 'x', '--callee', '', '--status', '4xx', '--tag', 'true'],
    ['query', '--from', '2026-11-26', '--to', '2026-11-27T10:00', '--number', '1*', '--sort', 'duration:desc', '--format', 'ndjson'],
    ['stats', '--data-dir', '/tmp/d', '--failed', '--caller', 'true'],
    ['query'],
  ];
  for (const argv of quick) {
    const q = quickArgs(argv);
    assert.ok(q, argv.join(' '));
    const y = await viaYargs(argv);
    assert.ok(y, argv.join(' '));
    assert.equal(q.cmd, y.cmd);
    assert.deepEqual(pick(q.args), pick(y.args), argv.join(' '));
  }
  const toYargs = [
    ['stats', '--by', 'nope'], ['query', '--format', 'xml'], ['stats', '--format', 'ndjson'], ['query', '--by', 'cause'],
    ['query', '--caller=101'], ['query', '--caller', '1', '--caller', '2'], ['query', '--strict', 'true'], ['query', '--no-strict'],
    ['query', '--answered', '--failed'], ['query', '--limit', '5'], ['query', '--cause', '16'], ['query', '--min-duration', '3'],
    ['query', '--help'], ['query', '-h'], ['query', '--caller'], ['query', '--caller', '-1'], ['query', '--', 'x'], ['query', '-'],
    ['convert', 'a.csv', 'b.cdr'], ['stats', '--sort', 'duration'], ['query', '--unknown', 'x'], ['--help'], [],
  ];
  for (const argv of toYargs) assert.equal(quickArgs(argv), undefined, argv.join(' '));
  // cli/cdr.ts keeps its own copy of the --by choices (importing stats.ts would load the reader).
  for (const g of STATS_GROUPS) {
    assert.ok(await viaYargs(['stats', '--by', g]), `--by ${g} is a choice`);
    assert.ok(quickArgs(['stats', '--by', g]), `--by ${g} read quickly`);
  }
});
