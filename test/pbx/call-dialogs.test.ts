import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cdrOf, cdrRows } from '../helpers/cdr-files.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { audioSdp, Phone, PhoneBook, registeredPair, answeredCall } from '../helpers/phone.js';
import { branch } from '../helpers/sip-peer.js';
import { waitFor } from '../helpers/keep-alive.js';

let srv: TestServer;
const book = new PhoneBook(() => srv.port);
const phone = (user: string, opts: { second?: boolean } = {}): Promise<Phone> => book.get(user, opts);
const USERS = ['301', '302', '303', '304', '305', '306', '307', '308'];

before(async () => {
  srv = await startTestServer({
    users: USERS.map((u) => [u, `pw${u}`] as [string, string]),
    configure: (c) => {
      c.media.relay = 'never';
      c.auth.algorithms = ['MD5', 'SHA-256'];
      c.calls.maxPerExtension = 2;
      c.calls.maxDuration = 0;
    },
  });
});

after(async () => {
  book.closeAll();
  await srv.stop();
});


function cdrFor(callId: string): Record<string, string> | undefined {
  return cdrOf(srv.dataDir, callId);
}

async function connect(from: Phone, to: Phone, sdpA = audioSdp(41000), sdpB = audioSdp(41010)) {
  const call = await from.invite(to.user, sdpA);
  const inc = await to.incoming();
  inc.answer(sdpB);
  assert.equal((await call.final()).status, 200);
  await inc.waitAck();
  return { call, inc };
}

