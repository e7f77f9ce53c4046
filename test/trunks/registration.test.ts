import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { waitFor, keepAlive } from '../helpers/keep-alive.js';
import { trunkConfig } from '../helpers/trunks.js';
import { TrunkRegistration, refreshDelayMs, type RegistrationEnv, type RegistrationState } from '../../lib/trunks/registration.js';
import type { TrunkConfig } from '../../lib/trunks/config.js';
import { challengeHeaderValues, parseCredentials } from '../../lib/sip/digest.js';
import { createResponse, serialize, type SipRequest, type SipResponse } from '../../lib/sip/message.js';
import { parseMessage } from '../../lib/sip/parser.js';
import { viaBranch, topVia } from '../../lib/sip/transaction/message-keys.js';
import type { Endpoint } from '../../lib/sip/transport/types.js';

const PASSWORD = 'secret5001';

/** Plays the provider: SHA-256 only, any registration lifetime from 1 s. */
let carrierSha: TestServer;
/** Plays the provider: MD5 only, registrations of at least 120 s. */
let carrierMd5: TestServer;
/** The PBX whose SIP stack the registrations go through (T1 50 ms: a timeout takes 3.2 s). */
let pbx: TestServer;

before(async () => {
  const users: Array<[string, string]> = [['5001', PASSWORD]];
  [carrierSha, carrierMd5, pbx] = await Promise.all([
    startTestServer({ users, configure: (c) => { c.auth.algorithms = ['SHA-256']; c.registrar.minExpires = 1; } }),
    startTestServer({ users, configure: (c) => { c.auth.algorithms = ['MD5']; c.registrar.minExpires = 120; } }),
    startTestServer({ configure: (c) => { c.sip.t1 = 50; } }),
  ]);
});

after(async () => {
  await Promise.all([carrierSha?.stop(), carrierMd5?.stop(), pbx?.stop()]);
});

interface LogEntry {
  level: string;
  event: string;
  fields: Record<string, unknown>;
  at: number;
}

interface Sent {
  req: SipRequest;
  at: number;
  res?: SipResponse;
  timedOut?: boolean;
}

/** A registration driven through the PBX's SIP stack, with what it sent, heard and logged. */
class Harness {
  readonly sent: SipRequest[] = [];
  readonly exchanges: Sent[] = [];
  readonly logs: LogEntry[] = [];
  readonly changes: RegistrationState[] = [];
  readonly reg: TrunkRegistration;

  constructor(trunk: TrunkConfig, opts: { retryMinMs?: number; retryMaxMs?: number; destination?: () => Promise<Endpoint> } = {}) {
    const stack = pbx.server.stack;
    const env: RegistrationEnv = {
      sendRequest: (req, dest, user) => {
        const entry: Sent = { req, at: Date.now() };
        this.exchanges.push(entry);
        this.sent.push(req);
        return stack.transactions.sendRequest(req, dest, {
          onResponse: (res) => {
            if (res.status >= 200) entry.res = res;
            user.onResponse(res);
          },
          onTimeout: () => {
            entry.timedOut = true;
            user.onTimeout();
          },
        });
      },
      localHost: () => '127.0.0.1',
      sipPort: () => stack.dialogPort,
      viaRport: true,
      userAgent: 'minisipserver-test',
      log: (level, event, fields) => this.logs.push({ level, event, fields, at: Date.now() }),
    };
    const destination = opts.destination ?? (async () => ({ transport: trunk.transport, address: trunk.host, port: trunk.port }));
    this.reg = new TrunkRegistration(env, trunk, destination, opts);
    this.reg.onChange = (s) => this.changes.push(s);
  }

  events(name: string): LogEntry[] {
    return this.logs.filter((l) => l.event === name);
  }

  /** REGISTERs that carried credentials and got a 2xx. */
  get successes(): number {
    return this.exchanges.filter((e) => e.req.headers.has('authorization') && e.res !== undefined && e.res.status < 300).length;
  }

  /** Attempts: REGISTERs sent without credentials (the first of each attempt). */
  get attempts(): SipRequest[] {
    return this.sent.filter((r) => !r.headers.has('authorization'));
  }

  async untilStatus(status: RegistrationState['status'], limitMs = 5000): Promise<void> {
    await waitFor(() => this.reg.state.status === status, () => `status ${status} (is ${JSON.stringify(this.reg.state)})`, limitMs);
  }
}

