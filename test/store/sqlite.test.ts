import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openSqliteStore, DATABASE_FILE_NAME } from '../../lib/store/sqlite.js';
import { LATEST_SCHEMA_VERSION } from '../../lib/store/migrations.js';
import { ExtensionExistsError, StoreOpenError, type BindingRecord, type ExtensionRecord } from '../../lib/store/store.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'mss-store-'));
}

function ext(number: string, extra: Partial<ExtensionRecord> = {}): ExtensionRecord {
  return { number, displayName: `User ${number}`, realm: 'pbx', ha1Md5: 'a'.repeat(32), ha1Sha256: 'b'.repeat(64), createdAt: 1000, allow: [], ...extra };
}

function binding(aor: string, contact: string, expiresAt: number, extra: Partial<BindingRecord> = {}): BindingRecord {
  return {
    aor, contact, contactHeader: `<${contact}>;expires=3600`, expiresAt, callId: 'cid-1', cseq: 1,
    transport: 'udp', sourceAddress: '192.0.2.1', sourcePort: 5060, updatedAt: 500, ...extra,
  };
}

test('extensions: add, get, list, count, update, remove; duplicate add throws ExtensionExistsError', (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = openSqliteStore(join(dir, 'nested', 'data'));
  t.after(() => store.close());
  assert.equal(store.countExtensions(), 0);
  store.addExtension(ext('101'));
  store.addExtension(ext('100', { displayName: 'Alice' }));
  assert.throws(() => store.addExtension(ext('100')), (e: unknown) => e instanceof ExtensionExistsError && e.number === '100');
  assert.equal(store.countExtensions(), 2);
  assert.deepEqual(store.getExtension('100'), ext('100', { displayName: 'Alice' }));
  assert.equal(store.getExtension('999'), undefined);
  assert.deepEqual(store.listExtensions().map((e) => e.number), ['100', '101']);

  assert.equal(store.updateExtension('100', { ha1Md5: 'c'.repeat(32), number: 'ignored' }), true);
  assert.equal(store.getExtension('100')?.ha1Md5, 'c'.repeat(32));
  assert.equal(store.getExtension('100')?.displayName, 'Alice', 'fields not in the patch are kept');
  assert.equal(store.getExtension('ignored'), undefined);
  assert.equal(store.updateExtension('nope', { displayName: 'x' }), false);

  assert.equal(store.removeExtension('100'), true);
  assert.equal(store.removeExtension('100'), false);
  assert.equal(store.countExtensions(), 1);
  assert.ok(existsSync(join(dir, 'nested', 'data', DATABASE_FILE_NAME)));
});

test('removing an extension removes its bindings and only its bindings', (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = openSqliteStore(dir);
  t.after(() => store.close());
  store.importExtensions([ext('100'), ext('1*'), ext('1000')], 'skip-existing');
  store.saveBindings(
    [
      binding('100', 'sip:100@192.0.2.1', 10_000),
      binding('sip:100@pbx', 'sip:100@192.0.2.2', 10_000),
      binding('1000', 'sip:1000@192.0.2.3', 10_000),
      binding('sip:1000@pbx', 'sip:1000@192.0.2.4', 10_000),
    ],
    [],
  );
  store.removeExtension('1*'); // a glob-looking number must match only itself
  assert.equal(store.loadBindings(0).length, 4);
  store.removeExtension('100');
  assert.deepEqual(store.loadBindings(0).map((b) => b.aor).sort(), ['1000', 'sip:1000@pbx']);
});

test('import of 10,000 extensions in one transaction, skip-existing and replace', (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = openSqliteStore(dir);
  t.after(() => store.close());
  store.addExtension(ext('5000', { displayName: 'Old', createdAt: 42 }));
  const recs = Array.from({ length: 10_000 }, (_, i) => ext(String(1000 + i), { createdAt: 2000 }));
  const start = Date.now();
  assert.deepEqual(store.importExtensions(recs, 'skip-existing'), { added: 9_999, replaced: 0, skipped: 1 });
  assert.ok(Date.now() - start < 5000);
  assert.equal(store.countExtensions(), 10_000);
  assert.equal(store.getExtension('5000')?.displayName, 'Old');

  const again = store.importExtensions([ext('5000', { displayName: 'New', createdAt: 3000 }), ext('99999')], 'replace');
  assert.deepEqual(again, { added: 1, replaced: 1, skipped: 0 });
  assert.equal(store.getExtension('5000')?.displayName, 'New');
  assert.equal(store.getExtension('5000')?.createdAt, 42, 'replace keeps the original creation time');
});

