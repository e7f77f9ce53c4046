import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { audioSdp, Phone, PhoneBook } from '../helpers/phone.js';
import { cdrOf, cdrRows } from '../helpers/cdr-files.js';
import { AsPeer } from '../helpers/as-peer.js';
import { waitFor } from '../helpers/keep-alive.js';
import { branch } from '../helpers/sip-peer.js';
import { dialRule, trunkConfig } from '../helpers/trunks.js';
import type { SipRequest } from '../../lib/sip/message.js';

// Peer trunks played by scripted SIP endpoints on 127.0.0.1: what the PBX sends them, what it
// accepts from them, and everything that must never reach them.

let srv: TestServer;
let carrier: Phone; // peer trunk "carrier": answers what the test tells it
let backup: Phone; // peer trunk "backup": the fallback of some rules
let stranger: Phone; // no account anywhere
let refusing: Phone; // a provider that refuses the PBX's registration: its trunk is down
const book = new PhoneBook(() => srv.port);
const phone = (user: string): Promise<Phone> => book.get(user);

before(async () => {
  carrier = await Phone.open('carrier', '', 0);
  backup = await Phone.open('backup', '', 0);
  stranger = await Phone.open('stranger', '', 0);
  refusing = await Phone.open('refusing', '', 0);
  srv = await startTestServer({
    users: [['100', 'pw100'], ['101', 'pw101'], ['102', 'pw102'], ['103', 'pw103']],
    configure: (c) => {
      c.auth.algorithms = ['MD5', 'SHA-256'];
      c.calls.noAnswerTimeout = 5;
      c.trunks = [
        trunkConfig({ name: 'carrier', kind: 'peer', port: carrier.port, requestUriParams: 'user=phone', did: { '5550100': { kind: 'extensions', numbers: ['100'] }, '5550199': { kind: 'extensions', numbers: ['101', '100'] } } }),
        trunkConfig({ name: 'backup', kind: 'peer', port: backup.port, maxCalls: 1, codecs: ['PCMA'], callerId: 'anonymous', telUri: true }),
        trunkConfig({ name: 'refusing', kind: 'register', port: refusing.port, username: 'acct', password: 'wrong' }),
      ];
      c.classes = { international: { restricted: true } };
      c.dialplan = [
        dialRule({ match: '00.', trunk: 'carrier', class: 'international' }),
        dialRule({ match: '0[1-9]XXXXX', strip: 1, prepend: '44', trunk: 'carrier' }),
        dialRule({ match: '7', strip: 1, trunk: 'carrier', fallback: 'backup' }),
        dialRule({ match: '8', strip: 1, trunk: 'backup' }),
        dialRule({ match: '6', strip: 1, trunk: 'refusing', fallback: 'backup' }),
        dialRule({ match: '9', strip: 1, trunk: 'carrier' }),
      ];
    },
  });
  // Granted before the extension is first read (the server caches records).
  srv.server.store.updateExtension('101', { allow: ['international'] });
});

after(async () => {
  book.closeAll();
  for (const p of [carrier, backup, stranger, refusing]) p.close();
  await srv.stop();
});

/** Every INVITE a trunk endpoint has received so far, taken out of its inbox. */
async function invitesAt(p: Phone, ms: number): Promise<SipRequest[]> {
  const got: SipRequest[] = [];
  for (;;) {
    try {
      got.push(await p.waitRequest('INVITE', ms));
    } catch {
      return got;
    }
  }
}

function strangerInvite(uri: string, extra: string[] = [], via = `SIP/2.0/UDP 127.0.0.1:${stranger.port};branch=${branch()};rport`): string {
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
      ...extra,
    ],
    audioSdp(41000),
    srv.port,
  );
  return callId;
}

