import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32 } from '../helpers/prng.js';
import { mutate } from '../helpers/mutate.js';
import { startTestServer } from '../helpers/server.js';
import { audioSdp, registeredPair, answeredCall } from '../helpers/phone.js';
import { branch } from '../helpers/sip-peer.js';
import { waitFor } from '../helpers/keep-alive.js';

test('3,000 damaged requests inside a live call (re-INVITE, UPDATE, INFO, PRACK, ACK, OPTIONS, broken SDP): no fault, the call and the server go on', async () => {
  const srv = await startTestServer({ users: [['971', 'pw971'], ['972', 'pw972']], configure: (c) => (c.auth.algorithms = ['MD5']) });
  const [a, b] = await registeredPair(srv.port, '971', '972');
  try {
    const { call, inc } = await answeredCall(a, b, audioSdp(47000), audioSdp(47010));
    // The callee answers whatever reaches it, so that offers keep flowing through the call.
    let relayed = 0;
    b.autoAnswer = (req) => {
      relayed++;
      return req.method === 'INVITE' || req.method === 'UPDATE' ? audioSdp(47010) : '';
    };
    const d = call.dialog;
    const rnd = mulberry32(971972);
    const sdps = [
      audioSdp(47000),
      audioSdp(47000).replace('c=IN IP4 127.0.0.1', 'c=IN IP6 ::1'),
      audioSdp(47000).replace(/m=audio \d+/, 'm=audio 99999999'),
      'v=0\r\nm=video\r\n',
      audioSdp(47000) + 'm=video 47002 RTP/AVP 96\r\n'.repeat(40),
      '',
    ];
    const seed = (method: string, n: number, body: string) =>
      [
        `${method} ${d.remoteTarget} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${a.port};branch=${branch()};rport`,
        'Max-Forwards: 70',
        `From: ${d.localUri};tag=${d.localTag}`,
        `To: ${d.remoteUri};tag=${d.remoteTag}`,
        `Call-ID: ${d.callId}`,
        `CSeq: ${100 + n} ${method}`,
        `Contact: <sip:971@127.0.0.1:${a.port}>`,
        ...(method === 'PRACK' ? ['RAck: 1 2 INVITE'] : []),
        ...(body ? ['Content-Type: application/sdp'] : []),
        `Content-Length: ${Buffer.byteLength(body)}`,
        '',
        body,
      ].join('\r\n');
    const methods = ['INVITE', 'UPDATE', 'INFO', 'PRACK', 'ACK', 'OPTIONS', 'MESSAGE', 'REFER'];
    const CASES = 3000;
    for (let i = 0; i < CASES; i++) {
      const method = methods[i % methods.length]!;
      const text = seed(method, i, sdps[Math.floor(rnd() * sdps.length)]!);
      // Half reach the call intact (with damaged SDP at most), half damaged anywhere.
      a.sendText(i % 2 === 0 ? text : mutate(text, rnd).toString('latin1'));
      if (i % 100 === 99) await new Promise((r) => setTimeout(r, 15));
    }
    // The server reads the caller's datagrams in order: once an OPTIONS sent after them is
    // answered, it has handled them all. Sent again every 500 ms, as any UDP client does: in this
    // flood the caller's own socket may drop the answer.
    const sync = [`OPTIONS sip:127.0.0.1:${srv.port} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${a.port};branch=${branch()};rport`, 'Max-Forwards: 70',
      'From: <sip:971@127.0.0.1>;tag=sync', 'To: <sip:127.0.0.1>', 'Call-ID: fuzz-sync', 'CSeq: 1 OPTIONS'];
    for (let attempt = 1; ; attempt++) {
      a.send(sync);
      const answered = await a.waitResponse((r) => r.headers.get('call-id') === 'fuzz-sync', 500).catch(() => null);
      if (answered) break;
      assert.ok(attempt < 20, 'the server answers an OPTIONS after the flood');
    }
    await waitFor(() => relayed > 150, () => `over 150 requests relayed through the call to the callee (${relayed} so far)`);
    assert.ok(!srv.logLines.some((l) => l.includes('"sip.handler_error"') || l.includes('"call.internal_error"')), srv.logLines.filter((l) => /handler_error|internal_error/.test(l)).slice(0, 3).join('\n'));
    b.autoAnswer = null;
    // The server still serves: a new call goes through.
    assert.equal(srv.server.calls.activeCount <= 1, true);
    const [c, e] = await registeredPair(srv.port, '971', '972');
    try {
      const second = await c.invite('972', audioSdp(47100));
      const inc2 = await e.incoming(5000);
      inc2.answer(audioSdp(47110));
      assert.equal((await second.final(5000)).status, 200);
      await inc2.waitAck();
      assert.equal((await second.bye()).status, 200);
      await e.answerInDialog(inc2.dialog, 'BYE');
    } finally {
      c.close();
      e.close();
    }
  } finally {
    a.close();
    b.close();
    await srv.stop();
  }
});
