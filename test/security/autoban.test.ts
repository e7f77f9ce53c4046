// Auto-ban against a real server on 127.0.0.1 (docs/SECURITY.md): an attack script on 127.0.0.2
// guesses the password of a real extension the way svcrack does; it is banned after
// security.maxFailures, its further guesses and its TCP connections go unanswered, the ban ends
// after security.banTime and a second one lasts twice as long. The extension's own phone, on
// 127.0.0.1 (policed too: security.trusted is set to another address), keeps registering and
// calling all along. A trusted address is never banned; scanner User-Agents are dropped.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { audioSdp, answeredCall, Phone } from '../helpers/phone.js';
import { waitFor } from '../helpers/keep-alive.js';
import { Attacker, refresh, tcpFate } from './attacker.js';

const MAX_FAILURES = 5;
const BAN_SECONDS = 3;
/** How long silence must last to count as "no answer" (the server answers in a millisecond or two). */
const QUIET_MS = 400;

let srv: TestServer;
const closers: Array<() => void> = [];

before(async () => {
  srv = await startTestServer({
    users: [['301', 'pw301'], ['302', 'pw302']],
    configure: (c) => {
      c.media.relay = 'never';
      c.auth.algorithms = ['MD5', 'SHA-256'];
      c.security.trusted = ['127.0.0.9']; // not 127.0.0.1: the phones' address is policed too
      c.security.maxFailures = MAX_FAILURES;
      c.security.window = 60;
      c.security.banTime = BAN_SECONDS;
    },
  });
});

after(async () => {
  for (const c of closers) c();
  await srv.stop();
});

function logged(event: string, fields: Record<string, unknown> = {}): Array<Record<string, unknown>> {
  return srv.logLines
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l['event'] === event && Object.entries(fields).every(([k, v]) => l[k] === v));
}

async function attacker(address: string): Promise<Attacker> {
  const a = await Attacker.open(address, srv.port);
  closers.push(() => a.close());
  return a;
}

async function phone(user: string): Promise<Phone> {
  const p = await Phone.open(user, `pw${user}`, srv.port);
  closers.push(() => p.close());
  return p;
}

/** Guesses until the server falls silent (at most `limit` guesses); the statuses seen. */
async function attack(a: Attacker, user: string, limit: number, between?: () => Promise<void>): Promise<Array<number | null>> {
  const statuses: Array<number | null> = [];
  for (let i = 0; i < limit; i++) {
    const status = await a.guess(user, `guess-${i}`, QUIET_MS);
    statuses.push(status);
    if (status === null) break;
    await between?.();
  }
  return statuses;
}

test('an attack script is banned after maxFailures; further guesses and its TCP connections go unanswered; the real phone keeps working', async () => {
  const victim = await phone('301');
  const callee = await phone('302');
  await victim.register();
  await callee.register();
  const evil = await attacker('127.0.0.2');

  // Between guesses the victim's phone registers again: it is never refused.
  let refreshes = 0;
  const statuses = await attack(evil, '301', 4 * MAX_FAILURES, async () => {
    await refresh(victim);
    refreshes++;
  });
  assert.deepEqual(statuses, [...Array<number>(MAX_FAILURES).fill(403), null], 'maxFailures 403s, then silence');
  assert.equal(refreshes, MAX_FAILURES);

  const [ban] = logged('security.banned', { address: '127.0.0.2' });
  assert.ok(ban, 'a security.banned line');
  assert.equal(ban['level'], 'warn');
  assert.equal(ban['reason'], 'auth');
  assert.equal(ban['offences'], 1);
  assert.equal(ban['seconds'], BAN_SECONDS);
  assert.ok(Date.parse(String(ban['until'])) > Date.now());

  // Further guesses and probes: silence, dropped before parsing.
  const droppedBefore = srv.server.guard.counters.dropped.banned;
  assert.equal(await evil.guess('301', 'pw301', QUIET_MS), null, 'not even the right password is answered');
  assert.equal(await evil.options(QUIET_MS), null);
  assert.ok(srv.server.guard.counters.dropped.banned >= droppedBefore + 2);
  // A TCP connection from it is closed at once, nothing answered.
  const tcp = await tcpFate('127.0.0.2', srv.port, 1000, 'OPTIONS sip:x SIP/2.0\r\n\r\n');
  assert.equal(tcp.fate, 'closed');
  assert.equal(tcp.bytes, 0);
  assert.ok(srv.server.guard.counters.connectionsRefused >= 1);

  // Meanwhile the real phone of 301 registers and calls.
  await refresh(victim);
  const { call, inc } = await answeredCall(victim, callee, audioSdp(41000), audioSdp(41010));
  assert.equal((await call.bye()).status, 200);
  await callee.answerInDialog(inc.dialog, 'BYE');
  assert.equal(srv.server.guard.isBanned('127.0.0.1'), false);
  assert.equal(srv.server.guard.counters.bans.auth, 1);
});

