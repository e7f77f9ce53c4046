import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequest, Headers, type SipRequest, type SipResponse } from '../../../lib/sip/message.js';
import { FakeClock } from '../../../lib/sip/transaction/clock.js';
import { TransactionLayer } from '../../../lib/sip/transaction/layer.js';
import { resolveTimerConfig, timerDurations } from '../../../lib/sip/transaction/timers.js';
import { ackFor, isRequest, isStatus, request, response, rig, UDP } from './harness.js';

const statuses = (r: ReturnType<typeof rig>) => r.sent.map((s) => (s.msg as SipResponse).status);

test('a request matches a server transaction by branch, sent-by and method (RFC 3261 §17.2.3)', () => {
  const r = rig();
  r.layer.receiveRequest(request('OPTIONS'), UDP);
  r.layer.receiveRequest(request('OPTIONS', { sentBy: 'other.example.com:5060' }), UDP);
  r.layer.receiveRequest(request('REGISTER'), UDP);
  r.layer.receiveRequest(request('OPTIONS', { branch: 'z9hG4bKbranch2' }), UDP);
  r.layer.receiveRequest(request('OPTIONS'), UDP);
  assert.equal(r.requests.length, 4, 'only the last one is a retransmission');
  assert.equal(r.layer.stats.serverTransactions, 4);
});

test('hasServerTransaction tells a retransmission from a new request without touching the transaction', () => {
  const r = rig();
  r.layer.receiveRequest(request('INVITE'), UDP);
  const legacyVia = 'SIP/2.0/UDP old.example.com:5060';
  r.layer.receiveRequest(request('INVITE', { via: legacyVia }), UDP);
  assert.equal(r.layer.hasServerTransaction(request('INVITE'), UDP), true);
  assert.equal(r.layer.hasServerTransaction(request('INVITE', { via: legacyVia }), UDP), true, 'RFC 2543 key');
  assert.equal(r.layer.hasServerTransaction(request('INVITE', { branch: 'z9hG4bKbranch2' }), UDP), false);
  assert.equal(r.layer.hasServerTransaction(request('INVITE', { sentBy: 'other.example.com:5060' }), UDP), false);
  assert.equal(r.layer.hasServerTransaction(request('OPTIONS'), UDP), false, 'another method');
  assert.equal(r.layer.hasServerTransaction(request('INVITE'), { ...UDP, port: UDP.port + 1 }), false, 'another source');
  assert.equal(r.layer.hasServerTransaction(request('INVITE', { via: legacyVia, cseq: 2 }), UDP), false);
  assert.equal(r.requests.length, 2);
  assert.equal(r.layer.stats.retransmissionsAbsorbed, 0);
  assert.equal(r.sent.length, 0, 'nothing sent');
});

test('the same branch from another transport source is another transaction, answered there', () => {
  const r = rig();
  const other = { ...UDP, port: UDP.port + 1 };
  r.layer.receiveRequest(request('OPTIONS'), UDP);
  r.requests[0]!.tx!.respond(response(r.requests[0]!.req, 200, 't1'));
  r.layer.receiveRequest(request('OPTIONS'), other);
  assert.equal(r.requests.length, 2, 'a copied branch from elsewhere does not match');
  r.requests[1]!.tx!.respond(response(r.requests[1]!.req, 200, 't2'));
  assert.deepEqual(r.sent.map((s) => s.dest.port), [UDP.port, other.port]);
});

test('sent-by comparison ignores letter case of the host', () => {
  const r = rig();
  r.layer.receiveRequest(request('OPTIONS', { sentBy: 'Client.Example.COM:5060' }), UDP);
  r.layer.receiveRequest(request('OPTIONS', { sentBy: 'client.example.com:5060' }), UDP);
  assert.equal(r.requests.length, 1);
});