test('a failing import leaves nothing behind (one transaction)', (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = openSqliteStore(dir);
  t.after(() => store.close());
  const bad = { ...ext('201'), realm: null } as unknown as ExtensionRecord; // violates NOT NULL
  assert.throws(() => store.importExtensions([ext('200'), bad], 'skip-existing'));
  assert.equal(store.countExtensions(), 0);
});

test('bindings and meta survive close and reopen; expired bindings are not loaded and can be purged', (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const full = binding('100', 'sip:100@192.0.2.1:5062;transport=tcp', 20_000, {
    q: 0.5, instanceId: '<urn:uuid:00000000-0000-1000-8000-000000000001>', regId: 1, transport: 'tcp',
    localAddress: '192.0.2.10', localPort: 5060, userAgent: 'Phone/1.0',
  });
  const expired = binding('101', 'sip:101@192.0.2.5', 9_000);
  {
    const store = openSqliteStore(dir);
    store.saveBindings([full, expired, binding('102', 'sip:102@192.0.2.6', 20_000)], []);
    store.saveBindings([{ ...full, cseq: 7, expiresAt: 30_000 }], [{ aor: '102', contact: 'sip:102@192.0.2.6' }]);
    store.setMeta('realm', 'pbx.example');
    store.setMeta('realm', 'pbx.example.org');
    store.close();
  }
  const store = openSqliteStore(dir);
  t.after(() => store.close());
  const loaded = store.loadBindings(10_000);
  assert.deepEqual(loaded, [{ ...full, cseq: 7, expiresAt: 30_000 }]);
  assert.equal(store.getMeta('realm'), 'pbx.example.org');
  assert.equal(store.getMeta('missing'), undefined);
  assert.equal(store.purgeExpiredBindings(10_000), 1);
  assert.equal(store.loadBindings(0).length, 1);
  const optionalAbsent = binding('103', 'sip:103@192.0.2.7', 40_000);
  store.saveBindings([optionalAbsent], []);
  assert.deepEqual(store.loadBindings(10_000).find((b) => b.aor === '103'), optionalAbsent);
});

test('a corrupt database file gives a clear error naming the file, and is left untouched', (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, DATABASE_FILE_NAME);
  const garbage = Buffer.from('this is not a database, it is a shopping list: milk, eggs, 5060\n'.repeat(200));
  writeFileSync(file, garbage);
  assert.throws(
    () => openSqliteStore(dir),
    (e: unknown) =>
      e instanceof StoreOpenError && e.file === file && e.message.includes(file) && /backup/.test(e.message) && /untouched/.test(e.message),
  );
  assert.deepEqual(readFileSync(file), garbage);
  assert.deepEqual(readdirSync(dir).sort(), [DATABASE_FILE_NAME], 'no journal or new file created beside it');
});

test('a database from a newer schema version is refused, not downgraded', (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  openSqliteStore(dir).close();
  const db = new Database(join(dir, DATABASE_FILE_NAME));
  db.prepare('UPDATE schema_version SET version = 999').run();
  db.close();
  assert.throws(() => openSqliteStore(dir), (e: unknown) => e instanceof StoreOpenError && /newer/.test(e.message) && e.message.includes(dir));
});

test('reopening an up-to-date database runs no migration and keeps data; WAL mode is on', (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const first = openSqliteStore(dir);
  first.addExtension(ext('100'));
  first.close();
  const second = openSqliteStore(dir);
  assert.equal(second.countExtensions(), 1);
  second.close();
  const db = new Database(join(dir, DATABASE_FILE_NAME), { readonly: true });
  t.after(() => db.close());
  assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  assert.deepEqual(db.prepare('SELECT version FROM schema_version').all(), [{ version: LATEST_SCHEMA_VERSION }]);
});

