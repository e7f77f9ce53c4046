/**
 * SIP over TLS at the transport (lib/sip/transport/tls.ts and stream.ts) on real sockets: TLS 1.2
 * and 1.3 only, a plain TCP client or a handshake that never ends closed alone, the connection
 * limits per source and in total shared with TCP, CRLF keep-alives, sends on the connection.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSelfSigned } from '../../lib/tls/self-signed.js';
import { ConnectionLimits } from '../../lib/sip/transport/connection-limits.js';
import { TlsTransport } from '../../lib/sip/transport/tls.js';
import { TcpTransport } from '../../lib/sip/transport/tcp.js';
import type { StreamOptions } from '../../lib/sip/transport/stream.js';
import type { Endpoint } from '../../lib/sip/transport/types.js';
import { waitFor } from '../helpers/keep-alive.js';

const LIMITS = { maxMessageBytes: 65536, maxHeaders: 256, maxVia: 32 };

/** One self-signed pair for the whole file (127.0.0.1 in its subjectAltName). */
const dir = mkdtempSync(join(tmpdir(), 'mss-tls-transport-'));
const made = await writeSelfSigned({ host: '127.0.0.1', days: 1, dir, force: false });
const cert = readFileSync(made.certFile);
const key = readFileSync(made.keyFile);
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

interface Harness {
  transport: TlsTransport;
  received: Array<{ text: string; source: Endpoint }>;
  handshakeFailures: string[];
  refusals: string[];
}

async function openTls(opts: { connections?: ConnectionLimits; handshakeTimeoutMs?: number } = {}): Promise<Harness> {
  const received: Harness['received'] = [];
  const handshakeFailures: string[] = [];
  const refusals: string[] = [];
  const transport = await TlsTransport.open({
    ...streamOptions(opts.connections ?? new ConnectionLimits({ maxTotal: 100, maxPerSource: 100 }), received, refusals),
    credentials: { cert, key },
    handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 5000,
    onHandshakeFailed: (error) => handshakeFailures.push(error),
  });
  return { transport, received, handshakeFailures, refusals };
}

function streamOptions(connections: ConnectionLimits, received: Harness['received'], refusals: string[]): StreamOptions {
  return {
    address: '127.0.0.1',
    port: 0,
    limits: LIMITS,
    connections,
    idleMs: 60_000,
    onMessage: (data, source) => received.push({ text: data.toString(), source }),
    onRefused: (reason) => refusals.push(reason),
  };
}

function options(n: number): string {
  return [`OPTIONS sip:127.0.0.1 SIP/2.0`, `Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-tls${n}`, 'Max-Forwards: 70', 'From: <sip:t@127.0.0.1>;tag=1', 'To: <sip:127.0.0.1>', `Call-ID: tls-${n}`, 'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n');
}

function connectTls(port: number, extra: tls.ConnectionOptions & { localAddress?: string } = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ port, host: '127.0.0.1', ca: cert, ...extra }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Resolves when `socket` closes; rejects when it is still open after `ms`. */
function closed(socket: net.Socket, ms: number): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`the connection is still open after ${ms} ms`)), ms);
    socket.once('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

function plainConnect(port: number, localAddress?: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) }, () => resolve(s));
    s.on('error', () => {});
    s.once('error', reject);
  });
}

test('a TLS connection carries SIP both ways, TLS 1.3 by default and 1.2 when the client stops there', async () => {
  const h = await openTls();
  try {
    const a = await connectTls(h.transport.port);
    assert.equal(a.authorized, true, 'the client trusts the self-signed certificate given as CA');
    assert.equal(a.getProtocol(), 'TLSv1.3');
    a.write(options(1));
    await waitFor(() => h.received.length === 1, 'the OPTIONS over TLS');
    const source = h.received[0]!.source;
    assert.equal(source.transport, 'tls');
    assert.equal(source.port, a.localPort);
    let back = '';
    a.on('data', (d) => (back += d.toString()));
    assert.equal(h.transport.send(Buffer.from('SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n'), source.connectionId!), true);
    a.write('\r\n\r\n'); // RFC 5626 keep-alive ping: a CRLF pong
    await waitFor(() => back === 'SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n\r\n', () => `the answer and the pong (got ${JSON.stringify(back)})`);
    a.destroy();
    const b = await connectTls(h.transport.port, { maxVersion: 'TLSv1.2' });
    assert.equal(b.getProtocol(), 'TLSv1.2');
    b.destroy();
  } finally {
    await h.transport.close();
  }
});