test('RFC 2543 fallback: without the magic cookie, Request-URI, tags, Call-ID, CSeq and top Via identify the transaction', () => {
  const r = rig();
  const legacyVia = 'SIP/2.0/UDP old.example.com:5060';
  const inv = request('INVITE', { via: legacyVia });
  r.layer.receiveRequest(inv, UDP);
  r.layer.receiveRequest(request('INVITE', { via: legacyVia }), UDP);
  assert.equal(r.requests.length, 1, 'the retransmission matched');
  r.layer.receiveRequest(request('INVITE', { via: legacyVia, cseq: 2 }), UDP);
  assert.equal(r.requests.length, 2, 'another CSeq is another transaction');
  const tx = r.requests[0]!.tx!;
  tx.respond(response(inv, 486, 'srvtag'));
  r.layer.receiveRequest(ackFor({ via: legacyVia, toTag: 'wrongtag' }), UDP);
  assert.equal(tx.state, 'Completed', 'an ACK with another To tag does not match');
  assert.equal(r.requests.at(-1)!.req.method, 'ACK');
  r.layer.receiveRequest(ackFor({ via: legacyVia, toTag: 'srvtag' }), UDP);
  assert.equal(tx.state, 'Confirmed', 'the ACK with the To tag of our response matches');
});

test('RFC 2543 fallback: a non-INVITE retransmission matches including its To tag', () => {
  const r = rig();
  const via = 'SIP/2.0/UDP old.example.com';
  r.layer.receiveRequest(request('BYE', { via, toTag: 'a' }), UDP);
  r.layer.receiveRequest(request('BYE', { via, toTag: 'a' }), UDP);
  r.layer.receiveRequest(request('BYE', { via, toTag: 'b' }), UDP);
  assert.equal(r.requests.length, 2);
});

test('CANCEL for a pending INVITE -> 200 to the CANCEL, onCancel called; the TU then answers 487', () => {
  const r = rig();
  const inv = request('INVITE');
  r.layer.receiveRequest(inv, UDP);
  const inviteTx = r.requests[0]!.tx!;
  inviteTx.respond(response(inv, 180, 'calltag'));
  r.layer.receiveRequest(request('CANCEL'), UDP);
  assert.equal(r.requests.length, 1, 'CANCEL is not passed to onRequest');
  assert.equal(r.cancels.length, 1);
  assert.equal(r.cancels[0]!.inviteTx, inviteTx);
  const ok = r.sent.at(-1)!.msg as SipResponse;
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get('cseq'), '1 CANCEL');
  assert.equal(ok.headers.get('to'), '<sip:bob@example.com>;tag=calltag', 'same To tag as the INVITE response');
  inviteTx.respond(response(inv, 487, 'calltag'));
  assert.equal(inviteTx.state, 'Completed');
  r.layer.receiveRequest(request('CANCEL'), UDP);
  assert.equal(r.cancels.length, 1, 'a retransmitted CANCEL is answered by its transaction');
  assert.deepEqual(statuses(r), [180, 200, 487, 200]);
});

test('CANCEL for an unknown transaction -> 481, onCancel called with null', () => {
  const r = rig();
  r.layer.receiveRequest(request('CANCEL', { branch: 'z9hG4bKnothing' }), UDP);
  assert.deepEqual(statuses(r), [481]);
  assert.deepEqual(r.cancels.map((c) => c.inviteTx), [null]);
  assert.equal(r.requests.length, 0);
});

test('CANCEL after the INVITE got its final response -> 200, the TU is not asked to cancel', () => {
  const r = rig();
  const inv = request('INVITE');
  r.layer.receiveRequest(inv, UDP);
  r.requests[0]!.tx!.respond(response(inv, 200));
  r.layer.receiveRequest(request('CANCEL'), UDP);
  assert.deepEqual(statuses(r), [200, 200]);
  assert.equal(r.cancels.length, 0);
});

test('stray response dropped (counted)', () => {
  const r = rig();
  const inv = request('INVITE');
  r.layer.receiveResponse(response(inv, 200), UDP);
  const noVia = response(inv, 200);
  noVia.headers.delete('via');
  r.layer.receiveResponse(noVia, UDP);
  const noCseq = response(inv, 200);
  noCseq.headers.delete('cseq');
  r.layer.receiveResponse(noCseq, UDP);
  assert.equal(r.layer.stats.strayResponses, 3);
  assert.equal(r.sent.length, 0);
});

