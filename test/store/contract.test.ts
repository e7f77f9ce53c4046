/**
 * One contract for every Store: the same cases and assertions against SQLite and against
 * MariaDB (a private mariadbd, test/helpers/mariadb-server.ts; skipped with the reason when it is
 * not installed). Then what only the MariaDB store has: migrations from each earlier version,
 * and several servers sharing one database.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../lib/store/sqlite.js';
import { openMariaDbStore } from '../../lib/store/mariadb.js';
import { connectMariaDb } from '../../lib/store/mariadb-connect.js';
import { LATEST_MARIADB_SCHEMA_VERSION, migrateMariaDb } from '../../lib/store/mariadb-migrations.js';
import { LATEST_SCHEMA_VERSION } from '../../lib/store/migrations.js';
import { ExtensionExistsError, StoreBusyError, StoreOpenError, type BindingRecord, type ExtensionRecord, type Store } from '../../lib/store/store.js';
import { Logger } from '../../lib/log.js';
import { Extensions } from '../../lib/pbx/extensions.js';
import { computeHA1 } from '../../lib/sip/digest.js';
import { mariaDbSkipReason, startMariaDb, type MariaDbServer } from '../helpers/mariadb-server.js';

function ext(number: string, extra: Partial<ExtensionRecord> = {}): ExtensionRecord {
  return { number, displayName: `User ${number}`, realm: 'pbx', ha1Md5: 'a'.repeat(32), ha1Sha256: 'b'.repeat(64), createdAt: 1000, allow: [], ...extra };
}

function binding(aor: string, contact: string, expiresAt: number, extra: Partial<BindingRecord> = {}): BindingRecord {
  return {
    aor, contact, contactHeader: `<${contact}>`, expiresAt, callId: 'cid-1', cseq: 1,
    transport: 'udp', sourceAddress: '192.0.2.1', sourcePort: 5060, updatedAt: 500, ...extra,
  };
}

const FULL_BINDING = binding('100', 'sip:100@192.0.2.1:5062;transport=tcp', 20_000, {
  q: 0.5, instanceId: '<urn:uuid:00000000-0000-1000-8000-000000000001>', regId: 1, transport: 'tcp',
  localAddress: '192.0.2.10', localPort: 5060, userAgent: 'Phone/1.0', path: ['<sip:p1.example.net;lr>', '<sip:p2.example.net;lr;ob>'],
});

/** Waits (bounded) until `check` holds; fails naming `what`. */
async function eventually(what: string, check: () => boolean, limitMs = 5000): Promise<void> {
  const deadline = Date.now() + limitMs;
  for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(check(), `timed out after ${limitMs} ms: ${what}`);
}

/** A place for one store's data: opens stores on it (several at once share it). */
interface Place {
  open(): Promise<Store>;
}

interface Backend {
  name: string;
  skip: string | false;
  /** A new empty place, removed after the test. */
  place(t: { after(fn: () => unknown): void }): Promise<Place>;
}

const logLines: string[] = [];
const logger = new Logger({ format: 'json', level: 'info', write: (l) => logLines.push(l) });

let server: MariaDbServer | null = null;
before(async () => {
  if (!mariaDbSkipReason) server = await startMariaDb();
});
after(async () => {
  await server?.destroy();
});

