// Bans survive a restart (docs/SECURITY.md): a server bans an attacker on 127.0.0.2 and stops; a
// new server on the same data folder drops the attacker's packets from its first one, while the
// phones on 127.0.0.1 register as before.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer } from '../helpers/server.js';
import { Phone } from '../helpers/phone.js';
import type { Config } from '../../lib/config/schema.js';
import { nativeUdpAddon } from '../../lib/sip/transport/native-udp.js';
import { Attacker } from './attacker.js';

const configure = (c: Config): void => {
  c.media.relay = 'never';
  c.auth.algorithms = ['MD5', 'SHA-256'];
  c.security.trusted = [];
  c.security.maxFailures = 3;
  c.security.banTime = 3600;
};

test('a ban survives a restart on the same data folder', async (t) => {
  const first = await startTestServer({ users: [['501', 'pw501']], configure });
  const dataDir = first.dataDir;
  let evil = await Attacker.open('127.0.0.2', first.port);
  try {
    const statuses: Array<number | null> = [];
    for (let i = 0; i < 10; i++) {
      const s = await evil.guess('501', `guess-${i}`, 400);
      statuses.push(s);
      if (s === null) break;
    }
    assert.deepEqual(statuses, [403, 403, 403, null]);
  } finally {
    evil.close();
    await first.stop();
  }

  const second = await startTestServer({ dataDir, configure });
  t.after(() => second.stop());
  evil = await Attacker.open('127.0.0.2', second.port);
  t.after(() => evil.close());
  const phone = await Phone.open('501', 'pw501', second.port);
  t.after(() => phone.close());
  assert.ok(second.server.guard.isBanned('127.0.0.2'), 'loaded from the store at start');
  assert.equal(await evil.options(400), null, 'the first packet after the restart is dropped');
  assert.equal(await evil.guess('501', 'pw501', 400), null);
  const loaded = second.logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['event'] === 'security.bans_loaded');
  assert.equal(loaded?.['count'], 1);
  await phone.register();
  const row = second.server.store.getBan('127.0.0.2')!;
  assert.equal(row.offences, 1);
  assert.equal(row.reason, 'auth');
  assert.ok(row.expiresAt - row.createdAt === 3_600_000);
});

for (const engine of ['node', 'native'] as const) {
  const skip = engine === 'native' && nativeUdpAddon() === null && 'the native addon is not built (node scripts/build-native.mjs)';
  test(`sip.udpEngine ${engine}: a banned source's datagrams are dropped by the transport, before the stack sees them`, { skip }, async (t) => {
    const srv = await startTestServer({ configure: (c) => ((c.sip.udpEngine = engine), configure(c)) });
    t.after(() => srv.stop());
    assert.equal(srv.server.stack.udpEngine, engine);
    const evil = await Attacker.open('127.0.0.2', srv.port);
    t.after(() => evil.close());
    assert.equal(await evil.options(2000), 200);
    assert.equal(srv.server.guard.ban('127.0.0.2', 'auth'), true);
    const received = srv.server.stack.counters.received;
    const dropped = srv.server.guard.counters.dropped.banned;
    for (let i = 0; i < 5; i++) assert.equal(await evil.options(200), null);
    assert.equal(srv.server.stack.counters.received, received, 'never handed to the stack');
    assert.equal(srv.server.guard.counters.dropped.banned, dropped + 5);
  });
}
