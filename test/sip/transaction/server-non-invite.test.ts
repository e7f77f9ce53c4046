import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serialize, type SipResponse } from '../../../lib/sip/message.js';
import { FakeClock } from '../../../lib/sip/transaction/clock.js';
import { TransactionLayer, type Destination, type ServerTransaction } from '../../../lib/sip/transaction/layer.js';
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

test('server non-INVITE: the request is available until the final response, then let go (undefined in Completed)', () => {
  const r = rig();
  const { req, tx } = register(r);
  assert.equal(tx.request, req, 'Trying');
  tx.respond(response(req, 100));
  assert.equal(tx.request, req, 'Proceeding');
  tx.respond(response(req, 200));
  assert.equal(tx.state, 'Completed');
  assert.equal(tx.request, undefined, 'Completed: nothing needs the request any more');
  r.layer.receiveRequest(request('REGISTER'), UDP);
  assert.deepEqual(r.sent.map((s) => (s.msg as SipResponse).status), [100, 200, 200], 'still matched and answered');
});

/** A layer whose transport serializes like lib/sip/stack.ts and reports the bytes it sent. */
function bytesRig(opts: { failSend?: () => boolean; noSendBytes?: boolean } = {}) {
  const clock = new FakeClock();
  const wire: { data: Buffer; dest: Destination; how: 'send' | 'sendBytes'; at: number }[] = [];
  const txs: { tx: ServerTransaction }[] = [];
  const layer = new TransactionLayer({
    clock,
    send(msg, dest) {
      if (opts.failSend?.()) throw new Error('network unreachable');
      if (msg.kind === 'response' && !msg.headers.has('server')) msg.headers.append('Server', 'test');
      const data = serialize(msg);
      wire.push({ data, dest, how: 'send', at: clock.now() });
      return data;
    },
    sendBytes: opts.noSendBytes
      ? undefined
      : (data, dest) => {
          if (opts.failSend?.()) throw new Error('network unreachable');
          wire.push({ data: Buffer.from(data), dest, how: 'sendBytes', at: clock.now() });
        },
    tu: {
      onRequest(req, tx) {
        txs.push({ tx: tx! });
        const res = response(req, 200, `tag${txs.length}`);
        res.headers.append('Contact', `<sip:u${txs.length}@192.0.2.10>;expires=3600`);
        tx!.respond(res);
      },
    },
  });
  return { clock, wire, txs, layer };
}

test('server non-INVITE: with sendBytes, a retransmission in Completed resends exactly the bytes first sent', () => {
  const r = bytesRig();
  r.layer.receiveRequest(request('REGISTER'), UDP);
  r.layer.receiveRequest(request('REGISTER', { branch: 'z9hG4bKother' }), UDP);
  r.clock.advance(1000);
  r.layer.receiveRequest(request('REGISTER'), UDP);
  r.layer.receiveRequest(request('REGISTER', { branch: 'z9hG4bKother' }), UDP);
  r.layer.receiveRequest(request('REGISTER'), UDP);
  assert.deepEqual(r.wire.map((w) => w.how), ['send', 'send', 'sendBytes', 'sendBytes', 'sendBytes']);
  assert.ok(r.wire[2]!.data.equals(r.wire[0]!.data), 'same bytes, Server header included');
  assert.ok(r.wire[3]!.data.equals(r.wire[1]!.data));
  assert.ok(r.wire[4]!.data.equals(r.wire[0]!.data));
  assert.ok(!r.wire[0]!.data.equals(r.wire[1]!.data));
  assert.deepEqual(r.wire[2]!.dest, UDP);
  assert.equal(r.layer.stats.retransmissionsAbsorbed, 3);
  r.clock.advance(31_000);
  assert.equal(r.layer.stats.serverTransactions, 0, 'Timer J still ends them');
});

test('server non-INVITE: kept bytes survive many later transactions (slab rollover) unchanged', () => {
  const r = bytesRig();
  const n = 600; // some 300 bytes each: several 32 KiB slabs
  for (let i = 0; i < n; i++) r.layer.receiveRequest(request('REGISTER', { branch: `z9hG4bKmany${i}`, callId: `c${i}` }), UDP);
  const first = r.wire.slice(0, n).map((w) => w.data);
  for (let i = n - 1; i >= 0; i--) r.layer.receiveRequest(request('REGISTER', { branch: `z9hG4bKmany${i}`, callId: `c${i}` }), UDP);
  const again = r.wire.slice(n);
  assert.equal(again.length, n);
  for (let i = 0; i < n; i++) {
    assert.equal(again[i]!.how, 'sendBytes');
    assert.ok(again[i]!.data.equals(first[n - 1 - i]!), `transaction ${n - 1 - i}`);
  }
});

