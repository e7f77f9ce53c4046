/**
 * A registration trunk against a real carrier: a second server on 127.0.0.1 plays the provider,
 * with its own extensions and digest authentication. The PBX registers to it as extension 5001
 * (the trunk's account), calls its extensions with `9` + number (answering the carrier's
 * challenges with the account, never the caller's credentials), takes calls to 5001 over the
 * registration, registers again after the carrier restarts, backs off from a carrier that refuses
 * the password, and lets nobody reach the carrier without the rights to.
 *
 * What reached the carrier is read from its own log: test servers log at debug level, where every
 * received datagram is a `sip.in` line with its text.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { audioSdp, Phone, PhoneBook } from '../helpers/phone.js';
import { RtpPeer } from '../helpers/rtp-peer.js';
import { cdrOf, cdrRows } from '../helpers/cdr-files.js';
import { waitFor } from '../helpers/keep-alive.js';
import { branch } from '../helpers/sip-peer.js';
import { dialRule, trunkConfig } from '../helpers/trunks.js';
import type { Config } from '../../lib/config/schema.js';
import { parseMessage } from '../../lib/sip/parser.js';
import type { SipMessage, SipRequest, SipResponse } from '../../lib/sip/message.js';

const ACCOUNT = '5001';
const ACCOUNT_PW = 'carrier-secret-5001';

let carrier: TestServer;
let pbx: TestServer;
const pbxPhones = new PhoneBook(() => pbx.port);
const carrierPhones = new PhoneBook(() => carrier.port);
const closers: Array<() => unknown> = [];

/** The provider: extensions 5001 (the PBX's account) and 2001, MD5 offered first, short registrations allowed. */
function startCarrier(opts: { port?: number; password?: string } = {}): Promise<TestServer> {
  return startTestServer({
    users: [[ACCOUNT, opts.password ?? ACCOUNT_PW], ['2001', 'pw2001'], ['2002', 'pw2002']],
    configure: (c) => {
      if (opts.port !== undefined) c.sip.port = opts.port;
      c.auth.algorithms = ['MD5', 'SHA-256'];
      c.registrar.minExpires = 1;
    },
  });
}

/** The PBX's side of the provider account: a `register` trunk named "carrier" and its dial plan. */
function configureTrunk(c: Config, carrierPort: number, password = ACCOUNT_PW): void {
  c.auth.algorithms = ['MD5', 'SHA-256'];
  c.trunks = [
    trunkConfig({
      name: 'carrier',
      kind: 'register',
      port: carrierPort,
      username: ACCOUNT,
      password,
      expires: 10,
      // The carrier insists that From is the user who authenticated.
      callerId: ACCOUNT,
      did: { [ACCOUNT]: { kind: 'extensions', numbers: ['100'] } },
    }),
  ];
  c.classes = { international: { restricted: true } };
  c.dialplan = [dialRule({ match: '900', strip: 1, trunk: 'carrier', class: 'international' }), dialRule({ match: '9', strip: 1, trunk: 'carrier' })];
}

before(async () => {
  carrier = await startCarrier();
  pbx = await startTestServer({ users: [['100', 'pw100'], ['101', 'pw101']], trunkRetryMs: 200, configure: (c) => configureTrunk(c, carrier.port) });
});

after(async () => {
  // Every step runs, whatever an earlier one throws: a server left running would hold the process.
  const steps: Array<() => unknown> = [() => pbxPhones.closeAll(), () => carrierPhones.closeAll(), ...closers.reverse(), () => pbx?.stop(), () => carrier?.stop()];
  const errors: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length > 0) throw errors[0];
});

// ---- reading the servers' logs ------------------------------------------------------------------

interface LogEntry {
  event: string;
  level: string;
  [field: string]: unknown;
}

function logEntries(s: TestServer, from = 0): LogEntry[] {
  return s.logLines.slice(from).map((l) => JSON.parse(l) as LogEntry);
}

/** The SIP messages `s` received from 127.0.0.1:`port` (over UDP), from log line `from` on. */
function receivedFrom(s: TestServer, port: number, from = 0): SipMessage[] {
  const out: SipMessage[] = [];
  for (const e of logEntries(s, from)) {
    if (e.event !== 'sip.in' || e.from !== `udp:127.0.0.1:${port}`) continue;
    const r = parseMessage(Buffer.from(String(e.message), 'utf8'), { datagram: true });
    assert.ok(r.ok, `a logged message parses: ${String(e.message).slice(0, 200)}`);
    out.push(r.message);
  }
  return out;
}

