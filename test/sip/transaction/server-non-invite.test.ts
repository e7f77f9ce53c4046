import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SipResponse } from '../../../lib/sip/message.js';
import { isStatus, request, response, rig, TCP, UDP } from './harness.js';

function register(r: ReturnType<typeof rig>, dest = UDP) {
  const req = request('REGISTER');
  r.layer.receiveRequest(req, dest);
  return { req, tx: r.requests.at(-1)!.tx! };
}

test('server non-INVITE: the request goes to the TU with a transaction in Trying', () => {
  const r = rig();
  const { tx } = register(r);
  assert.equal(tx.kind, 'server-non-invite');
  assert.equal(tx.state, 'Trying');
  r.clock.advance(10_000);
  assert.equal(r.sent.length, 0, 'no 100 Trying for non-INVITE');
});

test('server non-INVITE: a retransmission in Trying is absorbed silently', () => {
  const r = rig();
  register(r);
  r.layer.receiveRequest(request('REGISTER'), UDP);
  assert.equal(r.requests.length, 1);
  assert.equal(r.sent.length, 0);
  assert.equal(r.layer.stats.retransmissionsAbsorbed, 1);
});

test('server non-INVITE: provisional -> Proceeding; a retransmission gets the last provisional again', () => {
  const r = rig();
  const { req, tx } = register(r);
  tx.respond(response(req, 100));
  assert.equal(tx.state, 'Proceeding');
  r.layer.receiveRequest(request('REGISTER'), UDP);
  assert.deepEqual(r.sent.map((s) => (s.msg as SipResponse).status), [100, 100]);
});

test('server non-INVITE: Timer J absorbs retransmissions (final resent) then terminates at 64*T1', () => {
  const r = rig();
  const { req, tx } = register(r);
  tx.respond(response(req, 200));
  assert.equal(tx.state, 'Completed');
  r.clock.advance(2000);
  r.layer.receiveRequest(request('REGISTER'), UDP);
  assert.deepEqual(r.times(isStatus(200)), [0, 2000]);
  assert.deepEqual(r.sent[1]!.dest, UDP, 'sent to the source of the request');
  r.clock.advance(32_000 - 2000 - 1);
  assert.equal(tx.state, 'Completed');
  r.clock.advance(1);
  assert.equal(tx.state, 'Terminated');
  assert.equal(r.layer.stats.serverTransactions, 0);
  r.layer.receiveRequest(request('REGISTER'), UDP);
  assert.equal(r.requests.length, 2, 'after Timer J the same request starts a new transaction');
});

test('server non-INVITE: Timer J is zero over TCP', () => {
  const r = rig();
  const { req, tx } = register(r, TCP);
  tx.respond(response(req, 200));
  assert.equal(tx.state, 'Terminated');
  assert.equal(r.layer.stats.serverTransactions, 0);
});

test('server non-INVITE: responses after the final one are discarded', () => {
  const r = rig();
  const { req, tx } = register(r);
  tx.respond(response(req, 401));
  tx.respond(response(req, 200));
  tx.respond(response(req, 100));
  assert.deepEqual(r.sent.map((s) => (s.msg as SipResponse).status), [401]);
});

test('server non-INVITE: a failing send ends the transaction without throwing', () => {
  const r = rig({ failSend: () => true });
  const { req, tx } = register(r);
  tx.respond(response(req, 200));
  assert.equal(tx.state, 'Terminated');
  assert.equal(r.layer.stats.transportErrors, 1);
  assert.equal(r.layer.stats.serverTransactions, 0);
});
