/**
 * A real server on a MariaDB store whose database goes away under REGISTER load and comes back:
 * REGISTERs get 503 with Retry-After meanwhile, `store.unavailable` is logged once, and without
 * a restart registrations succeed again and reach the database.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { mariaDbSkipReason, startMariaDb, type MariaDbServer } from '../helpers/mariadb-server.js';
import { registerWithAuth, UdpPeer } from '../helpers/sip-peer.js';
import { audioSdp, Phone } from '../helpers/phone.js';

let db: MariaDbServer | null = null;
before(async () => {
  if (!mariaDbSkipReason) db = await startMariaDb();
});
after(async () => {
  await db?.destroy();
});

/** Two phones that call each other across the outage (not part of the REGISTER load). */
const CALLERS: Array<[string, string]> = [['300', 'secret-300'], ['301', 'secret-301']];

/** A calls B; B answers; the ACK arrives. */
async function establish(a: Phone, b: Phone): Promise<{ caller: Awaited<ReturnType<Phone['invite']>>; callee: Awaited<ReturnType<Phone['incoming']>> }> {
  const caller = await a.invite(b.user, audioSdp(40_000));
  const callee = await b.incoming();
  callee.answer(audioSdp(40_002));
  assert.equal((await caller.final()).status, 200);
  await callee.waitAck();
  return { caller, callee };
}

/** A hangs up; B gets the BYE and answers it; A gets the 200. */
async function hangUp(call: Awaited<ReturnType<typeof establish>>, b: Phone): Promise<void> {
  const atCallee = b.answerInDialog(call.callee.dialog, 'BYE');
  assert.equal((await call.caller.bye()).status, 200);
  await atCallee;
}

const USERS = Array.from({ length: 10 }, (_, i) => [String(200 + i), `secret-${200 + i}`] as [string, string]);

async function registerAll(ts: TestServer, peer: UdpPeer, round: number): Promise<number[]> {
  const statuses: number[] = [];
  for (const [user, password] of USERS) {
    const { final } = await registerWithAuth(peer, { user, password, port: ts.port, localPort: peer.port, callId: `outage-${user}-${round}`, cseq: 1, expires: 600, algorithm: 'MD5' });
    statuses.push(final.status);
    if (final.status === 503) assert.ok(Number(final.headers.get('retry-after')) > 0, '503 carries Retry-After');
  }
  return statuses;
}

async function rowsIn(database: string): Promise<Set<string>> {
  const rows = await db!.query<Array<{ aor: string; call_id: string }>>(`SELECT aor, call_id FROM ${database}.bindings`);
  return new Set(rows.map((r) => `${r.aor}/${r.call_id}`));
}

/** Waits (bounded) until the database holds every one of `keys` (aor/call-id). */
async function waitForRows(database: string, keys: string[], what: string): Promise<void> {
  let missing: string[] = keys;
  const deadline = Date.now() + 20_000;
  for (let i = 0; i < 200 && Date.now() < deadline; i++) {
    const rows = await rowsIn(database);
    missing = keys.filter((k) => !rows.has(k));
    if (missing.length === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(missing, [], what);
}

test('database outage under REGISTER load: 503 with Retry-After, logged once; calls go on; recovery without a restart', { skip: mariaDbSkipReason, timeout: 180_000 }, async (t) => {
  const database = await db!.createDatabase();
  const ts = await startTestServer({ configure: (c) => db!.configure(c, database, 100), users: [...USERS, ...CALLERS] });
  t.after(() => ts.stop());
  const peer = await UdpPeer.open();
  t.after(() => peer.close());
  const a = await Phone.open(CALLERS[0]![0], CALLERS[0]![1], ts.port);
  const b = await Phone.open(CALLERS[1]![0], CALLERS[1]![1], ts.port);
  t.after(() => (a.close(), b.close()));
  await a.register();
  await b.register();
  const inProgress = await establish(a, b);

  assert.deepEqual(await registerAll(ts, peer, 0), USERS.map(() => 200));
  await waitForRows(database, USERS.map(([u]) => `${u}/outage-${u}-0`), 'the bindings reach the database');

  await db!.stop();
  const stoppedAt = Date.now();
  // REGISTERs go on; once a poll has failed the store reports itself unavailable. Those accepted
  // before that wait in the queue for the database.
  let answered: number[] = [];
  const acceptedDuringOutage: string[] = [];
  const deadline = Date.now() + 30_000;
  for (let round = 1; Date.now() < deadline && round < 500; round++) {
    answered = await registerAll(ts, peer, round);
    answered.forEach((s, i) => {
      if (s === 200) acceptedDuringOutage.push(`${USERS[i]![0]}/outage-${USERS[i]![0]}-${round}`);
    });
    if (answered.every((s) => s === 503)) break;
  }
  assert.deepEqual(answered, USERS.map(() => 503), 'every REGISTER is refused while the database is away');
  // The load goes on while the database stays away (5 s in all): still 503, still one log line.
  let refusedRounds = 0;
  for (let round = 500; Date.now() - stoppedAt < 5000 && round < 5000; round++) {
    assert.deepEqual(await registerAll(ts, peer, round), USERS.map(() => 503));
    refusedRounds++;
  }
  t.diagnostic(`rounds of ${USERS.length} REGISTERs refused while the database was away: ${refusedRounds + 1}`);
  // Calls need no write: the one in progress ends normally, a new one is set up and ended.
  assert.equal(ts.server.store.available, false);
  const during = await establish(a, b);
  await hangUp(during, b);
  await hangUp(inProgress, b);
  assert.equal(ts.server.store.available, false);
  const unavailable = ts.logLines.filter((l) => l.includes('"store.unavailable"'));
  assert.equal(unavailable.length, 1, 'logged once, not per message');
  assert.match(unavailable[0]!, /mysqld\.sock/);

  await db!.start();
  // What was accepted before the outage was noticed waited in the queue: it is written on recovery.
  const lastAccepted = new Map<string, string>();
  for (const key of acceptedDuringOutage) lastAccepted.set(key.split('/')[0]!, key);
  for (let i = 0; i < 600 && !ts.server.store.available; i++) await new Promise((r) => setTimeout(r, 100));
  await waitForRows(database, [...lastAccepted.values()], 'the registrations queued during the outage reach the database once it is back');
  let recovered: number[] = [];
  let lastRound = 0;
  const until = Date.now() + 60_000;
  for (let round = 1000; Date.now() < until && round < 1500; round++) {
    recovered = await registerAll(ts, peer, round);
    lastRound = round;
    if (recovered.every((s) => s === 200)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.deepEqual(recovered, USERS.map(() => 200), 'REGISTERs succeed again without a restart');
  assert.equal(ts.server.store.available, true);
  assert.equal(ts.logLines.filter((l) => l.includes('"store.available"')).length, 1);
  // A phone's later registration replaces its earlier binding row (same contact): only each
  // phone's last one accepted during the outage can still be there, and is overwritten after.
  await waitForRows(database, USERS.map(([u]) => `${u}/outage-${u}-${lastRound}`), 'the registrations after the outage reach the database');
  assert.ok(ts.logLines.some((l) => l.includes('"store.available"') && l.includes('downSeconds')));
  t.diagnostic(`REGISTERs accepted into the queue before the outage was noticed: ${acceptedDuringOutage.length}`);
});
