// `minisipserver ivr validate`, in-process through runIvr and as the real command line.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runIvr, MAX_PRINTED_FINDINGS } from '../../cli/ivr.js';
import { toneWav } from '../helpers/wav.js';
import { Collect } from '../helpers/collect.js';

const MAIN = path.resolve(process.cwd(), 'build/cli/main.js');
const EXAMPLE = path.resolve(process.cwd(), 'test/fixtures/ivr/main_menu.xml');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'ivr-cli-'));
after(() => fs.rmSync(TMP, { recursive: true, force: true }));

async function ivr(args: string[]) {
  const out = new Collect();
  const err = new Collect();
  const code = await runIvr(args, { out, err });
  return { code, out: out.text, err: err.text };
}

function cli(args: string[], cwd = TMP) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** A 0.1 s 8000 Hz mono PCM 16-bit WAV file. */
function wav(): Buffer {
  return toneWav(100, 0);
}

const GOOD = '<mssxml version="1">\n  <action name="hello" method="play"><voice>welcome.wav</voice></action>\n  <action name="bye" method="hangup"/>\n</mssxml>\n';
const BAD = '<mssxml version="1">\n  <action name="a" method="goto" nextaction="nowhere"/>\n</mssxml>\n';
const TWO_WARNINGS = '<mssxml version="1">\n  <action name="a" method="hangup"/>\n  <action name="b" method="hangup"/>\n  <action name="c" method="hangup"/>\n</mssxml>\n';

/** A folder holding prompts/en/welcome.wav and the given files. */
function folder(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(TMP, 'dir-'));
  fs.mkdirSync(path.join(dir, 'prompts', 'en'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'prompts', 'en', 'welcome.wav'), wav());
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

test('a good file: exit 0, nothing on stdout, the summary on stderr', async () => {
  const dir = folder({ 'good.xml': GOOD });
  const r = await ivr(['validate', path.join(dir, 'good.xml')]);
  assert.equal(r.code, 0);
  assert.equal(r.out, '');
  assert.equal(r.err, '1 file checked: 0 with errors, 0 warnings\n');
});

test('a file with an error: FILE:LINE:COL: error: message, exit 1', async () => {
  const dir = folder({ 'bad.xml': BAD });
  const file = path.join(dir, 'bad.xml');
  const r = await ivr(['validate', file]);
  assert.equal(r.code, 1);
  assert.equal(r.out, `${file}:2:3: error: nextaction "nowhere" names no action; actions are: a\n`);
  assert.equal(r.err, '1 file checked: 1 with errors, 0 warnings\n');
});

test('warnings alone exit 0', async () => {
  const dir = folder({ 'w.xml': TWO_WARNINGS });
  const file = path.join(dir, 'w.xml');
  const r = await ivr(['validate', file]);
  assert.equal(r.code, 0);
  assert.deepEqual(r.out.trimEnd().split('\n'), [
    `${file}:3:3: warning: action "b" is never reached from the first action "a"`,
    `${file}:4:3: warning: action "c" is never reached from the first action "a"`,
  ]);
  assert.equal(r.err, '1 file checked: 0 with errors, 2 warnings\n');
});

test('a directory: every *.xml in it, sorted, not recursive', async () => {
  const dir = folder({ 'c.xml': TWO_WARNINGS, 'a.xml': GOOD, 'b.xml': BAD, 'notes.txt': 'not xml', 'sub/d.xml': BAD });
  const r = await ivr(['validate', dir]);
  assert.equal(r.code, 1);
  assert.deepEqual(
    r.out.trimEnd().split('\n').map((l) => l.slice(dir.length + 1, l.indexOf(':', dir.length + 1))),
    ['b.xml', 'c.xml', 'c.xml'],
    'b.xml before c.xml; sub/d.xml not checked',
  );
  assert.equal(r.err, '3 files checked: 1 with errors, 2 warnings\n');
});

test('--json: {findings, summary} on stdout', async () => {
  const dir = folder({ 'b.xml': BAD, 'c.xml': TWO_WARNINGS });
  const r = await ivr(['validate', dir, '--json']);
  assert.equal(r.code, 1);
  const report = JSON.parse(r.out) as { findings: unknown[]; summary: unknown };
  assert.deepEqual(report.findings[0], { file: path.join(dir, 'b.xml'), line: 2, col: 3, severity: 'error', message: 'nextaction "nowhere" names no action; actions are: a' });
  assert.equal(report.findings.length, 3);
  assert.deepEqual(report.summary, { files: 2, filesWithErrors: 1, errors: 1, warnings: 2 });
  const good = await ivr(['validate', '--json', path.join(folder({ 'g.xml': GOOD }), 'g.xml')]);
  assert.equal(good.code, 0);
  assert.deepEqual(JSON.parse(good.out), { findings: [], summary: { files: 1, filesWithErrors: 0, errors: 0, warnings: 0 } });
});

