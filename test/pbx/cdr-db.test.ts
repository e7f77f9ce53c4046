/**
 * cdr.format [csv, db]: real servers make calls; each record is in the store's cdr table exactly
 * as in the CSV file, and `cdr query|stats --store CONFIG` print what they print over the files.
 * On MariaDB: two servers writing into one database, and a database that goes away while calls
 * end (the file record is written at once, the table gets it when the database is back).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { runCdr } from '../../cli/cdr.js';
import { formatCsvRecord } from '../../lib/cdr/csv.js';
import type { CdrRecord } from '../../lib/cdr/record.js';
import type { Config } from '../../lib/config/schema.js';
import { openCdrTable } from '../../lib/store/open-cdr-table.js';
import { Collect } from '../helpers/collect.js';
import { cdrRows } from '../helpers/cdr-files.js';
import { answeredCall, audioSdp, registeredPair } from '../helpers/phone.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { mariaDbSkipReason, startMariaDb, type MariaDbServer } from '../helpers/mariadb-server.js';

/** An answered call hung up by the caller, a busy callee, an unknown number: their A-leg Call-IDs. */
async function threeCalls(port: number, a: string, b: string): Promise<string[]> {
  const [pa, pb] = await registeredPair(port, a, b);
  try {
    const { call, inc } = await answeredCall(pa, pb, audioSdp(40_000), audioSdp(40_002));
    const atCallee = pb.answerInDialog(inc.dialog, 'BYE');
    assert.equal((await call.bye()).status, 200);
    await atCallee;
    const busy = await pa.invite(b, audioSdp(40_004));
    (await pb.incoming()).reject(486, 'Busy Here');
    assert.equal((await busy.final()).status, 486);
    const unknown = await pa.invite('7999', audioSdp(40_006));
    assert.equal((await unknown.final()).status, 404);
    return [call.dialog.callId, busy.dialog.callId, unknown.dialog.callId];
  } finally {
    pa.close();
    pb.close();
  }
}

/** Waits (bounded) until `check` holds; fails naming `what`. */
async function eventually(what: string, check: () => boolean | Promise<boolean>, limitMs = 10_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(await check(), `timed out after ${limitMs} ms: ${what}`);
}

/** Every record of the store's cdr table that `config` names, in table order. */
async function tableRecords(config: Config): Promise<CdrRecord[]> {
  const table = await openCdrTable(config, { readOnly: true });
  try {
    const recs: CdrRecord[] = [];
    for await (const page of table.pages({})) recs.push(...page);
    return recs;
  } finally {
    await table.close();
  }
}

/** The record lines of the server's daily CSV files, in file order (no header). */
function csvLines(dataDir: string): string[] {
  const dir = join(dataDir, 'cdr');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.csv'))
    .sort()
    .flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').slice(1).filter((l) => l !== ''));
}

/** A configuration file naming the server's store (what an administrator would pass to --store). */
function storeConfigFile(ts: TestServer): string {
  const file = join(ts.dataDir, 'query-config.yaml');
  const store = ts.config.store.kind === 'mariadb' ? { kind: 'mariadb', mariadb: { ...ts.config.store.mariadb } } : { kind: 'sqlite' };
  writeFileSync(file, stringify({ data: { dir: ts.dataDir }, store }));
  return file;
}

async function cdr(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new Collect();
  const err = new Collect();
  const code = await runCdr(args, { out, err });
  return { code, out: out.text, err: err.text };
}

const FILTERS: string[][] = [
  ['--format', 'csv'],
  ['--format', 'json', '--status', '4xx'],
  ['--format', 'ndjson', '--answered'],
  ['--format', 'csv', '--caller', '801', '--sort', 'start_time:desc', '--limit', '2'],
  ['--format', 'table', '--tag', 'busy'],
];

describe('cdr.format [csv, db] on SQLite', () => {
  let ts: TestServer;
  let calls: string[];
  before(async () => {
    ts = await startTestServer({
      users: [['801', 'pw801'], ['802', 'pw802']],
      configure: (c) => {
        c.auth.algorithms = ['MD5'];
        c.cdr.format = ['csv', 'db'];
      },
    });
    calls = await threeCalls(ts.port, '801', '802');
    await eventually('the three records in the CSV file', () => calls.every((id) => cdrRows(ts.dataDir).some((r) => r.call_id === id)));
    await eventually('the three records in the cdr table', async () => (await tableRecords(ts.config)).length >= 3);
  });
  after(() => ts?.stop());

  test('every record is in the cdr table, identical to its CSV line and in the same order', async () => {
    const lines = csvLines(ts.dataDir);
    assert.equal(lines.length, 3);
    const recs = await tableRecords(ts.config);
    assert.deepEqual(recs.map((r) => formatCsvRecord(r).replace(/\n$/, '')), lines);
    assert.deepEqual(recs.map((r) => r.call_id), calls);
  });

  test('cdr query --store and cdr stats --store print what they print over the files', async () => {
    const config = storeConfigFile(ts);
    const dir = join(ts.dataDir, 'cdr');
    for (const filter of FILTERS) {
      const fromFiles = await cdr(['query', dir, ...filter]);
      const fromStore = await cdr(['query', '--store', config, ...filter]);
      assert.equal(fromFiles.code, 0, fromFiles.err);
      assert.equal(fromStore.code, 0, fromStore.err);
      assert.ok(fromFiles.out.split('\n').length >= 2, `${filter.join(' ')} prints something`);
      assert.equal(fromStore.out, fromFiles.out, filter.join(' '));
    }
    for (const by of [[], ['--by', 'callee']]) {
      const fromFiles = await cdr(['stats', dir, '--format', 'json', ...by]);
      const fromStore = await cdr(['stats', '--store', config, '--format', 'json', ...by]);
      assert.equal(fromStore.code, 0, fromStore.err);
      assert.equal(JSON.parse(fromStore.out).total.calls, 3);
      assert.equal(fromStore.out, fromFiles.out);
    }
  });

  test('--store with files, a configuration that cannot be read, or a store without the table: a clear error', async () => {
    const config = storeConfigFile(ts);
    const both = await cdr(['query', '--store', config, join(ts.dataDir, 'cdr')]);
    assert.equal(both.code, 2);
    assert.match(both.err, /--store reads the records from the database: name no files/);
    const missing = await cdr(['query', '--store', join(ts.dataDir, 'nothere.yaml')]);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /nothere\.yaml.*cannot read the configuration file/);
    const empty = join(ts.dataDir, 'empty-config.yaml');
    writeFileSync(empty, stringify({ data: { dir: join(ts.dataDir, 'no-such-dir') } }));
    const noDb = await cdr(['query', '--store', empty]);
    assert.equal(noDb.code, 1);
    assert.match(noDb.err, /minisipserver\.db: no database there/);
  });
});

