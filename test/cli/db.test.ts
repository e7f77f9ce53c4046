/**
 * `minisipserver db migrate|status|import-sqlite`, and `ext` on a MariaDB store chosen by
 * --config: real files, a real SQLite store, a private mariadbd (skipped with the reason when it
 * is not installed).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDb, type DbStatus } from '../../cli/db.js';
import { runExt } from '../../cli/ext.js';
import { runBan } from '../../cli/ban.js';
import { openSqliteStore } from '../../lib/store/sqlite.js';
import { LATEST_SCHEMA_VERSION } from '../../lib/store/migrations.js';
import { openMariaDbStore } from '../../lib/store/mariadb.js';
import { silentLogger } from '../../lib/log.js';
import { Collect } from '../helpers/collect.js';
import { mariaDbSkipReason, startMariaDb, type MariaDbServer } from '../helpers/mariadb-server.js';

type Io = { out: NodeJS.WritableStream; err: NodeJS.WritableStream };

/** Runs a command's entry point with its output collected. */
async function capture(run: (argv: string[], io: Io) => Promise<number>, argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new Collect();
  const err = new Collect();
  const code = await run(argv, { out, err });
  return { code, out: out.text, err: err.text };
}

const db = (...argv: string[]) => capture(runDb, argv);
const ban = (...argv: string[]) => capture(runBan, argv);

