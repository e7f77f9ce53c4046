import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer } from '../helpers/server.js';
import { branch, TcpPeer, UdpPeer } from '../helpers/sip-peer.js';

function request(o: {
  method: string;
  uri?: string;
  port: number;
  localPort: number;
  headers?: string[];
  body?: string;
  version?: string;
  cseqMethod?: string;
  transport?: string;
}): string {
  const body = o.body ?? '';
  return [
    `${o.method} ${o.uri ?? `sip:127.0.0.1:${o.port}`} ${o.version ?? 'SIP/2.0'}`,
    `Via: SIP/2.0/${o.transport ?? 'UDP'} 127.0.0.1:${o.localPort};branch=${branch()};rport`,
    'Max-Forwards: 70',
    'From: <sip:tester@127.0.0.1>;tag=abc',
    'To: <sip:127.0.0.1>',
    `Call-ID: pe-${branch()}`,
    `CSeq: 1 ${o.cseqMethod ?? o.method}`,
    ...(o.headers ?? []),
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');
}

test('protocol answers of RFC 3261 over UDP', async (t) => {
  const srv = await startTestServer({ users: [['301', 'pw301']] });
  const peer = await UdpPeer.open();
  t.after(async () => {
    peer.close();
    await srv.stop();
  });
  const base = { port: srv.port, localPort: peer.port };
  const ask = (text: string) => peer.request(text, srv.port);

  /**
   * Sends `data`, then an OPTIONS, and returns what arrived before the OPTIONS' answer apart from
   * late answers to earlier requests (Call-ID pe-...). The server handles one socket's datagrams
   * in order, so an answer to `data` would be among them (no fixed wait for silence needed).
   */
  async function answersBeforeNext(data: string | Buffer): Promise<string[]> {
    peer.drain();
    peer.send(data, srv.port);
    assert.equal((await ask(request({ ...base, method: 'OPTIONS' }))).status, 200, 'the server still answers');
    return peer.unclaimed.filter((r) => !(r.headers.get('call-id') ?? '').startsWith('pe-')).map((r) => `${r.status} ${r.headers.get('call-id')}`);
  }

  await t.test('OPTIONS to the server: 200 with Allow, Accept and Supported', async () => {
    const r = await ask(request({ ...base, method: 'OPTIONS' }));
    assert.equal(r.status, 200);
    assert.match(r.headers.get('allow') ?? '', /REGISTER/);
    assert.match(r.headers.get('allow') ?? '', /OPTIONS/);
    assert.equal(r.headers.get('accept'), 'application/sdp');
    assert.ok(r.headers.has('supported'));
    assert.equal(r.headers.get('server'), 'minisipserver');
  });

  await t.test('Via stamping replaces a stale received/rport, keeps other parameters and the other Via values', async () => {
    const text = request({ ...base, method: 'OPTIONS' }).replace(
      /^Via: .*$/m,
      `Via: SIP/2.0/UDP client.example.com:${peer.port};received=192.0.2.9;rport=1;branch=z9hG4bK-stamp;x=1, SIP/2.0/UDP proxy.example.com;branch=z9hG4bK-p`,
    );
    const r = await ask(text);
    assert.equal(
      r.headers.get('via'),
      `SIP/2.0/UDP client.example.com:${peer.port};branch=z9hG4bK-stamp;x=1;received=127.0.0.1;rport=${peer.port}, SIP/2.0/UDP proxy.example.com;branch=z9hG4bK-p`,
    );
  });

  await t.test('a Via whose host is the source address and has no rport is left as it is', async () => {
    const text = request({ ...base, method: 'OPTIONS' }).replace(/^Via: .*$/m, `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bK-plain`);
    const r = await ask(text);
    assert.equal(r.headers.get('via'), `SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bK-plain`);
  });

  await t.test('a known method the server does not serve: 405 with Allow', async () => {
    const r = await ask(request({ ...base, method: 'SUBSCRIBE' }));
    assert.equal(r.status, 405);
    assert.match(r.headers.get('allow') ?? '', /REGISTER/);
  });

  await t.test('an unknown method: 501', async () => {
    const r = await ask(request({ ...base, method: 'FROBNICATE' }));
    assert.equal(r.status, 501);
  });

  await t.test('BYE outside any dialog: 481', async () => {
    const r = await ask(request({ ...base, method: 'BYE' }));
    assert.equal(r.status, 481);
  });

  await t.test('SIP/3.0: 505', async () => {
    const r = await ask(request({ ...base, method: 'OPTIONS', version: 'SIP/3.0' }));
    assert.equal(r.status, 505);
  });

  await t.test('an unknown Request-URI scheme: 416', async () => {
    const r = await ask(request({ ...base, method: 'OPTIONS', uri: 'nope:somewhere' }));
    assert.equal(r.status, 416);
  });

  await t.test('an unknown Require option: 420 with Unsupported', async () => {
    const r = await ask(request({ ...base, method: 'OPTIONS', headers: ['Require: teleportation, path'] }));
    assert.equal(r.status, 420);
    assert.equal(r.headers.get('unsupported'), 'teleportation');
  });

  await t.test('INVITE with Max-Forwards 0: 483', async () => {
    const text = request({ ...base, method: 'INVITE', uri: 'sip:301@127.0.0.1' }).replace('Max-Forwards: 70', 'Max-Forwards: 0');
    const r = await ask(text);
    assert.equal(r.status, 483);
  });

  await t.test('INVITE with a body type the server cannot read: 415 with Accept', async () => {
    const r = await ask(request({ ...base, method: 'INVITE', uri: 'sip:301@127.0.0.1', headers: ['Content-Type: text/weird'], body: 'xyz' }));
    assert.equal(r.status, 415);
    assert.equal(r.headers.get('accept'), 'application/sdp');
  });

  await t.test('a CSeq method that does not match: 400 naming CSeq', async () => {
    const r = await ask(request({ ...base, method: 'OPTIONS', cseqMethod: 'INVITE' }));
    assert.equal(r.status, 400);
    assert.match(r.reason, /CSeq/);
  });

  await t.test('a message over 64 KiB: 513, and the server keeps serving', async () => {
    const big = request({ ...base, method: 'OPTIONS', headers: [`X-Padding: ${'a'.repeat(66000)}`] });
    peer.send(big, srv.port);
    // A datagram this large may not even reach the server in one piece; either way it must not
    // answer 2xx, and must still answer the next request.
    const next = await ask(request({ ...base, method: 'OPTIONS' }));
    assert.equal(next.status, 200);
  });

  await t.test('a response sent to the server gets no answer', async () => {
    const stray = ['SIP/2.0 200 OK', `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=${branch()}`, 'From: <sip:a@b>;tag=1', 'To: <sip:c@d>;tag=2', 'Call-ID: stray', 'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''];
    assert.deepEqual(await answersBeforeNext(stray.join('\r\n')), []);
  });

  await t.test('garbage without a start line gets no answer and does not hurt', async () => {
    assert.deepEqual(await answersBeforeNext(Buffer.from([0, 1, 2, 3, 255, 254, 13, 10, 13, 10])), []);
  });

  await t.test('a retransmitted REGISTER is absorbed by its transaction: the very same response, handled once', async () => {
    const text = request({ ...base, method: 'REGISTER' })
      .replace('To: <sip:127.0.0.1>', 'To: <sip:301@127.0.0.1>')
      .replace('Content-Length: 0', 'Authorization: Digest username="301", realm="minisipserver", nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", uri="sip:127.0.0.1", response="00000000000000000000000000000000", algorithm=MD5\r\nContent-Length: 0');
    const a = await peer.request(text, srv.port);
    const b = await peer.request(text, srv.port);
    assert.equal(a.status, 401);
    assert.equal(b.status, 401);
    // Each handling issues a fresh nonce and To tag: identical ones prove the retransmission
    // was answered from the transaction, not handled again.
    assert.equal(a.headers.get('to'), b.headers.get('to'));
    assert.deepEqual(a.headers.getAll('www-authenticate'), b.headers.getAll('www-authenticate'));
  });

  await t.test('a REGISTER without credentials is challenged statelessly (RFC 3261 section 8.2.7)', async () => {
    const before = srv.server.stack.transactions.stats.serverTransactions;
    const text = request({ ...base, method: 'REGISTER' }).replace('To: <sip:127.0.0.1>', 'To: <sip:301@127.0.0.1>');
    const a = await peer.request(text, srv.port);
    const b = await peer.request(text, srv.port);
    assert.equal(a.status, 401);
    assert.equal(b.status, 401);
    assert.notDeepEqual(a.headers.getAll('www-authenticate'), b.headers.getAll('www-authenticate'), 'a retransmission gets a fresh challenge');
    assert.equal(srv.server.stack.transactions.stats.serverTransactions, before, 'no transaction state kept');
  });
});

test('TCP: responses on the same connection, framing by Content-Length, bad framing closes', async (t) => {
  const srv = await startTestServer({ configure: (c) => (c.sip.tcpIdleSeconds = 5) });
  t.after(() => srv.stop());
  const conn = await TcpPeer.connect(srv.port);
  const msg = request({ port: srv.port, localPort: conn.localPort, method: 'OPTIONS', transport: 'TCP' });
  // two messages in one write, then one message split across writes
  conn.write(msg + msg);
  assert.equal((await conn.next()).status, 200);
  assert.equal((await conn.next()).status, 200);
  conn.write(msg.slice(0, 40));
  await new Promise((r) => setTimeout(r, 50));
  conn.write(msg.slice(40));
  assert.equal((await conn.next()).status, 200);
  conn.write('\r\n\r\n'); // RFC 5626 keep-alive ping
  conn.write(msg);
  assert.equal((await conn.next()).status, 200);
  conn.write('OPTIONS sip:x SIP/2.0\r\nContent-Length: -5\r\n\r\n');
  assert.equal(await conn.waitClosed(2000), true);
  conn.close();
});

test('TCP: an idle connection is closed after tcpIdleSeconds', async (t) => {
  const srv = await startTestServer({ configure: (c) => (c.sip.tcpIdleSeconds = 5) });
  t.after(() => srv.stop());
  const conn = await TcpPeer.connect(srv.port);
  assert.equal(await conn.waitClosed(7000), true);
});

test('TCP: connections beyond the bound are refused', async (t) => {
  const srv = await startTestServer({ configure: (c) => (c.sip.tcpMaxConnections = 2) });
  t.after(() => srv.stop());
  const a = await TcpPeer.connect(srv.port);
  const b = await TcpPeer.connect(srv.port);
  const c = await TcpPeer.connect(srv.port);
  assert.equal(await c.waitClosed(2000), true);
  a.write(request({ port: srv.port, localPort: a.localPort, method: 'OPTIONS', transport: 'TCP' }));
  assert.equal((await a.next()).status, 200);
  a.close();
  b.close();
});

test('IPv6: the server answers over UDP on ::1 with an IPv6 received address', async (t) => {
  const srv = await startTestServer({ configure: (c) => (c.sip.bind6 = '::1') });
  t.after(() => srv.stop());
  const dgram = await import('node:dgram');
  const sock = dgram.createSocket({ type: 'udp6' });
  await new Promise<void>((r) => sock.bind(0, '::1', r));
  t.after(() => sock.close());
  const port = sock.address().port;
  const text = [
    `OPTIONS sip:[::1]:${srv.port} SIP/2.0`,
    `Via: SIP/2.0/UDP [::1]:${port};branch=${branch()};rport`,
    'Max-Forwards: 70',
    'From: <sip:v6@[::1]>;tag=6',
    'To: <sip:[::1]>',
    'Call-ID: v6-call',
    'CSeq: 1 OPTIONS',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  const reply = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no answer over IPv6')), 2000);
    sock.once('message', (m) => {
      clearTimeout(timer);
      resolve(m.toString());
    });
    sock.send(text, srv.port, '::1');
  });
  assert.match(reply, /^SIP\/2\.0 200 OK\r\n/);
  // RFC 3581 section 4: with rport, received is added even when it equals the sent-by host.
  assert.match(reply, new RegExp(`Via: SIP/2\\.0/UDP \\[::1\\]:${port};branch=[^;\\r]+;received=\\[::1\\];rport=${port}\\r\\n`));
});