test('a response matches a client transaction by branch and CSeq method (RFC 3261 §17.1.3)', () => {
  const r = rig();
  const got: number[] = [];
  const inv = request('INVITE');
  r.layer.sendRequest(inv, UDP, { onResponse: (x) => got.push(x.status), onTimeout: () => {} });
  const cancelGot: number[] = [];
  const cancel = request('CANCEL');
  r.layer.sendRequest(cancel, UDP, { onResponse: (x) => cancelGot.push(x.status), onTimeout: () => {} });
  r.layer.receiveResponse(response(cancel, 200), UDP);
  r.layer.receiveResponse(response(inv, 487), UDP);
  assert.deepEqual(cancelGot, [200]);
  assert.deepEqual(got, [487]);
});

test('limit -> 503 sent statelessly beyond maxServerTransactions; room again once one ends', () => {
  const r = rig({ maxServerTransactions: 2 });
  r.layer.receiveRequest(request('REGISTER', { branch: 'z9hG4bK1' }), UDP);
  r.layer.receiveRequest(request('REGISTER', { branch: 'z9hG4bK2' }), UDP);
  r.layer.receiveRequest(request('REGISTER', { branch: 'z9hG4bK3' }), UDP);
  assert.equal(r.requests.length, 2);
  assert.deepEqual(statuses(r), [503]);
  assert.match((r.sent[0]!.msg as SipResponse).headers.get('to')!, /;tag=/);
  assert.equal(r.layer.stats.overloadRejections, 1);
  assert.equal(r.layer.stats.serverTransactions, 2);
  r.layer.receiveRequest(request('REGISTER', { branch: 'z9hG4bK1' }), UDP);
  assert.equal(r.layer.stats.overloadRejections, 1, 'retransmissions of live transactions are still matched');
  r.requests[0]!.tx!.respond(response(r.requests[0]!.req, 200));
  r.clock.advance(32_000);
  r.layer.receiveRequest(request('REGISTER', { branch: 'z9hG4bK3' }), UDP);
  assert.equal(r.requests.length, 3);
});

test('a full table makes room by ending the oldest Completed non-INVITE transaction before Timer J', () => {
  const r = rig({ maxServerTransactions: 3 });
  for (const b of ['z9hG4bKa', 'z9hG4bKb', 'z9hG4bKc']) r.layer.receiveRequest(request('REGISTER', { branch: b }), UDP);
  // a and b answered (Completed, waiting for Timer J); c still in Trying.
  r.requests[0]!.tx!.respond(response(r.requests[0]!.req, 200));
  r.clock.advance(10);
  r.requests[1]!.tx!.respond(response(r.requests[1]!.req, 200));
  r.layer.receiveRequest(request('REGISTER', { branch: 'z9hG4bKd' }), UDP);
  assert.equal(r.requests.length, 4, 'the new request is served, not refused');
  assert.equal(r.layer.stats.overloadRejections, 0);
  assert.equal(r.layer.stats.evictedEarly, 1);
  assert.equal(r.layer.stats.serverTransactions, 3);
  const sentBefore = r.sent.length;
  r.layer.receiveRequest(request('REGISTER', { branch: 'z9hG4bKb' }), UDP);
  assert.equal(r.sent.length, sentBefore + 1, 'the younger Completed transaction still absorbs its retransmission');
  r.layer.receiveRequest(request('REGISTER', { branch: 'z9hG4bKa' }), UDP);
  assert.equal(r.requests.length, 5, 'the evicted one is gone: its retransmission is a new request');
  assert.equal(r.layer.stats.evictedEarly, 2, 'b, the last Completed one, made room for it');
  // c, d and a are all still waiting for the TU: nothing can give way, so 503.
  r.layer.receiveRequest(request('REGISTER', { branch: 'z9hG4bKe' }), UDP);
  assert.equal(r.layer.stats.overloadRejections, 1, 'nothing Completed left: 503');
  assert.equal(r.requests.length, 5);
});