test('server non-INVITE: a large final response is kept whole and resent unchanged', () => {
  const clock = new FakeClock();
  const wire: { data: Buffer; how: string }[] = [];
  let tx: ServerTransaction | null = null;
  const layer = new TransactionLayer({
    clock,
    send: (msg) => {
      const data = serialize(msg);
      wire.push({ data, how: 'send' });
      return data;
    },
    sendBytes: (data) => void wire.push({ data, how: 'sendBytes' }),
    tu: { onRequest: (_req, t) => void (tx = t) },
  });
  const req = request('OPTIONS');
  layer.receiveRequest(req, UDP);
  const big = response(req, 200);
  big.body = Buffer.alloc(20_000, 'a');
  tx!.respond(big);
  layer.receiveRequest(request('OPTIONS'), UDP);
  assert.deepEqual(wire.map((w) => w.how), ['send', 'sendBytes']);
  assert.ok(wire[1]!.data.equals(wire[0]!.data));
  assert.ok(wire[1]!.data.length > 20_000);
});

test('server non-INVITE: without sendBytes (or when send returns nothing) retransmissions go through send', () => {
  const r = bytesRig({ noSendBytes: true });
  r.layer.receiveRequest(request('REGISTER'), UDP);
  r.layer.receiveRequest(request('REGISTER'), UDP);
  assert.deepEqual(r.wire.map((w) => w.how), ['send', 'send']);
  assert.ok(r.wire[1]!.data.equals(r.wire[0]!.data));
  const plain = rig();
  const { req, tx } = register(plain);
  const res = response(req, 200);
  tx.respond(res);
  plain.layer.receiveRequest(request('REGISTER'), UDP);
  assert.equal(plain.sent[1]!.msg, res, 'the response object itself is resent');
});

test('server non-INVITE: a failing raw resend ends the transaction without throwing', () => {
  let fail = false;
  const r = bytesRig({ failSend: () => fail });
  r.layer.receiveRequest(request('REGISTER'), UDP);
  fail = true;
  r.layer.receiveRequest(request('REGISTER'), UDP);
  assert.equal(r.txs[0]!.tx.state, 'Terminated');
  assert.equal(r.layer.stats.transportErrors, 1);
  assert.equal(r.layer.stats.serverTransactions, 0);
});

test('server non-INVITE over TCP with sendBytes: Timer J is zero, nothing is kept', () => {
  const r = bytesRig();
  r.layer.receiveRequest(request('REGISTER'), TCP);
  assert.equal(r.txs[0]!.tx.state, 'Terminated');
  assert.equal(r.layer.stats.serverTransactions, 0);
});

test('server non-INVITE: the Timer J entry of a transaction that ended early does not end its successor', () => {
  let fail = false;
  const r = bytesRig({ failSend: () => fail });
  r.layer.receiveRequest(request('REGISTER'), UDP); // Timer J due at 32 s
  r.clock.advance(1000);
  fail = true;
  r.layer.receiveRequest(request('REGISTER'), UDP); // the resend fails: ended at 1 s
  fail = false;
  assert.equal(r.txs[0]!.tx.state, 'Terminated');
  r.clock.advance(1000);
  r.layer.receiveRequest(request('REGISTER'), UDP); // a new transaction under the same key, J at 34 s
  assert.equal(r.txs.length, 2);
  r.clock.advance(31_000); // 33 s: the first one's Timer J is long due
  assert.equal(r.txs[1]!.tx.state, 'Completed');
  assert.equal(r.layer.stats.serverTransactions, 1);
  r.clock.advance(1_000);
  assert.equal(r.txs[1]!.tx.state, 'Terminated');
  assert.equal(r.layer.stats.serverTransactions, 0);
});

test('RetainedBytes: spans are non-negative, views return the copied bytes, oversized and empty data are not copied', async () => {
  const { RetainedBytes } = await import('../../../lib/sip/transaction/retained-bytes.js');
  const store = new RetainedBytes();
  const kept: { slab: Buffer; span: number; data: Buffer }[] = [];
  for (let i = 0; i < 400; i++) {
    const data = Buffer.alloc(100 + (i % 250), i & 255);
    const span = store.copy(data);
    assert.ok(span >= 0);
    kept.push({ slab: store.slab, span, data });
  }
  for (const k of kept) assert.ok(RetainedBytes.view(k.slab, k.span).equals(k.data));
  assert.equal(store.copy(Buffer.alloc(0)), -1);
  assert.equal(store.copy(Buffer.alloc(9000)), -1);
});