test('9 + number goes out on the peer trunk: Request-URI, From, user=phone, no credentials; the record says trunk and outside', async () => {
  const a = await phone('100');
  const call = await a.invite('9555-0123', audioSdp(41010));
  const inc = await carrier.incoming();
  assert.equal(inc.invite.uri, `sip:5550123@127.0.0.1:${carrier.port};user=phone`);
  assert.match(inc.invite.headers.get('from') ?? '', /<sip:100@127\.0\.0\.1>/);
  assert.match(inc.invite.headers.get('to') ?? '', new RegExp(`<sip:5550123@127\\.0\\.0\\.1:${carrier.port};user=phone>`));
  assert.equal(inc.invite.headers.has('authorization') || inc.invite.headers.has('proxy-authorization'), false);
  assert.doesNotMatch(inc.sdp, /m=audio 41010 /, 'the trunk is offered the relay, not the phone');
  inc.ring();
  inc.answer(audioSdp(41020));
  assert.equal((await call.final()).status, 200);
  await inc.waitAck();
  assert.equal((await call.bye()).status, 200);
  await carrier.answerInDialog(inc.dialog, 'BYE');
  const rec = cdrOf(srv.dataDir, call.dialog.callId);
  assert.ok(rec);
  assert.equal(rec.route, 'trunk:carrier');
  assert.equal(rec.party_kind, 'outside');
  assert.equal(rec.callee, '5550123');
  assert.equal(rec.dialled, '9555-0123');
  assert.equal(rec.fci, 'callTag=1;cause=16');
});

test('a pattern rule strips and prepends; tel: URI, anonymous caller-id with Privacy and the codec filter on the other trunk', async () => {
  const a = await phone('100');
  const call = await a.invite('0201234', audioSdp(41030));
  const inc = await carrier.incoming();
  assert.equal(inc.invite.uri, `sip:44201234@127.0.0.1:${carrier.port};user=phone`);
  inc.reject(486, 'Busy Here');
  assert.equal((await call.final()).status, 486);

  const call2 = await a.invite('8123456', audioSdp(41040));
  const inc2 = await backup.incoming();
  assert.equal(inc2.invite.uri, 'tel:123456');
  assert.match(inc2.invite.headers.get('from') ?? '', /sip:anonymous@anonymous\.invalid/);
  assert.equal(inc2.invite.headers.get('privacy'), 'id');
  assert.match(inc2.sdp, /^m=audio \d+ RTP\/AVP 8 101\r$/m, 'only PCMA (and telephone-event) offered');
  assert.doesNotMatch(inc2.sdp, /a=rtpmap:0 /);
  inc2.reject(603, 'Decline');
  assert.equal((await call2.final()).status, 603);
});

test('fallback: the first trunk answers 503, the call goes out on the fallback, and the record names it', async () => {
  const a = await phone('100');
  const call = await a.invite('7555', audioSdp(41050));
  const first = await carrier.incoming();
  assert.equal(first.invite.uri, `sip:555@127.0.0.1:${carrier.port};user=phone`);
  first.reject(503, 'Service Unavailable');
  const second = await backup.incoming();
  assert.equal(second.invite.uri, 'tel:555');
  second.answer(audioSdp(41060, '', [8, 101]));
  assert.equal((await call.final()).status, 200);
  await second.waitAck();
  assert.equal((await second.bye()).status, 200);
  await a.answerInDialog(call.dialog, 'BYE');
  const rec = cdrOf(srv.dataDir, call.dialog.callId);
  assert.equal(rec?.route, 'trunk:backup');
  assert.equal(rec?.fci, 'callTag=2;cause=16');
});

test('fallback: a trunk that is down (its registration refused) is skipped, the call goes out on the fallback at once', async () => {
  const register = await refusing.waitRequest('REGISTER');
  refusing.respond(register, 403, 'Forbidden');
  const trunk = srv.server.trunks.get('refusing')!;
  await waitFor(() => !trunk.up, 'the refused trunk marked down');
  const a = await phone('100');
  const call = await a.invite('6777', audioSdp(41165));
  const inc = await backup.incoming();
  assert.equal(inc.invite.uri, 'tel:777');
  inc.reject(486, 'Busy Here');
  assert.equal((await call.final()).status, 486);
  assert.equal((await invitesAt(refusing, 200)).length, 0, 'nothing was sent to the trunk that is down');
  assert.equal(cdrOf(srv.dataDir, call.dialog.callId)?.route, 'trunk:backup');
});

test('maxCalls: a trunk that carries its one call refuses the next with 503 and cause 34, the trunk sees nothing of it', async () => {
  const a = await phone('100');
  const b = await phone('102');
  const call = await a.invite('8111', audioSdp(41070));
  const inc = await backup.incoming();
  inc.ring();
  await call.provisional(180);
  const second = await b.invite('8222', audioSdp(41080));
  const refused = await second.final();
  assert.equal(refused.status, 503);
  assert.match(refused.headers.get('reason') ?? '', /cause=34/);
  assert.equal((await invitesAt(backup, 300)).length, 0);
  assert.equal(cdrOf(srv.dataDir, second.dialog.callId)?.fci, 'callTag=6;cause=34');
  call.cancel();
  assert.equal((await call.final()).status, 487);
});