test('TLS 1.1 and older are refused', async () => {
  const h = await openTls();
  try {
    await assert.rejects(connectTls(h.transport.port, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }));
  } finally {
    await h.transport.close();
  }
});

test('a plain TCP client on the TLS port is closed and logged once; a TLS phone beside it keeps working', async () => {
  const h = await openTls();
  try {
    const phone = await connectTls(h.transport.port);
    phone.write(options(2));
    await waitFor(() => h.received.length === 1, 'the first OPTIONS');
    const plain = await plainConnect(h.transport.port);
    plain.write(options(3));
    await closed(plain, 5000);
    assert.equal(h.handshakeFailures.length, 1, 'one line for the connection, not one per byte');
    assert.match(h.handshakeFailures[0]!, /WRONG_VERSION_NUMBER|HTTP_REQUEST|UNKNOWN_PROTOCOL|RECORD/i);
    assert.equal(h.received.length, 1, 'nothing of the plain bytes reaches SIP');
    phone.write(options(4));
    await waitFor(() => h.received.length === 2, 'the TLS phone\'s next OPTIONS');
    assert.equal(phone.destroyed, false);
    phone.destroy();
    await waitFor(() => h.transport.connectionCount === 0, 'every connection counted out');
  } finally {
    await h.transport.close();
  }
});

test('a connection that never finishes its handshake is closed after the handshake timeout', async () => {
  const h = await openTls({ handshakeTimeoutMs: 200 });
  try {
    const silent = await plainConnect(h.transport.port);
    const opened = Date.now();
    await closed(silent, 5000);
    assert.ok(Date.now() - opened >= 150, 'not before the timeout');
    assert.deepEqual(h.handshakeFailures, ['ERR_TLS_HANDSHAKE_TIMEOUT']);
    await waitFor(() => h.transport.connectionCount === 0, 'the connection counted out');
  } finally {
    await h.transport.close();
  }
});

test('connections beyond the per-source limit are reset at accept (handshakes in progress count); other sources and a freed slot get in', async () => {
  const h = await openTls({ connections: new ConnectionLimits({ maxTotal: 100, maxPerSource: 2 }) });
  try {
    const first = await connectTls(h.transport.port);
    const handshaking = await plainConnect(h.transport.port); // counts before it says anything
    await waitFor(() => h.transport.connectionCount === 2, 'two connections counted');
    await assert.rejects(connectTls(h.transport.port), /ECONNRESET|socket disconnected|socket hang up/);
    assert.deepEqual(h.refusals, ['per-source']);
    const other = await connectTls(h.transport.port, { localAddress: '127.0.0.2' });
    assert.equal(other.authorized, true, 'another source address is not limited by 127.0.0.1\'s connections');
    handshaking.destroy();
    await waitFor(() => h.transport.connectionCount === 2, 'the closed one counted out');
    const again = await connectTls(h.transport.port);
    for (const s of [first, other, again]) s.destroy();
  } finally {
    await h.transport.close();
  }
});

test('the total limit covers TCP and TLS listeners together', async () => {
  const connections = new ConnectionLimits({ maxTotal: 2, maxPerSource: 10 });
  const h = await openTls({ connections });
  const refusals: string[] = [];
  const tcp = await TcpTransport.open(streamOptions(connections, [], refusals));
  try {
    const a = await plainConnect(tcp.port);
    const b = await connectTls(h.transport.port);
    await waitFor(() => connections.count === 2, 'two connections counted');
    const c = net.connect({ port: tcp.port, host: '127.0.0.1' });
    c.on('error', () => {});
    await closed(c, 5000);
    assert.deepEqual(refusals, ['total']);
    await assert.rejects(connectTls(h.transport.port));
    assert.deepEqual(h.refusals, ['total']);
    a.destroy();
    b.destroy();
    await waitFor(() => connections.count === 0, 'both counted out');
  } finally {
    await tcp.close();
    await h.transport.close();
  }
});

test('closeFrom closes a source\'s TLS connections, established or still in their handshake', async () => {
  const h = await openTls();
  try {
    const established = await connectTls(h.transport.port, { localAddress: '127.0.0.3' });
    const handshaking = await plainConnect(h.transport.port, '127.0.0.3');
    const bystander = await connectTls(h.transport.port);
    await waitFor(() => h.transport.connectionCount === 3, 'three connections');
    assert.equal(h.transport.closeFrom('127.0.0.3'), 2);
    await closed(established, 5000);
    await closed(handshaking, 5000);
    bystander.write(options(5));
    await waitFor(() => h.received.length === 1, 'the bystander\'s OPTIONS');
    bystander.destroy();
  } finally {
    await h.transport.close();
  }
});
