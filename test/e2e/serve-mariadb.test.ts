/**
 * `minisipserver serve` on a MariaDB store, as real processes: two servers on one database share
 * the extensions created at the first start and each other's registrations; a database that
 * cannot be reached stops the start with the reason.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, startServe, tempDir } from './harness.js';
import { Phone } from '../helpers/phone.js';
import { mariaDbSkipReason, startMariaDb, type MariaDbServer } from '../helpers/mariadb-server.js';
import type { DbStatus } from '../../cli/db.js';

let db: MariaDbServer | null = null;
before(async () => {
  if (!mariaDbSkipReason) db = await startMariaDb();
});
after(async () => {
  await db?.destroy();
});

function config(dir: string, database: string, socketPath: string): string {
  const file = join(dir, 'config.yaml');
  writeFileSync(
    file,
    ['store:', '  kind: mariadb', '  mariadb:', `    socketPath: ${socketPath}`, '    user: mss', `    passwordFile: ${db!.passwordFile}`, `    database: ${database}`, '    pollMs: 100', ''].join('\n'),
  );
  return file;
}

function status(file: string): DbStatus {
  const r = cli(['db', 'status', '--json', '--config', file]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as DbStatus;
}

test('two serve processes on one MariaDB database share extensions and registrations', { skip: mariaDbSkipReason, timeout: 120_000 }, async () => {
  const dir = tempDir('mss-serve-mariadb-');
  const database = await db!.createDatabase();
  const file = config(dir, database, db!.socketPath);
  const first = await startServe(join(dir, 'data-1'), ['--config', file], { relayPorts: 20 });
  const second = await startServe(join(dir, 'data-2'), ['--config', file], { relayPorts: 20 });
  const phones: Phone[] = [];
  try {
    const created = new Map([...first.stdout().matchAll(/^ {2}(10[0-4]) {2}password (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
    assert.equal(created.size, 5, 'the first server created the extensions');
    assert.doesNotMatch(second.stdout(), /First start/, 'the second found them in the database');
    assert.equal(status(file).counts?.extensions, 5);

    // 100 registers one phone through each server; 101 calls it through the first.
    const open = async (user: string, port: number) => {
      const p = await Phone.open(user, created.get(user)!, port);
      phones.push(p);
      await p.register();
      return p;
    };
    const atFirst = await open('100', first.port);
    const atSecond = await open('100', second.port);
    const caller = await open('101', first.port);
    let counts = status(file).counts;
    for (let i = 0; i < 50 && counts?.bindings !== 3; i++) {
      await new Promise((r) => setTimeout(r, 100));
      counts = status(file).counts;
    }
    assert.deepEqual([counts?.bindings, counts?.registered], [3, 2], 'the three bindings in the database');
    // The first server reaches the phone the second registered once its poll has read the binding
    // (100 ms here): a call that reaches only its own phone is tried again, a bounded number of times.
    let reachedBoth = false;
    for (let attempt = 0; attempt < 10 && !reachedBoth; attempt++) {
      const call = await caller.invite('100');
      const one = await atFirst.incoming(5000);
      const two = await atSecond.incoming(1000).catch(() => null);
      one.reject(486, 'Busy Here');
      two?.reject(486, 'Busy Here');
      assert.equal((await call.final()).status, 486);
      reachedBoth = two !== null;
    }
    assert.ok(reachedBoth, 'a call through the first server rings the phone registered through the second');
  } finally {
    for (const p of phones) p.close();
    assert.equal(await first.stop(), 0);
    assert.equal(await second.stop(), 0);
  }
});

test('serve with a database it cannot reach stops with the reason', { skip: mariaDbSkipReason }, async () => {
  const dir = tempDir('mss-serve-mariadb-');
  const file = config(dir, 'mss_nowhere', join(dir, 'no.sock'));
  const r = cli(['serve', '--config', file, '--data-dir', join(dir, 'data'), '--bind', '127.0.0.1', '--sip-port', '0', '--callback-port', '0', '--admin-listen', '', '--event-channel-port', '0']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no\.sock\/mss_nowhere: cannot connect .*MariaDB runs/);
});
