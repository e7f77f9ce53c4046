#!/usr/bin/env node
// Pushes REGISTER server transactions through TransactionLayer.receiveRequest + respond over
// "UDP" (so each one stays 64*T1 in Completed for Timer J) and prints µs per transaction, the
// heap held by the live transactions, and the cost of absorbing retransmissions.
// Usage: node scripts/bench/transaction-bench.mjs [count] [buildDir]   (after `tsc`; default build/)
import { performance } from 'node:perf_hooks';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const count = Number(process.argv[2] ?? 200_000);
const buildDir = resolve(process.argv[3] ?? 'build');
const load = (p) => import(pathToFileURL(resolve(buildDir, p)).href);
const { createRequest, createResponse, Headers } = await load('lib/sip/message.js');
const { TransactionLayer } = await load('lib/sip/transaction/layer.js');
const { FakeClock } = await load('lib/sip/transaction/clock.js');

function register(i) {
  const h = new Headers();
  h.append('Via', `SIP/2.0/UDP 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:5060;rport;branch=z9hG4bK${i.toString(36)}x`);
  h.append('Max-Forwards', '70');
  h.append('From', `<sip:u${i}@example.com>;tag=f${i}`);
  h.append('To', `<sip:u${i}@example.com>`);
  h.append('Call-ID', `reg-${i}@10.0.0.1`);
  h.append('CSeq', '1 REGISTER');
  h.append('Contact', `<sip:u${i}@10.0.0.1:5060>;expires=3600`);
  return createRequest('REGISTER', 'sip:example.com', h);
}

const gc = globalThis.gc;
const heap = () => {
  gc?.();
  return process.memoryUsage().heapUsed;
};

// Build the requests first: the transport's parser would have made them, the bench measures the layer.
const requests = Array.from({ length: count }, (_, i) => register(i));
const source = { transport: 'udp', address: '10.0.0.1', port: 5060 };
let sent = 0;
const clock = new FakeClock(); // no timer fires during the run: all transactions stay live (worst case)
const layer = new TransactionLayer({
  clock,
  maxServerTransactions: count + 1,
  send: () => {
    sent++;
  },
  tu: {
    onRequest(req, tx) {
      tx.respond(createResponse(req, 200, undefined, 'regtag'));
    },
  },
});

const before = heap();
let t0 = performance.now();
for (let i = 0; i < count; i++) layer.receiveRequest(requests[i], source);
const newTx = performance.now() - t0;
const after = heap();

t0 = performance.now();
for (let i = 0; i < count; i++) layer.receiveRequest(requests[i], source);
const retrans = performance.now() - t0;

t0 = performance.now();
clock.advance(64 * 500 + 100);
const expire = performance.now() - t0;

const fmt = (n) => n.toFixed(2);
console.log(`transactions:            ${count} (sent ${sent})`);
console.log(`new REGISTER tx:         ${fmt((newTx * 1000) / count)} µs/tx  (${Math.round(count / (newTx / 1000))} tx/s)`);
console.log(`retransmission absorbed: ${fmt((retrans * 1000) / count)} µs/msg`);
console.log(`Timer J expiry:          ${fmt((expire * 1000) / count)} µs/tx, live after: ${layer.stats.serverTransactions}`);
console.log(`heap for live tx:        ${fmt((after - before) / 1024 / 1024)} MiB (${Math.round((after - before) / count)} B/tx incl. response${gc ? '' : '; run with --expose-gc for exact numbers'})`);
layer.close();
