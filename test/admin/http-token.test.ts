/**
 * The admin token file (<data dir>/admin.token: created 0600, kept, repaired) and the address
 * file that `minisipserver status --data-dir` reads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateToken, readAdminAddress, removeAdminAddress, writeAdminAddress } from '../../lib/admin/token.js';

const posix = process.platform !== 'win32';

function dataDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mss-admin-token-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

type Line = { level: string; event: string; fields: Record<string, unknown> };

test('the token is created once: 32 random bytes in hex, mode 0600, the same at every later start', (t) => {
  const dir = join(dataDir(t), 'not-yet');
  const logs: Line[] = [];
  const token = loadOrCreateToken(dir, (level, event, fields) => logs.push({ level, event, fields }));
  assert.match(token, /^[0-9a-f]{64}$/);
  const file = join(dir, 'admin.token');
  assert.equal(readFileSync(file, 'utf8'), token + '\n');
  if (posix) assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.deepEqual(logs.map((l) => l.event), ['admin.token_created']);
  assert.ok(!JSON.stringify(logs).includes(token), 'never logged');
  assert.equal(loadOrCreateToken(dir), token);
  assert.notEqual(loadOrCreateToken(dataDir(t)), token, 'another data dir, another token');
  assert.deepEqual(readdirSync(dir).sort(), ['admin.token'], 'no temporary file left behind');
});

test('a token file others can read is made 0600 with a warning; one an operator wrote is kept', { skip: !posix && 'POSIX modes' }, (t) => {
  const dir = dataDir(t);
  const file = join(dir, 'admin.token');
  writeFileSync(file, '  my-own-token-of-some-length  \n', { mode: 0o644 });
  chmodSync(file, 0o644);
  const logs: Line[] = [];
  assert.equal(loadOrCreateToken(dir, (level, event, fields) => logs.push({ level, event, fields })), 'my-own-token-of-some-length');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(logs.length, 1);
  assert.equal(logs[0]!.level, 'warn');
  assert.equal(logs[0]!.event, 'admin.token_mode_fixed');
  assert.equal(logs[0]!.fields.was, '0644');
  assert.ok(!JSON.stringify(logs).includes('my-own-token'));
});

test('a token file with no usable token is replaced with a warning; a symbolic link is refused', (t) => {
  const dir = dataDir(t);
  const file = join(dir, 'admin.token');
  for (const bad of ['', '\n', 'short', 'has spaces in the middle of it', Buffer.from([0, 1, 2, 200, 201, 202, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13])]) {
    writeFileSync(file, bad, { mode: 0o600 });
    const logs: Line[] = [];
    const token = loadOrCreateToken(dir, (level, event, fields) => logs.push({ level, event, fields }));
    assert.match(token, /^[0-9a-f]{64}$/);
    assert.equal(readFileSync(file, 'utf8'), token + '\n');
    assert.deepEqual(logs.map((l) => `${l.level} ${l.event}`), ['warn admin.token_replaced']);
    if (posix) assert.equal(statSync(file).mode & 0o777, 0o600);
  }
  if (posix) {
    const other = dataDir(t);
    writeFileSync(join(other, 'elsewhere'), 'a'.repeat(64));
    symlinkSync(join(other, 'elsewhere'), join(other, 'admin.token'));
    assert.throws(() => loadOrCreateToken(other), /admin token file/);
  }
});

test('the address file: one line with the URL, read back, removed only while it still names this server', (t) => {
  const dir = dataDir(t);
  assert.equal(readAdminAddress(dir), null);
  writeAdminAddress(dir, 'http://127.0.0.1:8080');
  assert.equal(readFileSync(join(dir, 'admin.address'), 'utf8'), 'http://127.0.0.1:8080\n');
  assert.equal(readAdminAddress(dir), 'http://127.0.0.1:8080');
  removeAdminAddress(dir, 'http://127.0.0.1:9999');
  assert.ok(existsSync(join(dir, 'admin.address')), 'another server wrote it: kept');
  removeAdminAddress(dir, 'http://127.0.0.1:8080');
  assert.ok(!existsSync(join(dir, 'admin.address')));
  removeAdminAddress(dir); // nothing there: no error
  writeAdminAddress(dir, 'http://[::1]:8080');
  assert.equal(readAdminAddress(dir), 'http://[::1]:8080');
  removeAdminAddress(dir);
  assert.equal(readAdminAddress(dir), null);
  writeFileSync(join(dir, 'admin.address'), 'garbage\n');
  assert.equal(readAdminAddress(dir), null);
});
