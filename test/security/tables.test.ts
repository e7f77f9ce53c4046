// The source guard's tables and rules without sockets (lib/security): the caps hold against a
// million spoofed sources in bounded time, a source that keeps failing keeps its count through
// such a flood, the token bucket and its sustained-excess ban, retransmission refunds, trusted
// sources, scanner User-Agents, and bans kept in a real store: loaded at start, shared between
// two connections (sip.workers processes), a repeat offender's doubled ban.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BoundedTable, type TableEntry } from '../../lib/security/bounded-table.js';
import { SourceGuard, type SecuritySettings } from '../../lib/security/guard.js';
import { banLengthMs, canonicalAddress, parseDuration } from '../../lib/security/bans.js';
import { defaultConfig } from '../../lib/config/schema.js';
import { Logger } from '../../lib/log.js';
import { parseMessage } from '../../lib/sip/parser.js';
import type { SipMessage } from '../../lib/sip/message.js';
import { openSqliteStore } from '../../lib/store/sqlite.js';
import type { Store } from '../../lib/store/store.js';

function settings(patch: Partial<SecuritySettings> = {}): SecuritySettings {
  return { ...defaultConfig().security, trusted: [], ...patch };
}

interface Clock {
  t: number;
  now: () => number;
}

function clock(): Clock {
  const c: Clock = { t: 1_700_000_000_000, now: () => c.t };
  return c;
}

function guardOf(s: Partial<SecuritySettings>, opts: { store?: Store | null; lines?: string[]; c?: Clock } = {}): { g: SourceGuard; c: Clock; lines: string[] } {
  const c = opts.c ?? clock();
  const lines = opts.lines ?? [];
  const logger = new Logger({ format: 'json', level: 'debug', write: (l) => lines.push(l) });
  const g = new SourceGuard({ settings: settings(s), store: opts.store ?? null, logger, now: c.now, timer: false });
  return { g, c, lines };
}

/** Advances the clock by `ms` in ticks of 100 ms, polling the guard at each (its timer's work). */
function advance(g: SourceGuard, c: Clock, ms: number): void {
  for (let left = ms; left > 0; left -= 100) {
    c.t += Math.min(100, left);
    g.poll();
  }
}

function request(method: string, userAgent = 'test-phone/1.0'): SipMessage {
  const text = [
    `${method} sip:127.0.0.1 SIP/2.0`,
    'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-unit',
    'Max-Forwards: 70',
    'From: <sip:a@127.0.0.1>;tag=1',
    'To: <sip:a@127.0.0.1>',
    'Call-ID: unit',
    `CSeq: 1 ${method}`,
    `User-Agent: ${userAgent}`,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  const r = parseMessage(Buffer.from(text), { datagram: true });
  assert.ok(r.ok);
  return r.message;
}

/** The n-th of 2^24 distinct IPv4 addresses. */
function spoofed(n: number): string {
  return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
}

function tempStoreDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mss-security-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a bounded table never holds more than its cap; a key used between passes of the hand survives', () => {
  interface E extends TableEntry {
    n: number;
  }
  const table = new BoundedTable<E>(1000);
  const keep: E = { used: true, slot: 0, n: -1 };
  table.insert('keeper', keep);
  for (let i = 0; i < 100_000; i++) {
    table.insert(`k${i}`, { used: false, slot: 0, n: i });
    if (i % 500 === 0) table.get('keeper')!.used = true; // the source that keeps coming back
    assert.ok(table.size <= 1000);
  }
  assert.equal(table.size, 1000);
  assert.equal(table.get('keeper'), keep, 'kept through 100 turns of the ring');
  assert.equal(table.get('k0'), undefined, 'the one-off keys went');
  assert.ok(table.get('k99999'), 'the newest is there');
  table.delete('k99999');
  table.insert('again', { used: false, slot: 0, n: 0 });
  assert.ok(table.size <= 1000);
});