function trunkFor(port: number, over: Partial<TrunkConfig> = {}): TrunkConfig {
  return trunkConfig({ name: 'carrier', kind: 'register', port, username: '5001', password: PASSWORD, requestUriParams: '', stripPlus: false, ...over });
}

const contactUri = () => `sip:5001@127.0.0.1:${pbx.server.stack.dialogPort}`;

function bindingsAt(carrier: TestServer) {
  return carrier.server.registrar.lookup('5001').filter((b) => b.contact === contactUri());
}

function cseqOf(req: SipRequest): number {
  return Number.parseInt(req.headers.get('cseq') ?? '', 10);
}

function credentialsOf(req: SipRequest) {
  const c = parseCredentials(req.headers.get('authorization') ?? '');
  assert.ok(c, 'the REGISTER carries credentials');
  return c;
}

test('registers with SHA-256, as RFC 3261 section 10.2 builds a REGISTER; stop() unregisters', async () => {
  const h = new Harness(trunkFor(carrierSha.port));
  h.reg.start();
  await h.untilStatus('registered');
  const [binding] = bindingsAt(carrierSha);
  assert.ok(binding, 'the carrier has our binding');
  assert.ok(binding.expiresAt - Date.now() > 590_000);
  assert.equal(h.reg.contactUser, '5001');

  const [first, second] = h.sent;
  assert.ok(first && second);
  assert.equal(first.uri, `sip:127.0.0.1:${carrierSha.port}`);
  assert.equal(first.headers.get('to'), '<sip:5001@127.0.0.1>');
  assert.match(first.headers.get('from') ?? '', /^<sip:5001@127\.0\.0\.1>;tag=\w+$/);
  assert.equal(first.headers.get('contact'), `<${contactUri()}>`);
  assert.equal(first.headers.get('expires'), '600');
  assert.equal(first.headers.get('max-forwards'), '70');
  assert.equal(first.headers.get('user-agent'), 'minisipserver-test');
  assert.match(topVia(first) ?? '', new RegExp(`^SIP/2.0/UDP 127\\.0\\.0\\.1:${pbx.server.stack.dialogPort};branch=z9hG4bK\\w+;rport$`));
  assert.equal(second.headers.get('from'), first.headers.get('from'));
  assert.equal(second.headers.get('call-id'), first.headers.get('call-id'));
  assert.equal(cseqOf(second), cseqOf(first) + 1);
  assert.notEqual(viaBranch(topVia(second)!), viaBranch(topVia(first)!));
  const creds = credentialsOf(second);
  assert.equal(creds.algorithm, 'SHA-256');
  assert.equal(creds.username, '5001');
  assert.equal(creds.uri, first.uri);

  const state = h.reg.state;
  assert.equal(state.lastStatus, 200);
  assert.equal(state.failures, 0);
  assert.ok(state.expiresAt !== undefined && state.nextAttemptAt !== undefined && state.nextAttemptAt < state.expiresAt);
  assert.deepEqual(h.changes.map((s) => s.status), ['registering', 'registered']);
  assert.equal(h.events('trunk.registered').length, 1);
  assert.equal(h.events('trunk.registered')[0]!.level, 'info');

  await keepAlive(h.reg.stop(2000), 'stop');
  assert.equal(h.reg.state.status, 'stopped');
  assert.equal(bindingsAt(carrierSha).length, 0, 'the binding is gone');
  const unregister = h.sent.at(-1)!;
  assert.equal(unregister.headers.get('expires'), '0');
  assert.equal(unregister.headers.get('contact'), `<${contactUri()}>`);
  assert.ok(unregister.headers.has('authorization'), 'the challenge to the unregister was answered');
  assert.equal(unregister.headers.get('call-id'), first.headers.get('call-id'));
  assert.deepEqual(h.sent.map(cseqOf), h.sent.map((_, i) => cseqOf(first) + i), 'CSeq goes up by one for every REGISTER');
  assert.equal(h.events('trunk.unregistered').length, 1);
  assert.ok(!JSON.stringify(h.logs).includes(PASSWORD), 'the password is never logged');
});

test('registers with MD5 when that is all the carrier offers; authUsername, fromUser and fromDomain are used', async () => {
  const h = new Harness(trunkFor(carrierMd5.port, { username: '5001', fromDomain: 'carrier.example', fromUser: '5001', authUsername: '5001' }));
  h.reg.start();
  await h.untilStatus('registered');
  assert.equal(bindingsAt(carrierMd5).length, 1);
  assert.equal(credentialsOf(h.sent.at(-1)!).algorithm, 'MD5');
  assert.equal(h.sent[0]!.headers.get('to'), '<sip:5001@carrier.example>');
  await keepAlive(h.reg.stop(2000), 'stop');
  assert.equal(bindingsAt(carrierMd5).length, 0);
});

