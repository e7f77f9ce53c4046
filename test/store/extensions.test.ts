// Tests for lib/pbx/extensions.ts against a real SQLite store (kept here, with the store tests).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../lib/store/sqlite.js';
import { ExtensionExistsError, type Store } from '../../lib/store/store.js';
import { Extensions, ExtensionsError, generatePassword, validateClassName, validateExtensionNumber } from '../../lib/pbx/extensions.js';
import { computeHA1 } from '../../lib/sip/digest.js';

function setup(t: { after(fn: () => void): void }): { store: Store; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'mss-ext-'));
  const store = openSqliteStore(join(dir, 'data'));
  t.after(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { store, dir };
}

function assertPasswordMatches(store: Store, number: string, realm: string, password: string): void {
  const rec = store.getExtension(number);
  assert.ok(rec, `extension ${number} exists`);
  assert.equal(rec.realm, realm);
  assert.equal(rec.ha1Md5, computeHA1('MD5', number, realm, password));
  assert.equal(rec.ha1Sha256, computeHA1('SHA-256', number, realm, password));
}

test('validateExtensionNumber', () => {
  for (const ok of ['100', 'alice', 'a.b_c+d-e', '0', 'x'.repeat(32)]) assert.equal(validateExtensionNumber(ok), null, ok);
  for (const bad of ['', 'x'.repeat(33), 'a b', 'a:b', 'a@b', '…', '..', '-', 'a\nb']) {
    assert.equal(typeof validateExtensionNumber(bad), 'string', JSON.stringify(bad));
  }
});

test('validateClassName: lower-case letters, digits, - and _, 1 to 32 characters', () => {
  for (const ok of ['international', 'mobile', 'premium-rate', 'nat_2', '0', 'x'.repeat(32)]) assert.equal(validateClassName(ok), null, ok);
  assert.equal(validateClassName('Intl'), '"Intl" is not a class name: use lower-case letters, digits, - and _');
  for (const bad of ['', 'x'.repeat(33), 'a b', 'a,b', 'é', 'a\nb']) assert.equal(typeof validateClassName(bad), 'string', JSON.stringify(bad));
});

function isInvalid(pattern: RegExp): (e: unknown) => boolean {
  return (e: unknown) => e instanceof ExtensionsError && e.kind === 'invalid' && pattern.test(e.message);
}

test('add with allow, edit of the name and the allowed classes, list: sorted and unique, [] clears', (t) => {
  const { store } = setup(t);
  const ext = new Extensions(store, 'r');
  ext.add('100', { password: 'p', displayName: 'Alice', allow: ['mobile', 'international', 'mobile'] });
  ext.add('101', { password: 'p' });
  assert.deepEqual(store.getExtension('100')?.allow, ['international', 'mobile']);
  assert.deepEqual(ext.list(), [
    { number: '100', displayName: 'Alice', allow: ['international', 'mobile'] },
    { number: '101', displayName: '', allow: [] },
  ]);

  assert.deepEqual(ext.edit('101', { allow: ['premium', 'international'] }), { number: '101', displayName: '', allow: ['international', 'premium'] });
  assert.deepEqual(ext.edit('100', { displayName: 'Alice Smith' }), { number: '100', displayName: 'Alice Smith', allow: ['international', 'mobile'] });
  assert.deepEqual(ext.edit('100', { allow: [] }), { number: '100', displayName: 'Alice Smith', allow: [] });
  assert.deepEqual(ext.edit('101', { displayName: '', allow: ['mobile'] }), { number: '101', displayName: '', allow: ['mobile'] });
  assertPasswordMatches(store, '101', 'r', 'p');
  assert.deepEqual(ext.list().map((e) => e.allow), [[], ['mobile']]);
});