test('toll fraud: a restricted class needs a grant; 403 and callTag 6 without it, the trunk reached with it', async () => {
  const a = await phone('100');
  const call = await a.invite('0044123456', audioSdp(41090));
  const res = await call.final();
  assert.equal(res.status, 403);
  const rec = cdrOf(srv.dataDir, call.dialog.callId);
  assert.equal(rec?.fci, 'callTag=6;cause=21');
  assert.equal(rec?.route, 'trunk:carrier');
  assert.equal((await invitesAt(carrier, 300)).length, 0, 'the carrier saw no INVITE');

  const granted = await phone('101');
  const ok = await granted.invite('0044123456', audioSdp(41100));
  const inc = await carrier.incoming();
  assert.equal(inc.invite.uri, `sip:0044123456@127.0.0.1:${carrier.port};user=phone`);
  inc.reject(480, 'Temporarily Unavailable');
  assert.equal((await ok.final()).status, 480);
});

test('toll fraud: strangers are challenged whatever they claim, and never reach a trunk', async () => {
  const answers: number[] = [];
  const ask = async (callId: string) => {
    const r = await stranger.waitResponse((m) => m.headers.get('call-id') === callId && m.status >= 200);
    answers.push(r.status);
    return r;
  };
  // Unauthenticated, to the out-group prefix.
  await ask(strangerInvite(`sip:95550123@127.0.0.1:${srv.port}`));
  // A Via that claims to be the trunk does not make the stranger the trunk.
  await ask(strangerInvite(`sip:95550123@127.0.0.1:${srv.port}`, [], `SIP/2.0/UDP 127.0.0.1:${carrier.port};branch=${branch()}`));
  // The Request-URI names the carrier itself.
  await ask(strangerInvite(`sip:5550123@127.0.0.1:${carrier.port}`));
  // Credentials of a user that does not exist, answered like a wrong password.
  const challenged = await ask(strangerInvite(`sip:95550123@127.0.0.1:${srv.port}`));
  assert.deepEqual(answers, [407, 407, 407, 407]);
  const nonce = /nonce="([^"]+)"/.exec(challenged.headers.getAll('proxy-authenticate').join(','))?.[1];
  const forged = `Digest username="999", realm="minisipserver", nonce="${nonce}", uri="sip:95550123@127.0.0.1:${srv.port}", response="00000000000000000000000000000000", algorithm=MD5`;
  const r = await ask(strangerInvite(`sip:95550123@127.0.0.1:${srv.port}`, [`Proxy-Authorization: ${forged}`]));
  assert.equal(r.status, 403);
  // An extension dialling the carrier's host directly only reaches what number analysis allows.
  const a = await phone('100');
  // A URI escape cannot smuggle another host into the trunk's Request-URI: only dial strings go out.
  const smuggled = await a.invite('9a%40evil.example', audioSdp(41105));
  assert.equal((await smuggled.final()).status, 404);
  const direct = await a.invite('5550123', audioSdp(41110));
  assert.equal((await direct.final()).status, 404);
  assert.equal((await invitesAt(carrier, 300)).length, 0, 'the carrier saw no INVITE');
});

