import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { audioSdp, Phone, PhoneBook, answeredCall } from '../helpers/phone.js';
import { cdrOf } from '../helpers/cdr-files.js';

let srv: TestServer;
const book = new PhoneBook(() => srv.port);
const phone = (user: string, opts: { second?: boolean } = {}): Promise<Phone> => book.get(user, opts);

before(async () => {
  srv = await startTestServer({
    users: [['201', 'pw201'], ['202', 'pw202'], ['203', 'pw203'], ['204', 'pw204'], ['205', 'pw205']],
    configure: (c) => {
      c.media.relay = 'never';
      c.auth.algorithms = ['MD5', 'SHA-256'];
      c.calls.noAnswerTimeout = 5;
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

test('a call between two extensions: ringing, answer, ACK, BYE from the caller, CDR line', async () => {
  const a = await phone('201');
  const b = await phone('202');
  const call = await a.invite('202', audioSdp(40000));
  const inc = await b.incoming();
  assert.equal(inc.invite.headers.get('from')?.includes('sip:201@'), true, 'caller id is the caller');
  assert.notEqual(inc.dialog.callId, call.dialog.callId, 'the B leg has its own Call-ID');
  assert.match(inc.sdp, /m=audio 40000/, 'relay off: SDP passes untouched');
  inc.ring();
  const ringing = await call.provisional(180);
  assert.ok(/;tag=/.test(ringing.headers.get('to') ?? ''));
  inc.answer(audioSdp(40010));
  const ok = await call.final();
  assert.equal(ok.status, 200);
  assert.match(ok.body.toString(), /m=audio 40010/);
  await inc.waitAck();
  const byeOk = await call.bye();
  assert.equal(byeOk.status, 200);
  const bye = await b.answerInDialog(inc.dialog, 'BYE');
  assert.match(bye.headers.get('reason') ?? '', /Q\.850;cause=16/);
  const rec = cdrFor(call.dialog.callId);
  assert.ok(rec, 'CDR line written when the call ended');
  assert.equal(rec.caller, '201');
  assert.equal(rec.callee, '202');
  assert.equal(rec.status, '200');
  assert.equal(rec.fci, 'callTag=1;cause=16');
  assert.ok(rec.answer_time.length > 0);
  assert.equal(rec.media, 'audio');
  assert.equal(rec.codec, 'PCMU');
});

test('BYE from the callee releases the caller with callTag 2', async () => {
  const a = await phone('203');
  const b = await phone('204');
  const { call, inc } = await answeredCall(a, b, audioSdp(40020), audioSdp(40030));
  assert.equal((await inc.bye()).status, 200);
  await a.answerInDialog(call.dialog, 'BYE');
  assert.equal(cdrFor(call.dialog.callId)?.fci, 'callTag=2;cause=16');
});

// ---- the failure matrix: every refused or failed attempt leaves a line with its callTag/cause ----

test('failure matrix: busy, no answer, unknown number, unregistered, caller CANCEL, 603 with Reason', async (t) => {
  const caller = await phone('201');
  const callee = await phone('202');

  await t.test('busy (486 from the phone)', async () => {
    const call = await caller.invite('202', audioSdp(40100));
    const inc = await callee.incoming();
    inc.reject(486, 'Busy Here');
    const res = await call.final();
    assert.equal(res.status, 486);
    assert.match(res.headers.get('reason') ?? '', /cause=17/);
    assert.equal(cdrFor(call.dialog.callId)?.fci, 'callTag=9;cause=17');
    assert.equal(cdrFor(call.dialog.callId)?.status, '486');
  });

  await t.test('unknown number', async () => {
    const call = await caller.invite('299', audioSdp(40110));
    const res = await call.final();
    assert.equal(res.status, 404);
    assert.equal(cdrFor(call.dialog.callId)?.fci, 'callTag=10;cause=1');
  });

  await t.test('known but unregistered extension', async () => {
    const call = await caller.invite('205', audioSdp(40120));
    const res = await call.final();
    assert.equal(res.status, 480);
    assert.equal(cdrFor(call.dialog.callId)?.fci, 'callTag=11;cause=20');
  });

  await t.test('caller CANCEL while ringing', async () => {
    const call = await caller.invite('202', audioSdp(40130));
    const inc = await callee.incoming();
    inc.ring();
    await call.provisional(180);
    call.cancel();
    const res = await call.final();
    assert.equal(res.status, 487);
    const cancel = await callee.waitRequest('CANCEL');
    callee.respond(cancel, 200, 'OK');
    inc.reject(487, 'Request Terminated');
    assert.equal(cdrFor(call.dialog.callId)?.fci, 'callTag=3;cause=16');
  });

  await t.test('caller CANCEL before the callee sent anything: the CANCEL owed goes with its first provisional response', async () => {
    const call = await caller.invite('202', audioSdp(40135));
    const inc = await callee.incoming();
    call.cancel();
    assert.equal((await call.final()).status, 487);
    inc.ring(); // section 9.1: a CANCEL may only follow a provisional response
    const cancel = await callee.waitRequest('CANCEL');
    assert.match(cancel.headers.get('via') ?? '', /branch=z9hG4bK/, 'the CANCEL carries the INVITE\'s Via');
    assert.equal(cancel.headers.get('call-id'), inc.dialog.callId);
    callee.respond(cancel, 200, 'OK');
    inc.reject(487, 'Request Terminated');
  });

  await t.test('callee 603 with Reason: Q.850;cause=21', async () => {
    const call = await caller.invite('202', audioSdp(40140));
    const inc = await callee.incoming();
    inc.reject(603, 'Decline', ['Reason: Q.850;cause=21;text="Call rejected"']);
    const res = await call.final();
    assert.equal(res.status, 603);
    assert.equal(cdrFor(call.dialog.callId)?.fci, 'callTag=4;cause=21');
  });

  await t.test('no answer within calls.noAnswerTimeout', async () => {
    const call = await caller.invite('202', audioSdp(40150));
    const inc = await callee.incoming();
    inc.ring();
    const res = await call.final(8000);
    assert.equal(res.status, 480);
    assert.match(res.headers.get('reason') ?? '', /cause=19/);
    const cancel = await callee.waitRequest('CANCEL');
    assert.match(cancel.headers.get('reason') ?? '', /cause=19/);
    callee.respond(cancel, 200, 'OK');
    inc.reject(487, 'Request Terminated');
    assert.equal(cdrFor(call.dialog.callId)?.fci, 'callTag=5;cause=19');
  });
});
