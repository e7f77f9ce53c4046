import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runExt } from '../../cli/ext.js';
import { openSqliteStore } from '../../lib/store/sqlite.js';
import { computeHA1 } from '../../lib/sip/digest.js';

interface Run {
  code: number;
  out: string[];
  err: string[];
}

async function ext(...argv: string[]): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runExt(argv, { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { code, out, err };
}

function tempDataDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mss-cli-ext-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'data');
}

function storedRecord(dataDir: string, number: string) {
  const store = openSqliteStore(dataDir);
  try {
    return store.getExtension(number);
  } finally {
    store.close();
  }
}

test('ext add with a generated password prints it once, and it verifies against the stored HA1', async (t) => {
  const data = tempDataDir(t);
  const r = await ext('add', '100', '--name', 'Alice Smith', '--data-dir', data);
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.deepEqual(r.err, []);
  const line = r.out.find((l) => l.startsWith('password: '));
  assert.ok(line);
  const password = line.slice('password: '.length).split(' ')[0]!;
  assert.equal(password.length, 12);
  const rec = storedRecord(data, '100');
  assert.equal(rec?.realm, 'minisipserver', 'default realm');
  assert.equal(rec?.ha1Md5, computeHA1('MD5', '100', 'minisipserver', password));
  assert.equal(rec?.ha1Sha256, computeHA1('SHA-256', '100', 'minisipserver', password));
  assert.equal(rec?.displayName, 'Alice Smith');
});

test('ext add with --password prints no password; --realm, and the realm stored by serve, are used', async (t) => {
  const data = tempDataDir(t);
  const r = await ext('add', '101', '--password', '0042', '--realm', 'pbx.example', '--data-dir', data);
  assert.equal(r.code, 0);
  assert.ok(!r.out.some((l) => l.includes('0042')), 'a given password is not echoed');
  assert.equal(storedRecord(data, '101')?.ha1Md5, computeHA1('MD5', '101', 'pbx.example', '0042'));

  const store = openSqliteStore(data);
  store.setMeta('realm', 'from-serve');
  store.close();
  assert.equal((await ext('add', '102', '--password', 'p', '--data-dir', data)).code, 0);
  assert.equal(storedRecord(data, '102')?.realm, 'from-serve');
});

test('ext list (text and --json), remove, and failures with exit code 1', async (t) => {
  const data = tempDataDir(t);
  assert.equal((await ext('add', '200', '--password', 'a', '--name', 'Bob', '--data-dir', data)).code, 0);
  assert.equal((await ext('add', '201', '--password', 'b', '--data-dir', data)).code, 0);

  const exists = await ext('add', '200', '--password', 'c', '--data-dir', data);
  assert.equal(exists.code, 1);
  assert.match(exists.err.join('\n'), /200 already exists/);

  const list = await ext('list', '--data-dir', data);
  assert.equal(list.code, 0);
  assert.deepEqual(list.out, ['200\tBob', '201']);
  const json = await ext('list', '--json', '--data-dir', data);
  assert.deepEqual(JSON.parse(json.out.join('')), [
    { number: '200', displayName: 'Bob', allow: [] },
    { number: '201', displayName: '', allow: [] },
  ]);

  assert.equal((await ext('remove', '200', '--data-dir', data)).code, 0);
  const again = await ext('remove', '200', '--data-dir', data);
  assert.equal(again.code, 1);
  assert.match(again.err.join('\n'), /no extension 200/);
  assert.deepEqual((await ext('list', '--data-dir', data)).out, ['201']);
});

test('ext add --allow: comma-separated and repeated flags, stored sorted and unique', async (t) => {
  const data = tempDataDir(t);
  const r = await ext('add', '400', '--password', 'p', '--allow', 'mobile,international', '--allow', 'premium', '--allow', 'mobile', '--data-dir', data);
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.deepEqual(storedRecord(data, '400')?.allow, ['international', 'mobile', 'premium']);
  assert.equal((await ext('add', '401', '--password', 'p', '--allow', ' mobile , ', '--data-dir', data)).code, 0);
  assert.deepEqual(storedRecord(data, '401')?.allow, ['mobile']);
});