/** INVITEs `s` received from 127.0.0.1:`port` (the same test `sip.in` lines start with "INVITE "). */
function invitesFrom(s: TestServer, port: number, from = 0): SipRequest[] {
  return receivedFrom(s, port, from).filter((m): m is SipRequest => m.kind === 'request' && m.method === 'INVITE');
}

/** Requests without their retransmissions (the same top Via branch). */
function distinct(reqs: SipRequest[]): SipRequest[] {
  const seen = new Set<string>();
  return reqs.filter((r) => {
    const key = `${r.method} ${/branch=([^;,\s]+)/.exec(r.headers.get('via') ?? '')?.[1] ?? ''}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function rawInviteLines(s: TestServer, port: number, from = 0): string[] {
  return logEntries(s, from)
    .filter((e) => e.event === 'sip.in' && e.from === `udp:127.0.0.1:${port}` && String(e.message).startsWith('INVITE '))
    .map((e) => String(e.message));
}

async function rtpPeer(): Promise<RtpPeer> {
  const p = await RtpPeer.open();
  closers.push(() => p.close());
  return p;
}

/**
 * Sends marked PCMU packets both ways (every 20 ms, at most 2 s) until each side has received at
 * least `count` of the other's; asserts they arrived.
 */
async function audioBothWays(a: RtpPeer, b: RtpPeer, count = 3): Promise<void> {
  const fromA = new Uint8Array(160).fill(0x11);
  const fromB = new Uint8Array(160).fill(0x22);
  const atB = () => b.packets.filter((p) => p.packet.payloadType === 0 && p.packet.payload[0] === 0x11).length;
  const atA = () => a.packets.filter((p) => p.packet.payloadType === 0 && p.packet.payload[0] === 0x22).length;
  for (let i = 0; i < 100 && (atA() < count || atB() < count); i++) {
    a.send(0, fromA, { timestamp: 160 * i });
    b.send(0, fromB, { timestamp: 160 * i });
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(atB() >= count, `the caller's audio reaches the callee (${atB()} packets)`);
  assert.ok(atA() >= count, `the callee's audio reaches the caller (${atA()} packets)`);
}

function reasonCause(res: SipResponse): string | undefined {
  return /cause=(\d+)/.exec(res.headers.get('reason') ?? '')?.[1];
}

// ---- the tests ------------------------------------------------------------------------------------

test('the PBX registers to the carrier with the trunk account: the carrier has the binding, the PBX logs trunk.registered', async () => {
  await waitFor(() => carrier.server.registrar.lookup(ACCOUNT).length > 0, 'the binding of 5001 at the carrier', 5000);
  const [binding] = carrier.server.registrar.lookup(ACCOUNT);
  assert.equal(binding!.contact, `sip:${ACCOUNT}@127.0.0.1:${pbx.port}`);
  await waitFor(() => logEntries(pbx).some((e) => e.event === 'trunk.registered'), 'trunk.registered in the PBX log', 5000);
  const registered = logEntries(pbx).find((e) => e.event === 'trunk.registered')!;
  assert.equal(registered.level, 'info');
  assert.equal(registered.trunk, 'carrier');
  assert.equal(registered.expires, 10);
  assert.equal(pbx.server.trunks.get('carrier')!.registrationState?.status, 'registered');
  // What the carrier received: REGISTERs from the PBX's SIP port, the second answering the challenge with the account.
  const registers = receivedFrom(carrier, pbx.port).filter((m): m is SipRequest => m.kind === 'request' && m.method === 'REGISTER');
  assert.equal(registers[0]?.headers.has('authorization'), false, 'the first REGISTER carries no credentials');
  const answered = registers.filter((r) => r.headers.has('authorization'));
  assert.ok(answered.length >= 1);
  for (const r of answered) assert.match(r.headers.get('authorization') ?? '', /username="5001"/);
  assert.ok(!pbx.logLines.some((l) => l.includes(ACCOUNT_PW)), 'the PBX never logs the account password');
});

test('100 dials 9 + 2001: the carrier challenges, the PBX answers with the account, 2001 rings and answers, audio flows both ways, both sides record the call', async () => {
  await waitFor(() => carrier.server.registrar.lookup(ACCOUNT).length > 0, 'the trunk registered', 5000);
  const p100 = await pbxPhones.get('100');
  const p2001 = await carrierPhones.get('2001');
  const rtp100 = await rtpPeer();
  const rtp2001 = await rtpPeer();
  const mark = carrier.logLines.length;

  const call = await p100.invite('92001', audioSdp(rtp100.port));
  const inc = await p2001.incoming();
  assert.match(inc.invite.headers.get('from') ?? '', /<sip:5001@/, '2001 sees the account calling');
  assert.doesNotMatch(inc.sdp, new RegExp(`m=audio ${rtp100.port} `), 'the caller\'s media address is not passed through');
  inc.ring();
  await call.provisional(180);
  inc.answer(audioSdp(rtp2001.port));
  const ok = await call.final();
  assert.equal(ok.status, 200);
  await inc.waitAck();
  assert.doesNotMatch(ok.body.toString(), new RegExp(`m=audio ${rtp2001.port} `));
  rtp100.aim(ok.body.toString());
  rtp2001.aim(inc.sdp);

  // At the carrier: the PBX's INVITE without credentials, challenged 407, then again with the account's.
  const invites = distinct(invitesFrom(carrier, pbx.port, mark));
  assert.equal(invites.length, 2, 'one INVITE, one answer to the challenge');
  const [first, second] = invites as [SipRequest, SipRequest];
  assert.equal(first.uri, `sip:2001@127.0.0.1:${carrier.port};user=phone`);
  assert.equal(first.headers.has('proxy-authorization') || first.headers.has('authorization'), false);
  assert.equal(second.headers.get('call-id'), first.headers.get('call-id'));
  const credentials = second.headers.get('proxy-authorization') ?? '';
  assert.match(credentials, /^Digest /);
  assert.match(credentials, /username="5001"/);
  assert.match(credentials, /realm="minisipserver"/);
  assert.match(second.headers.get('from') ?? '', /<sip:5001@127\.0\.0\.1>/, 'From is the account (the carrier checks it)');
  for (const raw of rawInviteLines(carrier, pbx.port, mark)) {
    assert.doesNotMatch(raw, /username="100"/, 'the caller\'s credentials never go to the carrier');
  }
  const carrierCallId = first.headers.get('call-id')!;

  await audioBothWays(rtp100, rtp2001);

  assert.equal((await call.bye()).status, 200);
  await p2001.answerInDialog(inc.dialog, 'BYE');

  await waitFor(() => cdrOf(pbx.dataDir, call.dialog.callId) !== undefined, 'the PBX record');
  const rec = cdrOf(pbx.dataDir, call.dialog.callId)!;
  assert.equal(rec.route, 'trunk:carrier');
  assert.equal(rec.party_kind, 'outside');
  assert.equal(rec.caller, '100');
  assert.equal(rec.dialled, '92001');
  assert.equal(rec.callee, '2001');
  assert.equal(rec.status, '200');
  assert.notEqual(rec.answer_time, '');
  assert.equal(rec.fci, 'callTag=1;cause=16');
  assert.equal(rec.callee_address, `127.0.0.1:${carrier.port}`);

  await waitFor(() => cdrOf(carrier.dataDir, carrierCallId) !== undefined, 'the carrier record');
  const rows = cdrRows(carrier.dataDir).filter((r) => r.call_id === carrierCallId);
  assert.equal(rows.length, 1, 'one record at the carrier (the challenge is no call)');
  const theirs = rows[0]!;
  assert.equal(theirs.route, 'local');
  assert.equal(theirs.party_kind, 'local');
  assert.equal(theirs.caller, ACCOUNT);
  assert.equal(theirs.callee, '2001');
  assert.equal(theirs.dialled, '2001');
  assert.equal(theirs.status, '200');
  assert.equal(theirs.fci, 'callTag=1;cause=16');
  assert.equal(theirs.caller_address, `127.0.0.1:${pbx.port}`);
});

test('2001 at the carrier calls 5001: the call arrives over the registration, is not challenged, rings 100 (the DID), is answered and recorded', async () => {
  await waitFor(() => carrier.server.registrar.lookup(ACCOUNT).length > 0, 'the trunk registered', 5000);
  const p100 = await pbxPhones.get('100');
  const p2001 = await carrierPhones.get('2001');
  const rtp100 = await rtpPeer();
  const rtp2001 = await rtpPeer();
  const pbxMark = pbx.logLines.length;
  const carrierMark = carrier.logLines.length;

  const call = await p2001.invite(ACCOUNT, audioSdp(rtp2001.port));
  const inc = await p100.incoming();
  assert.match(inc.invite.headers.get('from') ?? '', /<sip:2001@/, '100 sees 2001 calling');
  inc.ring();
  await call.provisional(180);
  inc.answer(audioSdp(rtp100.port));
  const ok = await call.final();
  assert.equal(ok.status, 200);
  await inc.waitAck();
  rtp2001.aim(ok.body.toString());
  rtp100.aim(inc.sdp);
  await audioBothWays(rtp2001, rtp100);

  // The carrier's INVITE reached the PBX from the carrier's SIP port and was taken without a challenge.
  const fromCarrier = distinct(invitesFrom(pbx, carrier.port, pbxMark));
  assert.equal(fromCarrier.length, 1);
  const pbxCallId = fromCarrier[0]!.headers.get('call-id')!;
  assert.equal(fromCarrier[0]!.uri, `sip:${ACCOUNT}@127.0.0.1:${pbx.port}`);
  const answers = receivedFrom(carrier, pbx.port, carrierMark).filter((m): m is SipResponse => m.kind === 'response' && m.headers.get('call-id') === pbxCallId);
  assert.ok(answers.some((r) => r.status === 200));
  assert.ok(answers.every((r) => r.status !== 401 && r.status !== 407), `not challenged (answers: ${answers.map((r) => r.status).join(', ')})`);
  const fromTrunk = logEntries(pbx, pbxMark).find((e) => e.event === 'call.from_trunk');
  assert.equal(fromTrunk?.trunk, 'carrier');
  assert.equal(fromTrunk?.number, ACCOUNT);
  assert.equal(fromTrunk?.target, '100');

  assert.equal((await call.bye()).status, 200);
  await p100.answerInDialog(inc.dialog, 'BYE');

  await waitFor(() => cdrOf(pbx.dataDir, pbxCallId) !== undefined, 'the PBX record');
  const rec = cdrOf(pbx.dataDir, pbxCallId)!;
  assert.equal(rec.route, 'trunk:carrier');
  assert.equal(rec.party_kind, 'outside');
  assert.equal(rec.caller, '2001');
  assert.equal(rec.dialled, ACCOUNT);
  assert.equal(rec.callee, '100');
  assert.equal(rec.status, '200');
  assert.equal(rec.fci, 'callTag=1;cause=16');
  assert.equal(rec.caller_address, `127.0.0.1:${carrier.port}`);

  await waitFor(() => cdrOf(carrier.dataDir, call.dialog.callId) !== undefined, 'the carrier record');
  const theirs = cdrOf(carrier.dataDir, call.dialog.callId)!;
  assert.equal(theirs.route, 'local');
  assert.equal(theirs.caller, '2001');
  assert.equal(theirs.callee, ACCOUNT);
  assert.equal(theirs.status, '200');
  assert.equal(theirs.fci, 'callTag=1;cause=16');
  assert.equal(theirs.callee_address, `127.0.0.1:${pbx.port}`);
});

test('toll fraud: a stranger, a Via claiming the carrier, a Request-URI naming the carrier, an extension without the class: none reaches the carrier', async () => {
  await waitFor(() => carrier.server.registrar.lookup(ACCOUNT).length > 0, 'the trunk registered', 5000);
  const stranger = await Phone.open('stranger', '', pbx.port);
  closers.push(() => stranger.close());
  const carrierMark = carrier.logLines.length;

  /** An INVITE from the stranger's socket without credentials; resolves with its final answer. */
  const strangerInvite = async (uri: string, via = `SIP/2.0/UDP 127.0.0.1:${stranger.port};branch=${branch()};rport`): Promise<SipResponse> => {
    const callId = `fraud-${branch()}`;
    stranger.send(
      [
        `INVITE ${uri} SIP/2.0`,
        `Via: ${via}`,
        'Max-Forwards: 70',
        `From: <sip:100@127.0.0.1>;tag=${branch()}`,
        `To: <${uri}>`,
        `Call-ID: ${callId}`,
        'CSeq: 1 INVITE',
        `Contact: <sip:100@127.0.0.1:${stranger.port}>`,
        'Content-Type: application/sdp',
      ],
      audioSdp(41000),
    );
    return stranger.waitResponse((r) => r.headers.get('call-id') === callId && r.status >= 200);
  };

  // Unauthenticated, to the out-group prefix (2002: a number the fence call below does not dial).
  const plain = await strangerInvite(`sip:92002@127.0.0.1:${pbx.port}`);
  // A Via claiming to be the carrier does not make the stranger the carrier.
  const spoofed = await strangerInvite(`sip:92002@127.0.0.1:${pbx.port}`, `SIP/2.0/UDP 127.0.0.1:${carrier.port};branch=${branch()}`);
  // The Request-URI names the carrier's host and port itself.
  const direct = await strangerInvite(`sip:2002@127.0.0.1:${carrier.port}`);
  for (const [what, res] of [['plain', plain], ['spoofed Via', spoofed], ['carrier URI', direct]] as const) {
    assert.equal(res.status, 407, what);
    assert.ok(res.headers.getAll('proxy-authenticate').length > 0, `${what}: a challenge`);
  }

  // An authenticated extension without the grant of the restricted class of rule 900.
  const p101 = await pbxPhones.get('101');
  const restricted = await p101.invite('9002002', audioSdp(41010));
  const refused = await restricted.final();
  assert.equal(refused.status, 403);
  assert.equal(reasonCause(refused), '21');
  await waitFor(() => cdrOf(pbx.dataDir, restricted.dialog.callId) !== undefined, 'the record of the refused call');
  const rec = cdrOf(pbx.dataDir, restricted.dialog.callId)!;
  assert.equal(rec.fci, 'callTag=6;cause=21');
  assert.equal(rec.route, 'trunk:carrier');
  assert.equal(rec.party_kind, 'outside');
  assert.equal(rec.caller, '101');
  assert.equal(rec.dialled, '9002002');
  assert.ok(logEntries(pbx).some((e) => e.event === 'call.class_not_allowed' && e.caller === '101'));

  // A fence: a legitimate call to 2001 afterwards, refused by 2001. Its INVITEs reach the carrier
  // after anything the attempts above could have sent (one socket to one socket, in order).
  const p100 = await pbxPhones.get('100');
  const p2001 = await carrierPhones.get('2001');
  const fence = await p100.invite('92001', audioSdp(41020));
  const inc = await p2001.incoming();
  inc.reject(486, 'Busy Here');
  assert.equal((await fence.final()).status, 486);
  const invites = invitesFrom(carrier, pbx.port, carrierMark);
  assert.ok(invites.length >= 1);
  assert.deepEqual(
    invites.map((r) => r.uri),
    invites.map(() => `sip:2001@127.0.0.1:${carrier.port};user=phone`),
    'the carrier saw the fence call\'s INVITEs only',
  );
  assert.ok(!rawInviteLines(carrier, pbx.port, carrierMark).some((l) => l.includes('2002')), 'no INVITE for 2002 reached the carrier');
  assert.equal(carrier.server.calls.activeCount, 0);
});

test('a carrier that refuses the password (403): retried with a doubling back-off, logged, the trunk is down and no call reaches it', async () => {
  const strict = await startCarrier({ password: 'the-right-one' });
  closers.push(() => strict.stop());
  const pbx2 = await startTestServer({ users: [['100', 'pw100']], trunkRetryMs: 200, configure: (c) => configureTrunk(c, strict.port, 'a-wrong-one') });
  closers.push(() => pbx2.stop());
  const failures = () => logEntries(pbx2).filter((e) => e.event === 'trunk.register_failed');
  await waitFor(() => failures().length >= 3, () => `3 failed registrations (${failures().length})`, 8000);
  const first3 = failures().slice(0, 3);
  assert.deepEqual(first3.map((f) => f.status), [403, 403, 403]);
  assert.deepEqual(first3.map((f) => f.retryInSeconds), [0.2, 0.4, 0.8], 'the back-off doubles');
  assert.deepEqual(first3.map((f) => f.level), ['warn', 'warn', 'warn']);
  assert.deepEqual(first3.map((f) => f.trunk), ['carrier', 'carrier', 'carrier']);
  assert.ok(!pbx2.logLines.some((l) => l.includes('a-wrong-one')), 'the password is never logged');
  assert.equal(strict.server.registrar.lookup(ACCOUNT).length, 0);
  const trunk = pbx2.server.trunks.get('carrier')!;
  assert.equal(trunk.registrationState?.status, 'failing');
  assert.equal(trunk.registrationState?.lastStatus, 403);
  assert.equal(trunk.up, false);
  // Every attempt answered the challenge once: REGISTERs with credentials reached the carrier.
  const registers = receivedFrom(strict, pbx2.port).filter((m): m is SipRequest => m.kind === 'request' && m.method === 'REGISTER');
  assert.ok(registers.filter((r) => r.headers.has('authorization')).length >= 3);

  // While failing, the trunk is down: 9... is refused at once with cause 34, nothing goes out.
  const p100 = await Phone.open('100', 'pw100', pbx2.port);
  closers.push(() => p100.close());
  await p100.register();
  const call = await p100.invite('92001', audioSdp(41030));
  const res = await call.final();
  assert.equal(res.status, 503);
  assert.equal(reasonCause(res), '34');
  await waitFor(() => cdrOf(pbx2.dataDir, call.dialog.callId) !== undefined, 'the record of the refused call');
  assert.equal(cdrOf(pbx2.dataDir, call.dialog.callId)?.fci, 'callTag=6;cause=34');
  // A fence: the next retry's REGISTER reaches the carrier after anything the call could have sent.
  const seen = registers.length;
  const fenceMark = strict.logLines.length;
  await waitFor(
    () => receivedFrom(strict, pbx2.port, fenceMark).some((m) => m.kind === 'request' && m.method === 'REGISTER'),
    'the next REGISTER retry at the carrier',
    8000,
  );
  assert.ok(receivedFrom(strict, pbx2.port).length > seen);
  assert.equal(invitesFrom(strict, pbx2.port).length, 0, 'the carrier\'s log has no INVITE from the PBX');
  assert.equal(rawInviteLines(strict, pbx2.port).length, 0);
});

test('the carrier restarts with no binding: the PBX registers again on its next refresh, and calls to 5001 come in again', async () => {
  await waitFor(() => carrier.server.registrar.lookup(ACCOUNT).length > 0, 'the trunk registered', 5000);
  const port = carrier.port;
  const oldDir = carrier.dataDir;
  for (const p of carrierPhones.phones.splice(0)) p.close(); // registered at the carrier that goes away
  await carrier.stop();
  carrier = await startCarrier({ port });
  assert.equal(carrier.port, port);
  assert.notEqual(carrier.dataDir, oldDir, 'a new data folder: the new carrier knows no binding');
  // expires 10: a refresh is due within about 5 s (and a REGISTER lost meanwhile is sent again).
  await waitFor(() => carrier.server.registrar.lookup(ACCOUNT).length > 0, 'the binding of 5001 at the restarted carrier', 15_000);
  assert.equal(carrier.server.registrar.lookup(ACCOUNT)[0]!.contact, `sip:${ACCOUNT}@127.0.0.1:${pbx.port}`);
  const registers = receivedFrom(carrier, pbx.port).filter((m): m is SipRequest => m.kind === 'request' && m.method === 'REGISTER');
  assert.ok(registers.some((r) => /username="5001"/.test(r.headers.get('authorization') ?? '')), 'the new carrier\'s challenge was answered');

  // Calls to 5001 reach 100 again.
  const p2001 = await Phone.open('2001', 'pw2001', carrier.port);
  closers.push(() => p2001.close());
  await p2001.register();
  const p100 = await pbxPhones.get('100');
  const call = await p2001.invite(ACCOUNT, audioSdp(41040));
  const inc = await p100.incoming();
  assert.match(inc.invite.headers.get('from') ?? '', /<sip:2001@/);
  inc.reject(486, 'Busy Here');
  assert.equal((await call.final()).status, 486);
});