test('a short registration is refreshed at about half its lifetime, on the same Call-ID, logged once', async () => {
  const h = new Harness(trunkFor(carrierSha.port, { expires: 10 }));
  h.reg.start();
  await h.untilStatus('registered');
  const firstExpiry = h.reg.state.expiresAt!;
  assert.ok(h.reg.state.nextAttemptAt! - Date.now() > 3000, 'the refresh is about 5 s away');
  await waitFor(() => h.successes >= 2, () => `a refresh (${h.successes} successes)`, 9000);
  assert.ok(h.reg.state.expiresAt! > firstExpiry, 'the refresh extended the binding');
  const ids = new Set(h.sent.map((r) => r.headers.get('call-id')));
  assert.equal(ids.size, 1);
  assert.deepEqual(h.sent.map(cseqOf), h.sent.map((_, i) => cseqOf(h.sent[0]!) + i));
  assert.equal(h.events('trunk.registered').length, 1, 'a refresh is no new registration');
  assert.deepEqual(h.changes.map((s) => s.status), ['registering', 'registered']);
  assert.equal(bindingsAt(carrierSha).length, 1);
  await keepAlive(h.reg.stop(2000), 'stop');
  assert.equal(bindingsAt(carrierSha).length, 0);
});

test('423 Interval Too Brief: asks again with Min-Expires (RFC 3261 section 10.2.8)', async () => {
  const h = new Harness(trunkFor(carrierMd5.port, { expires: 60 }));
  h.reg.start();
  await h.untilStatus('registered');
  const asked = h.sent.map((r) => r.headers.get('expires'));
  assert.deepEqual(asked, ['60', '60', '120', '120'], 'challenge, 423, then challenge and 200 at 120 s');
  assert.equal(h.exchanges[1]!.res?.status, 423);
  const [binding] = bindingsAt(carrierMd5);
  assert.ok(binding && binding.expiresAt - Date.now() > 110_000);
  assert.ok(h.reg.state.expiresAt! - Date.now() > 110_000);
  await keepAlive(h.reg.stop(2000), 'stop');
  assert.equal(bindingsAt(carrierMd5).length, 0);
});

test('a wrong password: failing with 403, retried with a back-off that doubles up to its maximum', async () => {
  const h = new Harness(trunkFor(carrierSha.port, { password: 'not-the-password' }), { retryMinMs: 200, retryMaxMs: 800 });
  h.reg.start();
  await waitFor(() => h.events('trunk.register_failed').length >= 4, () => `4 failures (${h.events('trunk.register_failed').length})`, 8000);
  const state = h.reg.state;
  assert.equal(state.status, 'failing');
  assert.equal(state.lastStatus, 403);
  assert.ok(state.failures >= 4);
  const failures = h.events('trunk.register_failed').slice(0, 4);
  assert.deepEqual(failures.map((f) => f.fields['retryInSeconds']), [0.2, 0.4, 0.8, 0.8]);
  assert.deepEqual(failures.map((f) => f.level), ['warn', 'warn', 'warn', 'warn']);
  assert.deepEqual(failures.map((f) => [f.fields['trunk'], f.fields['status']]), Array(4).fill(['carrier', 403]));
  // Each attempt: one REGISTER, one answer to its challenge (403: no second answer), then the back-off.
  const first8 = h.exchanges.slice(0, 8);
  assert.deepEqual(first8.map((e) => e.req.headers.has('authorization')), [false, true, false, true, false, true, false, true]);
  assert.deepEqual(first8.map((e) => e.res?.status), [401, 403, 401, 403, 401, 403, 401, 403]);
  for (let k = 0; k < 3; k++) {
    const waited = first8[2 * (k + 1)]!.at - failures[k]!.at;
    assert.ok(waited >= (failures[k]!.fields['retryInSeconds'] as number) * 1000 - 5, `attempt ${k + 2} came ${waited} ms after failure ${k + 1}`);
  }
  assert.equal(bindingsAt(carrierSha).length, 0);
  assert.equal(h.changes[0]!.status, 'registering');
  assert.ok(h.changes.slice(1).every((s) => s.status === 'failing'), 'a retry stays failing until it succeeds');
  assert.ok(!JSON.stringify(h.logs).includes('not-the-password'));
  await keepAlive(h.reg.stop(2000), 'stop');
  assert.equal(h.reg.state.status, 'stopped');
  assert.ok(h.sent.every((r) => r.headers.get('expires') === '600'), 'nothing was bound: no unregister');
});

