import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { NativeUdpTransport, nativeUdpAddon } from '../../lib/sip/transport/native-udp.js';
import type { Endpoint } from '../../lib/sip/transport/types.js';
import type { UdpOptions } from '../../lib/sip/transport/udp.js';

const noAddon = nativeUdpAddon() === null && 'the native addon is not built';

interface Received {
  data: Buffer;
  source: Endpoint;
}

/** Options for a socket on loopback, any free port, that ignores what it receives unless told. */
function nativeOptions(o: Partial<UdpOptions> = {}): UdpOptions {
  const address = o.address ?? '127.0.0.1';
  return { address, port: 0, family: address.includes(':') ? 6 : 4, bufferBytes: 1 << 20, onMessage: () => {}, ...o };
}

/** A native socket that keeps what it receives in `inbox`. */
async function openNative(address = '127.0.0.1') {
  const inbox: Received[] = [];
  const t = await NativeUdpTransport.open(nativeOptions({ address, onMessage: (data, source) => inbox.push({ data, source }) }));
  return { t, inbox };
}

async function openPeer(type: 'udp4' | 'udp6' = 'udp4') {
  const socket = dgram.createSocket(type);
  const inbox: Buffer[] = [];
  socket.on('message', (m) => inbox.push(m));
  await new Promise<void>((resolve) => socket.bind(0, type === 'udp4' ? '127.0.0.1' : '::1', resolve));
  return { socket, inbox, port: socket.address().port };
}

async function until(what: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!what() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
}

/** A datagram whose bytes tell its index and length apart from any other. */
function datagram(i: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let k = 0; k < size; k++) b[k] = (i * 31 + k) & 0xff;
  b.writeUInt32BE(i, 0);
  return b;
}

test('native UDP: datagrams of every size arrive whole, in order, with their source; replies reach the sender', { skip: noAddon }, async () => {
  const { t, inbox } = await openNative();
  const peer = await openPeer();
  try {
    assert.ok(t.port > 0);
    const sizes = [4, 5, 6, 7, 100, 1499, 1500, 9000, 60000];
    for (let i = 0; i < 300; i++) {
      peer.socket.send(datagram(i, sizes[i % sizes.length]!), t.port, '127.0.0.1');
      if (i % 50 === 49) await until(() => inbox.length > i); // stay within the socket buffers
    }
    await until(() => inbox.length >= 300);
    assert.equal(inbox.length, 300);
    inbox.forEach((r, i) => {
      assert.deepEqual(r.data, datagram(i, sizes[i % sizes.length]!), `datagram ${i}`);
      assert.deepEqual(r.source, { transport: 'udp', address: '127.0.0.1', port: peer.port });
    });
    // Replies: staged during one turn and sent together by the I/O thread, in order.
    for (let i = 0; i < 100; i++) t.send(datagram(i, 200 + i), '127.0.0.1', peer.port);
    await until(() => peer.inbox.length >= 100);
    assert.deepEqual(peer.inbox, Array.from({ length: 100 }, (_, i) => datagram(i, 200 + i)));
    assert.deepEqual(t.counters(), { receiveDropped: 0, sendDropped: 0, sendErrors: 0 });
  } finally {
    peer.socket.close();
    await t.close();
  }
});

test('native UDP: a destination that is not an IP address is counted, and the sends beside it still leave', { skip: noAddon }, async () => {
  const { t } = await openNative();
  const peer = await openPeer();
  try {
    t.send(Buffer.from('one'), '127.0.0.1', peer.port);
    t.send(Buffer.from('lost'), 'phone.example.com', 5060); // a Contact host name: never resolved
    t.send(Buffer.from('lost'), 'x'.repeat(300), 5060);
    t.send(Buffer.from('lost'), '127.0.0.1', 0);
    t.send(Buffer.alloc(70000), '127.0.0.1', peer.port); // larger than any datagram
    t.send(Buffer.from('two'), '127.0.0.1', peer.port);
    await until(() => peer.inbox.length >= 2);
    await until(() => t.counters().sendErrors >= 1, 1000);
    assert.deepEqual(peer.inbox.map(String), ['one', 'two']);
    assert.equal(t.counters().sendErrors, 1, 'the host name reached the I/O thread and was refused there');
  } finally {
    peer.socket.close();
    await t.close();
  }
});