test('the ban ends after banTime; banned again, a repeat offender is banned twice as long', async () => {
  const evil = await attacker('127.0.0.2');
  await waitFor(() => logged('security.unbanned', { address: '127.0.0.2' }).length > 0, 'the ban of 127.0.0.2 to end', BAN_SECONDS * 1000 + 3000);
  const [ended] = logged('security.unbanned', { address: '127.0.0.2' });
  assert.equal(ended!['cause'], 'expired');
  assert.equal(await evil.options(2000), 200, 'answered again');

  const statuses = await attack(evil, '301', 4 * MAX_FAILURES);
  assert.deepEqual(statuses, [...Array<number>(MAX_FAILURES).fill(403), null]);
  const bans = logged('security.banned', { address: '127.0.0.2' });
  assert.equal(bans.length, 2);
  assert.equal(bans[1]!['offences'], 2);
  assert.equal(bans[1]!['seconds'], 2 * BAN_SECONDS);
  const row = srv.server.store.getBan('127.0.0.2')!;
  assert.equal(row.offences, 2);
  assert.equal(row.reason, 'auth');
});

test('a trusted address is never banned, however often it fails', async () => {
  const office = await attacker('127.0.0.9');
  const statuses = await attack(office, '302', 3 * MAX_FAILURES);
  assert.deepEqual(statuses, Array<number>(3 * MAX_FAILURES).fill(403), 'every guess answered');
  assert.equal(logged('security.banned', { address: '127.0.0.9' }).length, 0);
  assert.equal(srv.server.guard.isBanned('127.0.0.9'), false);
  assert.equal(await office.options(2000), 200);
});

test('scanner User-Agents are dropped unanswered and count as failures: the scanner is banned', async () => {
  const scanner = await attacker('127.0.0.3');
  assert.equal(await scanner.options(QUIET_MS, 'friendly-scanner'), null, 'friendly-scanner');
  assert.equal(await scanner.options(2000, 'Linphone/5.2'), 200, 'the same address with an ordinary User-Agent, not banned yet');
  assert.equal(await scanner.guess('301', 'x', QUIET_MS, 'sipvicious'), null, 'svcrack under its own name');
  for (let i = 0; i < MAX_FAILURES - 2; i++) assert.equal(await scanner.options(QUIET_MS, 'SIPVicious/0.3.4'), null);
  await waitFor(() => logged('security.banned', { address: '127.0.0.3' }).length > 0, 'the scanner ban', 2000);
  assert.equal(logged('security.banned', { address: '127.0.0.3' })[0]!['reason'], 'scanner');
  assert.equal(await scanner.options(QUIET_MS, 'Linphone/5.2'), null, 'banned: nothing is answered now');
  assert.ok(srv.server.guard.counters.dropped.scanner >= MAX_FAILURES);
});

test('a source banned while it holds a TCP connection loses it at once', async () => {
  const open = await tcpFate('127.0.0.4', srv.port, 300);
  assert.equal(open.fate, 'open', 'accepted while not banned');
  const closed = new Promise<void>((resolve) => open.socket.once('close', () => resolve()));
  const started = Date.now();
  assert.equal(srv.server.guard.ban('127.0.0.4', 'rate'), true);
  await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('the connection stayed open')), 1000))]);
  assert.ok(Date.now() - started < 1000);
});