test('T1/T2/T4 configurable: Timer E, F and K follow them', () => {
  const r = rig({ timers: { T1: 100, T2: 400, T4: 1000 } });
  const req = request('OPTIONS');
  let timeouts = 0;
  r.layer.sendRequest(req, UDP, { onResponse: () => {}, onTimeout: () => timeouts++ });
  r.clock.advance(6_399);
  assert.deepEqual(r.times(isRequest('OPTIONS')).slice(0, 6), [0, 100, 300, 700, 1100, 1500]);
  assert.equal(timeouts, 0);
  r.clock.advance(1);
  assert.equal(timeouts, 1, 'Timer F = 64*T1 = 6.4 s');
  const d = timerDurations(resolveTimerConfig({ T1: 100, T2: 400, T4: 1000 }), false);
  assert.deepEqual([d.B, d.D, d.F, d.H, d.I, d.J, d.K, d.L, d.M], [6400, 32000, 6400, 6400, 1000, 6400, 1000, 6400, 6400]);
  const rel = timerDurations(resolveTimerConfig(), true);
  assert.deepEqual([rel.D, rel.I, rel.J, rel.K, rel.retransmit], [0, 0, 0, 0, false]);
  assert.throws(() => resolveTimerConfig({ T1: 0 }), RangeError);
  assert.throws(() => resolveTimerConfig({ T2: Number.NaN }), RangeError);
});

test('requests without a usable Via or with garbage headers are handled without throwing', () => {
  const r = rig();
  r.layer.receiveRequest(createRequest('OPTIONS', 'sip:x', new Headers()), UDP);
  assert.equal(r.layer.stats.malformedRequests, 1);
  const h = new Headers().append('Via', 'garbage;;;=;branch').append('CSeq', '').append('To', ';tag').append('From', '<<>>;');
  const odd: SipRequest = createRequest('OPTIONS', '', h);
  r.layer.receiveRequest(odd, UDP);
  r.layer.receiveRequest(odd, UDP);
  assert.equal(r.requests.length, 1);
  r.layer.receiveResponse({ ...response(odd, 200), headers: h }, UDP);
  assert.equal(r.layer.stats.strayResponses, 1);
});

test('sendRequest adds a magic-cookie branch to a top Via that has none, and refuses ACK', () => {
  const r = rig();
  const req = request('OPTIONS', { via: 'SIP/2.0/UDP me.example.com:5060' });
  r.layer.sendRequest(req, UDP, { onResponse: () => {}, onTimeout: () => {} });
  const vias = req.headers.list('via');
  assert.match(vias[0]!, /^SIP\/2\.0\/UDP me\.example\.com:5060;branch=z9hG4bK\w+$/);
  assert.equal(vias.length, 2, 'the lower Via stays');
  assert.throws(() => r.layer.sendRequest(ackFor(), UDP, { onResponse: () => {}, onTimeout: () => {} }), TypeError);
});

test('close() clears every timer and forgets every transaction', () => {
  const r = rig();
  const inv = request('INVITE');
  r.layer.receiveRequest(inv, UDP);
  r.requests[0]!.tx!.respond(response(inv, 486));
  r.layer.receiveRequest(request('REGISTER'), UDP);
  r.requests[1]!.tx!.respond(response(r.requests[1]!.req, 200));
  r.layer.sendRequest(request('INVITE', { branch: 'z9hG4bKout1' }), UDP, { onResponse: () => {}, onTimeout: () => {} });
  r.layer.sendRequest(request('OPTIONS', { branch: 'z9hG4bKout2' }), UDP, { onResponse: () => {}, onTimeout: () => {} });
  assert.ok(r.clock.pending > 0);
  r.layer.close();
  assert.equal(r.clock.pending, 0);
  assert.equal(r.layer.stats.serverTransactions, 0);
  assert.equal(r.layer.stats.clientTransactions, 0);
});

