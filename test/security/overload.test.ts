// Overload control (docs/SECURITY.md, Overload). The state machine is driven with chosen samples;
// then a real server on 127.0.0.1 is pushed over its high-water mark of calls being set up (two
// calls left ringing against overload.highCallsInSetup: 2, until it admits no new call; the delay
// marks are set out of reach so that a busy test machine cannot change the outcome): new INVITEs get 503 with
// Retry-After before any challenge, an unknown source's new requests are shed (UDP) or refused
// (TCP), while a registered phone's refresh, CANCEL and in-dialog requests are served; once the
// calls are settled it accepts again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { OverloadControl, type OverloadSettings } from '../../lib/security/overload.js';
import { Logger } from '../../lib/log.js';
import { parseMessage } from '../../lib/sip/parser.js';
import type { SipRequest, SipResponse } from '../../lib/sip/message.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { Phone, type OutgoingCall } from '../helpers/phone.js';
import { waitFor } from '../helpers/keep-alive.js';
import { branch } from '../helpers/sip-peer.js';
import { Attacker } from './attacker.js';
import { ServerMetrics } from '../../lib/admin/metrics.js';

const SETTINGS: OverloadSettings = { enabled: true, highDelayMs: 100, lowDelayMs: 30, highCallsInSetup: 10, lowCallsInSetup: 5, retryAfter: 7 };

function control(settings: Partial<OverloadSettings> = {}) {
  let now = 0;
  const lines: Array<Record<string, unknown>> = [];
  const logger = new Logger({ format: 'json', level: 'debug', write: (l) => lines.push(JSON.parse(l) as Record<string, unknown>) });
  const known = new Set<string>();
  const c = new OverloadControl({
    settings: { ...SETTINGS, ...settings },
    logger,
    callsInSetup: () => 0,
    knownSource: (_req, source) => known.has(source.address),
    timer: false,
    now: () => now,
  });
  /** `ms` of samples every 50 ms with this delay and these calls in setup. */
  const run = (ms: number, delay: number, calls = 0) => {
    for (let t = 0; t < ms; t += 50) {
      now += 50;
      c.sample(delay, calls);
    }
  };
  return { c, run, lines, known };
}

function request(method: string): SipRequest {
  const r = parseMessage(Buffer.from(`${method} sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx\r\nFrom: <sip:200@127.0.0.1>;tag=a\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: c\r\nCSeq: 1 ${method}\r\nContent-Length: 0\r\n\r\n`), { datagram: true });
  assert.ok(r.ok);
  return r.message as SipRequest;
}

test('a delay over the high-water mark on three samples in a row cuts the calls admitted; calm samples give them back', () => {
  const { c, run, lines } = control();
  run(500, 20);
  assert.equal(c.active, false);
  run(100, 150); // two late samples (a garbage-collection pause) are not overload
  assert.equal(c.active, false);
  run(100, 20);
  run(150, 150);
  assert.equal(c.active, true);
  assert.equal(c.admit, 0.75);
  assert.equal(lines.filter((l) => l['event'] === 'overload.started').length, 1);
  assert.equal(lines[0]!['reason'], 'delay');
  run(100, 150);
  assert.equal(c.admit, 0.421875);
  run(450, 50); // between the marks: held
  assert.equal(c.admit, 0.421875);
  run(450, 200); // over the mark again: the first two samples of a new run do not count
  assert.ok(c.admit > 0.05 && c.admit < 0.06);
  run(50, 200);
  assert.equal(c.admit, 0, 'below a twentieth: none');
  run(50, 10);
  assert.equal(c.admit, 0.1);
  run(850, 10);
  assert.equal(c.admit, 0.95);
  assert.equal(c.active, true);
  run(50, 10);
  assert.equal(c.admit, 1);
  assert.equal(c.active, false);
  assert.equal(c.counters.onsets, 1);
});