test('granted classes (allow) round-trip through add, update, get, list and import; replace keeps them', (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = openSqliteStore(dir);
  t.after(() => store.close());
  store.addExtension(ext('100', { allow: ['international', 'mobile'] }));
  store.addExtension(ext('101'));
  assert.deepEqual(store.getExtension('100')?.allow, ['international', 'mobile']);
  assert.deepEqual(store.getExtension('101')?.allow, []);

  assert.equal(store.updateExtension('101', { allow: ['premium'] }), true);
  assert.equal(store.updateExtension('100', { allow: [] }), true);
  assert.deepEqual(store.listExtensions().map((e) => [e.number, e.allow]), [['100', []], ['101', ['premium']]]);
  assert.equal(store.updateExtension('101', { displayName: 'Renamed' }), true);
  assert.deepEqual(store.getExtension('101')?.allow, ['premium'], 'a patch without allow keeps it');

  const counts = store.importExtensions([ext('101', { displayName: 'Imported' }), ext('102', { allow: ['mobile'] })], 'replace');
  assert.deepEqual(counts, { added: 1, replaced: 1, skipped: 0 });
  assert.deepEqual(store.getExtension('101'), ext('101', { displayName: 'Imported', allow: ['premium'] }));
  assert.deepEqual(store.getExtension('102')?.allow, ['mobile']);
});

/** Migration 1 exactly as released: the schema of a database written before migration 2. */
const SCHEMA_V1 = `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
  CREATE TABLE extensions (
    number       TEXT PRIMARY KEY,
    display_name TEXT NOT NULL DEFAULT '',
    realm        TEXT NOT NULL,
    ha1_md5      TEXT NOT NULL,
    ha1_sha256   TEXT NOT NULL,
    created_at   INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE bindings (
    aor TEXT NOT NULL, contact TEXT NOT NULL, contact_header TEXT NOT NULL, expires_at INTEGER NOT NULL,
    call_id TEXT NOT NULL, cseq INTEGER NOT NULL, q REAL, instance_id TEXT, reg_id INTEGER, transport TEXT NOT NULL,
    source_address TEXT NOT NULL, source_port INTEGER NOT NULL, local_address TEXT, local_port INTEGER,
    user_agent TEXT, updated_at INTEGER NOT NULL, PRIMARY KEY (aor, contact)
  );
  CREATE INDEX bindings_expires_at ON bindings (expires_at);
  CREATE TABLE schema_version (version INTEGER NOT NULL);
  INSERT INTO schema_version (version) VALUES (1);`;

test('a version-1 database file is upgraded in place: rows kept, every extension allowed no classes', (t) => {
  const dir = tempDir();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const old = new Database(join(dir, DATABASE_FILE_NAME));
  old.exec(SCHEMA_V1);
  const insert = old.prepare(
    `INSERT INTO extensions (number, display_name, realm, ha1_md5, ha1_sha256, created_at) VALUES (?, ?, 'pbx', ?, ?, 1000)`,
  );
  insert.run('100', 'Alice', 'a'.repeat(32), 'b'.repeat(64));
  insert.run('101', 'User 101', 'a'.repeat(32), 'b'.repeat(64));
  old.prepare(`INSERT INTO meta (key, value) VALUES ('realm', 'pbx')`).run();
  const kept = binding('100', 'sip:100@192.0.2.1', 50_000);
  old
    .prepare(
      `INSERT INTO bindings (aor, contact, contact_header, expires_at, call_id, cseq, transport, source_address, source_port, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    .run(kept.aor, kept.contact, kept.contactHeader, kept.expiresAt, kept.callId, kept.cseq, kept.transport, kept.sourceAddress, kept.sourcePort, kept.updatedAt);
  old.close();

  const store = openSqliteStore(dir);
  assert.deepEqual(store.listExtensions(), [ext('100', { displayName: 'Alice' }), ext('101')]);
  assert.equal(store.getMeta('realm'), 'pbx');
  assert.deepEqual(store.loadBindings(0), [kept]);
  assert.equal(store.updateExtension('100', { allow: ['international'] }), true);
  store.close();

  const reopened = openSqliteStore(dir);
  t.after(() => reopened.close());
  assert.deepEqual(reopened.getExtension('100')?.allow, ['international']);
  const db = new Database(join(dir, DATABASE_FILE_NAME), { readonly: true });
  t.after(() => db.close());
  assert.deepEqual(db.prepare('SELECT version FROM schema_version').all(), [{ version: LATEST_SCHEMA_VERSION }]);
});