test('native UDP: IPv6 sources and destinations (::1)', { skip: noAddon }, async (t) => {
  let native: Awaited<ReturnType<typeof openNative>>;
  try {
    native = await openNative('::1');
  } catch (err) {
    t.skip(`no IPv6 loopback here (${(err as Error).message})`);
    return;
  }
  const peer = await openPeer('udp6');
  try {
    peer.socket.send('hello', native.t.port, '::1');
    await until(() => native.inbox.length >= 1);
    assert.equal(native.inbox[0]!.data.toString(), 'hello');
    assert.deepEqual(native.inbox[0]!.source, { transport: 'udp', address: '::1', port: peer.port });
    native.t.send(Buffer.from('back'), '::1', peer.port);
    await until(() => peer.inbox.length >= 1);
    assert.equal(peer.inbox[0]!.toString(), 'back');
  } finally {
    peer.socket.close();
    await native.t.close();
  }
});

test('native UDP: a handler that throws loses no other datagram; close() sends what was staged and frees the port', { skip: noAddon }, async () => {
  const seen: string[] = [];
  const errors: string[] = [];
  const t = await NativeUdpTransport.open(
    nativeOptions({
      onMessage: (data) => {
        if (String(data) === 'boom') throw new Error('handler fault');
        seen.push(String(data));
      },
      onError: (err) => errors.push(err.message),
    }),
  );
  const peer = await openPeer();
  const port = t.port;
  for (const m of ['a', 'boom', 'b']) peer.socket.send(m, port, '127.0.0.1');
  await until(() => seen.length >= 2);
  assert.deepEqual(seen, ['a', 'b']);
  assert.deepEqual(errors, ['handler fault']);
  t.send(Buffer.from('last words'), '127.0.0.1', peer.port);
  await t.close();
  await until(() => peer.inbox.length >= 1);
  assert.equal(String(peer.inbox[0]), 'last words');
  t.send(Buffer.from('after close'), '127.0.0.1', peer.port); // ignored, no throw
  // The port is free again: another socket can bind it.
  const again = await NativeUdpTransport.open(nativeOptions({ port }));
  assert.equal(again.port, port);
  await again.close();
  peer.socket.close();
});