test('ext edit --allow replaces the classes, --allow "" clears them, --name renames; list shows them', async (t) => {
  const data = tempDataDir(t);
  assert.equal((await ext('add', '500', '--password', 'p', '--name', 'Carol', '--allow', 'mobile', '--data-dir', data)).code, 0);
  assert.equal((await ext('add', '501', '--password', 'p', '--data-dir', data)).code, 0);

  const edit = await ext('edit', '501', '--allow', 'international,mobile', '--data-dir', data);
  assert.equal(edit.code, 0, edit.err.join('\n'));
  assert.deepEqual(edit.out, ['changed extension 501: no display name, allowed classes international, mobile']);
  assert.deepEqual(storedRecord(data, '501')?.allow, ['international', 'mobile']);
  assert.equal(storedRecord(data, '501')?.ha1Md5, computeHA1('MD5', '501', 'minisipserver', 'p'), 'the password is kept');

  assert.deepEqual((await ext('list', '--data-dir', data)).out, ['500\tCarol\tmobile', '501\t\tinternational,mobile']);
  const json = await ext('list', '--json', '--data-dir', data);
  assert.deepEqual(JSON.parse(json.out.join('')), [
    { number: '500', displayName: 'Carol', allow: ['mobile'] },
    { number: '501', displayName: '', allow: ['international', 'mobile'] },
  ]);

  const cleared = await ext('edit', '500', '--allow', '', '--data-dir', data);
  assert.equal(cleared.code, 0, cleared.err.join('\n'));
  assert.deepEqual(cleared.out, ['changed extension 500: display name "Carol", no restricted classes allowed']);
  assert.deepEqual(storedRecord(data, '500')?.allow, []);
  assert.equal((await ext('edit', '500', '--name', 'Carol Jones', '--data-dir', data)).code, 0);
  assert.equal(storedRecord(data, '500')?.displayName, 'Carol Jones');
  assert.deepEqual((await ext('list', '--data-dir', data)).out, ['500\tCarol Jones', '501\t\tinternational,mobile']);
});

test('ext add/edit with a bad class name exit 2 and change nothing; edit of a missing extension exits 1', async (t) => {
  const data = tempDataDir(t);
  const bad = await ext('add', '600', '--password', 'p', '--allow', 'Intl', '--data-dir', data);
  assert.equal(bad.code, 2);
  assert.deepEqual(bad.err, ['"Intl" is not a class name: use lower-case letters, digits, - and _']);
  assert.equal(storedRecord(data, '600'), undefined);

  assert.equal((await ext('add', '600', '--password', 'p', '--allow', 'mobile', '--data-dir', data)).code, 0);
  const badEdit = await ext('edit', '600', '--allow', 'mobile,Intl', '--data-dir', data);
  assert.equal(badEdit.code, 2);
  assert.match(badEdit.err.join('\n'), /"Intl" is not a class name/);
  assert.deepEqual(storedRecord(data, '600')?.allow, ['mobile']);

  const missing = await ext('edit', '999', '--allow', 'mobile', '--data-dir', data);
  assert.equal(missing.code, 1);
  assert.match(missing.err.join('\n'), /no extension 999/);
});

