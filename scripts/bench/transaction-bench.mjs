#!/usr/bin/env node
// Pushes REGISTER server transactions through TransactionLayer.receiveRequest + respond over
// "UDP" (so each one stays 64*T1 in Completed for Timer J).
//
// 1. Layer CPU: requests (parsed from datagrams), responses and response bytes are built
//    beforehand, so the time per new transaction is the layer's own (no parse, no createResponse,
//    no serialize). Then the same requests
//    again (retransmissions absorbed, final response resent) and Timer J expiry of all of them.
// 2. Memory: as in the server, each request is parsed from its own datagram (header values are
//    slices of the message text), comes with its own source object, is answered with
//    createResponse and "sent" like lib/sip/stack.ts does (Server header added, serialized, the
//    bytes returned to the layer). Reported: what stays allocated per live transaction, on the JS
//    heap and off it (Buffer memory), with nothing else keeping the requests alive.
//
// Usage: node --expose-gc scripts/bench/transaction-bench.mjs [count] [buildDir] [--json]
//   (after `tsc`; default build/). The layer is told about raw-byte resends through the optional
//   `sendBytes` option; a build that ignores it keeps whatever it keeps.
import { performance } from 'node:perf_hooks';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const json = process.argv.includes('--json');
const cpuOnly = process.argv.includes('--cpu-only'); // skip the memory part (for --cpu-prof)
let count = Number(args[0] ?? 200_000);
const buildDir = resolve(args[1] ?? 'build');
const load = (p) => import(pathToFileURL(resolve(buildDir, p)).href);
const { createResponse, serialize } = await load('lib/sip/message.js');
const { parseMessage } = await load('lib/sip/parser.js');
const { TransactionLayer } = await load('lib/sip/transaction/layer.js');
const { FakeClock } = await load('lib/sip/transaction/clock.js');

const gc = globalThis.gc;
if (!gc) console.warn('run with --expose-gc for exact memory numbers');
const mem = () => {
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, off: m.arrayBuffers };
};