test('long timers share one clock timer: 1000 REGISTER transactions in Completed use O(1) clock timers and all end within J + 100 ms', () => {
  const clock = new FakeClock();
  let sent = 0;
  const txs: { state: string }[] = [];
  const layer = new TransactionLayer({
    clock,
    send: () => {
      sent++;
    },
    tu: {
      onRequest(req, tx) {
        tx!.respond(response(req, 200));
        txs.push(tx!);
      },
    },
  });
  for (let i = 0; i < 1000; i++) {
    layer.receiveRequest(request('REGISTER', { branch: `z9hG4bKreg${i}` }), UDP);
    clock.advance(7);
  }
  assert.equal(sent, 1000);
  assert.equal(layer.stats.serverTransactions, 1000);
  assert.equal(clock.pending, 1);
  clock.advance(32_000 - 7000 - 1);
  assert.equal(txs[0]!.state, 'Completed', 'no early expiry');
  clock.advance(1);
  assert.equal(txs[0]!.state, 'Terminated', 'the first one ends exactly on time');
  clock.advance(7000 + 100);
  assert.equal(layer.stats.serverTransactions, 0);
  assert.equal(clock.pending, 0);
});

test('transactions sharing a branch (INVITE and its CANCEL) live and end independently', () => {
  const r = rig();
  const inv = request('INVITE');
  r.layer.receiveRequest(inv, UDP);
  r.requests[0]!.tx!.respond(response(inv, 486)); // Completed: Timer H at 32 s
  r.clock.advance(1000);
  r.layer.receiveRequest(request('CANCEL'), UDP); // its own transaction: Timer J ends it at 33 s
  assert.equal(r.layer.stats.serverTransactions, 2);
  r.clock.advance(31_000);
  assert.equal(r.requests[0]!.tx!.state, 'Terminated');
  assert.equal(r.layer.stats.serverTransactions, 1);
  r.layer.receiveRequest(request('CANCEL'), UDP);
  assert.equal(r.times(isStatus(200)).length, 2, 'the CANCEL transaction still answers its retransmission');
  r.clock.advance(1000);
  assert.equal(r.layer.stats.serverTransactions, 0);
  r.layer.receiveRequest(request('INVITE'), UDP);
  assert.equal(r.requests.length, 2, 'the INVITE is new again once its transaction is gone');
});

test('a branch reused from many sent-by values is refused with 503 after 16 transactions', () => {
  const r = rig();
  for (let i = 0; i < 17; i++) r.layer.receiveRequest(request('OPTIONS', { sentBy: `host${i}.example.com` }), UDP);
  assert.equal(r.requests.length, 16);
  assert.deepEqual(r.sent.map((s) => (s.msg as SipResponse).status), [503]);
  r.layer.receiveRequest(request('OPTIONS', { sentBy: 'host3.example.com' }), UDP);
  assert.equal(r.layer.stats.retransmissionsAbsorbed, 1, 'filed ones still match');
});

test('RFC 2543 fallback: an ACK matching an INVITE transaction in Accepted goes to the TU (RFC 6026 §7.1)', () => {
  const r = rig();
  const via = 'SIP/2.0/UDP old.example.com:5060';
  const inv = request('INVITE', { via });
  r.layer.receiveRequest(inv, UDP);
  const tx = r.requests[0]!.tx!;
  tx.respond(response(inv, 200, 'oktag'));
  r.layer.receiveRequest(ackFor({ via, toTag: 'oktag' }), UDP);
  assert.equal(r.requests.length, 2);
  assert.equal(r.requests[1]!.req.method, 'ACK');
  assert.equal(r.requests[1]!.tx, null);
  assert.equal(tx.state, 'Accepted');
});

