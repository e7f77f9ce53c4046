import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SipResponse } from '../../../lib/sip/message.js';
import { ackFor, isStatus, request, response, rig, TCP, UDP } from './harness.js';

function invite(r: ReturnType<typeof rig>, dest = UDP) {
  const inv = request('INVITE');
  r.layer.receiveRequest(inv, dest);
  const tx = r.requests.at(-1)!.tx!;
  return { inv, tx };
}

test('server INVITE: the request goes to the TU with a transaction in Proceeding', () => {
  const r = rig();
  const { tx } = invite(r);
  assert.equal(r.requests.length, 1);
  assert.equal(tx.kind, 'server-invite');
  assert.equal(tx.state, 'Proceeding');
  assert.deepEqual(tx.destination, UDP);
  assert.equal(r.layer.stats.serverTransactions, 1);
});

test('server INVITE sends 100 Trying after 200 ms when the TU is silent', () => {
  const r = rig();
  invite(r);
  r.clock.advance(199);
  assert.equal(r.sent.length, 0);
  r.clock.advance(1);
  assert.equal(r.sent.length, 1);
  const trying = r.sent[0]!.msg as SipResponse;
  assert.equal(trying.status, 100);
  assert.equal(trying.headers.get('to'), '<sip:bob@example.com>', '100 Trying carries no To tag');
  assert.equal(trying.headers.get('via'), request('INVITE').headers.get('via'));
});

test('server INVITE sends no 100 Trying when the TU answers within 200 ms', () => {
  const r = rig();
  const { inv, tx } = invite(r);
  r.clock.advance(150);
  tx.respond(response(inv, 180));
  r.clock.advance(10_000);
  assert.deepEqual(r.sent.map((s) => (s.msg as SipResponse).status), [180]);
});

test('server INVITE: retransmitted INVITE in Proceeding -> last provisional resent', () => {
  const r = rig();
  const { inv, tx } = invite(r);
  tx.respond(response(inv, 180));
  r.layer.receiveRequest(request('INVITE'), UDP);
  assert.equal(r.requests.length, 1, 'the TU does not see the retransmission');
  assert.deepEqual(r.sent.map((s) => (s.msg as SipResponse).status), [180, 180]);
  assert.equal(r.sent[1]!.msg, r.sent[0]!.msg);
  assert.equal(r.layer.stats.retransmissionsAbsorbed, 1);
});

test('server INVITE: retransmitted INVITE before any response is absorbed silently', () => {
  const r = rig();
  invite(r);
  r.layer.receiveRequest(request('INVITE'), UDP);
  assert.equal(r.sent.length, 0);
  assert.equal(r.requests.length, 1);
});

test('server INVITE: Timer G retransmits the final non-2xx response at T1, 2*T1 ... capped at T2 (UDP)', () => {
  const r = rig();
  const { inv, tx } = invite(r);
  tx.respond(response(inv, 486));
  assert.equal(tx.state, 'Completed');
  r.clock.advance(31_999);
  assert.deepEqual(r.times(isStatus(486)), [0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]);
});

test('server INVITE: Timer H -> terminated with no ACK; the TU is told', () => {
  const r = rig();
  const { inv, tx } = invite(r);
  tx.respond(response(inv, 486));
  r.clock.advance(31_999);
  assert.equal(tx.state, 'Completed');
  assert.equal(r.ackTimeouts.length, 0);
  r.clock.advance(1);
  assert.equal(tx.state, 'Terminated');
  assert.deepEqual(r.ackTimeouts, [tx]);
  assert.equal(r.layer.stats.serverTransactions, 0);
  r.clock.advance(60_000);
  assert.equal(r.times(isStatus(486)).length, 11, 'Timer G stopped with Timer H');
});