test('calls being set up count like the delay, with their own marks', () => {
  const { c, run, lines } = control();
  run(100, 0, 9);
  assert.equal(c.active, false);
  run(50, 0, 10);
  assert.equal(c.active, true);
  assert.equal(lines[0]!['reason'], 'calls in setup');
  assert.equal(lines[0]!['callsInSetup'], 10);
  run(2000, 0, 5); // calm delay, but not fewer than lowCallsInSetup: held
  assert.equal(c.admit, 0.75);
  run(500, 0, 4);
  assert.equal(c.admit, 1);
  assert.equal(c.active, false);
});

test('the share admitted is spread evenly over the calls; other new requests are served for known sources, shed over UDP, refused over TCP', () => {
  const { c, run, known } = control();
  known.add('10.0.0.5');
  run(150, 500); // admit three calls in four
  assert.equal(c.admit, 0.75);
  const udp = (address: string) => ({ transport: 'udp' as const, address, port: 5060 });
  const invites = Array.from({ length: 6 }, () => c.verdict(request('INVITE'), udp('10.0.0.5')));
  assert.deepEqual(invites, ['reject', 'serve', 'serve', 'serve', 'reject', 'serve']);
  assert.equal(c.verdict(request('REGISTER'), udp('10.0.0.5')), 'serve');
  assert.equal(c.verdict(request('OPTIONS'), udp('10.0.0.5')), 'serve');
  assert.equal(c.verdict(request('REGISTER'), udp('192.0.2.1')), 'shed');
  assert.equal(c.verdict(request('OPTIONS'), { transport: 'tcp', address: '192.0.2.1', port: 40000, connectionId: 1 }), 'reject');
  assert.deepEqual(c.counters, { rejected: 3, shed: 1, onsets: 1 });
  assert.equal(c.retryAfter, '7');
  run(600, 500);
  assert.equal(c.admit, 0);
  assert.ok(Array.from({ length: 20 }, () => c.verdict(request('INVITE'), udp('10.0.0.5'))).every((v) => v === 'reject'));
});

test('a request answering a challenge sent in the last 32 s is served whatever the share; an older answer is not', () => {
  let now = 0;
  const answeredAt = new Map<string, number>([['recent', 31_000], ['old', 33_000]]);
  const c = new OverloadControl({
    settings: SETTINGS,
    logger: new Logger({ format: 'json', level: 'error', write: () => {} }),
    callsInSetup: () => 0,
    knownSource: () => false,
    // The Call-ID stands for the nonce here: how long ago "its" challenge was sent.
    answersChallenge: (req, withinMs) => (answeredAt.get(req.headers.get('call-id') ?? '') ?? Infinity) <= withinMs,
    timer: false,
    now: () => now,
  });
  for (let t = 0; t < 1000; t += 50) {
    now += 50;
    c.sample(500, 0);
  }
  assert.equal(c.admit, 0);
  const udp = { transport: 'udp' as const, address: '192.0.2.1', port: 5060 };
  const withCallId = (method: string, callId: string) => {
    const r = request(method);
    r.headers.set('call-id', callId);
    return r;
  };
  assert.equal(c.verdict(withCallId('INVITE', 'recent'), udp), 'serve');
  assert.equal(c.verdict(withCallId('REGISTER', 'recent'), udp), 'serve');
  assert.equal(c.verdict(withCallId('INVITE', 'old'), udp), 'reject');
  assert.equal(c.verdict(withCallId('REGISTER', 'old'), udp), 'shed');
  assert.deepEqual(c.counters, { rejected: 1, shed: 1, onsets: 1 });
});