test('a carrier that does not answer: failing with 408 after timer F; stop() then returns at once', async () => {
  const sink = await UdpCarrier.open(() => null);
  try {
    const h = new Harness(trunkFor(sink.port), { retryMinMs: 60_000 });
    h.reg.start();
    await h.untilStatus('failing', 8000);
    assert.equal(h.reg.state.lastStatus, 408);
    assert.equal(h.reg.state.failures, 1);
    assert.ok(h.reg.state.nextAttemptAt! - Date.now() > 50_000);
    assert.equal(h.events('trunk.register_failed')[0]!.fields['retryInSeconds'], 60);
    assert.equal(sink.requests.length, 1);
    await keepAlive(h.reg.stop(5000), 'stop', 200);
  } finally {
    sink.close();
  }
});

test('a host that cannot be looked up: failing without a status, retried', async () => {
  let lookups = 0;
  const h = new Harness(trunkFor(5060, { host: 'nowhere.invalid' }), {
    retryMinMs: 50,
    destination: async () => {
      lookups++;
      throw new Error('getaddrinfo ENOTFOUND nowhere.invalid');
    },
  });
  h.reg.start();
  await waitFor(() => lookups >= 2, 'a second lookup');
  assert.equal(h.reg.state.status, 'failing');
  assert.equal(h.reg.state.lastStatus, undefined);
  assert.match(h.reg.state.lastReason ?? '', /ENOTFOUND/);
  assert.equal(h.sent.length, 0);
  await keepAlive(h.reg.stop(1000), 'stop', 200);
  // No retry timer survives stop(): with retries 50-100 ms apart, 300 ms would show one.
  const seen = lookups;
  await keepAlive(new Promise((r) => setTimeout(r, 300)), 'quiet period', 1000);
  assert.equal(lookups, seen);
});

test('a stale challenge is answered again; a second plain challenge is a failure', async () => {
  let round = 0;
  const carrier = await UdpCarrier.open((req, n) => {
    if (!req.headers.has('authorization')) round++;
    // round 1: 401, 401 stale, 200; round 2: 401, 401 (not stale) -> failure
    if (round === 1) return n === 1 ? challenge(req, false) : n === 2 ? challenge(req, true) : ok(req, 3600);
    return challenge(req, false);
  });
  try {
    const h = new Harness(trunkFor(carrier.port, { expires: 3600 }), { retryMinMs: 60_000 });
    h.reg.start();
    await h.untilStatus('registered');
    assert.equal(carrier.requests.length, 3);
    // A second registration meets two plain challenges in a row.
    const h2 = new Harness(trunkFor(carrier.port, { expires: 3600 }), { retryMinMs: 60_000 });
    h2.reg.start();
    await h2.untilStatus('failing');
    assert.equal(h2.reg.state.lastStatus, 401);
    assert.equal(h2.sent.length, 2, 'one answer to a challenge that is not stale');
    await keepAlive(Promise.all([h.reg.stop(1000), h2.reg.stop(1000)]), 'stop');
  } finally {
    carrier.close();
  }
});

test('the 2xx decides the lifetime: our Contact\'s expires, else Expires, else what was asked', async () => {
  const cases: Array<[(req: SipRequest) => SipResponse, number]> = [
    [(req) => ok(req, 300, [`<sip:other@192.0.2.1>;expires=50`]), 300],
    [(req) => withHeader(ok(req, null, [`<sip:other@192.0.2.1>;expires=50`]), 'expires', '200'), 200],
    [(req) => ok(req, null), 3600],
  ];
  for (const [answer, expected] of cases) {
    const carrier = await UdpCarrier.open(answer);
    try {
      const h = new Harness(trunkFor(carrier.port, { expires: 3600 }));
      h.reg.start();
      await h.untilStatus('registered');
      const left = (h.reg.state.expiresAt! - Date.now()) / 1000;
      assert.ok(left > expected - 5 && left <= expected, `lifetime ${left} s, expected ${expected} s`);
      await keepAlive(h.reg.stop(1000), 'stop');
    } finally {
      carrier.close();
    }
  }
});