test('add and edit refuse bad class lists, unknown numbers and edits that change nothing', (t) => {
  const { store } = setup(t);
  const ext = new Extensions(store, 'r');
  assert.throws(() => ext.add('100', { allow: ['Intl'] }), isInvalid(/^"Intl" is not a class name: use lower-case letters, digits, - and _$/));
  assert.equal(store.getExtension('100'), undefined, 'nothing added');
  ext.add('100', { password: 'p', allow: ['mobile'] });
  const seventeen = Array.from({ length: 17 }, (_, i) => `c${i}`);
  assert.throws(() => ext.edit('100', { allow: seventeen }), isInvalid(/at most 16/));
  assert.deepEqual(ext.edit('100', { allow: [...seventeen.slice(0, 16), 'c0'] }).allow.length, 16, 'duplicates do not count');
  assert.throws(() => ext.edit('100', { allow: ['ok', 'x'.repeat(33)] }), isInvalid(/longer than 32/));
  assert.throws(() => ext.edit('100', { allow: [''] }), isInvalid(/empty/));
  assert.throws(() => ext.edit('100', { displayName: 'a\u0007b' }), isInvalid(/control characters/));
  assert.throws(() => ext.edit('100', {}), isInvalid(/nothing to change/));
  assert.equal(store.getExtension('100')?.allow.length, 16, 'a refused edit changes nothing');
  assert.throws(() => ext.edit('999', { allow: ['mobile'] }), (e: unknown) => e instanceof ExtensionsError && e.kind === 'not-found' && /no extension 999/.test(e.message));
});

test('importFile grants nothing: new extensions get no classes, replaced ones keep theirs', (t) => {
  const { store, dir } = setup(t);
  const ext = new Extensions(store, 'r');
  ext.add('1000', { password: 'old', allow: ['international'] });
  const file = join(dir, 'users.txt');
  writeFileSync(file, '1000:new\n1001:pw\n');
  assert.deepEqual(ext.importFile(file, { replace: true }), { added: 1, replaced: 1, skipped: 0, errors: [] });
  assertPasswordMatches(store, '1000', 'r', 'new');
  assert.deepEqual(ext.list().map((e) => e.allow), [['international'], []]);
});

test('generated passwords: 12 characters, unambiguous alphabet, not repeated', () => {
  const seen = new Set<string>();
  for (let n = 0; n < 200; n++) {
    const p = generatePassword();
    assert.match(p, /^[2-9a-km-np-zA-HJ-NP-Z]{12}$/);
    seen.add(p);
  }
  assert.equal(seen.size, 200);
});

test('add stores only HA1 (both algorithms) for the realm; generated password verifies', (t) => {
  const { store } = setup(t);
  const ext = new Extensions(store, 'pbx.example');
  const given = ext.add('100', { password: 'secret', displayName: 'Alice' });
  assert.deepEqual(given, { number: '100', password: 'secret' });
  assertPasswordMatches(store, '100', 'pbx.example', 'secret');
  assert.equal(store.getExtension('100')?.displayName, 'Alice');
  assert.ok(!JSON.stringify(store.getExtension('100')).includes('secret'), 'the password itself is not stored');

  const generated = ext.add('101', {});
  assert.match(generated.password, /^.{12}$/);
  assertPasswordMatches(store, '101', 'pbx.example', generated.password);

  assert.throws(() => ext.add('100', { password: 'x' }), ExtensionExistsError);
  assert.throws(() => ext.add('a b', {}), (e: unknown) => e instanceof ExtensionsError && e.kind === 'invalid');
  assert.throws(() => ext.add('102', { password: '' }), (e: unknown) => e instanceof ExtensionsError && e.kind === 'invalid');
  assert.throws(() => ext.add('102', { password: 'a\u0000b' }), (e: unknown) => e instanceof ExtensionsError && e.kind === 'invalid');
  assert.deepEqual(ext.list(), [
    { number: '100', displayName: 'Alice', allow: [] },
    { number: '101', displayName: '', allow: [] },
  ]);
});