test('an INVITE without credentials is challenged with 407; a wrong password gets 403; From must be the user', async () => {
  const a = await phone('301');
  const uri = `sip:302@127.0.0.1:${srv.port}`;
  const lines = (from: string, auth?: string) => [
    `INVITE ${uri} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${a.port};branch=${branch()};rport`,
    'Max-Forwards: 70',
    `From: <sip:${from}@127.0.0.1>;tag=x1`,
    `To: <${uri}>`,
    `Call-ID: auth-${from}-${Date.now()}`,
    'CSeq: 1 INVITE',
    `Contact: <sip:${from}@127.0.0.1:${a.port}>`,
    ...(auth ? [`Proxy-Authorization: ${auth}`] : []),
  ];
  a.send(lines('301'));
  const challenge = await a.waitResponse((r) => r.status === 407);
  assert.ok(challenge.headers.getAll('proxy-authenticate').length >= 1);
  // Unknown user: the very same challenge shape.
  a.send(lines('399'));
  const unknown = await a.waitResponse((r) => r.status === 407);
  assert.deepEqual(
    unknown.headers.getAll('proxy-authenticate').map((v) => v.replace(/nonce="[^"]*"/, '')),
    challenge.headers.getAll('proxy-authenticate').map((v) => v.replace(/nonce="[^"]*"/, '')),
  );
  // A caller authenticating as 301 while claiming to be 302 in From is refused.
  const { digestAuthorization, challengeParams } = await import('../helpers/sip-peer.js');
  const md5 = challenge.headers.getAll('proxy-authenticate').find((v) => (challengeParams(v).algorithm ?? 'MD5') === 'MD5')!;
  a.send(lines('302', digestAuthorization({ challenge: md5, user: '301', password: 'pw301', method: 'INVITE', uri })));
  const spoof = await a.waitResponse((r) => r.status >= 400 && r.status !== 407);
  assert.equal(spoof.status, 403);
  assert.match(spoof.reason, /From/);
  a.send(lines('301', digestAuthorization({ challenge: md5, user: '301', password: 'wrong', method: 'INVITE', uri, nc: '00000002' })));
  assert.equal((await a.waitResponse((r) => r.status >= 400 && r.status !== 407)).status, 403);
});

test('parallel forking: both phones of an extension ring, the first 200 wins, the other gets CANCEL', async () => {
  const a = await phone('303');
  const b1 = await phone('304');
  const b2 = await phone('304', { second: true });
  const call = await a.invite('304', audioSdp(41100));
  const inc1 = await b1.incoming();
  const inc2 = await b2.incoming();
  assert.equal(inc1.dialog.callId, inc2.dialog.callId, 'forks share the B-leg Call-ID');
  inc1.ring();
  inc2.ring();
  await call.provisional(180);
  inc2.answer(audioSdp(41110));
  assert.equal((await call.final()).status, 200);
  await inc2.waitAck();
  const cancel = await b1.waitRequest('CANCEL');
  assert.match(cancel.headers.get('reason') ?? '', /cause=200/);
  b1.respond(cancel, 200, 'OK');
  inc1.reject(487, 'Request Terminated');
  assert.equal((await call.bye()).status, 200);
  await b2.answerInDialog(inc2.dialog, 'BYE');
});

test('re-INVITE both ways (hold and resume), UPDATE, INFO pass through; CSeq order is checked', async () => {
  const a = await phone('305');
  const b = await phone('306');
  const { call, inc } = await connect(a, b);
  // A puts B on hold.
  a.sendInDialog(call.dialog, 'INVITE', { body: audioSdp(41000, 'a=sendonly').replace('a=sendrecv\r\n', '') });
  const reinv = await b.answerInDialog(inc.dialog, 'INVITE', audioSdp(41010, 'a=recvonly').replace('a=sendrecv\r\n', ''));
  assert.match(reinv.body.toString(), /a=sendonly/);
  const ok = await a.waitResponse((r) => r.headers.get('call-id') === call.dialog.callId && /INVITE/.test(r.headers.get('cseq') ?? '') && r.status === 200);
  assert.match(ok.body.toString(), /a=recvonly/);
  call.dialog.cseq = Number(/^(\d+)/.exec(ok.headers.get('cseq')!)![1]);
  call.ack();
  await b.wait((m) => m.kind === 'request' && m.method === 'ACK' && m.headers.get('call-id') === inc.dialog.callId);
  // B resumes with its own re-INVITE.
  inc.dialog.cseq = 10;
  b.sendInDialog(inc.dialog, 'INVITE', { body: audioSdp(41010) });
  const reinvA = await a.answerInDialog(call.dialog, 'INVITE', audioSdp(41000));
  assert.match(reinvA.body.toString(), /a=sendrecv/);
  await b.waitResponse((r) => r.headers.get('call-id') === inc.dialog.callId && r.status === 200 && /INVITE/.test(r.headers.get('cseq') ?? ''));
  b.sendInDialog(inc.dialog, 'ACK', { cseq: 11 });
  await a.wait((m) => m.kind === 'request' && m.method === 'ACK' && m.headers.get('call-id') === call.dialog.callId);
  // INFO (DTMF) from A arrives at B with its body.
  a.sendInDialog(call.dialog, 'INFO', { extra: ['Content-Type: application/dtmf-relay'] });
  const info = await b.answerInDialog(inc.dialog, 'INFO');
  assert.equal(info.method, 'INFO');
  await a.waitResponse((r) => r.headers.get('call-id') === call.dialog.callId && /INFO/.test(r.headers.get('cseq') ?? '') && r.status === 200);
  // UPDATE from B.
  b.sendInDialog(inc.dialog, 'UPDATE', { body: audioSdp(41012) });
  const upd = await a.answerInDialog(call.dialog, 'UPDATE', audioSdp(41002));
  assert.match(upd.body.toString(), /41012/);
  const updOk = await b.waitResponse((r) => r.headers.get('call-id') === inc.dialog.callId && /UPDATE/.test(r.headers.get('cseq') ?? ''));
  assert.match(updOk.body.toString(), /41002/);
  // A request with an old CSeq is out of order: 500.
  a.sendInDialog(call.dialog, 'INFO', { cseq: 1 });
  assert.equal((await a.waitResponse((r) => r.headers.get('call-id') === call.dialog.callId && /^1 INFO/.test(r.headers.get('cseq') ?? ''))).status, 500);
  assert.equal((await call.bye()).status, 200);
  await b.answerInDialog(inc.dialog, 'BYE');
});

test('glare: a re-INVITE crossing a pending one gets 491', async () => {
  const a = await phone('307');
  const b = await phone('308');
  const { call, inc } = await connect(a, b, audioSdp(41200), audioSdp(41210));
  a.sendInDialog(call.dialog, 'INVITE', { body: audioSdp(41200) });
  const pending = await b.waitRequest('INVITE');
  inc.dialog.cseq = 5;
  b.sendInDialog(inc.dialog, 'INVITE', { body: audioSdp(41210) });
  const glare = await b.waitResponse((r) => r.headers.get('call-id') === inc.dialog.callId && /INVITE/.test(r.headers.get('cseq') ?? ''));
  assert.equal(glare.status, 491);
  b.respond(pending, 200, 'OK', { extra: [`Contact: <sip:308@127.0.0.1:${b.port}>`], body: audioSdp(41210) });
  const ok = await a.waitResponse((r) => r.headers.get('call-id') === call.dialog.callId && r.status === 200 && /INVITE/.test(r.headers.get('cseq') ?? ''));
  call.dialog.cseq = Number(/^(\d+)/.exec(ok.headers.get('cseq')!)![1]);
  call.ack();
  assert.equal((await call.bye()).status, 200);
  await b.answerInDialog(inc.dialog, 'BYE');
});

test('late offer: INVITE without SDP, offer in the 200, answer in the ACK', async () => {
  const a = await phone('305');
  const b = await phone('306');
  const call = await a.invite('306', '');
  const inc = await b.incoming();
  assert.equal(inc.invite.body.length, 0);
  inc.answer(audioSdp(41300));
  const ok = await call.final(5000, audioSdp(41310));
  assert.match(ok.body.toString(), /41300/, 'the offer reaches the caller in the 200');
  const ack = await inc.waitAck();
  assert.match(ack.body.toString(), /41310/, 'the answer reaches the callee in the ACK');
  assert.equal((await call.bye()).status, 200);
  await b.answerInDialog(inc.dialog, 'BYE');
});

test('per-extension call limit: a third call to a busy extension gets 486 and a busy CDR', async () => {
  const a = await phone('301');
  const b = await phone('302');
  const one = await connect(a, b, audioSdp(41400), audioSdp(41410));
  const two = await connect(a, b, audioSdp(41420), audioSdp(41430));
  const third = await a.invite('302', audioSdp(41440));
  const res = await third.final();
  assert.equal(res.status, 486);
  assert.equal(cdrFor(third.dialog.callId)?.fci, 'callTag=9;cause=17');
  for (const c of [one, two]) {
    assert.equal((await c.call.bye()).status, 200);
    await b.answerInDialog(c.inc.dialog, 'BYE');
  }
});

test('a 200 the callee sends again after the call ended gets its ACK again (RFC 6026: the INVITE transaction answers it)', async () => {
  const [a, b] = await Promise.all([phone('307'), phone('308')]);
  const { call, inc } = await connect(a, b);
  const bye = call.bye();
  await b.answerInDialog(inc.dialog, 'BYE');
  assert.equal((await bye).status, 200);
  await waitFor(() => cdrFor(call.dialog.callId) !== undefined, 'the record of the ended call');
  // The ended call's legs are gone; the retransmitted 2xx still matches the Accepted transaction.
  inc.answer(audioSdp(41010));
  const ack = await inc.waitAck();
  assert.equal(ack.headers.get('cseq'), inc.invite.headers.get('cseq')!.replace('INVITE', 'ACK'));
});

test('in-dialog request for an unknown dialog gets 481', async () => {
  const a = await phone('301');
  a.sendInDialog({ callId: 'nope', localTag: 'x', remoteTag: 'y', localUri: '<sip:301@127.0.0.1>', remoteUri: '<sip:302@127.0.0.1>', remoteTarget: `sip:127.0.0.1:${srv.port}`, cseq: 1 }, 'BYE');
  assert.equal((await a.waitResponse((r) => r.headers.get('call-id') === 'nope')).status, 481);
});

test('server stop releases calls in progress with cause 41 and writes their records', async () => {
  const local = await startTestServer({
    users: [['401', 'pw401'], ['402', 'pw402']],
    configure: (c) => {
      c.media.relay = 'never';
      c.auth.algorithms = ['MD5'];
    },
  });
  const [a, b] = await registeredPair(local.port, '401', '402');
  try {
    const { call, inc } = await answeredCall(a, b, audioSdp(41500), audioSdp(41510));
    await local.stop();
    const byeA = await a.waitRequest('BYE');
    const byeB = await b.waitRequest('BYE');
    assert.match(byeA.headers.get('reason') ?? '', /cause=41/);
    assert.match(byeB.headers.get('reason') ?? '', /cause=41/);
    const rows = cdrRows(local.dataDir);
    const rec = rows.find((r) => r.call_id === call.dialog.callId);
    assert.equal(rec?.fci, 'callTag=13;cause=41');
  } finally {
    a.close();
    b.close();
  }
});

test('100rel: a reliable 183 from the callee is PRACKed by the server and sent reliably to a caller that supports it', async () => {
  const a = await phone('305');
  const b = await phone('306');
  const call = await a.invite('306', audioSdp(41600), ['Supported: 100rel']);
  const inc = await b.incoming();
  assert.match(inc.invite.headers.get('supported') ?? '', /100rel/, 'the B leg offers 100rel because the caller does');
  b.respond(inc.invite, 183, 'Session Progress', {
    toTag: inc.tag,
    extra: [`Contact: <sip:306@127.0.0.1:${b.port}>`, 'Require: 100rel', 'RSeq: 7'],
    body: audioSdp(41610),
  });
  const prackB = await b.waitRequest('PRACK');
  assert.equal(prackB.headers.get('rack'), '7 1 INVITE');
  b.respond(prackB, 200, 'OK');
  const p183 = await call.provisional(183);
  assert.match(p183.headers.get('require') ?? '', /100rel/);
  const rseq = Number(p183.headers.get('rseq'));
  assert.ok(rseq > 0);
  call.dialog.remoteTag = /;tag=([^;]+)/.exec(p183.headers.get('to') ?? '')![1]!;
  call.dialog.remoteTarget = /<([^>]+)>/.exec(p183.headers.get('contact') ?? '')![1]!;
  a.sendInDialog(call.dialog, 'PRACK', { extra: [`RAck: ${rseq} 2 INVITE`] });
  const prackOk = await a.waitResponse((r) => /PRACK/.test(r.headers.get('cseq') ?? ''));
  assert.equal(prackOk.status, 200);
  inc.answer(audioSdp(41610));
  assert.equal((await call.final()).status, 200);
  await inc.waitAck();
  assert.equal((await call.bye()).status, 200);
  await b.answerInDialog(inc.dialog, 'BYE');
});

test('100rel is not offered to the callee when the caller does not support it', async () => {
  const a = await phone('301');
  const b = await phone('302');
  const call = await a.invite('302', audioSdp(41700));
  const inc = await b.incoming();
  assert.doesNotMatch(inc.invite.headers.get('supported') ?? '', /100rel/);
  inc.reject(486, 'Busy Here');
  assert.equal((await call.final()).status, 486);
});

test('calls.maxDuration ends an answered call with BYE to both sides (callTag 7, cause 16)', async () => {
  const local = await startTestServer({
    users: [['901', 'pw901'], ['902', 'pw902']],
    configure: (c) => {
      c.media.relay = 'never';
      c.auth.algorithms = ['MD5'];
      c.calls.maxDuration = 1;
    },
  });
  const [a, b] = await registeredPair(local.port, '901', '902');
  try {
    const { call, inc } = await answeredCall(a, b, audioSdp(41800), audioSdp(41810));
    const [byeA, byeB] = await Promise.all([a.waitRequest('BYE', 4000), b.waitRequest('BYE', 4000)]);
    assert.match(byeA.headers.get('reason') ?? '', /cause=16/);
    assert.match(byeB.headers.get('reason') ?? '', /cause=16/);
    const rows = cdrRows(local.dataDir);
    assert.equal(rows.find((r) => r.call_id === call.dialog.callId)?.fci, 'callTag=7;cause=16');
  } finally {
    a.close();
    b.close();
    await local.stop();
  }
});

test('a caller that never ACKs the 200 gets it again until 64*T1, then the callee gets BYE; the warnings count against the budget of peer events', async () => {
  const local = await startTestServer({
    users: [['911', 'pw911'], ['912', 'pw912']],
    peerEventsPerSecond: 1,
    configure: (c) => {
      c.media.relay = 'never';
      c.auth.algorithms = ['MD5'];
      c.sip.t1 = 20; // 64*T1 = 1.28 s
      c.sip.t2 = 80;
    },
  });
  const [a, b] = await registeredPair(local.port, '911', '912');
  try {
    const callIds: string[] = [];
    for (let i = 0; i < 2; i++) {
      const call = await a.invite('912');
      (await b.incoming()).answer();
      await a.waitResponse((r) => r.headers.get('call-id') === call.dialog.callId && r.status === 200);
      callIds.push(call.dialog.callId);
    }
    // Not acknowledged: sent again (RFC 3261 section 13.3.1.4).
    for (const id of callIds) assert.equal((await a.waitResponse((r) => r.headers.get('call-id') === id && r.status === 200)).status, 200);
    for (let i = 0; i < 2; i++) {
      const bye = await b.waitRequest('BYE', 5000);
      b.respond(bye, 200, 'OK');
    }
    const lines = () => local.logLines.map((l) => JSON.parse(l) as Record<string, unknown>);
    await waitFor(() => lines().some((l) => l['event'] === 'call.no_ack'), 'the call.no_ack warning');
    // The next peer event after the one-second window reports what the budget held back.
    const budgetWindowMs = 1000;
    await new Promise((resolve) => setTimeout(resolve, budgetWindowMs + 50));
    a.sendText('NOT SIP AT ALL\r\n\r\n');
    await waitFor(() => lines().some((l) => l['event'] === 'sip.bad_message'), 'the bad message logged');
    const written = lines().filter((l) => l['event'] === 'call.no_ack').length;
    const heldBack = lines()
      .filter((l) => l['event'] === 'log.suppressed')
      .reduce((n, l) => n + Number(l['count']), 0);
    assert.ok(written >= 1);
    assert.equal(written + heldBack, 2, 'each no-ACK call either written or counted as held back');
  } finally {
    a.close();
    b.close();
    await local.stop();
  }
});