test('a new request that waited the high-water delay in the receive queue is refused whatever the share, and logged as one episode', () => {
  const { c, run, lines, known } = control({ highDelayMs: 250 });
  known.add('10.0.0.5');
  run(500, 20);
  assert.equal(c.active, false);
  assert.equal(c.lateMs, 250);
  const udp = (address: string) => ({ transport: 'udp' as const, address, port: 5060 });
  assert.equal(c.verdict(request('INVITE'), udp('10.0.0.5'), true), 'reject');
  assert.equal(c.verdict(request('INVITE'), udp('10.0.0.5'), true), 'reject');
  assert.equal(c.verdict(request('REGISTER'), udp('10.0.0.5'), true), 'serve', 'a known source');
  assert.equal(c.verdict(request('REGISTER'), udp('192.0.2.1'), true), 'shed');
  assert.deepEqual(c.counters, { rejected: 2, shed: 1, onsets: 1 });
  assert.equal(c.admit, 1, 'the share is not cut by late requests');
  const started = lines.filter((l) => l['event'] === 'overload.started');
  assert.equal(started.length, 1);
  assert.equal(started[0]!['reason'], 'receive queue');
  run(9_900, 20);
  assert.equal(lines.filter((l) => l['event'] === 'overload.ended').length, 0);
  run(200, 20);
  const ended = lines.filter((l) => l['event'] === 'overload.ended');
  assert.equal(ended.length, 1);
  assert.equal(ended[0]!['rejected'], 2);
  c.configure({ ...SETTINGS, enabled: false });
  assert.equal(c.lateMs, Infinity, 'off: nothing is late');
});

test('a load hovering around the mark is one episode in the log, ended after 10 s of admitting all', () => {
  const { c, run, lines } = control();
  for (let i = 0; i < 5; i++) {
    run(150, 200);
    run(600, 5);
  }
  assert.equal(c.counters.onsets, 5);
  assert.equal(lines.filter((l) => l['event'] === 'overload.started').length, 1);
  run(150, 200);
  c.verdict(request('INVITE'), { transport: 'udp', address: '192.0.2.1', port: 5060 });
  run(1000, 5); // back to all within a second
  assert.equal(c.active, false);
  run(8500, 5);
  assert.equal(lines.filter((l) => l['event'] === 'overload.ended').length, 0);
  run(1000, 5);
  const ended = lines.filter((l) => l['event'] === 'overload.ended');
  assert.equal(ended.length, 1);
  assert.equal(ended[0]!['onsets'], 6);
  assert.equal(ended[0]!['rejected'], 1);
  assert.equal(ended[0]!['peakDelayMs'], 200);
  assert.equal(ended[0]!['lowestAdmittedShare'], 0.75);
});

test('turned off by configuration, it never refuses and a reload ends a refusal at once', () => {
  const { c, run } = control();
  run(150, 500);
  assert.equal(c.active, true);
  c.configure({ ...SETTINGS, enabled: false });
  assert.equal(c.active, false);
  run(500, 500, 100);
  assert.equal(c.active, false);
});

// ---- against a real server ----------------------------------------------------------------------

let srv: TestServer;
const closers: Array<() => void> = [];

before(async () => {
  srv = await startTestServer({
    users: [['401', 'pw401'], ['402', 'pw402']],
    configure: (c) => {
      c.media.relay = 'never';
      c.security.trusted = ['127.0.0.9']; // 127.0.0.1 and 127.0.0.2 are strangers unless registered
      c.overload.highCallsInSetup = 2;
      c.overload.lowCallsInSetup = 1;
      c.overload.highDelayMs = 60000;
      c.overload.lowDelayMs = 59999;
      c.overload.retryAfter = 9;
    },
  });
});

after(async () => {
  for (const c of closers) c();
  await srv.stop();
});

async function phone(user: string): Promise<Phone> {
  const p = await Phone.open(user, `pw${user}`, srv.port);
  closers.push(() => p.close());
  return p;
}