test('setPassword rehashes with the current realm; remove; unknown number is not-found', (t) => {
  const { store } = setup(t);
  new Extensions(store, 'old-realm').add('100', { password: 'one' });
  const ext = new Extensions(store, 'new-realm');
  assert.deepEqual(ext.staleRealm(), ['100']);
  assert.equal(ext.setPassword('100', 'two'), 'two');
  assertPasswordMatches(store, '100', 'new-realm', 'two');
  assert.deepEqual(ext.staleRealm(), []);
  const generated = ext.setPassword('100');
  assertPasswordMatches(store, '100', 'new-realm', generated);
  assert.throws(() => ext.setPassword('999', 'x'), (e: unknown) => e instanceof ExtensionsError && e.kind === 'not-found');
  assert.equal(ext.remove('100'), true);
  assert.equal(ext.remove('100'), false);
});

test('importFile: number:password[:Display Name], comments, blanks, CRLF; bad lines reported with line numbers', (t) => {
  const { store, dir } = setup(t);
  const file = join(dir, 'users.txt');
  writeFileSync(
    file,
    [
      '\uFEFF# provisioning list', // 1
      '1000:pw1000', // 2
      '', // 3
      '1001:pw1001:Front Desk: Lobby', // 4
      'no-colon-here', // 5
      'bad number:pw', // 6
      '1002:', // 7
      '1000:again', // 8 duplicate of line 2
      '   1003:pw1003  \r', // 9
    ].join('\n'),
  );
  const ext = new Extensions(store, 'r');
  const result = ext.importFile(file);
  assert.deepEqual({ ...result, errors: result.errors.map((e) => e.line) }, { added: 3, replaced: 0, skipped: 0, errors: [5, 6, 7, 8] });
  assert.match(result.errors[3]!.message, /line 2/);
  assertPasswordMatches(store, '1000', 'r', 'pw1000');
  assertPasswordMatches(store, '1003', 'r', 'pw1003');
  assert.equal(store.getExtension('1001')?.displayName, 'Front Desk: Lobby');

  writeFileSync(file, '1000:changed\n1004:pw1004\n');
  assert.deepEqual(ext.importFile(file), { added: 1, replaced: 0, skipped: 1, errors: [] });
  assertPasswordMatches(store, '1000', 'r', 'pw1000');
  assert.deepEqual(ext.importFile(file, { replace: true }), { added: 0, replaced: 2, skipped: 0, errors: [] });
  assertPasswordMatches(store, '1000', 'r', 'changed');

  assert.throws(() => ext.importFile(join(dir, 'missing.txt')), (e: unknown) => e instanceof ExtensionsError && e.kind === 'file' && /missing\.txt/.test(e.message));
});

test('importFile: 10,000 lines as gen-users.sh writes them, in about a second', (t) => {
  const { store, dir } = setup(t);
  const file = join(dir, 'users.txt');
  let text = '';
  for (let i = 0; i < 10_000; i++) text += `${1000 + i}:pw${1000 + i}\n`;
  writeFileSync(file, text);
  const start = process.hrtime.bigint();
  const result = new Extensions(store, '127.0.0.1').importFile(file);
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  assert.deepEqual(result, { added: 10_000, replaced: 0, skipped: 0, errors: [] });
  assert.equal(store.countExtensions(), 10_000);
  assertPasswordMatches(store, '10999', '127.0.0.1', 'pw10999');
  assert.ok(ms < 3000, `import took ${ms} ms`);
});

test('ensureDefaults: first start creates 100..104 once; never again, even after they are removed', async (t) => {
  const { store } = setup(t);
  const ext = new Extensions(store, 'r');
  const created = await ext.ensureDefaults();
  assert.ok(created);
  assert.deepEqual(created.map((c) => c.number), ['100', '101', '102', '103', '104']);
  for (const c of created) assertPasswordMatches(store, c.number, 'r', c.password);
  assert.equal(new Set(created.map((c) => c.password)).size, 5);
  assert.equal(await ext.ensureDefaults(), null);
  for (const c of created) ext.remove(c.number);
  assert.equal(await ext.ensureDefaults(), null);
  assert.equal(store.countExtensions(), 0);
});

test('ensureDefaults does nothing when extensions already exist', async (t) => {
  const { store } = setup(t);
  const ext = new Extensions(store, 'r');
  ext.add('7', { password: 'x' });
  assert.equal(await ext.ensureDefaults(), null);
  assert.deepEqual(ext.list().map((e) => e.number), ['7']);
});