test('a million spoofed sources: the rate and failure tables stay within their cap, in bounded time', (t) => {
  const cap = 10_000;
  const { g } = guardOf({ tableSize: cap, maxFailures: 10 });
  const req = request('REGISTER');
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 1_000_000; i++) {
    const a = spoofed(i);
    const e = g.admit(a);
    assert.ok(e !== null);
    g.message(e, req, a);
    if (i % 4 === 0) g.authFailed(a);
    if (i % 100_000 === 0) {
      const s = g.tableSizes;
      assert.ok(s.rates <= cap && s.failures <= cap, `at ${i}: ${JSON.stringify(s)}`);
    }
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  assert.deepEqual(g.tableSizes, { rates: cap, failures: cap });
  assert.equal(g.bannedCount, 0, 'one message or failure each: nobody is banned');
  // About 1 µs each on a laptop; the bound only catches a table that degrades with its size.
  assert.ok(seconds < 20, `${seconds.toFixed(2)} s for a million sources`);
  t.diagnostic(`1,000,000 spoofed sources: ${((seconds / 1e6) * 1e9).toFixed(0)} ns each (admit + charge, a quarter failing)`);
});

test('a source that keeps failing is banned even while a spoofed flood churns the failure table', () => {
  const { g, lines } = guardOf({ tableSize: 1000, maxFailures: 10 });
  const attacker = '198.51.100.7';
  let spoofs = 0;
  for (let i = 0; i < 1_000_000 && !g.isBanned(attacker); i++) {
    g.authFailed(spoofed(i)); // a forged nonce from a spoofed source: one failure each
    spoofs++;
    // Half a table of spoofed failures between two guesses: evicting by age alone would have
    // pushed the attacker's count out before its next guess every time.
    if (i % 500 === 0) g.authFailed(attacker);
  }
  assert.ok(g.isBanned(attacker), `ten failures within the window, 500 spoofed ones between each (${spoofs} spoofed)`);
  assert.ok(g.tableSizes.failures <= 1000);
  const line = JSON.parse(lines.find((l) => l.includes('security.banned'))!) as Record<string, unknown>;
  assert.equal(line['address'], attacker);
  assert.equal(line['reason'], 'auth');
  assert.equal(line['offences'], 1);
  assert.equal(line['level'], 'warn');
});

test('token bucket: a burst beyond it is dropped, the rate refills it, a sustained excess bans; retransmissions are refunded', () => {
  const { g, c, lines } = guardOf({ ratePerSecond: 10, burst: 20, sustainedSeconds: 2 });
  const a = '203.0.113.5';
  const req = request('OPTIONS');
  let passed = 0;
  for (let i = 0; i < 100; i++) {
    const e = g.admit(a);
    if (e === null) continue;
    g.message(e, req, a);
    passed++;
  }
  assert.equal(passed, 20, 'the burst');
  assert.equal(g.counters.dropped.rate, 80);
  advance(g, c, 1000);
  passed = 0;
  for (let i = 0; i < 100; i++) {
    const e = g.admit(a);
    if (e !== null) {
      g.message(e, req, a);
      passed++;
    }
  }
  assert.equal(passed, 10, 'a second of the rate');
  // A retransmission absorbed by the transaction layer gives its token back.
  advance(g, c, 1000);
  for (let i = 0; i < 50; i++) {
    const e = g.admit(a);
    assert.ok(e !== null, `retransmission ${i} admitted`);
    g.message(e, req, a);
    g.refund(e);
  }
  // Now a flood: 50 a tick (500/s) for the sustained seconds.
  let banned = false;
  for (let tick = 0; tick < 40 && !banned; tick++) {
    for (let i = 0; i < 50; i++) {
      const e = g.admit(a);
      if (e !== null) g.message(e, req, a);
    }
    banned = g.isBanned(a);
    advance(g, c, 100);
  }
  assert.ok(banned, 'banned for a sustained excess');
  const line = JSON.parse(lines.find((l) => l.includes('security.banned'))!) as Record<string, unknown>;
  assert.equal(line['reason'], 'rate');
  assert.equal(g.counters.bans.rate, 1);
  assert.equal(g.admit(a), null, 'dropped before parsing now');
  assert.ok(g.counters.dropped.banned >= 1);
});