function rawRequest(method: string, fromPort: number, callId: string, opts: { toTag?: string; user?: string; transport?: string } = {}): string {
  const user = opts.user ?? '401';
  return [
    `${method} sip:402@127.0.0.1:${srv.port} SIP/2.0`,
    `Via: SIP/2.0/${opts.transport ?? 'UDP'} 127.0.0.1:${fromPort};branch=${branch()};rport`,
    'Max-Forwards: 70',
    `From: <sip:${user}@127.0.0.1>;tag=f${callId}`,
    `To: <sip:402@127.0.0.1>${opts.toTag ? `;tag=${opts.toTag}` : ''}`,
    `Call-ID: ${callId}`,
    `CSeq: 1 ${method}`,
    `Contact: <sip:${user}@127.0.0.1:${fromPort}>`,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

/**
 * Whether the server answers `text` from the attacker: the request is followed by an in-dialog
 * BYE for no dialog, which is always answered (481). The server handles one source's datagrams in
 * order, so an answer to the request would arrive before that 481.
 */
async function answered(a: Attacker, text: string, callId: string): Promise<SipResponse | null> {
  a.send(text);
  const probe = `probe-${callId}`;
  a.send(rawRequest('BYE', a.port, probe, { toTag: 'nodialog' }));
  const r481 = await a.response(probe, 3000);
  assert.equal(r481?.status, 481, 'the in-dialog probe is served during overload');
  return a.received.find((r) => r.headers.get('call-id') === callId) ?? null;
}

test('overloaded by calls being set up: 503 with Retry-After for new calls, strangers shed, known phones and dialogs served', async () => {
  const a = await phone('401');
  const b = await phone('402');
  await a.register();
  await b.register();
  const stranger = await Attacker.open('127.0.0.2', srv.port);
  closers.push(() => stranger.close());

  assert.equal((await answered(stranger, rawRequest('OPTIONS', stranger.port, 'opt-before'), 'opt-before'))?.status, 200, 'served before the overload');

  // Two calls left ringing: two INVITE transactions waiting for their final response.
  const first = await a.invite('402');
  const ringing1 = await b.incoming();
  ringing1.ring();
  const second = await a.invite('402');
  const ringing2 = await b.incoming();
  ringing2.ring();
  await waitFor(() => srv.server.overload.admit === 0, 'the server to refuse every new call for two calls in setup');

  // A new call, even from a registered phone: 503 with Retry-After, before any challenge.
  a.sendText(rawRequest('INVITE', a.port, 'inv-refused'));
  const refused = await a.waitResponse((r) => r.headers.get('call-id') === 'inv-refused');
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get('retry-after'), '9');
  assert.match(refused.headers.get('to') ?? '', /;tag=/);

  // A stranger's new requests over UDP are dropped; its in-dialog requests are still answered.
  assert.equal(await answered(stranger, rawRequest('OPTIONS', stranger.port, 'opt-shed'), 'opt-shed'), null);
  assert.equal(await answered(stranger, rawRequest('REGISTER', stranger.port, 'reg-shed', { user: '401' }), 'reg-shed'), null);
  assert.equal((await answered(stranger, rawRequest('INVITE', stranger.port, 'inv-stranger'), 'inv-stranger'))?.status, 503);

  // Over TCP a stranger gets a 503 rather than silence (a stream client does not retransmit).
  const tcpAnswer = await new Promise<string>((resolve, reject) => {
    const s = net.connect(srv.port, '127.0.0.1', () => s.write(rawRequest('OPTIONS', s.localPort!, 'opt-tcp', { transport: 'TCP', user: '999' })));
    let got = '';
    s.on('data', (d) => {
      got += d.toString();
      if (got.includes('\r\n\r\n')) {
        s.destroy();
        resolve(got);
      }
    });
    s.on('error', reject);
  });
  assert.match(tcpAnswer, /^SIP\/2\.0 503 /);
  assert.match(tcpAnswer, /\r\nRetry-After: 9\r\n/i);

  // The registered phone's refresh and keep-alive are served from its registered address.
  await a.register();
  a.sendText(rawRequest('OPTIONS', a.port, 'opt-known'));
  assert.equal((await a.waitResponse((r) => r.headers.get('call-id') === 'opt-known')).status, 200);

  // CANCEL of a ringing call is served; the other is answered and hung up inside its dialog.
  first.cancel();
  assert.equal((await first.final()).status, 487);
  ringing2.answer();
  assert.equal((await second.final()).status, 200);
  await ringing2.waitAck();
  const bye = second.bye();
  await b.answerInDialog(ringing2.dialog, 'BYE');
  assert.equal((await bye).status, 200);

  // Settled: new calls are taken again (challenged as usual).
  await waitFor(() => !srv.server.overload.active, 'the server to accept again');
  assert.equal((await answered(stranger, rawRequest('OPTIONS', stranger.port, 'opt-after'), 'opt-after'))?.status, 200);
  const third = await a.invite('402');
  const ringing3 = await b.incoming();
  ringing3.answer();
  assert.equal((await third.final()).status, 200);
  const bye3 = third.bye();
  await b.answerInDialog(ringing3.dialog, 'BYE');
  assert.equal((await bye3).status, 200);

  const c = srv.server.overload.counters;
  assert.deepEqual({ rejected: c.rejected, shed: c.shed }, { rejected: 3, shed: 2 });
  const s = srv.server;
  const metrics = new ServerMetrics({ summary: () => s.live.summary(), stack: s.stack, auth: s['auth'], relay: () => null, cdr: null, overload: s.overload });
  const text = await metrics.render();
  metrics.close();
  const sample = (name: string) => Number(text.split('\n').find((l) => l.startsWith(`${name} `))?.slice(name.length + 1));
  assert.equal(sample('minisipserver_overload_rejected_total'), 3);
  assert.equal(sample('minisipserver_overload_shed_total'), 2);
  assert.equal(sample('minisipserver_overload_onsets_total'), c.onsets);
  assert.equal(sample('minisipserver_overload_active'), 0);
  assert.match(text, /# TYPE minisipserver_overload_delay_seconds gauge/);
  const started = srv.logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['event'] === 'overload.started');
  assert.equal(started.length, 1);
  assert.equal(started[0]!['reason'], 'calls in setup');
});

test('refusing every new call: a retransmitted INVITE goes to its transaction, and the answer to a challenge sent before the overload is served', async () => {
  const a = await phone('401');
  const b = await phone('402');
  await a.register();
  await b.register();
  await waitFor(() => !srv.server.overload.active, 'the server to accept new calls');
  const refusedBefore = srv.server.overload.counters.rejected;
  const first = await a.invite('402');
  const ringing1 = await b.incoming();
  ringing1.ring();
  await first.provisional(180);
  // The third call is challenged before the overload and answers the challenge during it.
  let second: OutgoingCall | undefined;
  const third = await a.invite('402', '', [], {
    afterChallenge: async () => {
      second = await a.invite('402');
      (await b.incoming()).ring();
      await second.provisional(180);
      await waitFor(() => srv.server.overload.admit === 0, 'the server to refuse every new call for two calls in setup');
    },
  });
  const ringing3 = await b.incoming();
  ringing3.ring();
  await third.provisional(180);
  assert.equal(srv.server.overload.admit, 0, 'still refusing new calls');

  // A fresh INVITE is refused; a copy of a ringing call's INVITE goes to its transaction (the 180
  // again, RFC 3261 section 17.2.1), never gets a second, different final response.
  a.sendText(rawRequest('INVITE', a.port, 'inv-new-during'));
  assert.equal((await a.waitResponse((r) => r.headers.get('call-id') === 'inv-new-during')).status, 503);
  third.retransmitInvite();
  // (A 100 Trying the transaction sent before the 180, had the 180 taken over 200 ms, may still be
  // waiting in the inbox: it is not the answer looked for.)
  const again = await a.waitResponse((r) => r.headers.get('call-id') === third.dialog.callId && r.status !== 100);
  assert.equal(again.status, 180);
  assert.equal(await a.quiet((m) => m.kind === 'response' && m.headers.get('call-id') === third.dialog.callId, 300), true, 'no 503 for the copy');
  assert.equal(srv.server.overload.counters.rejected, refusedBefore + 1);

  for (const call of [first, second!, third]) {
    call.cancel();
    assert.equal((await call.final()).status, 487);
  }
  await waitFor(() => !srv.server.overload.active, 'the server to accept again');
});
