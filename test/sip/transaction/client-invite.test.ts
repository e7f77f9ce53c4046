import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SipRequest, SipResponse } from '../../../lib/sip/message.js';
import { isRequest, request, response, rig, TCP, UDP } from './harness.js';

function user() {
  const responses: SipResponse[] = [];
  let timeouts = 0;
  const errors: Error[] = [];
  return {
    responses,
    errors,
    get timeouts() {
      return timeouts;
    },
    onResponse: (res: SipResponse) => responses.push(res),
    onTimeout: () => timeouts++,
    onTransportError: (err: Error) => errors.push(err),
  };
}

test('client INVITE: MUST retransmit INVITE at T1, 2*T1, 4*T1 ... (Timer A) over UDP', () => {
  const r = rig();
  r.layer.sendRequest(request('INVITE'), UDP, user());
  r.clock.advance(31_999);
  assert.deepEqual(r.times(isRequest('INVITE')), [0, 500, 1500, 3500, 7500, 15500, 31500]);
});

test('client INVITE: Timer B fires at 64*T1 in Calling -> onTimeout, transaction terminated', () => {
  const r = rig();
  const u = user();
  const tx = r.layer.sendRequest(request('INVITE'), UDP, u);
  r.clock.advance(31_999);
  assert.equal(u.timeouts, 0);
  assert.equal(tx.state, 'Calling');
  r.clock.advance(1);
  assert.equal(u.timeouts, 1);
  assert.equal(tx.state, 'Terminated');
  assert.equal(r.layer.stats.clientTransactions, 0);
  r.clock.advance(100_000);
  assert.equal(r.sent.length, 7, 'no sends after termination');
});

test('client INVITE: no Timer A over TCP, Timer B still applies', () => {
  const r = rig();
  const u = user();
  r.layer.sendRequest(request('INVITE'), TCP, u);
  r.clock.advance(32_000);
  assert.deepEqual(r.times(isRequest('INVITE')), [0]);
  assert.equal(u.timeouts, 1);
});

test('client INVITE: a provisional response moves Calling -> Proceeding, stops Timer A, goes to the TU', () => {
  const r = rig();
  const u = user();
  const inv = request('INVITE');
  const tx = r.layer.sendRequest(inv, UDP, u);
  r.clock.advance(600);
  r.layer.receiveResponse(response(inv, 180), UDP);
  assert.equal(tx.state, 'Proceeding');
  assert.equal(u.responses.length, 1);
  r.layer.receiveResponse(response(inv, 183), UDP);
  assert.equal(u.responses.length, 2, 'further provisionals are passed to the TU too');
  r.clock.advance(10_000);
  assert.deepEqual(r.times(isRequest('INVITE')), [0, 500]);
});

test('client INVITE: Timer B has no effect in Proceeding (RFC 3261 §17.1.1.2)', () => {
  const r = rig();
  const u = user();
  const inv = request('INVITE');
  const tx = r.layer.sendRequest(inv, UDP, u);
  r.layer.receiveResponse(response(inv, 180), UDP);
  r.clock.advance(100_000);
  assert.equal(tx.state, 'Proceeding');
  assert.equal(u.timeouts, 0);
});

test('client INVITE: after a CANCEL is sent, no final response within 64*T1 ends the transaction (RFC 3261 §9.1)', () => {
  const r = rig();
  const u = user();
  const inv = request('INVITE');
  const tx = r.layer.sendRequest(inv, UDP, u);
  r.layer.receiveResponse(response(inv, 180), UDP);
  r.clock.advance(10_000);
  r.layer.sendRequest(request('CANCEL'), UDP, user());
  r.clock.advance(31_999);
  assert.equal(tx.state, 'Proceeding');
  r.clock.advance(1);
  assert.equal(tx.state, 'Terminated');
  assert.equal(u.timeouts, 1);
});