test('a short excess with pauses is only dropped, never banned', () => {
  const { g, c } = guardOf({ ratePerSecond: 10, burst: 10, sustainedSeconds: 2 });
  const a = '203.0.113.6';
  const req = request('OPTIONS');
  for (let round = 0; round < 10; round++) {
    for (let i = 0; i < 30; i++) {
      const e = g.admit(a);
      if (e !== null) g.message(e, req, a);
    }
    advance(g, c, 1500); // a pause longer than a second ends the run of drops
  }
  assert.ok(g.counters.dropped.rate > 0);
  assert.equal(g.isBanned(a), false);
});

test('trusted sources (security.trusted, trunk peers) are never rate-limited nor banned', () => {
  const c = clock();
  const lines: string[] = [];
  const g = new SourceGuard({
    settings: settings({ trusted: ['192.0.2.0/24', '2001:db8::/32'], ratePerSecond: 10, burst: 10, maxFailures: 3 }),
    store: null,
    logger: new Logger({ format: 'json', write: (l) => lines.push(l) }),
    isTrustedPeer: (address) => address === '198.51.100.99',
    now: c.now,
    timer: false,
  });
  const req = request('INVITE', 'friendly-scanner');
  for (const a of ['192.0.2.77', '2001:db8::5', '198.51.100.99']) {
    for (let i = 0; i < 1000; i++) {
      const e = g.admit(a);
      assert.ok(e !== null, `${a} message ${i}`);
      assert.equal(g.message(e, req, a), true, 'not even a scanner User-Agent is dropped from a trusted source');
      g.authFailed(a);
    }
    assert.equal(g.ban(a, 'auth'), false);
    assert.equal(g.isBanned(a), false);
  }
  assert.equal(g.counters.failures, 0, 'trusted failures are not counted');
  assert.equal(g.counters.dropped.rate, 0);
  // The same traffic from elsewhere.
  const e = g.admit('192.0.3.1')!;
  assert.equal(g.message(e, req, '192.0.3.1'), false, 'a scanner');
});

test('scanner User-Agents: dropped, any case, counted as failures up to a ban (reason scanner); [] turns it off', () => {
  const { g, lines } = guardOf({ maxFailures: 3 });
  const a = '203.0.113.9';
  for (const ua of ['friendly-scanner', 'SIPVicious/0.3.4', 'sipcli/v1.8']) {
    const e = g.admit(a);
    assert.ok(e !== null);
    assert.equal(g.message(e, request('OPTIONS', ua), a), false, ua);
  }
  assert.equal(g.counters.dropped.scanner, 3);
  assert.ok(g.isBanned(a));
  assert.ok(lines.some((l) => l.includes('security.banned') && l.includes('"reason":"scanner"')));
  const e = g.admit('203.0.113.10')!;
  assert.equal(g.message(e, request('REGISTER', 'Yealink SIP-T46S 66.86.0.15'), '203.0.113.10'), true, 'a desk phone');
  const off = guardOf({ scannerUserAgents: [] }).g;
  assert.equal(off.message(off.admit('203.0.113.11')!, request('OPTIONS', 'friendly-scanner'), '203.0.113.11'), true);
});

test('rate limiting off (ratePerSecond 0): nothing is tracked, bans still apply', () => {
  const { g } = guardOf({ ratePerSecond: 0, maxFailures: 2 });
  for (let i = 0; i < 10_000; i++) g.message(g.admit('203.0.113.20')!, null, '203.0.113.20');
  assert.deepEqual(g.tableSizes, { rates: 0, failures: 0 });
  g.authFailed('203.0.113.21');
  g.authFailed('203.0.113.21');
  assert.equal(g.admit('203.0.113.21'), null);
});