test('server INVITE: retransmitted INVITE in Completed -> final response resent', () => {
  const r = rig();
  const { inv, tx } = invite(r);
  tx.respond(response(inv, 404));
  r.clock.advance(100);
  r.layer.receiveRequest(request('INVITE'), UDP);
  assert.deepEqual(r.times(isStatus(404)), [0, 100]);
});

test('server INVITE: ACK -> Confirmed, Timer G stops, ACK retransmissions absorbed, Timer I (T4) -> Terminated', () => {
  const r = rig();
  const { inv, tx } = invite(r);
  tx.respond(response(inv, 486));
  r.clock.advance(1000);
  r.layer.receiveRequest(ackFor(), UDP);
  assert.equal(tx.state, 'Confirmed');
  r.layer.receiveRequest(ackFor(), UDP);
  r.layer.receiveRequest(request('INVITE'), UDP);
  assert.equal(r.requests.length, 1, 'ACK for a non-2xx never reaches the TU');
  r.clock.advance(4_999);
  assert.equal(tx.state, 'Confirmed');
  r.clock.advance(1);
  assert.equal(tx.state, 'Terminated');
  assert.deepEqual(r.times(isStatus(486)), [0, 500], 'no retransmission after the ACK');
  assert.equal(r.ackTimeouts.length, 0, 'Timer H cancelled');
});

test('server INVITE over TCP: no Timer G; ACK -> Terminated at once (Timer I = 0)', () => {
  const r = rig();
  const { inv, tx } = invite(r, TCP);
  tx.respond(response(inv, 486));
  r.clock.advance(20_000);
  assert.equal(r.times(isStatus(486)).length, 1);
  r.layer.receiveRequest(ackFor(), TCP);
  assert.equal(tx.state, 'Terminated');
  assert.equal(r.layer.stats.serverTransactions, 0);
});

test('server INVITE: Timer H applies over TCP too', () => {
  const r = rig();
  const { inv, tx } = invite(r, TCP);
  tx.respond(response(inv, 486));
  r.clock.advance(32_000);
  assert.equal(tx.state, 'Terminated');
  assert.equal(r.ackTimeouts.length, 1);
});

test('server INVITE: 2xx -> Accepted (RFC 6026) absorbs retransmitted INVITE; Timer L = 64*T1', () => {
  const r = rig();
  const { inv, tx } = invite(r);
  const ok = response(inv, 200);
  tx.respond(ok);
  assert.equal(tx.state, 'Accepted');
  r.clock.advance(5000);
  r.layer.receiveRequest(request('INVITE'), UDP);
  assert.equal(r.times(isStatus(200)).length, 1, 'the transaction does not retransmit 2xx: the TU does');
  tx.respond(ok);
  assert.deepEqual(r.times(isStatus(200)), [0, 5000], 'a 2xx from the TU in Accepted is sent');
  tx.respond(response(inv, 486));
  assert.equal(r.times(isStatus(486)).length, 0);
  r.clock.advance(32_000 - 5000 - 1);
  assert.equal(tx.state, 'Accepted');
  r.clock.advance(1);
  assert.equal(tx.state, 'Terminated');
});

test('server INVITE: the ACK to a 2xx (new branch) matches no transaction and goes to the TU with tx null', () => {
  const r = rig();
  const { inv, tx } = invite(r);
  tx.respond(response(inv, 200));
  r.layer.receiveRequest(ackFor({ branch: 'z9hG4bKackbranch' }), UDP);
  assert.equal(r.requests.length, 2);
  assert.equal(r.requests[1]!.req.method, 'ACK');
  assert.equal(r.requests[1]!.tx, null);
  assert.equal(tx.state, 'Accepted');
});

test('server INVITE: responses after the final one are ignored', () => {
  const r = rig();
  const { inv, tx } = invite(r);
  tx.respond(response(inv, 486));
  tx.respond(response(inv, 180));
  tx.respond(response(inv, 200));
  assert.deepEqual(r.sent.map((s) => (s.msg as SipResponse).status), [486]);
});