test('423 without a usable Min-Expires, or more than 3 in a row, is a failure', async () => {
  for (const [minExpires, expectedSent] of [['30', 1], ['100000', 1], [null, 1], ['__grow', 4]] as const) {
    const carrier = await UdpCarrier.open((req) => {
      const asked = Number(req.headers.get('expires'));
      const res = createResponse(req, 423, undefined, 'c1');
      if (minExpires === '__grow') res.headers.append('min-expires', String(asked + 10));
      else if (minExpires !== null) res.headers.append('min-expires', minExpires);
      return res;
    });
    try {
      const h = new Harness(trunkFor(carrier.port, { expires: 60 }), { retryMinMs: 60_000 });
      h.reg.start();
      await h.untilStatus('failing');
      assert.equal(h.reg.state.lastStatus, 423);
      assert.equal(h.sent.length, expectedSent, `Min-Expires ${minExpires}`);
      await keepAlive(h.reg.stop(1000), 'stop');
    } finally {
      carrier.close();
    }
  }
});

test('stop() gives up on an unregister that is not answered after timeoutMs; listener faults are contained', async () => {
  const carrier = await UdpCarrier.open((req) => (req.headers.get('expires') === '0' ? null : ok(req, 3600)));
  try {
    const h = new Harness(trunkFor(carrier.port, { expires: 3600 }));
    h.reg.onChange = () => {
      throw new Error('listener fault');
    };
    h.reg.start();
    await h.untilStatus('registered');
    const started = Date.now();
    await keepAlive(h.reg.stop(300), 'stop', 2000);
    assert.ok(Date.now() - started >= 250);
    assert.equal(h.sent.at(-1)!.headers.get('expires'), '0');
    assert.equal(h.events('trunk.unregister_failed').length, 1);
    assert.ok(h.events('trunk.state_listener_failed').length >= 2);
  } finally {
    carrier.close();
  }
});

test('refreshDelayMs: half, at least 5 s from now, at least 1 s before the end', () => {
  assert.equal(refreshDelayMs(600_000), 300_000);
  assert.equal(refreshDelayMs(10_000), 5000);
  assert.equal(refreshDelayMs(8000), 5000);
  assert.equal(refreshDelayMs(4000), 3000);
  assert.equal(refreshDelayMs(2000), 1000);
  assert.equal(refreshDelayMs(1000), 500);
});

// ---------------------------------------------------------------------------------------------

function challenge(req: SipRequest, stale: boolean): SipResponse {
  const res = createResponse(req, 401, undefined, 'c1');
  for (const v of challengeHeaderValues('carrier', `nonce${Math.random()}`, '', stale, ['MD5'])) res.headers.append('www-authenticate', v);
  return res;
}

function ok(req: SipRequest, contactExpires: number | null, others: string[] = []): SipResponse {
  const res = createResponse(req, 200, undefined, 'c1');
  for (const o of others) res.headers.append('contact', o);
  if (contactExpires !== null) res.headers.append('contact', `${req.headers.get('contact')};expires=${contactExpires}`);
  return res;
}

function withHeader(res: SipResponse, name: string, value: string): SipResponse {
  res.headers.append(name, value);
  return res;
}

/** A scripted provider on UDP: answers each new REGISTER (retransmissions get the same answer) or drops it. */
class UdpCarrier {
  readonly requests: SipRequest[] = [];
  private readonly answers = new Map<string, SipResponse | null>();
  private readonly socket = dgram.createSocket('udp4');
  port = 0;

  private constructor(private readonly answer: (req: SipRequest, n: number) => SipResponse | null) {}

  static async open(answer: (req: SipRequest, n: number) => SipResponse | null): Promise<UdpCarrier> {
    const c = new UdpCarrier(answer);
    await new Promise<void>((resolve) => c.socket.bind(0, '127.0.0.1', resolve));
    c.port = c.socket.address().port;
    c.socket.on('message', (data, rinfo) => c.onMessage(data, rinfo));
    return c;
  }

  private onMessage(data: Buffer, rinfo: dgram.RemoteInfo): void {
    const r = parseMessage(data, { datagram: true });
    if (!r.ok || r.message.kind !== 'request') return;
    const req = r.message;
    const branch = viaBranch(topVia(req) ?? '') ?? '';
    let res = this.answers.get(branch);
    if (res === undefined) {
      this.requests.push(req);
      res = this.answer(req, this.requests.length);
      this.answers.set(branch, res);
    }
    if (res !== null) this.socket.send(serialize(res), rinfo.port, rinfo.address);
  }

  close(): void {
    this.socket.close();
  }
}