test('failures are counted within the window from the first; spread out, they never ban', () => {
  const { g, c } = guardOf({ maxFailures: 3, window: 10 });
  const a = '203.0.113.30';
  for (let i = 0; i < 20; i++) {
    g.authFailed(a);
    advance(g, c, 5100); // two failures per window at most
  }
  assert.equal(g.isBanned(a), false);
  g.authFailed(a);
  g.authFailed(a);
  g.authFailed(a);
  assert.equal(g.isBanned(a), true, 'three within the window');
});

test('bans are kept in the store: loaded at start, a repeat offender banned twice as long, shared with a second connection', (t) => {
  const dir = tempStoreDir(t);
  const store = openSqliteStore(dir);
  const other = openSqliteStore(dir); // what a sibling sip.workers process holds
  t.after(() => {
    store.close();
    other.close();
  });
  const c = clock();
  const lines: string[] = [];
  const { g } = guardOf({ maxFailures: 2, banTime: 60, maxBanTime: 200 }, { store, c, lines });
  const sibling = guardOf({ maxFailures: 2, banTime: 60, maxBanTime: 200 }, { store: other, c, lines: [] }).g;
  const a = '203.0.113.40';
  g.authFailed(a);
  g.authFailed(a);
  assert.ok(g.isBanned(a));
  const row = store.getBan(a)!;
  assert.equal(row.reason, 'auth');
  assert.equal(row.offences, 1);
  assert.equal(row.expiresAt - row.createdAt, 60_000);
  // The sibling reads it within a second of its timer.
  assert.equal(sibling.isBanned(a), false);
  advance(sibling, c, 1000);
  assert.ok(sibling.isBanned(a), 'shared through the store');
  assert.equal(sibling.admit(a), null);
  // A server started now loads it.
  const third = openSqliteStore(dir);
  t.after(() => third.close());
  const restarted = guardOf({}, { store: third, c }).g;
  assert.ok(restarted.isBanned(a));
  // It ends; banned again within a day: twice as long; then capped by maxBanTime.
  advance(g, c, 61_000);
  assert.equal(g.isBanned(a), false);
  assert.ok(lines.some((l) => l.includes('security.unbanned') && l.includes('"cause":"expired"')));
  g.authFailed(a);
  g.authFailed(a);
  assert.equal(store.getBan(a)!.offences, 2);
  assert.equal(store.getBan(a)!.expiresAt - c.t, 120_000);
  advance(g, c, 121_000);
  g.authFailed(a);
  g.authFailed(a);
  assert.equal(store.getBan(a)!.expiresAt - c.t, 200_000, 'maxBanTime');
  // A removal written elsewhere (`ban remove`) is picked up.
  other.saveBan({ ...store.getBan(a)!, expiresAt: c.t, offences: 0, removed: true });
  advance(g, c, 1000);
  assert.equal(g.isBanned(a), false);
  assert.ok(lines.some((l) => l.includes('security.unbanned') && l.includes('"cause":"removed"')));
});

test('ban lengths, durations and addresses as the ban table keys them', () => {
  assert.equal(banLengthMs(1, 600, 86400), 600_000);
  assert.equal(banLengthMs(2, 600, 86400), 1_200_000);
  assert.equal(banLengthMs(8, 600, 86400), 76_800_000);
  assert.equal(banLengthMs(9, 600, 86400), 86_400_000);
  assert.equal(banLengthMs(1000, 600, 86400), 86_400_000);
  assert.equal(parseDuration('10m'), 600_000);
  assert.equal(parseDuration('2h'), 7_200_000);
  assert.equal(parseDuration('1d'), 86_400_000);
  assert.equal(parseDuration('90'), 90_000);
  assert.equal(parseDuration('forever'), Infinity);
  assert.equal(parseDuration('0'), null);
  assert.equal(parseDuration('soon'), null);
  assert.equal(canonicalAddress('192.0.2.1'), '192.0.2.1');
  assert.equal(canonicalAddress('2001:DB8:0:0:0:0:0:1'), '2001:db8::1');
  assert.equal(canonicalAddress('[2001:db8::1]'), '2001:db8::1');
  assert.equal(canonicalAddress('192.0.2.0/24'), null);
  assert.equal(canonicalAddress('pbx.example.com'), null);
});