const ip = (i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const branchOf = (i) => `z9hG4bK${i.toString(36)}x${(i * 2654435761 >>> 0).toString(16)}`;

/** A REGISTER as the transport hands it over: parsed from its datagram (header values are slices). */
function register(i) {
  const r = parseMessage(datagram(i), { datagram: true });
  if (!r.ok) throw new Error(`bench request does not parse: ${r.error}`);
  return r.message;
}

function datagram(i) {
  return Buffer.from(
    `REGISTER sip:example.com SIP/2.0\r\n` +
      `Via: SIP/2.0/UDP ${ip(i)}:5060;rport;branch=${branchOf(i)}\r\n` +
      `Max-Forwards: 70\r\n` +
      `From: <sip:u${i}@example.com>;tag=f${i}\r\n` +
      `To: <sip:u${i}@example.com>\r\n` +
      `Call-ID: reg-${i}@10.0.0.1\r\n` +
      `CSeq: 1 REGISTER\r\n` +
      `Contact: <sip:u${i}@10.0.0.1:5060>;expires=3600\r\n` +
      `User-Agent: bench\r\n` +
      `Content-Length: 0\r\n\r\n`,
  );
}

// ---- 1. Layer CPU ------------------------------------------------------------------------------
// Messages are prepared outside the timed loops in small chunks that stay in the young generation
// (as in the server, where the parser made the request just before): a layer that keeps the
// request pays for promoting it, one that drops it does not. The timed loops include the garbage
// collections that happen during them.
const CHUNK = 1_000;
let sent = 0;
let resentBytes = 0;
let responses = [];
let next = 0;
let wire = Buffer.alloc(0);
const clock = new FakeClock(); // no timer fires during the run: all transactions stay live (worst case)
const layer = new TransactionLayer({
  clock,
  maxServerTransactions: count + 1,
  send: () => {
    sent++;
    return wire;
  },
  sendBytes: () => {
    resentBytes++;
  },
  tu: {
    onRequest(_req, tx) {
      tx.respond(responses[next++]);
    },
  },
});

let newTx = 0;
let retrans = 0;
gc?.();
for (let base = 0; base < count; base += CHUNK) {
  const n = Math.min(CHUNK, count - base);
  const requests = Array.from({ length: n }, (_, i) => register(base + i));
  responses = requests.map((r) => createResponse(r, 200, undefined, 'regtag'));
  const sources = requests.map((_, i) => ({ transport: 'udp', address: ip(base + i), port: 5060 }));
  wire = serialize(responses[0]);
  next = 0;
  let t0 = performance.now();
  for (let i = 0; i < n; i++) layer.receiveRequest(requests[i], sources[i]);
  newTx += performance.now() - t0;
  t0 = performance.now();
  for (let i = 0; i < n; i++) layer.receiveRequest(requests[i], sources[i]);
  retrans += performance.now() - t0;
}

let t0 = performance.now();
clock.advance(64 * 500 + 100);
const expire = performance.now() - t0;
const liveAfter = layer.stats.serverTransactions;
const n1 = count;
layer.close();
responses = [];

// ---- 1b. Steady state --------------------------------------------------------------------------
// 40,000 new transactions per simulated second with T1 = 50 ms (Timer J = 3.2 s, so some 128,000
// live): each one costs its receive + respond and, later, its Timer J expiry (both timed).
const clock3 = new FakeClock();
let steady = 0;
let steadyCount = 0;
{
  const layer3 = new TransactionLayer({
    clock: clock3,
    timers: { T1: 50 },
    maxServerTransactions: 1_000_000,
    send: () => wire,
    sendBytes: () => {},
    tu: {
      onRequest(_req, tx) {
        tx.respond(responses[next++]);
      },
    },
  });
  const total = Math.max(count, 200_000);
  const perTick = 1_000; // 25 ms of traffic at 40,000/s
  for (let base = 0; base < total; base += perTick) {
    const requests = Array.from({ length: perTick }, (_, i) => register(1_000_000 + base + i));
    responses = requests.map((r) => createResponse(r, 200, undefined, 'regtag'));
    const sources = requests.map((_, i) => ({ transport: 'udp', address: ip(base + i), port: 5060 }));
    next = 0;
    const t0 = performance.now();
    for (let i = 0; i < perTick; i++) layer3.receiveRequest(requests[i], sources[i]);
    clock3.advance(25);
    steady += performance.now() - t0;
    steadyCount += perTick;
  }
  layer3.close();
  responses = [];
}

// ---- 2. Memory ---------------------------------------------------------------------------------
if (cpuOnly) count = 0;
const clock2 = new FakeClock();
let parseFailures = 0;
const layer2 = new TransactionLayer({
  clock: clock2,
  maxServerTransactions: count + 1,
  send(msg) {
    if (msg.kind === 'response' && !msg.headers.has('server')) msg.headers.append('Server', 'minisipserver');
    return serialize(msg);
  },
  sendBytes() {},
  tu: {
    onRequest(req, tx) {
      tx.respond(createResponse(req, 200, undefined, 'regtag'));
    },
  },
});
const before = mem();
for (let i = 0; i < count; i++) {
  const r = parseMessage(datagram(i), { datagram: true });
  if (!r.ok) {
    parseFailures++;
    continue;
  }
  layer2.receiveRequest(r.message, { transport: 'udp', address: ip(i), port: 5060 });
}
const after = mem();
const live2 = layer2.stats.serverTransactions;
const heapPerTx = (after.heap - before.heap) / live2;
const offPerTx = (after.off - before.off) / live2;
layer2.close();

const fmt = (n) => n.toFixed(2);
if (json) {
  console.log(JSON.stringify({ steadyUs: (steady * 1000) / steadyCount, newTxUs: (newTx * 1000) / n1, retransUs: (retrans * 1000) / n1, expireUs: (expire * 1000) / n1, heapPerTx, offPerTx }));
} else {
  console.log(`transactions:            ${n1} (sent ${sent}, resent as bytes ${resentBytes}${parseFailures ? `, ${parseFailures} parse failures` : ''})`);
  console.log(`new REGISTER tx (layer): ${fmt((newTx * 1000) / n1)} µs/tx  (${Math.round(n1 / (newTx / 1000))} tx/s)`);
  console.log(`steady state 40k/s:      ${fmt((steady * 1000) / steadyCount)} µs/tx (new + respond + Timer J expiry, ~128k live, T1=50)`);
  console.log(`retransmission absorbed: ${fmt((retrans * 1000) / n1)} µs/msg`);
  console.log(`Timer J expiry:          ${fmt((expire * 1000) / n1)} µs/tx, live after: ${liveAfter}`);
  console.log(`memory per live tx:      ${Math.round(heapPerTx)} B heap + ${Math.round(offPerTx)} B off-heap (${live2} live, parsed requests, response kept by the layer)`);
}