test('same source means the same TCP connection, or the same UDP address and port (transport included)', () => {
  const r = rig();
  const tcp1 = { transport: 'tcp' as const, address: UDP.address, port: UDP.port, connectionId: 1 };
  const tcp2 = { ...tcp1, connectionId: 2 };
  const tcp1OtherPort = { ...tcp1, port: 40000 };
  r.layer.receiveRequest(request('OPTIONS'), tcp1);
  r.layer.receiveRequest(request('OPTIONS'), tcp1OtherPort);
  assert.equal(r.requests.length, 1, 'same connection: a retransmission, whatever address it reports');
  r.layer.receiveRequest(request('OPTIONS'), tcp2);
  assert.equal(r.requests.length, 2, 'another connection');
  r.layer.receiveRequest(request('OPTIONS'), UDP);
  assert.equal(r.requests.length, 3, 'UDP from the same address and port as a TCP peer');
  r.layer.receiveRequest(request('OPTIONS'), { ...UDP, address: '192.0.2.11' });
  assert.equal(r.requests.length, 4, 'another UDP address');
  r.layer.receiveRequest(request('OPTIONS'), { ...UDP });
  assert.equal(r.requests.length, 4, 'an equal source object is the same source');
  const noId = { transport: 'tcp' as const, address: 'a', port: 1 };
  r.layer.receiveRequest(request('OPTIONS', { branch: 'z9hG4bKnoid' }), noId);
  r.layer.receiveRequest(request('OPTIONS', { branch: 'z9hG4bKnoid' }), { ...noId, connectionId: 0 });
  assert.equal(r.requests.length, 5, 'a missing connection id counts as 0');
});

test('RFC 2543 fallback: a retransmission from another source, or another sent-by, is a new transaction', () => {
  const r = rig();
  const via = 'SIP/2.0/UDP old.example.com:5060';
  r.layer.receiveRequest(request('OPTIONS', { via }), UDP);
  r.layer.receiveRequest(request('OPTIONS', { via }), { ...UDP, port: 5062 });
  assert.equal(r.requests.length, 2);
  r.layer.receiveRequest(request('OPTIONS', { via }), UDP);
  assert.equal(r.requests.length, 2, 'the same one from the first source matches');
  r.layer.receiveRequest(request('OPTIONS', { via: 'SIP/2.0/UDP OLD.example.com:5060' }), UDP);
  assert.equal(r.requests.length, 3, 'the Via is part of the RFC 2543 key as written');
});

test('RFC 2543 fallback: CANCEL finds the INVITE by the key built for INVITE (no To tag, method INVITE)', () => {
  const r = rig();
  const via = 'SIP/2.0/UDP old.example.com:5060';
  const inv = request('INVITE', { via });
  r.layer.receiveRequest(inv, UDP);
  const inviteTx = r.requests[0]!.tx!;
  inviteTx.respond(response(inv, 180, 'ring'));
  r.layer.receiveRequest(request('CANCEL', { via }), { ...UDP, port: 5999 });
  assert.deepEqual(r.cancels.map((c) => c.inviteTx), [null], 'from another source: no match, 481');
  r.layer.receiveRequest(request('CANCEL', { via }), UDP);
  assert.deepEqual(r.cancels.map((c) => c.inviteTx), [null, inviteTx]);
  assert.deepEqual(statuses(r), [180, 481, 200]);
  r.layer.receiveRequest(request('CANCEL', { via }), UDP);
  assert.deepEqual(statuses(r), [180, 481, 200, 200], 'the CANCEL retransmission is answered by its transaction');
  assert.equal(r.cancels.length, 2);
});

test('an ACK from another source does not match the INVITE transaction', () => {
  const r = rig();
  const inv = request('INVITE');
  r.layer.receiveRequest(inv, UDP);
  const tx = r.requests[0]!.tx!;
  tx.respond(response(inv, 486));
  r.layer.receiveRequest(ackFor(), { ...UDP, port: 5999 });
  assert.equal(tx.state, 'Completed');
  assert.equal(r.requests.at(-1)!.tx, null, 'handed to the TU as an unmatched ACK');
  r.layer.receiveRequest(ackFor(), UDP);
  assert.equal(tx.state, 'Confirmed');
});

test('table keys and sent-by taken from the message text match later requests with equal content', () => {
  const r = rig();
  const long = 'z9hG4bK' + 'a'.repeat(60);
  r.layer.receiveRequest(request('REGISTER', { branch: long, sentBy: 'Some.Long.Host.Name.Example.COM:5060' }), UDP);
  r.layer.receiveRequest(request('REGISTER', { branch: long, sentBy: 'some.long.host.name.example.com:5060' }), UDP);
  assert.equal(r.requests.length, 1);
  assert.equal(r.layer.stats.retransmissionsAbsorbed, 1);
});
