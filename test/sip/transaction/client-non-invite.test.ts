import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SipResponse } from '../../../lib/sip/message.js';
import { isRequest, request, response, rig, TCP, UDP } from './harness.js';

function user() {
  const responses: SipResponse[] = [];
  const u = {
    responses,
    timeouts: 0,
    onResponse: (res: SipResponse) => responses.push(res),
    onTimeout: () => {
      u.timeouts++;
    },
  };
  return u;
}

test('client non-INVITE: Timer E doubles to T2, then stays at T2 (Trying, over UDP)', () => {
  const r = rig();
  r.layer.sendRequest(request('OPTIONS'), UDP, user());
  r.clock.advance(31_999);
  assert.deepEqual(r.times(isRequest('OPTIONS')), [0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]);
});

test('client non-INVITE: if Timer E fires in Proceeding, the request is retransmitted and Timer E reset to T2', () => {
  const r = rig();
  const u = user();
  const req = request('OPTIONS');
  const tx = r.layer.sendRequest(req, UDP, u);
  r.clock.advance(600);
  r.layer.receiveResponse(response(req, 100), UDP);
  assert.equal(tx.state, 'Proceeding');
  assert.equal(u.responses.length, 1);
  r.clock.advance(10_000 - 600);
  // E was due at 1500 when the 100 came; from then on it fires every T2.
  assert.deepEqual(r.times(isRequest('OPTIONS')), [0, 500, 1500, 5500, 9500]);
});

test('client non-INVITE: Timer F fires at 64*T1 -> onTimeout (Trying)', () => {
  const r = rig();
  const u = user();
  const tx = r.layer.sendRequest(request('OPTIONS'), UDP, u);
  r.clock.advance(31_999);
  assert.equal(u.timeouts, 0);
  r.clock.advance(1);
  assert.equal(u.timeouts, 1);
  assert.equal(tx.state, 'Terminated');
  assert.equal(r.layer.stats.clientTransactions, 0);
});

test('client non-INVITE: Timer F also fires in Proceeding', () => {
  const r = rig();
  const u = user();
  const req = request('REGISTER');
  const tx = r.layer.sendRequest(req, UDP, u);
  r.layer.receiveResponse(response(req, 100), UDP);
  r.clock.advance(32_000);
  assert.equal(u.timeouts, 1);
  assert.equal(tx.state, 'Terminated');
});

test('client non-INVITE: no Timer E over TCP; Timer F still applies', () => {
  const r = rig();
  const u = user();
  r.layer.sendRequest(request('OPTIONS'), TCP, u);
  r.clock.advance(32_000);
  assert.deepEqual(r.times(isRequest('OPTIONS')), [0]);
  assert.equal(u.timeouts, 1);
});

test('client non-INVITE: final response -> Completed; Timer K (T4) absorbs retransmissions, then Terminated', () => {
  const r = rig();
  const u = user();
  const req = request('OPTIONS');
  const tx = r.layer.sendRequest(req, UDP, u);
  r.clock.advance(700);
  r.layer.receiveResponse(response(req, 200), UDP);
  assert.equal(tx.state, 'Completed');
  r.layer.receiveResponse(response(req, 200), UDP);
  assert.equal(u.responses.length, 1, 'retransmitted final response absorbed');
  assert.equal(r.layer.stats.retransmissionsAbsorbed, 1);
  r.clock.advance(4_999);
  assert.equal(tx.state, 'Completed');
  r.clock.advance(1);
  assert.equal(tx.state, 'Terminated');
  assert.deepEqual(r.times(isRequest('OPTIONS')), [0, 500], 'Timer E stopped by the final response');
  assert.equal(u.timeouts, 0, 'Timer F cancelled');
  r.layer.receiveResponse(response(req, 200), UDP);
  assert.equal(r.layer.stats.strayResponses, 1, 'after Timer K the response is stray');
});

test('client non-INVITE: Timer K is zero over TCP', () => {
  const r = rig();
  const req = request('OPTIONS');
  const tx = r.layer.sendRequest(req, TCP, user());
  r.layer.receiveResponse(response(req, 404), TCP);
  assert.equal(tx.state, 'Terminated');
  assert.equal(r.layer.stats.clientTransactions, 0);
});

test('client non-INVITE: a transport error without onTransportError is reported as a timeout', () => {
  const r = rig({ failSend: () => true });
  const u = user();
  const tx = r.layer.sendRequest(request('OPTIONS'), UDP, u);
  assert.equal(u.timeouts, 1);
  assert.equal(tx.state, 'Terminated');
  assert.equal(r.clock.pending, 0);
});

test('a fault in the user\'s timeout callback (Timer F) is reported to onUserError, not thrown into the timer', () => {
  const errors: unknown[] = [];
  const r = rig({ onUserError: (err) => errors.push(err) });
  r.layer.sendRequest(request('OPTIONS'), UDP, {
    onResponse: () => undefined,
    onTimeout: () => {
      throw new Error('user fault');
    },
  });
  assert.doesNotThrow(() => r.clock.advance(32_000));
  assert.equal(errors.length, 1);
  assert.match(String(errors[0]), /user fault/);
  assert.equal(r.layer.stats.clientTransactions, 0, 'the transaction ended all the same');
});
