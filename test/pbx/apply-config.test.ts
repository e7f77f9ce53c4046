import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer } from '../helpers/server.js';
import { audioSdp, Phone, registeredPair } from '../helpers/phone.js';
import { dialRule, trunkConfig } from '../helpers/trunks.js';

test('a reloaded configuration applies call limits live and names the keys that need a restart', async () => {
  const srv = await startTestServer({ users: [['951', 'pw951'], ['952', 'pw952']], configure: (c) => (c.auth.algorithms = ['MD5']) });
  const [a, b] = await registeredPair(srv.port, '951', '952');
  try {
    const portMin = srv.config.media.portMin;
    const next = structuredClone(srv.config);
    next.calls.maxPerExtension = 1;
    next.calls.noAnswerTimeout = 30;
    next.media.portMin = portMin + 2;
    const result = srv.server.applyConfig(next);
    assert.deepEqual(result.applied.sort(), ['calls.maxPerExtension', 'calls.noAnswerTimeout']);
    assert.deepEqual(result.needsRestart, ['media.portMin']);
    assert.equal(srv.config.media.portMin, portMin, 'a key needing a restart keeps its old value');
    // The new per-extension limit holds for the next call: one call in progress, the second is busy.
    const first = await a.invite('952', audioSdp(45000));
    const inc = await b.incoming();
    inc.answer(audioSdp(45010));
    assert.equal((await first.final()).status, 200);
    await inc.waitAck();
    const second = await a.invite('952', audioSdp(45020));
    assert.equal((await second.final()).status, 486);
    assert.equal((await first.bye()).status, 200);
    await b.answerInDialog(inc.dialog, 'BYE');
  } finally {
    a.close();
    b.close();
    await srv.stop();
  }
});

test('a reloaded dial plan and classes apply to the next call; a changed trunk list needs a restart', async () => {
  const carrier = await Phone.open('carrier', '', 0);
  const srv = await startTestServer({
    users: [['961', 'pw961']],
    configure: (c) => {
      c.auth.algorithms = ['MD5'];
      c.trunks = [trunkConfig({ name: 'out', kind: 'peer', port: carrier.port })];
    },
  });
  const a = await Phone.open('961', 'pw961', srv.port);
  await a.register();
  try {
    const before = await a.invite('95551234', audioSdp(45100));
    assert.equal((await before.final()).status, 404, 'no rule yet: an unknown number');
    const next = structuredClone(srv.config);
    next.dialplan = [dialRule({ match: '9', strip: 1, trunk: 'out' })];
    next.trunks = [{ ...next.trunks[0]!, maxCalls: 3 }];
    const result = srv.server.applyConfig(next);
    assert.deepEqual(result.applied, ['dialplan']);
    assert.deepEqual(result.needsRestart, ['trunks']);
    const after = await a.invite('95551234', audioSdp(45110));
    const inc = await carrier.incoming();
    assert.match(inc.invite.uri, /^sip:5551234@127\.0\.0\.1:/);
    inc.reject(486, 'Busy Here');
    assert.equal((await after.final()).status, 486);
  } finally {
    a.close();
    carrier.close();
    await srv.stop();
  }
});
