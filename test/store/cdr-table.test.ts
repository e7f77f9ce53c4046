/**
 * The store's cdr table (migration 5) on both back ends: migration from version 4 with rows,
 * records stored and read back exactly, a retried batch stored once, paging and the narrowing
 * filters; a schema without the table named clearly. Then the writer's queue on a real SQLite
 * file that appears late (records wait, overflow is counted and logged once).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { buildCdrRecord, CallTag, type CdrRecord } from '../../lib/cdr/record.js';
import { CdrDbQueue } from '../../lib/cdr/db-queue.js';
import { CdrTableMissingError, type CdrTable } from '../../lib/store/cdr-rows.js';
import { openSqliteCdrTable } from '../../lib/store/sqlite-cdr.js';
import { openMariaDbCdrTable } from '../../lib/store/mariadb-cdr.js';
import { migrate } from '../../lib/store/migrations.js';
import { DATABASE_FILE_NAME, openSqliteStore } from '../../lib/store/sqlite.js';
import { openMariaDbStore } from '../../lib/store/mariadb.js';
import { connectMariaDb } from '../../lib/store/mariadb-connect.js';
import { migrateMariaDb } from '../../lib/store/mariadb-migrations.js';
import { StoreOpenError } from '../../lib/store/store.js';
import { Logger } from '../../lib/log.js';
import { mariaDbSkipReason, startMariaDb, type MariaDbServer } from '../helpers/mariadb-server.js';

const T0 = Date.UTC(2026, 10, 26, 9, 0, 0);

function record(i: number, extra: Partial<Parameters<typeof buildCdrRecord>[0]> = {}): CdrRecord {
  return buildCdrRecord({
    callId: `call-${i}@192.0.2.1`,
    caller: `10${i % 3}`,
    callerName: i === 1 ? 'Dupont, "Jean"\nnew line' : `User ${i}`,
    callee: `20${i % 2}`,
    dialled: `20${i % 2}`,
    route: 'local',
    startMs: T0 + i * 60_000,
    ...(i % 2 === 0 ? { answerMs: T0 + i * 60_000 + 1500 } : {}),
    endMs: T0 + i * 60_000 + 12_345,
    status: i % 2 === 0 ? 200 : 486,
    tag: i % 2 === 0 ? CallTag.CallerBye : CallTag.Busy,
    callerAddress: '[2001:db8::1]:5060',
    userAgent: 'Phone/1.0 (ünïcode)',
    node: `pbx-${i % 2}`,
    tzOffsetMin: 60,
    ...extra,
  });
}

async function all(table: CdrTable, filter = {}, pageSize?: number): Promise<{ recs: CdrRecord[]; pages: number }> {
  const recs: CdrRecord[] = [];
  let pages = 0;
  for await (const page of table.pages(filter, pageSize)) {
    pages++;
    recs.push(...page);
  }
  return { recs, pages };
}

/** The same checks on a table of either back end. */
async function roundTrip(table: CdrTable): Promise<void> {
  const recs = [0, 1, 2, 3, 4].map((i) => record(i));
  const batch = recs.map((rec, i) => ({ uid: `u${i}`.padEnd(32, '0'), rec }));
  assert.deepEqual(await table.insert(batch), { written: 5, refused: [] });
  // The same batch again (a retry after an unclear failure) is not stored twice.
  await table.insert(batch.slice(3));
  const { recs: back, pages } = await all(table, {}, 2);
  assert.deepEqual(back, recs, 'every field back exactly as the CSV holds it, in insertion order');
  assert.equal(pages, 3, 'read 2 at a time');
  assert.deepEqual((await all(table, { caller: '101' })).recs, [recs[1], recs[4]]);
  assert.deepEqual((await all(table, { callee: '200', from: T0 + 60_000, to: T0 + 4 * 60_000 })).recs, [recs[2]]);
  const bad = { ...record(9), duration: 'soon' };
  const r = await table.insert([{ uid: 'bad'.padEnd(32, '0'), rec: bad }, { uid: 'good'.padEnd(32, '0'), rec: record(5) }]);
  assert.equal(r.written, 1);
  assert.equal(r.refused.length, 1);
  assert.match(r.refused[0]!.error, /duration "soon"/);
  assert.equal((await all(table)).recs.length, 6);
}