test('--prompts and --language choose where prompts are looked for', async () => {
  const dir = folder({ 'g.xml': GOOD });
  const file = path.join(dir, 'g.xml');
  const other = fs.mkdtempSync(path.join(TMP, 'other-'));
  const missing = await ivr(['validate', file, '--prompts', other]);
  assert.equal(missing.code, 1);
  assert.match(missing.out, new RegExp(`:2:38: error: prompt "welcome\\.wav" not found: looked for ${other}/en/welcome\\.wav and ${other}/welcome\\.wav\\n$`));
  fs.mkdirSync(path.join(other, 'fr'));
  fs.writeFileSync(path.join(other, 'fr', 'welcome.wav'), wav());
  assert.equal((await ivr(['validate', file, '--prompts', other, '--language', 'fr'])).code, 0);
  const zh = await ivr(['validate', file, '--language', 'zh']);
  assert.equal(zh.code, 1, 'prompts/zh/welcome.wav and prompts/welcome.wav do not exist');
  assert.match(zh.out, /prompts\/zh\/welcome\.wav and /);
});

test('the spec example validates with its prompts', async () => {
  const dir = folder({});
  fs.copyFileSync(EXAMPLE, path.join(dir, 'main_menu.xml'));
  fs.writeFileSync(path.join(dir, 'prompts', 'en', 'welcome_menu.wav'), wav());
  fs.writeFileSync(path.join(dir, 'prompts', 'office_closed.wav'), wav());
  const r = await ivr(['validate', path.join(dir, 'main_menu.xml')]);
  assert.equal(r.out, '');
  assert.equal(r.code, 0);
});

test(`text output shows at most ${MAX_PRINTED_FINDINGS} findings per file, then how many more`, async () => {
  const actions = Array.from({ length: 250 }, (_, i) => `<action name="a${i}" method="hangup" nextaction="a0"/>`);
  const dir = folder({ 'many.xml': `<mssxml version="1">\n${actions.join('\n')}\n</mssxml>\n` });
  const file = path.join(dir, 'many.xml');
  const r = await ivr(['validate', file]);
  assert.equal(r.code, 1);
  const out = r.out.trimEnd().split('\n');
  assert.equal(out.length, MAX_PRINTED_FINDINGS + 1);
  assert.match(out[MAX_PRINTED_FINDINGS - 1]!, new RegExp(`^${file}:${MAX_PRINTED_FINDINGS + 1}:1: error: a hangup action has no attribute nextaction=`));
  assert.equal(out[MAX_PRINTED_FINDINGS], `${file}: 50 more findings not shown`);
  assert.equal(r.err, '1 file checked: 1 with errors, 0 warnings\n');
  const json = JSON.parse((await ivr(['validate', file, '--json'])).out) as { findings: unknown[] };
  assert.equal(json.findings.length, 250, 'JSON is not capped');
});

test('usage errors exit 2: no path, a missing path, an unknown flag, bad options, an empty directory', async () => {
  const dir = folder({ 'g.xml': GOOD });
  const file = path.join(dir, 'g.xml');
  const none = await ivr(['validate']);
  assert.equal(none.code, 2);
  assert.match(none.err, /Not enough non-option arguments/);
  const missing = await ivr(['validate', file, path.join(dir, 'nope.xml')]);
  assert.equal(missing.code, 2);
  assert.equal(missing.err, `minisipserver ivr validate: ${path.join(dir, 'nope.xml')}: no such file or directory\n`);
  assert.equal(missing.out, '', 'nothing is checked when an argument is wrong');
  const unknown = await ivr(['validate', file, '--strict']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /Unknown argument: strict/);
  assert.equal((await ivr(['validate', file, '--language', '../x'])).code, 2);
  const notDir = await ivr(['validate', file, '--prompts', file]);
  assert.equal(notDir.code, 2);
  assert.match(notDir.err, /--prompts: .* is not a directory/);
  const empty = await ivr(['validate', fs.mkdtempSync(path.join(TMP, 'empty-'))]);
  assert.equal(empty.code, 2);
  assert.match(empty.err, /no \*\.xml files in this directory/);
  assert.equal((await ivr([])).code, 2);
  assert.equal((await ivr(['check', file])).code, 2);
  const help = await ivr(['validate', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.out, /Exit codes: 0 no errors \(warnings allowed\); 1 a file has errors; 2 usage error\./);
});

test('the real command line: exit codes 0, 1 and 2', () => {
  const dir = folder({ 'good.xml': GOOD, 'bad.xml': BAD });
  const good = cli(['ivr', 'validate', 'good.xml'], dir);
  assert.equal(good.code, 0, good.err);
  assert.equal(good.err, '1 file checked: 0 with errors, 0 warnings\n');
  const bad = cli(['ivr', 'validate', 'bad.xml', '--json'], dir);
  assert.equal(bad.code, 1);
  assert.equal((JSON.parse(bad.out) as { findings: Array<{ file: string }> }).findings[0]!.file, 'bad.xml');
  const both = cli(['ivr', 'validate', '.'], dir);
  assert.equal(both.code, 1);
  assert.equal(both.out, 'bad.xml:2:3: error: nextaction "nowhere" names no action; actions are: a\n');
  assert.equal(both.err, '2 files checked: 1 with errors, 0 warnings\n');
  assert.equal(cli(['ivr', 'validate', 'missing.xml'], dir).code, 2);
  const flag = cli(['ivr', 'validate', 'good.xml', '--colour'], dir);
  assert.equal(flag.code, 2);
  assert.match(flag.err, /Unknown argument: colour/);
  assert.equal(cli(['ivr', 'validate'], dir).code, 2);
  const bare = cli(['ivr'], dir);
  assert.equal(bare.code, 2);
  assert.match(bare.err, /name an ivr command: validate/);
  assert.match(cli([], dir).err, /Name a command: serve, ext, cdr, ivr/);
});