test('ext passwd: given and generated passwords replace the HA1; unknown extension fails', async (t) => {
  const data = tempDataDir(t);
  await ext('add', '300', '--password', 'old', '--data-dir', data);
  assert.equal((await ext('passwd', '300', '--password', 'new', '--data-dir', data)).code, 0);
  assert.equal(storedRecord(data, '300')?.ha1Md5, computeHA1('MD5', '300', 'minisipserver', 'new'));

  const r = await ext('passwd', '300', '--data-dir', data);
  assert.equal(r.code, 0);
  const password = r.out.find((l) => l.startsWith('password: '))!.slice('password: '.length).split(' ')[0]!;
  assert.equal(storedRecord(data, '300')?.ha1Sha256, computeHA1('SHA-256', '300', 'minisipserver', password));

  const unknown = await ext('passwd', '999', '--password', 'x', '--data-dir', data);
  assert.equal(unknown.code, 1);
  assert.match(unknown.err.join('\n'), /no extension 999/);
});

test('ext import reports bad lines with file:line, imports the rest, --replace overwrites', async (t) => {
  const data = tempDataDir(t);
  const file = join(data, '..', 'users.txt');
  writeFileSync(file, '# users\n1000:pw1000\n1001\n1002:pw1002:Reception\n:nopw\n');
  const r = await ext('import', file, '--data-dir', data);
  assert.equal(r.code, 1, 'bad lines make the exit code 1');
  assert.equal(r.err.length, 2);
  assert.match(r.err[0]!, new RegExp(`users\\.txt:3: `));
  assert.match(r.err[1]!, new RegExp(`users\\.txt:5: `));
  assert.match(r.out.join('\n'), /2 added, 0 replaced, 0 skipped \(already present\), 2 bad lines/);
  assert.equal(storedRecord(data, '1002')?.displayName, 'Reception');

  writeFileSync(file, '1000:changed\n');
  const skip = await ext('import', file, '--data-dir', data);
  assert.equal(skip.code, 0);
  assert.match(skip.out.join('\n'), /0 added, 0 replaced, 1 skipped/);
  const replace = await ext('import', file, '--replace', '--data-dir', data);
  assert.equal(replace.code, 0);
  assert.equal(storedRecord(data, '1000')?.ha1Md5, computeHA1('MD5', '1000', 'minisipserver', 'changed'));

  const missing = await ext('import', join(data, 'nope.txt'), '--data-dir', data);
  assert.equal(missing.code, 1);
  assert.match(missing.err.join('\n'), /cannot read .*nope\.txt/);
});

test('usage errors exit 2 with a message on stderr; --help exits 0', async (t) => {
  const data = tempDataDir(t);
  const usageErrors = [
    [], ['frobnicate'], ['add'], ['list', '--bogus'], ['add', 'a b', '--data-dir', data], ['add', '1', '--password', '', '--data-dir', data],
    ['edit'], ['edit', '1', '--data-dir', data], ['edit', '1', '--bogus', 'x', '--data-dir', data],
  ];
  for (const argv of usageErrors) {
    const r = await ext(...argv);
    assert.equal(r.code, 2, `ext ${argv.join(' ')}`);
    assert.ok(r.err.join('').length > 0, `message for ext ${argv.join(' ')}`);
    assert.deepEqual(r.out, []);
  }
  const help = await ext('--help');
  assert.equal(help.code, 0);
  assert.match(help.out.join('\n'), /import <file>/);
  assert.match(help.out.join('\n'), /edit <number>/);
  const noCommand = await ext();
  assert.match(noCommand.err.join('\n'), /add, edit, list, remove, passwd, import/);
  const noChange = await ext('edit', '1', '--data-dir', data);
  assert.match(noChange.err.join('\n'), /needs --name or --allow/);
});

test('a corrupt database is reported (exit 1) and not replaced', async (t) => {
  const data = tempDataDir(t);
  mkdirSync(data, { recursive: true });
  const dbFile = join(data, 'minisipserver.db');
  const garbage = 'garbage'.repeat(1000);
  writeFileSync(dbFile, garbage);
  const r = await ext('list', '--data-dir', data);
  assert.equal(r.code, 1);
  assert.match(r.err.join('\n'), /minisipserver\.db: not a usable minisipserver database/);
  assert.equal(readFileSync(dbFile, 'utf8'), garbage);
});
