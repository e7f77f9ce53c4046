import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { SipRequest } from '../../lib/sip/message.js';
import { startTestServer } from '../helpers/server.js';
import { audioSdp, Phone } from '../helpers/phone.js';
import { branch, challengeParams, digestAuthorization } from '../helpers/sip-peer.js';
import { StreamPhone } from '../helpers/stream-phone.js';

test('a phone registered over TCP receives its calls on its own connection', async () => {
  const srv = await startTestServer({ users: [['701', 'pw701'], ['702', 'pw702']], configure: (c) => (c.auth.algorithms = ['MD5']) });
  const socket = net.connect({ port: srv.port, host: '127.0.0.1' });
  await new Promise<void>((r) => socket.once('connect', () => r()));
  const b = new StreamPhone(socket, 'TCP');
  const a = await Phone.open('701', 'pw701', srv.port);
  try {
    const lport = socket.localPort!;
    const reg = (cseq: number, auth?: string) => [
      `REGISTER sip:127.0.0.1:${srv.port} SIP/2.0`,
      `Via: SIP/2.0/TCP 127.0.0.1:${lport};branch=${branch()}`,
      'Max-Forwards: 70',
      'From: <sip:702@127.0.0.1>;tag=r1',
      'To: <sip:702@127.0.0.1>',
      'Call-ID: tcp-reg-702',
      `CSeq: ${cseq} REGISTER`,
      // A Contact the server could not reach by itself: only the connection leads back.
      '<sip:702@192.168.77.7:5060;transport=tcp>'.replace(/^/, 'Contact: '),
      'Expires: 600',
      ...(auth ? [`Authorization: ${auth}`] : []),
    ];
    b.send(reg(1));
    const ch = (await b.wait((m) => m.kind === 'response')) as { headers: { getAll(n: string): string[] }; status: number };
    assert.equal(ch.status, 401);
    const auth = digestAuthorization({ challenge: ch.headers.getAll('www-authenticate')[0]!, user: '702', password: 'pw702', method: 'REGISTER', uri: `sip:127.0.0.1:${srv.port}` });
    void challengeParams;
    b.send(reg(2, auth));
    assert.equal(((await b.wait((m) => m.kind === 'response')) as { status: number }).status, 200);

    await a.register();
    const call = await a.invite('702', audioSdp(42000));
    const inv = (await b.wait((m) => m.kind === 'request' && m.method === 'INVITE')) as SipRequest;
    assert.match(inv.headers.get('via') ?? '', /^SIP\/2\.0\/TCP /);
    const h = inv.headers;
    const answer = (status: number, reason: string, req: SipRequest, body = '') =>
      b.send(
        [`SIP/2.0 ${status} ${reason}`, ...req.headers.getAll('via').map((v) => `Via: ${v}`), `From: ${req.headers.get('from')}`,
          `To: ${req.headers.get('to')}${/tag=/.test(req.headers.get('to') ?? '') ? '' : ';tag=tcpb'}`, `Call-ID: ${req.headers.get('call-id')}`,
          `CSeq: ${req.headers.get('cseq')}`, `Contact: <sip:702@192.168.77.7:5060;transport=tcp>`, ...(body ? ['Content-Type: application/sdp'] : [])],
        body,
      );
    answer(200, 'OK', inv, audioSdp(42010));
    assert.equal((await call.final()).status, 200);
    await b.wait((m) => m.kind === 'request' && m.method === 'ACK' && m.headers.get('call-id') === h.get('call-id'));
    assert.equal((await call.bye()).status, 200);
    const bye = (await b.wait((m) => m.kind === 'request' && m.method === 'BYE')) as SipRequest;
    answer(200, 'OK', bye);
  } finally {
    a.close();
    socket.destroy();
    await srv.stop();
  }
});