async function ext(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runExt(argv, { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mss-cli-db-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

let server: MariaDbServer | null = null;
before(async () => {
  if (!mariaDbSkipReason) server = await startMariaDb();
});
after(async () => {
  await server?.destroy();
});

/** A configuration file naming the MariaDB database (and sip.realm). */
function mariaDbConfig(dir: string, database: string, realm = 'minisipserver'): string {
  const file = join(dir, 'minisipserver.yaml');
  writeFileSync(
    file,
    [
      'sip:',
      `  realm: ${realm}`,
      'data:',
      `  dir: ${join(dir, 'data')}`,
      'store:',
      '  kind: mariadb',
      '  mariadb:',
      `    socketPath: ${server!.socketPath}`,
      '    user: mss',
      `    passwordFile: ${server!.passwordFile}`,
      `    database: ${database}`,
      '',
    ].join('\n'),
  );
  return file;
}

test('db status and db migrate on a SQLite data folder', async (t) => {
  const dir = tempDir(t);
  const data = join(dir, 'data');
  const missing = await db('status', '--data-dir', data);
  assert.equal(missing.code, 1);
  assert.match(missing.out, /reachable\s+no: .*minisipserver\.db: no such file/);
  const migrated = await db('migrate', '--data-dir', data);
  assert.equal(migrated.code, 0, migrated.err);
  assert.match(migrated.out, new RegExp(`schema migrated from version 0 to ${LATEST_SCHEMA_VERSION}`));
  assert.match((await db('migrate', '--data-dir', data)).out, /nothing to do/);
  assert.equal((await ext('add', '100', '--password', 'pw-100', '--data-dir', data)).code, 0);
  const status = await db('status', '--json', '--data-dir', data);
  assert.equal(status.code, 0, status.err);
  const s = JSON.parse(status.out) as DbStatus;
  assert.deepEqual({ ...s, where: '' }, { kind: 'sqlite', where: '', reachable: true, schemaVersion: LATEST_SCHEMA_VERSION, latestVersion: LATEST_SCHEMA_VERSION, counts: { extensions: 1, bindings: 0, registered: 0, bans: 0 } });
  assert.ok(s.where.endsWith(join('data', 'minisipserver.db')));
  assert.equal((await db('frobnicate')).code, 2);
});

test('a store.url with a password in it is refused, pointing at passwordFile', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'bad.yaml');
  writeFileSync(file, 'store:\n  kind: mariadb\n  url: mariadb://mss:secret@127.0.0.1:3306/pbx\n');
  const r = await db('status', '--config', file);
  assert.equal(r.code, 2);
  assert.match(r.err, /bad\.yaml:3:\d+: .*password.*store\.mariadb\.passwordFile/);
  assert.ok(!r.err.includes('secret'), 'the password is not echoed');
});

test('db status, db migrate and ext on MariaDB', { skip: mariaDbSkipReason }, async (t) => {
  const dir = tempDir(t);
  const database = await server!.createDatabase();
  const config = mariaDbConfig(dir, database);
  const fresh = await db('status', '--json', '--config', config);
  assert.equal(fresh.code, 0, fresh.err);
  const s0 = JSON.parse(fresh.out) as DbStatus;
  assert.equal(s0.reachable, true);
  assert.equal(s0.schemaVersion, 0);
  assert.match(s0.problem ?? '', /db migrate/);
  const migrated = await db('migrate', '--config', config);
  assert.equal(migrated.code, 0, migrated.err);
  assert.match(migrated.out, new RegExp(`${database}: schema migrated from version 0 to ${LATEST_SCHEMA_VERSION}`));
  assert.match((await db('migrate', '--config', config)).out, /nothing to do/);

  const added = await ext('add', '500', '--password', 'pw-500', '--name', 'Eve', '--config', config);
  assert.equal(added.code, 0, added.err);
  const twice = await ext('add', '500', '--password', 'pw-500', '--config', config);
  assert.equal(twice.code, 1);
  assert.match(twice.err, /already exists/);
  const list = await ext('list', '--config', config);
  assert.equal(list.out, '500\tEve');

  const banned = await ban('add', '198.51.100.7', '--for', '1h', '--config', config);
  assert.equal(banned.code, 0, banned.err);
  const bans = await ban('list', '--json', '--config', config);
  assert.deepEqual((JSON.parse(bans.out) as Array<{ address: string }>).map((b) => b.address), ['198.51.100.7']);

  const status = await db('status', '--config', config);
  assert.equal(status.code, 0, status.err);
  assert.match(status.out, new RegExp(`store\\s+mariadb, mariadb mss@${server!.socketPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/${database}`));
  assert.match(status.out, new RegExp(`schema\\s+version ${LATEST_SCHEMA_VERSION} of ${LATEST_SCHEMA_VERSION} \\(the latest\\)`));
  assert.match(status.out, /holds\s+1 extensions, 0 live registrations of 0 extensions, 1 bans in force/);

  const unreachable = mariaDbConfig(dir, database);
  writeFileSync(unreachable, (await import('node:fs')).readFileSync(unreachable, 'utf8').replace(server!.socketPath, join(dir, 'no.sock')));
  const down = await db('status', '--config', unreachable);
  assert.equal(down.code, 1);
  assert.match(down.out, /reachable\s+no: .*cannot connect.*MariaDB runs/);
});

test('db import-sqlite copies extensions with their hashes; realm checked; skip, then --replace', { skip: mariaDbSkipReason }, async (t) => {
  const dir = tempDir(t);
  const sqliteData = join(dir, 'old');
  assert.equal((await ext('add', '100', '--password', 'pw-100', '--name', 'Alice', '--allow', 'mobile', '--data-dir', sqliteData)).code, 0);
  assert.equal((await ext('add', '101', '--password', 'pw-101', '--data-dir', sqliteData)).code, 0);
  const source = openSqliteStore(sqliteData);
  const originals = source.listExtensions();
  source.close();
  const file = join(sqliteData, 'minisipserver.db');

  const database = await server!.createDatabase();
  const otherRealm = await db('import-sqlite', file, '--config', mariaDbConfig(dir, database, 'pbx.example'));
  assert.equal(otherRealm.code, 1);
  assert.match(otherRealm.err, /2 of 2 extensions were hashed for realm "minisipserver", but sip\.realm is "pbx\.example".*nothing was imported/);

  const config = mariaDbConfig(dir, database);
  const first = await db('import-sqlite', file, '--config', config);
  assert.equal(first.code, 0, first.err);
  assert.match(first.out, /2 added, 0 replaced, 0 skipped/);
  const store = await openMariaDbStore({ settings: server!.settings(database), logger: silentLogger });
  try {
    assert.deepEqual(store.listExtensions(), originals, 'the same records, HA1s included');
  } finally {
    await store.close();
  }
  assert.match((await db('import-sqlite', file, '--config', config)).out, /0 added, 0 replaced, 2 skipped/);
  assert.match((await db('import-sqlite', file, '--replace', '--config', config)).out, /0 added, 2 replaced, 0 skipped/);
  const sqliteTarget = await db('import-sqlite', file, '--data-dir', join(dir, 'x'));
  assert.equal(sqliteTarget.code, 2);
  assert.match(sqliteTarget.err, /store\.kind: mariadb/);
  const notThere = await db('import-sqlite', join(dir, 'nope.db'), '--config', config);
  assert.equal(notThere.code, 1);
  assert.match(notThere.err, /nope\.db: no such file/);
});
