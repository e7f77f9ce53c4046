// The per-source rate limit against a real server on 127.0.0.1 (docs/SECURITY.md): a burst
// beyond security.burst is dropped unanswered, a sustained excess is banned (reason rate); a
// flood from several loopback addresses at once gets each of them banned while the tables stay
// within security.tableSize and a phone on 127.0.0.1 keeps registering. (A flood from spoofed
// sources needs raw sockets: tables.test.ts feeds a million addresses to the guard instead.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { Phone } from '../helpers/phone.js';
import { waitFor } from '../helpers/keep-alive.js';
import { Attacker, refresh } from './attacker.js';
import { challengeParams, digestAuthorization, registerText } from '../helpers/sip-peer.js';

const RATE = 20;
const BURST = 20;
const TABLE_SIZE = 10;

let srv: TestServer;
const closers: Array<() => void> = [];

before(async () => {
  srv = await startTestServer({
    users: [['401', 'pw401']],
    configure: (c) => {
      c.media.relay = 'never';
      c.auth.algorithms = ['MD5', 'SHA-256'];
      c.security.trusted = [];
      c.security.ratePerSecond = RATE;
      c.security.burst = BURST;
      c.security.sustainedSeconds = 1;
      c.security.banTime = 600;
      c.security.tableSize = TABLE_SIZE;
    },
  });
});

after(async () => {
  for (const c of closers) c();
  await srv.stop();
});

function banned(address: string): Array<Record<string, unknown>> {
  return srv.logLines
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l['event'] === 'security.banned' && l['address'] === address);
}

async function attacker(address: string): Promise<Attacker> {
  const a = await Attacker.open(address, srv.port);
  closers.push(() => a.close());
  return a;
}

/** Sends `perTick` OPTIONS every 50 ms until `done()` or `limitMs`; how many were sent. */
async function flood(a: Attacker, perTick: number, done: () => boolean, limitMs: number): Promise<number> {
  const deadline = Date.now() + limitMs;
  let sent = 0;
  while (!done() && Date.now() < deadline) {
    a.burst(perTick);
    sent += perTick;
    await new Promise((r) => setTimeout(r, 50));
  }
  return sent;
}

test('a burst beyond the limit is dropped unanswered; a sustained excess is banned (reason rate)', async () => {
  const a = await attacker('127.0.0.5');
  const ids = a.burst(100);
  // Answers come within milliseconds; wait until they stop coming (bounded).
  let last = -1;
  await waitFor(() => {
    const n = a.answered(ids);
    const settled = n === last && n > 0;
    last = n;
    return settled;
  }, 'the answers to the burst to settle', 3000, 150);
  const answered = a.answered(ids);
  assert.ok(answered >= BURST - 2 && answered <= BURST + 10, `${answered} of 100 answered: the burst of ${BURST}, and what the rate refilled meanwhile`);
  assert.ok(srv.server.guard.counters.dropped.rate >= 100 - answered - 2);
  assert.equal(banned('127.0.0.5').length, 0, 'one burst: dropped, not banned');

  // A pause of more than a second ends that run of drops; then 200 a second, ten times the
  // rate, until banned (sustainedSeconds: 1).
  await new Promise((r) => setTimeout(r, 1200));
  const started = Date.now();
  await flood(a, 10, () => banned('127.0.0.5').length > 0, 5000);
  assert.equal(banned('127.0.0.5').length, 1, 'banned within the flood');
  assert.equal(banned('127.0.0.5')[0]!['reason'], 'rate');
  assert.ok(Date.now() - started >= 900, 'after a sustained second, not at once');
  assert.equal(await a.options(400), null, 'nothing is answered now');
  assert.equal(srv.server.guard.counters.bans.rate, 1);
});

test('a flood from several loopback addresses: each source is banned, the tables stay within their cap, the phone keeps registering', async (t) => {
  const phone = await Phone.open('401', 'pw401', srv.port);
  closers.push(() => phone.close());
  await phone.register();
  const sources = await Promise.all(Array.from({ length: 8 }, (_, i) => attacker(`127.0.1.${i + 1}`)));
  let maxRates = 0;
  let maxFailures = 0;
  const sample = setInterval(() => {
    const s = srv.server.guard.tableSizes;
    maxRates = Math.max(maxRates, s.rates);
    maxFailures = Math.max(maxFailures, s.failures);
  }, 10);
  t.after(() => clearInterval(sample));
  const allBanned = () => sources.every((a) => banned(a.address).length > 0);
  const floods = Promise.all(sources.map((a) => flood(a, 10, () => banned(a.address).length > 0, 6000)));
  // The phone registers while the flood goes on.
  let registrations = 0;
  while (!allBanned() && registrations < 30) {
    await refresh(phone);
    registrations++;
    await new Promise((r) => setTimeout(r, 100));
  }
  await floods;
  clearInterval(sample);
  for (const a of sources) assert.equal(banned(a.address).length, 1, `${a.address} banned`);
  assert.ok(registrations >= 1);
  await refresh(phone);
  assert.ok(maxRates <= TABLE_SIZE, `rates table peaked at ${maxRates}`);
  assert.ok(maxFailures <= TABLE_SIZE);
  assert.equal(srv.server.guard.isBanned('127.0.0.1'), false);
  for (const a of sources) assert.equal(await a.options(200), null);
});

test('retransmissions absorbed by a transaction do not count: 3 x burst of them, and the source is still answered', async () => {
  const a = await attacker('127.0.0.20');
  const o = { user: '401', port: srv.port, localPort: a.port, callId: `retrans-${process.pid}`, expires: 600 };
  a.send(registerText({ ...o, cseq: 1 }));
  const challenge = await a.response(o.callId, 2000);
  assert.equal(challenge?.status, 401);
  const value = challenge!.headers.getAll('www-authenticate').find((v) => (challengeParams(v).algorithm ?? 'MD5') === 'MD5')!;
  const authorization = digestAuthorization({ challenge: value, user: '401', password: 'pw401', method: 'REGISTER', uri: `sip:127.0.0.1:${srv.port}` });
  // One REGISTER (one branch) sent 3 x burst times: the transaction answers each copy again.
  const text = registerText({ ...o, cseq: 2, authorization });
  for (let i = 0; i < 3 * BURST; i++) a.send(text);
  await waitFor(() => a.received.filter((r) => r.headers.get('call-id') === o.callId && r.status === 200).length === 3 * BURST, () => `${3 * BURST} answers (${a.received.filter((r) => r.status === 200).length} so far)`, 3000);
  assert.equal(await a.options(2000), 200, 'the bucket is not empty');
  assert.equal(banned('127.0.0.20').length, 0);
});