test('an INVITE from the trunk is not challenged and rings the DID\'s extensions; an unknown DID is 404 and never goes back out', async () => {
  const a = await phone('100');
  const b = await phone('101');
  const send = (did: string) => {
    const callId = `in-${branch()}`;
    carrier.send(
      [
        `INVITE sip:+${did}@127.0.0.1:${srv.port} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${carrier.port};branch=${branch()}`,
        'Max-Forwards: 70',
        `From: "Outside" <sip:+33123456789@127.0.0.1:${carrier.port}>;tag=${branch()}`,
        `To: <sip:+${did}@127.0.0.1>`,
        `Call-ID: ${callId}`,
        'CSeq: 1 INVITE',
        `Contact: <sip:carrier@127.0.0.1:${carrier.port}>`,
        'Content-Type: application/sdp',
      ],
      audioSdp(41120),
      srv.port,
    );
    return callId;
  };
  const callId = send('5550199');
  const [ringA, ringB] = await Promise.all([a.incoming(), b.incoming()]);
  assert.match(ringA.invite.headers.get('from') ?? '', /sip:\+33123456789@/);
  ringB.reject(486, 'Busy Here');
  ringA.answer(audioSdp(41130));
  const ok = await carrier.waitResponse((r) => r.headers.get('call-id') === callId && r.status >= 200);
  assert.equal(ok.status, 200);
  const target = /<([^>]+)>/.exec(ok.headers.get('contact') ?? '')![1]!;
  const inDialog = (method: string, cseq: number) => [
    `${method} ${target} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${carrier.port};branch=${branch()}`,
    'Max-Forwards: 70',
    `From: ${ok.headers.get('from')}`,
    `To: ${ok.headers.get('to')}`,
    `Call-ID: ${callId}`,
    `CSeq: ${cseq} ${method}`,
  ];
  carrier.send(inDialog('ACK', 1), '', srv.port);
  await ringA.waitAck();
  carrier.send(inDialog('BYE', 2), '', srv.port);
  const byeOk = await carrier.waitResponse((r) => r.headers.get('call-id') === callId && /BYE/.test(r.headers.get('cseq') ?? ''));
  assert.equal(byeOk.status, 200, 'the trunk\'s BYE is answered without a challenge');
  await a.answerInDialog(ringA.dialog, 'BYE');
  const rec = cdrOf(srv.dataDir, callId);
  assert.equal(rec?.route, 'trunk:carrier');
  assert.equal(rec?.party_kind, 'outside');
  assert.equal(rec?.caller, '+33123456789');
  assert.equal(rec?.dialled, '5550199');

  const lost = send('95550123');
  const notFound = await carrier.waitResponse((r) => r.headers.get('call-id') === lost && r.status >= 200);
  assert.equal(notFound.status, 404);
  assert.equal((await invitesAt(carrier, 300)).length, 0, 'nothing went back out to the trunk');
  assert.equal((await invitesAt(backup, 100)).length, 0);
});

test('a call-back reaches an outside number through the dial plan, but no restricted class', async () => {
  const as = await AsPeer.open(srv.server.callback.port);
  try {
    const p100 = await phone('100');
    const id = `cb-${process.pid}`;
    as.send(`REQUEST: id=${id};user1=100;user2=9555-0177`);
    assert.equal((await as.next('ACK', id)).params.get('result'), '0');
    const one = await p100.incoming();
    one.answer(audioSdp(41140, '', [0, 101]));
    await one.waitAck();
    const out = await carrier.incoming();
    assert.equal(out.invite.uri, `sip:5550177@127.0.0.1:${carrier.port};user=phone`);
    out.answer(audioSdp(41150, '', [0, 101]));
    await out.waitAck();
    assert.equal((await out.bye()).status, 200);
    const bye = await p100.waitRequest('BYE');
    p100.respond(bye, 200, 'OK');
    const response = await as.next('RESPONSE', id);
    assert.equal(response.params.get('result'), '0');
    const legs = cdrRows(srv.dataDir).filter((r) => r.route === `callback:${id}`);
    assert.deepEqual(legs.map((r) => r.party_kind).sort(), ['local', 'outside']);

    const refused = `cb-r-${process.pid}`;
    as.send(`REQUEST: id=${refused};user1=100;user2=0044123456`);
    assert.equal((await as.next('ACK', refused)).params.get('result'), '2', 'a restricted class is an unknown number to the AS');
    assert.equal((await invitesAt(carrier, 300)).length, 0);
  } finally {
    as.close();
  }
});

test('a tel: Request-URI from the trunk is a number too: separators and the + are dropped before the DID map', async () => {
  const a = await phone('100');
  const callId = `tel-${branch()}`;
  carrier.send(
    [
      'INVITE tel:+555-0100 SIP/2.0',
      `Via: SIP/2.0/UDP 127.0.0.1:${carrier.port};branch=${branch()}`,
      'Max-Forwards: 70',
      `From: <tel:+33123456789>;tag=${branch()}`,
      'To: <tel:+555-0100>',
      `Call-ID: ${callId}`,
      'CSeq: 1 INVITE',
      `Contact: <sip:carrier@127.0.0.1:${carrier.port}>`,
      'Content-Type: application/sdp',
    ],
    audioSdp(41160),
    srv.port,
  );
  const inc = await a.incoming();
  inc.reject(486, 'Busy Here');
  const res = await carrier.waitResponse((r) => r.headers.get('call-id') === callId && r.status >= 200);
  assert.equal(res.status, 486);
  assert.equal(cdrOf(srv.dataDir, callId)?.dialled, '5550100');
});
