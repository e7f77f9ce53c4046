import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32 } from '../helpers/prng.js';
import { startTestServer } from '../helpers/server.js';
import { UdpPeer } from '../helpers/sip-peer.js';
import { mutate } from '../helpers/mutate.js';

function seeds(port: number, localPort: number): string[] {
  const common = (method: string, n: number) => [
    `Via: SIP/2.0/UDP 127.0.0.1:${localPort};branch=z9hG4bK-fz${n};rport`,
    'Max-Forwards: 70',
    'From: "Fuzz" <sip:100@127.0.0.1>;tag=fz1',
    `To: <sip:${method === 'INVITE' ? '101' : '100'}@127.0.0.1>`,
    `Call-ID: fuzz-${n}@127.0.0.1`,
    `CSeq: ${n} ${method}`,
  ];
  const sdp = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n';
  return [
    [`REGISTER sip:127.0.0.1:${port} SIP/2.0`, ...common('REGISTER', 1), `Contact: <sip:100@127.0.0.1:${localPort}>;expires=60`,
      'Authorization: Digest username="100", realm="minisipserver", nonce="abc", uri="sip:127.0.0.1", response="00", qop=auth, nc=00000001, cnonce="x"',
      'Expires: 60', 'Content-Length: 0', '', ''].join('\r\n'),
    [`INVITE sip:101@127.0.0.1:${port} SIP/2.0`, ...common('INVITE', 2), `Contact: <sip:100@127.0.0.1:${localPort}>`,
      'Content-Type: application/sdp', `Content-Length: ${sdp.length}`, '', sdp].join('\r\n'),
    [`OPTIONS sip:127.0.0.1:${port} SIP/2.0`, ...common('OPTIONS', 3), 'Accept: application/sdp', 'Content-Length: 0', '', ''].join('\r\n'),
  ];
}

test('10,000 mutated REGISTER/INVITE/OPTIONS: the server stays up, answers sanely and its memory stays bounded', async (t) => {
  const srv = await startTestServer({ users: [['100', 'pw100'], ['101', 'pw101']] });
  const peer = await UdpPeer.open();
  t.after(async () => {
    peer.close();
    await srv.stop();
  });
  const rnd = mulberry32(20261126);
  const base = seeds(srv.port, peer.port);
  const probe = (n: number) =>
    [`OPTIONS sip:127.0.0.1:${srv.port} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bK-probe${n}`, 'Max-Forwards: 70',
      'From: <sip:p@127.0.0.1>;tag=p', 'To: <sip:127.0.0.1>', `Call-ID: probe-${n}`, `CSeq: ${n} OPTIONS`, 'Content-Length: 0', '', ''].join('\r\n');

  global.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const CASES = 10_000;
  for (let i = 0; i < CASES; i++) {
    peer.send(mutate(base[i % base.length]!, rnd), srv.port);
    if (i % 250 === 249) {
      // pace the sender so the kernel buffer does not drop; then prove the server is alive
      await new Promise((r) => setTimeout(r, 10));
    }
    if (i % 2500 === 2499) {
      const alive = await peer.request(probe(i), srv.port, 5000);
      assert.equal(alive.status, 200, `server not answering after case ${i}`);
    }
  }
  // The server reads this socket's datagrams in order: once a probe sent after them is answered,
  // every one of them has been handled.
  const final = await peer.request(probe(CASES), srv.port, 5000);
  assert.equal(final.status, 200);
  const counters = srv.server.stack.counters;
  assert.ok(counters.received >= CASES * 0.9, `server received ${counters.received} of ${CASES}`);
  assert.ok(counters.parseErrors > 1000, 'the mutations must produce many malformed messages');
  assert.ok(!srv.logLines.some((l) => l.includes('"sip.handler_error"')), 'no request may reach a handler fault');
  global.gc?.();
  const growth = process.memoryUsage().heapUsed - heapBefore;
  assert.ok(growth < 64 * 1024 * 1024, `heap grew by ${Math.round(growth / 1048576)} MiB`);
  assert.ok(srv.server.stack.transactions.stats.serverTransactions <= CASES, 'transactions are bounded by requests');
});