test('client INVITE: non-2xx final -> ACK generated with the same branch, Request-URI, Call-ID, From, CSeq number, To of the response, one Via and the Routes', () => {
  const r = rig();
  const u = user();
  const inv = request('INVITE', { cseq: 42, routes: ['<sip:p1.example.com;lr>', '<sip:p2.example.com;lr>'], uri: 'sip:bob@192.0.2.99' });
  const tx = r.layer.sendRequest(inv, UDP, u);
  const busy = response(inv, 486, 'bobtag');
  r.layer.receiveResponse(busy, UDP);
  assert.equal(tx.state, 'Completed');
  assert.equal(u.responses.length, 1);
  const acks = r.sent.filter((s) => isRequest('ACK')(s.msg));
  assert.equal(acks.length, 1);
  const ack = acks[0]!.msg as SipRequest;
  assert.equal(ack.uri, 'sip:bob@192.0.2.99');
  assert.deepEqual(ack.headers.getAll('via'), ['SIP/2.0/UDP client.example.com:5060;branch=z9hG4bKbranch1']);
  assert.equal(ack.headers.get('call-id'), inv.headers.get('call-id'));
  assert.equal(ack.headers.get('from'), inv.headers.get('from'));
  assert.equal(ack.headers.get('to'), '<sip:bob@example.com>;tag=bobtag');
  assert.equal(ack.headers.get('cseq'), '42 ACK');
  assert.deepEqual(ack.headers.getAll('route'), ['<sip:p1.example.com;lr>', '<sip:p2.example.com;lr>']);
  assert.equal(ack.headers.has('contact'), false);
  assert.deepEqual(acks[0]!.dest, UDP);
});

test('client INVITE: Timer D absorbs retransmitted final responses (ACK resent, TU not told), then terminates at 32 s', () => {
  const r = rig();
  const u = user();
  const inv = request('INVITE');
  const tx = r.layer.sendRequest(inv, UDP, u);
  r.layer.receiveResponse(response(inv, 486), UDP);
  r.clock.advance(1000);
  r.layer.receiveResponse(response(inv, 486), UDP);
  r.layer.receiveResponse(response(inv, 486), UDP);
  assert.equal(u.responses.length, 1);
  assert.deepEqual(r.times(isRequest('ACK')), [0, 1000, 1000]);
  assert.equal(r.layer.stats.retransmissionsAbsorbed, 2);
  r.clock.advance(30_999);
  assert.equal(tx.state, 'Completed');
  r.clock.advance(1);
  assert.equal(tx.state, 'Terminated');
  assert.equal(r.layer.stats.clientTransactions, 0);
});

test('client INVITE: Timer D is zero over TCP: Completed -> Terminated at once', () => {
  const r = rig();
  const inv = request('INVITE');
  const tx = r.layer.sendRequest(inv, TCP, user());
  r.layer.receiveResponse(response(inv, 503), TCP);
  assert.equal(tx.state, 'Terminated');
  assert.equal(r.times(isRequest('ACK')).length, 1);
});

test('client INVITE: 2xx -> Accepted (RFC 6026), retransmitted 2xx passed to the TU, no ACK generated, Timer M = 64*T1', () => {
  const r = rig();
  const u = user();
  const inv = request('INVITE');
  const tx = r.layer.sendRequest(inv, UDP, u);
  r.clock.advance(100);
  r.layer.receiveResponse(response(inv, 200), UDP);
  assert.equal(tx.state, 'Accepted');
  r.clock.advance(1000);
  r.layer.receiveResponse(response(inv, 200), UDP);
  r.layer.receiveResponse(response(inv, 486), UDP);
  assert.deepEqual(u.responses.map((x) => x.status), [200, 200], 'non-2xx in Accepted is dropped');
  assert.equal(r.times(isRequest('ACK')).length, 0);
  r.clock.advance(32_000 - 1000 - 1);
  assert.equal(tx.state, 'Accepted');
  r.clock.advance(1);
  assert.equal(tx.state, 'Terminated');
  assert.deepEqual(r.times(isRequest('INVITE')), [0], 'Timer A stopped by the 2xx');
});

test('client INVITE: a transport error is reported to the TU and ends the transaction (RFC 3261 §17.1.4)', () => {
  let fail = false;
  const r = rig({ failSend: () => fail });
  const u = user();
  const tx = r.layer.sendRequest(request('INVITE'), UDP, u);
  fail = true;
  r.clock.advance(500);
  assert.equal(u.errors.length, 1);
  assert.equal(tx.state, 'Terminated');
  assert.equal(r.layer.stats.transportErrors, 1);
  assert.equal(r.layer.stats.clientTransactions, 0);
});
