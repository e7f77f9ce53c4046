import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer } from '../helpers/server.js';
import { audioSdp, registeredPair } from '../helpers/phone.js';
import { nativeUdpAddon } from '../../lib/sip/transport/native-udp.js';

// The same register-and-call path over both UDP engines: Node's dgram on the main thread, and the
// native I/O thread (the default when the addon is built).
for (const engine of ['node', 'native'] as const) {
  const skip = engine === 'native' && nativeUdpAddon() === null && 'the native addon is not built';
  test(`sip.udpEngine ${engine}: phones register, call, hang up; the engine in use is the one asked for`, { skip }, async (t) => {
    const srv = await startTestServer({
      users: [['300', 'pw300'], ['301', 'pw301']],
      configure: (c) => {
        c.sip.udpEngine = engine;
        c.media.relay = 'never';
      },
    });
    const [a, b] = await registeredPair(srv.port, '300', '301');
    t.after(async () => {
      a.close();
      b.close();
      await srv.stop();
    });
    assert.equal(srv.server.stack.udpEngine, engine);
    assert.ok(srv.logLines.some((l) => l.includes('"sip.listening"') && l.includes(`"engine":"${engine}"`)));
    const call = await a.invite('301', audioSdp(41000));
    const inc = await b.incoming();
    inc.ring();
    await call.provisional(180);
    inc.answer(audioSdp(41010));
    assert.equal((await call.final()).status, 200);
    await inc.waitAck();
    assert.equal((await call.bye()).status, 200);
    const bye = await b.answerInDialog(inc.dialog, 'BYE');
    assert.match(bye.headers.get('reason') ?? '', /Q\.850;cause=16/);
  });
}