test('native UDP: a port in use is refused with EADDRINUSE, a host name with what to write instead', { skip: noAddon }, async () => {
  const { t } = await openNative();
  try {
    await assert.rejects(
      NativeUdpTransport.open(nativeOptions({ address: 'localhost' })),
      /localhost is not an IP address \(sip\.bind and sip\.bind6 take addresses/,
    );
    await assert.rejects(
      NativeUdpTransport.open(nativeOptions({ port: t.port })),
      (err: NodeJS.ErrnoException) => err.code === 'EADDRINUSE',
    );
  } finally {
    await t.close();
  }
});

test('native UDP: a backlog is worked off in slices, so timers run in between, and nothing is lost', { skip: noAddon }, async () => {
  let handled = 0;
  const ticksAt: number[] = [];
  const t = await NativeUdpTransport.open(
    nativeOptions({
      bufferBytes: 4 << 20,
      onMessage: () => {
        handled++;
        const until = performance.now() + 0.2; // a slow handler: 600 messages are ~120 ms of work
        while (performance.now() < until) {
          /* busy */
        }
      },
    }),
  );
  const peer = await openPeer();
  try {
    const ticker = setInterval(() => ticksAt.push(handled), 1);
    for (let i = 0; i < 600; i++) peer.socket.send(datagram(i, 300), t.port, '127.0.0.1');
    await until(() => handled >= 600, 10_000);
    clearInterval(ticker);
    assert.equal(handled, 600);
    const during = ticksAt.filter((h) => h > 0 && h < 600);
    assert.ok(during.length >= 2, `a timer ran ${during.length} times while the backlog was handled`);
    assert.equal(t.counters().receiveDropped, 0);
  } finally {
    peer.socket.close();
    await t.close();
  }
});

test('native UDP: each datagram comes with an estimate of how long it waited in the queue while the main thread was busy', { skip: noAddon }, async () => {
  const waits: number[] = [];
  const t = await NativeUdpTransport.open(nativeOptions({ onMessage: (_data, _source, waitedMs) => waits.push(waitedMs ?? -1) }));
  const peer = await openPeer();
  try {
    for (let i = 0; i < 20; i++) peer.socket.send(datagram(i, 200), t.port, '127.0.0.1');
    await until(() => waits.length >= 20);
    assert.equal(waits.length, 20);
    assert.ok(waits.every((w) => w >= 0 && w < 60_000), `waits while idle: ${waits.join(', ')}`);
    waits.length = 0;
    // Sent, then (without giving the event loop a turn) the main thread waits until the I/O thread
    // has queued the first, and stays busy 400 ms more: the oldest has waited at least that long.
    await Promise.all(Array.from({ length: 20 }, (_, i) => new Promise<void>((resolve) => peer.socket.send(datagram(i, 200), t.port, '127.0.0.1', () => resolve()))));
    const giveUp = Date.now() + 5000;
    while (t.backlogMs() === 0 && Date.now() < giveUp) {
      // until queued (bounded)
    }
    const busyUntil = Date.now() + 400;
    while (Date.now() < busyUntil) {
      // busy
    }
    await until(() => waits.length >= 20);
    assert.equal(waits.length, 20);
    // The oldest waited the whole 400 ms; the others are placed evenly between it and the moment
    // the batch was taken (the engine keeps the first arrival time of a batch, not each one).
    const shown = `waits behind a busy main thread: ${waits.map((w) => Math.round(w)).join(', ')}`;
    assert.ok(waits[0]! >= 390, shown);
    assert.ok(waits.every((w, i) => w >= 0 && (i === 0 || w <= waits[i - 1]! + 1)), shown);
  } finally {
    peer.socket.close();
    await t.close();
  }
});

test('native UDP: with coalesceUs a datagram reaching an idle socket waits that long for others, and none is lost', { skip: noAddon }, async () => {
  const got: Array<{ i: number; waited: number }> = [];
  const t = await NativeUdpTransport.open(nativeOptions({ coalesceUs: 20_000, onMessage: (data, _source, waitedMs) => got.push({ i: data.readUInt32BE(0), waited: waitedMs ?? -1 }) }));
  const peer = await openPeer();
  try {
    for (let round = 0; round < 3; round++) {
      const before = got.length;
      for (let i = 0; i < 5; i++) peer.socket.send(datagram(round * 5 + i, 100), t.port, '127.0.0.1');
      await until(() => got.length >= before + 5);
      const mine = got.slice(before);
      assert.deepEqual(mine.map((m) => m.i), [0, 1, 2, 3, 4].map((i) => round * 5 + i), 'all five, in order');
      // The first found the queue empty: the I/O thread slept 20 ms before handing it over.
      assert.ok(mine[0]!.waited >= 19, `the first waited ${mine[0]!.waited} ms`);
    }
    assert.throws(() => nativeUdpAddon()!.sipIoCoalesce({}, 10), /bad arguments/);
  } finally {
    peer.socket.close();
    await t.close();
  }
});

test('SIP stack on the native engine: what the engine drops or the kernel refuses is reported in one warn line per period', { skip: noAddon }, async () => {
  const { SipStack } = await import('../../lib/sip/stack.js');
  const { Logger } = await import('../../lib/log.js');
  const lines: string[] = [];
  const stack = new SipStack(
    {
      bind4: '127.0.0.1', bind6: '', port: 0, transports: ['udp'], udpBufferBytes: 1 << 20, udpEngine: 'native',
      limits: { maxMessageBytes: 65536, maxHeaders: 256, maxVia: 32 }, tcpMaxConnections: 10, tcpIdleMs: 60_000,
      timers: { T1: 500, T2: 4000, T4: 5000 }, maxServerTransactions: 1000, serverHeader: 'test',
      logger: new Logger({ format: 'json', level: 'info', write: (l) => lines.push(l) }), udpDropReportMs: 50,
    },
    { onRequest: () => {} },
  );
  await stack.start();
  try {
    assert.equal(stack.udpEngine, 'native');
    stack.sendData(Buffer.from('x'), { transport: 'udp', address: 'name.invalid', port: 5060 });
    await until(() => lines.some((l) => l.includes('"udp.dropped"')), 3000);
    const report = JSON.parse(lines.find((l) => l.includes('"udp.dropped"'))!);
    assert.equal(report.level, 'warn');
    assert.deepEqual([report.received, report.sends, report.sendErrors], [0, 0, 1]);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(lines.filter((l) => l.includes('"udp.dropped"')).length, 1, 'nothing new: no new line');
  } finally {
    await stack.stop();
  }
});