const backends: Backend[] = [
  {
    name: 'sqlite',
    skip: false,
    async place(t) {
      const dir = mkdtempSync(join(tmpdir(), 'mss-contract-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      return { open: async () => openSqliteStore(dir) };
    },
  },
  {
    name: 'mariadb',
    skip: mariaDbSkipReason,
    async place() {
      const database = await server!.createDatabase();
      return { open: () => openMariaDbStore({ settings: server!.settings(database), logger }) };
    },
  },
];

/** Opens a store closed after the test. */
async function opened(place: Place, t: { after(fn: () => unknown): void }): Promise<Store> {
  const store = await place.open();
  t.after(() => store.close());
  return store;
}

/** Saves, closes and opens again: what the database itself holds. */
async function reopen(store: Store, place: Place, t: { after(fn: () => unknown): void }): Promise<Store> {
  await store.flush();
  await store.close();
  return opened(place, t);
}

for (const backend of backends) {
  describe(`Store contract: ${backend.name}`, { skip: backend.skip }, () => {
    test('is available, and flush() resolves when there is nothing to write', async (t) => {
      const store = await opened(await backend.place(t), t);
      assert.equal(store.kind, backend.name);
      assert.equal(store.available, true);
      await store.flush();
    });

    test('extensions: add, get, list, count, update, remove; a duplicate add throws ExtensionExistsError at once', async (t) => {
      const place = await backend.place(t);
      let store = await opened(place, t);
      assert.equal(store.countExtensions(), 0);
      store.addExtension(ext('101'));
      store.addExtension(ext('100', { displayName: 'Alice', allow: ['international', 'mobile'] }));
      assert.throws(() => store.addExtension(ext('100')), (e: unknown) => e instanceof ExtensionExistsError && e.number === '100');
      assert.equal(store.countExtensions(), 2);
      assert.deepEqual(store.getExtension('100'), ext('100', { displayName: 'Alice', allow: ['international', 'mobile'] }));
      assert.equal(store.getExtension('999'), undefined);
      assert.deepEqual(store.listExtensions().map((e) => e.number), ['100', '101']);

      assert.equal(store.updateExtension('100', { ha1Md5: 'c'.repeat(32), number: 'ignored' }), true);
      assert.equal(store.getExtension('100')?.ha1Md5, 'c'.repeat(32));
      assert.equal(store.getExtension('100')?.displayName, 'Alice', 'fields not in the patch are kept');
      assert.deepEqual(store.getExtension('100')?.allow, ['international', 'mobile']);
      assert.equal(store.getExtension('ignored'), undefined);
      assert.equal(store.updateExtension('nope', { displayName: 'x' }), false);
      assert.equal(store.updateExtension('101', { allow: ['premium'] }), true);

      store = await reopen(store, place, t);
      assert.deepEqual(store.listExtensions(), [
        ext('100', { displayName: 'Alice', ha1Md5: 'c'.repeat(32), allow: ['international', 'mobile'] }),
        ext('101', { allow: ['premium'] }),
      ]);
      assert.equal(store.removeExtension('100'), true);
      assert.equal(store.removeExtension('100'), false);
      store = await reopen(store, place, t);
      assert.equal(store.countExtensions(), 1);
      assert.equal(store.getExtension('100'), undefined);
    });

    test('removing an extension removes its bindings and only its bindings (numbers with wildcard characters match themselves)', async (t) => {
      const place = await backend.place(t);
      let store = await opened(place, t);
      store.importExtensions([ext('100'), ext('1*'), ext('1_0'), ext('1000')], 'skip-existing');
      store.saveBindings(
        [
          binding('100', 'sip:100@192.0.2.1', 10_000),
          binding('sip:100@pbx', 'sip:100@192.0.2.2', 10_000),
          binding('sips:100@pbx', 'sip:100@192.0.2.9', 10_000),
          binding('1000', 'sip:1000@192.0.2.3', 10_000),
          binding('sip:1000@pbx', 'sip:1000@192.0.2.4', 10_000),
          binding('1x0', 'sip:1x0@192.0.2.5', 10_000),
        ],
        [],
      );
      store.removeExtension('1*');
      store.removeExtension('1_0');
      assert.equal(store.loadBindings(0).length, 6);
      store.removeExtension('100');
      const left = ['1000', '1x0', 'sip:1000@pbx'];
      assert.deepEqual(store.loadBindings(0).map((b) => b.aor).sort(), left);
      store = await reopen(store, place, t);
      assert.deepEqual(store.loadBindings(0).map((b) => b.aor).sort(), left, 'the database removed the same rows');
      assert.deepEqual(store.listExtensions().map((e) => e.number), ['1000']);
    });

    test('import: skip-existing and replace (which keeps creation time and granted classes)', async (t) => {
      const place = await backend.place(t);
      let store = await opened(place, t);
      store.addExtension(ext('5000', { displayName: 'Old', createdAt: 42, allow: ['mobile'] }));
      const recs = Array.from({ length: 2000 }, (_, i) => ext(String(4000 + i), { createdAt: 2000 }));
      assert.deepEqual(store.importExtensions(recs, 'skip-existing'), { added: 1999, replaced: 0, skipped: 1 });
      assert.equal(store.countExtensions(), 2000);
      assert.equal(store.getExtension('5000')?.displayName, 'Old');
      const again = store.importExtensions([ext('5000', { displayName: 'New', createdAt: 3000 }), ext('99999', { allow: ['premium'] })], 'replace');
      assert.deepEqual(again, { added: 1, replaced: 1, skipped: 0 });
      assert.deepEqual(store.getExtension('5000'), ext('5000', { displayName: 'New', createdAt: 42, allow: ['mobile'] }));
      store = await reopen(store, place, t);
      assert.equal(store.countExtensions(), 2001);
      assert.deepEqual(store.getExtension('5000'), ext('5000', { displayName: 'New', createdAt: 42, allow: ['mobile'] }));
      assert.deepEqual(store.getExtension('99999')?.allow, ['premium']);
    });

    test('a bad record in an import changes nothing', async (t) => {
      const store = await opened(await backend.place(t), t);
      const bad = { ...ext('201'), realm: null } as unknown as ExtensionRecord;
      assert.throws(() => store.importExtensions([ext('200'), bad], 'skip-existing'));
      assert.equal(store.countExtensions(), 0);
    });

    test('bindings: upsert, delete, live ones by time and by AOR, count, purge; every field round-trips', async (t) => {
      const place = await backend.place(t);
      let store = await opened(place, t);
      const expired = binding('101', 'sip:101@192.0.2.5', 9_000);
      const absent = binding('103', 'sip:103@192.0.2.7', 40_000);
      store.saveBindings([FULL_BINDING, expired, binding('102', 'sip:102@192.0.2.6', 20_000), absent], []);
      store.saveBindings([{ ...FULL_BINDING, cseq: 7, expiresAt: 30_000 }], [{ aor: '102', contact: 'sip:102@192.0.2.6' }]);
      store.saveBindings([], []);
      const check = (s: Store) => {
        const live = s.loadBindings(10_000).sort((a, b) => a.aor.localeCompare(b.aor));
        assert.deepEqual(live, [{ ...FULL_BINDING, cseq: 7, expiresAt: 30_000 }, absent]);
        assert.deepEqual(s.loadBindingsOf('100', 10_000), [{ ...FULL_BINDING, cseq: 7, expiresAt: 30_000 }]);
        assert.deepEqual(s.loadBindingsOf('100', 30_000), []);
        assert.deepEqual(s.loadBindingsOf('nobody', 0), []);
        assert.equal(s.countRegistered(10_000), 2);
        assert.equal(s.countRegistered(35_000), 1);
      };
      check(store);
      assert.equal(store.loadBindings(0).length, 3);
      store = await reopen(store, place, t);
      check(store);
      assert.equal(store.purgeExpiredBindings(25_000), 1);
      assert.equal(store.purgeExpiredBindings(35_000), 1);
      assert.deepEqual(store.loadBindings(0), [absent]);
    });

    test('bans: saved with growing seqs, listed in force latest-ending first, read since a seq, purged', async (t) => {
      const place = await backend.place(t);
      let store = await opened(place, t);
      const base = { reason: 'auth', offences: 1, createdAt: 100, manual: false, removed: false };
      assert.equal(store.lastBanSeq(), 0);
      const s1 = store.saveBan({ ...base, address: '192.0.2.1', expiresAt: 5_000 });
      const s2 = store.saveBan({ ...base, address: '2001:db8::1', expiresAt: 9_000, manual: true, reason: 'manual' });
      const s3 = store.saveBan({ ...base, address: '192.0.2.3', expiresAt: 1_000 });
      assert.ok(s1 < s2 && s2 < s3);
      assert.equal(store.lastBanSeq(), s3);
      const s4 = store.saveBan({ ...base, address: '192.0.2.1', expiresAt: 7_000, offences: 2 });
      assert.ok(s4 > s3, 'a changed row takes a new seq');
      assert.deepEqual(store.getBan('192.0.2.1'), { ...base, address: '192.0.2.1', expiresAt: 7_000, offences: 2, seq: s4 });
      assert.equal(store.getBan('198.51.100.1'), undefined);
      assert.deepEqual(store.listBans(2_000).map((b) => b.address), ['2001:db8::1', '192.0.2.1']);
      assert.deepEqual(store.listBans(2_000, 1).map((b) => b.address), ['2001:db8::1']);
      assert.deepEqual(store.bansSince(s2, 10).map((b) => b.address), ['192.0.2.3', '192.0.2.1']);
      assert.deepEqual(store.bansSince(0, 2).map((b) => b.seq), [s2, s3]);
      store.saveBan({ ...base, address: '2001:db8::1', expiresAt: 2_500, removed: true, manual: true, reason: 'manual' });
      assert.deepEqual(store.listBans(2_000).map((b) => b.address), ['192.0.2.1']);
      assert.equal(store.getBan('2001:db8::1')?.removed, true);
      store = await reopen(store, place, t);
      assert.deepEqual(store.listBans(2_000).map((b) => [b.address, b.expiresAt, b.offences, b.manual]), [['192.0.2.1', 7_000, 2, false]]);
      assert.equal(store.getBan('2001:db8::1')?.removed, true);
      assert.equal(store.bansSince(0, 10).length, 3);
      assert.equal(store.purgeBans(2_000), 1, 'the row that ended at 1,000');
      assert.equal(store.getBan('192.0.2.3'), undefined);
      store = await reopen(store, place, t);
      assert.equal(store.getBan('192.0.2.3'), undefined, 'purged in the database too');
      assert.equal(store.bansSince(0, 10).length, 2);
    });

    test('meta: set, overwrite, read back; missing keys are undefined', async (t) => {
      const place = await backend.place(t);
      let store = await opened(place, t);
      store.setMeta('realm', 'pbx.example');
      store.setMeta('realm', 'pbx.example.org');
      store.setMeta('secret', 'f'.repeat(64));
      assert.equal(store.getMeta('realm'), 'pbx.example.org');
      store = await reopen(store, place, t);
      assert.equal(store.getMeta('realm'), 'pbx.example.org');
      assert.equal(store.getMeta('secret'), 'f'.repeat(64));
      assert.equal(store.getMeta('missing'), undefined);
    });

    test('claimMeta: the first value claimed stays; a later claim gets it back; a fresh store has a nonce secret', async (t) => {
      const place = await backend.place(t);
      const a = await opened(place, t);
      const b = await opened(place, t);
      assert.match(a.getMeta('secret') ?? '', /^[0-9a-f]{64}$/);
      assert.equal(b.getMeta('secret'), a.getMeta('secret'), 'one nonce secret for both');
      assert.equal(await a.claimMeta('first', 'from-a'), 'from-a');
      assert.equal(await b.claimMeta('first', 'from-b'), 'from-a');
      assert.equal(b.getMeta('first'), 'from-a');
      assert.equal(a.getMeta('first'), 'from-a');
      const c = await reopen(a, place, t);
      assert.equal(c.getMeta('first'), 'from-a');
    });

    test('two stores on the same data: writes and deletes of one reach the other, whose dataVersion changes', async (t) => {
      const place = await backend.place(t);
      const a = await opened(place, t);
      const b = await opened(place, t);
      const v0 = b.dataVersion();
      a.addExtension(ext('300', { displayName: 'Carol' }));
      a.saveBindings([FULL_BINDING], []);
      a.saveBan({ address: '203.0.113.9', expiresAt: Date.now() + 60_000, reason: 'manual', offences: 1, createdAt: 1, manual: true, removed: false });
      a.setMeta('k', 'v');
      await a.flush();
      await eventually('the extension, binding, ban and meta written by one store are seen by the other', () =>
        b.getExtension('300')?.displayName === 'Carol' && b.loadBindingsOf('100', 0).length === 1 && b.getBan('203.0.113.9') !== undefined && b.getMeta('k') === 'v',
      );
      assert.notEqual(b.dataVersion(), v0, 'dataVersion changed');
      assert.deepEqual(b.loadBindingsOf('100', 0), [FULL_BINDING]);
      const seq = b.lastBanSeq();
      assert.ok(b.bansSince(0, 10).some((r) => r.address === '203.0.113.9' && r.seq <= seq));

      const v1 = b.dataVersion();
      a.saveBindings([], [{ aor: '100', contact: FULL_BINDING.contact }]);
      a.updateExtension('300', { displayName: 'Caroline' });
      await a.flush();
      await eventually('a deleted binding and a changed extension reach the other store', () => b.loadBindingsOf('100', 0).length === 0 && b.getExtension('300')?.displayName === 'Caroline');
      assert.notEqual(b.dataVersion(), v1);
      a.removeExtension('300');
      await a.flush();
      await eventually('a removed extension is gone from the other store', () => b.getExtension('300') === undefined);
      b.addExtension(ext('301'));
      await b.flush();
      await eventually('and the other way round', () => a.getExtension('301') !== undefined);
    });
  });
}

describe('MariaDB store only', { skip: mariaDbSkipReason }, () => {
  test('migrations from an empty database, under the lock: two servers opening at once both succeed', async () => {
    const database = await server!.createDatabase();
    const [a, b] = await Promise.all([openMariaDbStore({ settings: server!.settings(database), logger }), openMariaDbStore({ settings: server!.settings(database), logger })]);
    await a.close();
    await b.close();
    const rows = await server!.query<Array<{ version: number }>>(`SELECT version FROM ${database}.schema_version`);
    assert.deepEqual(rows.map((r) => Number(r.version)), [LATEST_MARIADB_SCHEMA_VERSION]);
    assert.equal(LATEST_MARIADB_SCHEMA_VERSION, LATEST_SCHEMA_VERSION, 'both back ends have the same schema versions');
  });

  // A row written by each earlier version must come through every later migration.
  const rowAtVersion: Record<number, string[]> = {
    1: [
      "INSERT INTO extensions (number, display_name, realm, ha1_md5, ha1_sha256, created_at) VALUES ('100', 'Alice', 'pbx', REPEAT('a', 32), REPEAT('b', 64), 1000)",
      "INSERT INTO bindings (aor, contact, contact_header, expires_at, call_id, cseq, transport, source_address, source_port, updated_at) VALUES ('100', 'sip:100@192.0.2.1', '<sip:100@192.0.2.1>', 9999999999999, 'c', 1, 'udp', '192.0.2.1', 5060, 1)",
      "INSERT INTO meta (`key`, value) VALUES ('realm', 'pbx')",
    ],
  };
  for (let k = 1; k < LATEST_MARIADB_SCHEMA_VERSION; k++) {
    test(`migration from version ${k}: a database left there by the first ${k} migrations, with rows, is brought up to date`, async () => {
      const database = await server!.createDatabase();
      const settings = server!.settings(database);
      const conn = await connectMariaDb(settings);
      try {
        assert.deepEqual(await migrateMariaDb(conn, database, k), { from: 0, to: k });
        for (const sql of rowAtVersion[1]!) await conn.query(sql);
        if (k >= 2) await conn.query("UPDATE extensions SET allow = 'mobile' WHERE number = '100'");
        if (k >= 3) await conn.query("INSERT INTO bans (address, expires_at, reason, offences, created_at) VALUES ('192.0.2.7', 9999999999999, 'auth', 1, 1)");
      } finally {
        await conn.end();
      }
      const store = await openMariaDbStore({ settings, logger });
      try {
        assert.deepEqual(store.getExtension('100'), ext('100', { displayName: 'Alice', allow: k >= 2 ? ['mobile'] : [] }));
        const [b] = store.loadBindingsOf('100', 0);
        assert.equal(b?.contact, 'sip:100@192.0.2.1');
        assert.equal(b?.path, undefined, 'no Path before migration 4');
        assert.equal(store.getMeta('realm'), 'pbx');
        if (k >= 3) assert.equal(store.getBan('192.0.2.7')?.reason, 'auth');
        store.saveBindings([{ ...FULL_BINDING, expiresAt: 9_999_999_999_999 }], []);
        await store.flush();
      } finally {
        await store.close();
      }
      const rows = await server!.query<Array<{ version: number }>>(`SELECT version FROM ${database}.schema_version`);
      assert.equal(Number(rows[0]?.version), LATEST_MARIADB_SCHEMA_VERSION);
    });
  }

  test('a database of a newer schema version is refused with a clear error', async () => {
    const database = await server!.createDatabase();
    await (await openMariaDbStore({ settings: server!.settings(database), logger })).close();
    await server!.query(`UPDATE ${database}.schema_version SET version = 999`);
    await assert.rejects(openMariaDbStore({ settings: server!.settings(database), logger }), (e: unknown) => e instanceof StoreOpenError && /newer/.test(e.message) && e.message.includes(database));
  });

  test('an unreachable server, a wrong password and a missing database are refused at open, naming where and what to check', async () => {
    const database = await server!.createDatabase();
    const gone = { ...server!.settings(database), socketPath: join(server!.dir, 'no-such.sock') };
    await assert.rejects(openMariaDbStore({ settings: gone, logger }), (e: unknown) => e instanceof StoreOpenError && e.message.includes('no-such.sock') && /MariaDB runs/.test(e.message));
    const noFile = { ...server!.settings(database), passwordFile: join(server!.dir, 'missing-password') };
    await assert.rejects(openMariaDbStore({ settings: noFile, logger }), (e: unknown) => e instanceof StoreOpenError && /passwordFile/.test(e.message));
    const noDb = server!.settings('mss_missing');
    await assert.rejects(openMariaDbStore({ settings: noDb, logger }), (e: unknown) => e instanceof StoreOpenError && e.message.includes('mss_missing'));
  });

  test('first start of two servers together on an empty database: one nonce secret, one set of default extensions', async () => {
    const database = await server!.createDatabase();
    const open = () => openMariaDbStore({ settings: server!.settings(database), logger });
    const [a, b] = await Promise.all([open(), open()]);
    try {
      const secret = a.getMeta('secret');
      assert.match(secret ?? '', /^[0-9a-f]{64}$/);
      assert.equal(b.getMeta('secret'), secret, 'both servers sign nonces with the same secret');
      const rows = await server!.query<Array<{ value: string }>>(`SELECT value FROM ${database}.meta WHERE \`key\` = 'secret'`);
      assert.deepEqual(rows.map((r) => r.value), [secret]);

      const [createdA, createdB] = await Promise.all([new Extensions(a, 'pbx').ensureDefaults(), new Extensions(b, 'pbx').ensureDefaults()]);
      const created = createdA ?? createdB;
      assert.ok(created, 'one of them created the defaults');
      assert.ok(createdA === null || createdB === null, 'only one of them created them');
      await a.flush();
      await b.flush();
      const ha1 = (store: Store) => store.listExtensions().map((e) => `${e.number}:${e.ha1Md5}`).join(' ');
      await eventually('both servers hold the five defaults', () => a.countExtensions() === 5 && b.countExtensions() === 5);
      assert.equal(ha1(a), ha1(b), 'the same records on both');
      for (const c of created) {
        assert.equal(a.getExtension(c.number)?.ha1Md5, computeHA1('MD5', c.number, 'pbx', c.password), `the password shown for ${c.number} is the one stored`);
      }
      const stored = await server!.query<Array<{ n: number }>>(`SELECT COUNT(*) AS n FROM ${database}.extensions`);
      assert.equal(Number(stored[0]!.n), 5);
      // A later start creates nothing.
      assert.equal(await new Extensions(b, 'pbx').ensureDefaults(), null);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('two servers adding the same number at once: the database keeps one, the other is told and corrected', async () => {
    const database = await server!.createDatabase();
    const a = await openMariaDbStore({ settings: server!.settings(database), logger });
    const b = await openMariaDbStore({ settings: server!.settings(database), logger });
    try {
      a.addExtension(ext('400', { displayName: 'From A' }));
      b.addExtension(ext('400', { displayName: 'From B' }));
      const results = await Promise.allSettled([a.flush(), b.flush()]);
      const rejected = results.filter((r) => r.status === 'rejected');
      assert.equal(rejected.length, 1, 'exactly one of the two adds lost');
      assert.ok((rejected[0] as PromiseRejectedResult).reason instanceof ExtensionExistsError);
      const rows = await server!.query<Array<{ display_name: string }>>(`SELECT display_name FROM ${database}.extensions WHERE number = '400'`);
      assert.equal(rows.length, 1);
      const winner = rows[0]!.display_name;
      await eventually('both servers hold the record the database kept', () => a.getExtension('400')?.displayName === winner && b.getExtension('400')?.displayName === winner);
      assert.ok(logLines.some((l) => l.includes('store.extension_conflict')));
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('a full queue refuses a write whole, changing nothing in memory', async () => {
    const database = await server!.createDatabase();
    const store = await openMariaDbStore({ settings: server!.settings(database), logger, maxQueued: 3 });
    try {
      const many = [1, 2, 3, 4].map((i) => binding(`10${i}`, `sip:10${i}@192.0.2.1`, 9_999_999_999_999));
      assert.throws(() => store.saveBindings(many, []), (e: unknown) => e instanceof StoreBusyError && /at most 3/.test(e.message));
      assert.deepEqual(store.loadBindings(0), []);
      store.saveBindings(many.slice(0, 3), []);
      await store.flush();
      assert.equal(store.loadBindings(0).length, 3);
    } finally {
      await store.close();
    }
  });

  test('a server behind the tombstones kept reads everything again', async () => {
    const database = await server!.createDatabase();
    const a = await openMariaDbStore({ settings: server!.settings(database), logger });
    a.addExtension(ext('600'));
    a.addExtension(ext('601'));
    await a.flush();
    // b reads at open, then not for 5 s: the changes below happen meanwhile.
    const b = await openMariaDbStore({ settings: server!.settings(database, 5000), logger });
    try {
      assert.ok(b.getExtension('601'));
      a.removeExtension('601');
      a.addExtension(ext('602'));
      await a.flush();
      // As the hourly purge would: the tombstone of 601 is gone before b read it.
      await server!.query(`UPDATE ${database}.store_clock SET purged = seq`);
      await server!.query(`DELETE FROM ${database}.store_tombstones`);
      const version = b.dataVersion();
      assert.ok(b.getExtension('601'), 'b has not read the changes yet');
      await eventually('b reloads: 601 gone, 602 there', () => b.getExtension('601') === undefined && b.getExtension('602') !== undefined, 20_000);
      assert.ok(b.getExtension('600'));
      assert.notEqual(b.dataVersion(), version);
      assert.ok(logLines.some((l) => l.includes('store.reloaded')));
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('a binding longer than the database columns is kept in memory and not written; the rest are', async () => {
    const database = await server!.createDatabase();
    const store = await openMariaDbStore({ settings: server!.settings(database), logger });
    try {
      const long = binding('100', 'sip:100@192.0.2.1', 9_999_999_999_999, { userAgent: 'x'.repeat(300) });
      const fine = binding('101', 'sip:101@192.0.2.1', 9_999_999_999_999);
      store.saveBindings([long, fine], []);
      assert.equal(store.loadBindingsOf('100', 0).length, 1, 'this server still serves it');
      await store.flush();
      const rows = await server!.query<Array<{ aor: string }>>(`SELECT aor FROM ${database}.bindings`);
      assert.deepEqual(rows.map((r) => r.aor), ['101']);
      assert.ok(logLines.some((l) => l.includes('store.binding_too_long')));
    } finally {
      await store.close();
    }
  });
});