describe('cdr.format [csv, db] on MariaDB', { skip: mariaDbSkipReason }, () => {
  let db: MariaDbServer | undefined;
  before(async () => {
    db = await startMariaDb();
  });
  after(async () => {
    await db?.destroy();
  });

  const start = (database: string, node: string, users: string[]) =>
    startTestServer({
      users: users.map((u) => [u, `pw${u}`] as [string, string]),
      configure: (c) => {
        c.auth.algorithms = ['MD5'];
        c.cdr.format = ['csv', 'db'];
        c.node.name = node;
        db!.configure(c, database, 100);
      },
    });

  test('two servers write into one database; cdr query --store reads both, each record as its server\'s CSV line', { timeout: 120_000 }, async (t) => {
    const database = await db!.createDatabase();
    const one = await start(database, 'pbx-1', ['811', '812']);
    t.after(() => one.stop());
    const two = await start(database, 'pbx-2', ['821', '822']);
    t.after(() => two.stop());
    const [c1, c2] = await Promise.all([threeCalls(one.port, '811', '812'), threeCalls(two.port, '821', '822')]);
    await eventually('six records in the table', async () => (await tableRecords(one.config)).length >= 6, 20_000);
    const recs = await tableRecords(one.config);
    assert.equal(recs.length, 6);
    const lines = (node: string) => recs.filter((r) => r.node === node).map((r) => formatCsvRecord(r).replace(/\n$/, ''));
    assert.deepEqual(lines('pbx-1'), csvLines(one.dataDir));
    assert.deepEqual(lines('pbx-2'), csvLines(two.dataDir));
    assert.deepEqual(new Set(recs.map((r) => r.call_id)), new Set([...c1, ...c2]));
    const config = storeConfigFile(one);
    const q = await cdr(['query', '--store', config, '--format', 'json', '--caller', '821']);
    assert.equal(q.code, 0, q.err);
    assert.deepEqual((JSON.parse(q.out) as CdrRecord[]).map((r) => r.call_id), c2);
    const s = await cdr(['stats', '--store', config, '--format', 'json']);
    assert.equal(JSON.parse(s.out).total.calls, 6);
  });

  test('the database goes away: the file record is written at once, the table gets it when the database is back', { timeout: 120_000 }, async (t) => {
    const database = await db!.createDatabase();
    const ts = await start(database, 'pbx-3', ['831', '832']);
    t.after(() => ts.stop());
    const [pa, pb] = await registeredPair(ts.port, '831', '832');
    t.after(() => (pa.close(), pb.close()));
    await db!.stop();
    let restarted = false;
    t.after(async () => {
      if (!restarted) await db!.start();
    });
    // Calls go on from memory; the call ends while the database is away.
    const { call, inc } = await answeredCall(pa, pb, audioSdp(40_010), audioSdp(40_012));
    const atCallee = pb.answerInDialog(inc.dialog, 'BYE');
    assert.equal((await call.bye()).status, 200);
    await atCallee;
    await eventually('the record in the CSV file', () => cdrRows(ts.dataDir).some((r) => r.call_id === call.dialog.callId));
    await eventually('cdr.db_waiting logged', () => ts.logLines.some((l) => l.includes('"cdr.db_waiting"')), 15_000);
    await db!.start();
    restarted = true;
    await eventually('the record in the table', async () => (await tableRecords(ts.config)).some((r) => r.call_id === call.dialog.callId), 30_000);
    const recs = await tableRecords(ts.config);
    assert.deepEqual(recs.map((r) => formatCsvRecord(r).replace(/\n$/, '')), csvLines(ts.dataDir));
    await eventually('cdr.db_written logged', () => ts.logLines.some((l) => l.includes('"cdr.db_written"')));
    assert.equal(ts.logLines.filter((l) => l.includes('"cdr.db_waiting"')).length, 1, 'logged once, not per retry');
    const down = await cdr(['query', '--store', storeConfigFile(ts)]);
    assert.equal(down.code, 0, down.err);
  });

  test('cdr query --store: a database that cannot be reached is a clear error', async () => {
    const ts = { dataDir: db!.dir, config: { store: { kind: 'mariadb', mariadb: { ...db!.settings('nothere'), socketPath: join(db!.dir, 'no.sock') } } } } as unknown as TestServer;
    const r = await cdr(['query', '--store', storeConfigFile(ts)]);
    assert.equal(r.code, 1);
    assert.match(r.err, /minisipserver cdr query: mariadb mss@.*no\.sock\/nothere: cannot connect/);
  });
});
