/**
 * The event channel of a real server: phones register and call over UDP, a WebSocket client on
 * the channel sees their userStatus and callStatus messages; the allow list is reloaded live.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startTestServer } from '../helpers/server.js';
import { answeredCall, audioSdp, registeredPair } from '../helpers/phone.js';
import { waitFor } from '../helpers/keep-alive.js';

test('a WebSocket client of a real server sees registrations and a call; a reloaded allow list refuses the next client', async () => {
  const srv = await startTestServer({
    users: [['601', 'pw601'], ['602', 'pw602']],
    configure: (c) => {
      c.auth.algorithms = ['MD5'];
      // The claimed port of the call-back service (UDP) is free in TCP too: the default layout.
      c.eventChannel.port = c.callback.port;
    },
  });
  const messages: Array<Record<string, unknown>> = [];
  const ws = new WebSocket(`ws://127.0.0.1:${srv.config.eventChannel.port}`);
  ws.on('message', (data) => messages.push(JSON.parse(String(data)) as Record<string, unknown>));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const [a, b] = await registeredPair(srv.port, '601', '602');
  try {
    await waitFor(() => messages.some((m) => m.command === 'userStatus' && m.userName === '602' && m.status === 'online'), '602 online');
    const { call, inc } = await answeredCall(a, b, audioSdp(47000), audioSdp(47010));
    await waitFor(() => messages.some((m) => m.command === 'userStatus' && m.userName === '601' && m.status === 'talking'), '601 talking');
    assert.equal((await call.bye()).status, 200);
    await b.answerInDialog(inc.dialog, 'BYE');
    await waitFor(() => messages.some((m) => m.command === 'callStatus' && m.state === 'ended'), 'the call ended');
    const states = messages.filter((m) => m.command === 'callStatus').map((m) => m.state);
    assert.deepEqual(states, ['ringing', 'answered', 'ended']);
    const ended = messages.find((m) => m.command === 'callStatus' && m.state === 'ended')!;
    assert.equal(ended.sipID, call.dialog.callId);
    assert.equal(ended.caller, '601');
    assert.equal(ended.callee, '602');
    assert.equal(ended.cause, 16);

    // SIGHUP: an allow list without 127.0.0.1 refuses the next client at the handshake.
    const next = structuredClone(srv.config);
    next.eventChannel.allow = ['192.0.2.0/24'];
    assert.deepEqual(srv.server.applyConfig(next).applied, ['eventChannel.allow']);
    const refused = new WebSocket(`ws://127.0.0.1:${srv.config.eventChannel.port}`);
    const status = await new Promise<number>((resolve) => {
      refused.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      refused.once('open', () => resolve(101));
      refused.once('error', () => undefined);
    });
    refused.terminate();
    assert.equal(status, 403);
    assert.equal(ws.readyState, WebSocket.OPEN, 'a client already connected stays');
  } finally {
    ws.terminate();
    a.close();
    b.close();
    await srv.stop();
  }
});