test('SQLite: migration 5 from version 4 keeps the rows and adds the cdr table; records round-trip exactly', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mss-cdr-table-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const raw = new Database(join(dir, DATABASE_FILE_NAME));
  migrate(raw, 'test', 4);
  raw.prepare("INSERT INTO extensions (number, realm, ha1_md5, ha1_sha256, created_at, allow) VALUES ('100', 'pbx', 'a', 'b', 1, 'mobile')").run();
  raw.close();
  // A version-4 file: `cdr query --store` says what to do.
  assert.throws(() => openSqliteCdrTable(dir, { readOnly: true }), (err: unknown) => err instanceof CdrTableMissingError && /schema is at version 4, which has no cdr table.*db migrate/.test(err.message));
  const store = openSqliteStore(dir);
  assert.deepEqual(store.getExtension('100')?.allow, ['mobile']);
  store.close();
  const table = openSqliteCdrTable(dir);
  try {
    await roundTrip(table);
  } finally {
    await table.close();
  }
  const reader = openSqliteCdrTable(dir, { readOnly: true });
  assert.equal((await all(reader)).recs.length, 6);
  await reader.close();
});

test('SQLite: reading from a folder without a database names the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mss-cdr-none-'));
  try {
    assert.throws(() => openSqliteCdrTable(dir, { readOnly: true }), (err: unknown) => err instanceof StoreOpenError && err.message.includes(join(dir, DATABASE_FILE_NAME)) && /no database there/.test(err.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the queue: records wait while the database is missing, overflow is counted and logged once, the rest arrive when it appears', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mss-cdr-queue-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const data = join(dir, 'data');
  const lines: string[] = [];
  const logger = new Logger({ format: 'json', level: 'info', write: (l) => lines.push(l) });
  const events = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  const queue = new CdrDbQueue({ open: async () => openSqliteCdrTable(data), where: data, logger, maxQueued: 3, batchSize: 2, retryMinMs: 20, retryMaxMs: 50 });
  for (let i = 0; i < 5; i++) queue.push(record(i));
  assert.equal(queue.waiting, 3);
  assert.equal(queue.counts.dropped, 2);
  assert.equal(await queue.drained(300), false, 'nothing can be written yet');
  assert.equal(events().filter((e) => e.event === 'cdr.db_waiting').length, 1, 'waiting is logged once, not per retry');
  assert.equal(events().filter((e) => e.event === 'cdr.db_queue_full').length, 1);
  mkdirSync(data);
  openSqliteStore(data).close();
  assert.equal(await queue.drained(5000), true);
  await queue.close();
  const reader = openSqliteCdrTable(data, { readOnly: true });
  const stored = (await all(reader)).recs;
  await reader.close();
  assert.deepEqual(stored.map((r) => r.call_id), ['call-0@192.0.2.1', 'call-1@192.0.2.1', 'call-2@192.0.2.1']);
  const written = events().find((e) => e.event === 'cdr.db_written');
  assert.equal(written?.written, 3);
  const dropped = events().find((e) => e.event === 'cdr.db_dropped');
  assert.equal(dropped?.records, 2);
  assert.equal(dropped?.firstStart, record(3).start_time);
  assert.equal(dropped?.lastStart, record(4).start_time);
  assert.deepEqual(queue.counts, { written: 3, dropped: 2, refused: 0 });
});

describe('MariaDB cdr table', { skip: mariaDbSkipReason }, () => {
  let server: MariaDbServer | undefined;
  const logger = new Logger({ format: 'json', level: 'warn', write: () => undefined });
  before(async () => {
    server = await startMariaDb();
  });
  after(async () => {
    await server?.destroy();
  });

  test('migration 5 from version 4 keeps the rows and adds the cdr table; records round-trip exactly', async () => {
    const database = await server!.createDatabase();
    const settings = server!.settings(database);
    const conn = await connectMariaDb(settings);
    try {
      assert.deepEqual(await migrateMariaDb(conn, database, 4), { from: 0, to: 4 });
      await conn.query("INSERT INTO extensions (number, realm, ha1_md5, ha1_sha256, created_at, allow) VALUES ('100', 'pbx', 'a', 'b', 1, 'mobile')");
    } finally {
      await conn.end();
    }
    await assert.rejects(openMariaDbCdrTable(settings), (err: unknown) => err instanceof CdrTableMissingError && /version 4, which has no cdr table/.test(err.message));
    const store = await openMariaDbStore({ settings, logger });
    assert.deepEqual(store.getExtension('100')?.allow, ['mobile']);
    await store.close();
    const table = await openMariaDbCdrTable(settings);
    try {
      await roundTrip(table);
    } finally {
      await table.close();
    }
  });

  test('a database that cannot be reached is named with the cause', async () => {
    const settings = { ...server!.settings('nothere'), socketPath: join(server!.dir, 'no.sock') };
    await assert.rejects(openMariaDbCdrTable(settings), (err: unknown) => err instanceof StoreOpenError && /cannot connect/.test(err.message));
  });
});
