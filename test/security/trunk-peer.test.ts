// Trunk peers count as trusted (docs/SECURITY.md): a carrier on 127.0.0.7 (a peer trunk) whose
// requests fail authentication or come faster than the rate is never dropped nor banned, from
// whatever port it sends; a stranger doing the same is.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer } from '../helpers/server.js';
import { trunkConfig } from '../helpers/trunks.js';
import { waitFor } from '../helpers/keep-alive.js';
import { Attacker } from './attacker.js';

test('a trunk peer is trusted: never rate-limited nor banned; a stranger is', async (t) => {
  const srv = await startTestServer({
    users: [['701', 'pw701']],
    configure: (c) => {
      c.media.relay = 'never';
      c.auth.algorithms = ['MD5', 'SHA-256'];
      c.security.trusted = [];
      c.security.maxFailures = 3;
      c.security.ratePerSecond = 20;
      c.security.burst = 20;
      c.trunks = [trunkConfig({ name: 'carrier', kind: 'peer', host: '127.0.0.7', port: 5060 })];
    },
  });
  t.after(() => srv.stop());
  const carrier = await Attacker.open('127.0.0.7', srv.port); // not from its port 5060: trusted by address
  t.after(() => carrier.close());
  const stranger = await Attacker.open('127.0.0.8', srv.port);
  t.after(() => stranger.close());

  for (let i = 0; i < 6; i++) assert.equal(await carrier.guess('701', `nope-${i}`, 1000), 403);
  const ids = carrier.burst(100);
  await waitFor(() => carrier.answered(ids) === 100, () => `all 100 OPTIONS answered (${carrier.answered(ids)})`, 5000);
  assert.equal(srv.server.guard.isBanned('127.0.0.7'), false);

  const statuses: Array<number | null> = [];
  for (let i = 0; i < 6; i++) {
    const s = await stranger.guess('701', `nope-${i}`, 400);
    statuses.push(s);
    if (s === null) break;
  }
  assert.deepEqual(statuses, [403, 403, 403, null]);
  assert.ok(srv.server.guard.isBanned('127.0.0.8'));
});
