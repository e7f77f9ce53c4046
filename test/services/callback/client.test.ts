// The AS side of the call-back protocol (client.ts) against a socket in the test playing the server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import {
  CallBackClient,
  cancelText,
  ClientClosedError,
  newCallBackId,
  NoAnswerError,
  requestText,
  type CallBackAck,
  type CallBackResponse,
} from '../../../lib/services/callback/client.js';
import { parseIif } from '../../../lib/services/callback/iif.js';
import { keepAlive, waitFor } from '../../helpers/keep-alive.js';

interface Server {
  socket: dgram.Socket;
  port: number;
  got: Array<{ text: string; from: dgram.RemoteInfo }>;
  /** Sends `text` to the client's socket (learned from the first datagram). */
  say(text: string): Promise<void>;
  close(): void;
}

async function server(address = '127.0.0.1', on: (text: string, s: Server) => void = () => undefined): Promise<Server> {
  const socket = dgram.createSocket(address.includes(':') ? 'udp6' : 'udp4');
  await new Promise<void>((resolve) => socket.bind(0, address, resolve));
  const s: Server = {
    socket,
    port: socket.address().port,
    got: [],
    say: (text) =>
      new Promise((resolve) => {
        const to = s.got[0]!.from;
        socket.send(text, to.port, to.address, () => resolve());
      }),
    close: () => socket.close(),
  };
  socket.on('message', (m, from) => {
    s.got.push({ text: m.toString(), from });
    on(m.toString(), s);
  });
  return s;
}

function recorder() {
  const log: string[] = [];
  const acks: CallBackAck[] = [];
  const responses: Array<{ r: CallBackResponse; repeat: boolean }> = [];
  return {
    log,
    acks,
    responses,
    events: {
      sent: (e: { method: string; attempt: number }) => void log.push(`${e.method} ${e.attempt}`),
      ack: (a: CallBackAck) => void acks.push(a),
      response: (r: CallBackResponse, repeat: boolean) => void responses.push({ r, repeat }),
    },
  };
}

test('the datagrams: REQUEST, and CANCEL with room for the longest answer', () => {
  assert.equal(requestText({ id: 'a', user1: '101', user2: '102', maxDurationS: 0 }), 'REQUEST: id=a;user1=101;user2=102');
  assert.equal(
    requestText({ id: 'a', caller1: '1', user1: '101', caller2: '2', user2: '102', maxDurationS: 60 }),
    'REQUEST: id=a;caller1=1;user1=101;caller2=2;user2=102;duration=60',
  );
  for (const id of ['x', 'cb-abc-123456', 'y'.repeat(64)]) {
    const text = cancelText(id);
    assert.ok(Buffer.byteLength(text) >= Buffer.byteLength(`ACK: id=${id};result=6;reason=unknown-id`), text);
    const parsed = parseIif(text);
    assert.ok(parsed.ok);
    assert.equal(parsed.message.method, 'CANCEL');
    assert.deepEqual([...parsed.message.params], [['id', id]]);
  }
});

test('made-up ids pass the codec', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const id = newCallBackId();
    const parsed = parseIif(`CANCEL: id=${id}`);
    assert.ok(parsed.ok && parsed.message.params.get('id') === id, id);
    seen.add(id);
  }
  assert.ok(seen.size > 190, 'ids differ');
});

test('request: resent at 0, 500 ms and 1.5 s, then NoAnswerError at the timeout', async () => {
  const s = await server();
  const rec = recorder();
  const client = await CallBackClient.open({ host: '127.0.0.1', port: s.port, timeoutMs: 1600, events: rec.events });
  try {
    const started = Date.now();
    const err = await keepAlive(
      client.request({ id: 'q1', user1: '1', user2: '2', maxDurationS: 0 }).then(
        () => assert.fail('resolved'),
        (e: unknown) => e,
      ),
      'the request',
    );
    assert.ok(err instanceof NoAnswerError);
    assert.equal(err.method, 'REQUEST');
    assert.equal(err.id, 'q1');
    assert.ok(Date.now() - started >= 1550);
    assert.deepEqual(rec.log, ['REQUEST 1', 'REQUEST 2', 'REQUEST 3']);
    await waitFor(() => s.got.length === 3, 'three REQUESTs');
  } finally {
    await client.close();
    s.close();
  }
});

test('an ACK ends the request; a late copy is not reported; the RESPONSE is ACKed and kept for response()', async () => {
  const s = await server('127.0.0.1', (text, srv) => {
    if (!text.startsWith('REQUEST')) return;
    void srv
      .say('ACK: id=q2;result=0')
      .then(() => srv.say('ACK: id=q2;result=0'))
      .then(() => srv.say('RESPONSE: id=other;result=0;duration=1;cause=16'))
      .then(() => srv.say('RESPONSE: id=q2;result=0;duration=9;cause=16'));
  });
  const rec = recorder();
  const client = await CallBackClient.open({ host: '127.0.0.1', port: s.port, events: rec.events });
  try {
    const ack = await keepAlive(client.request({ id: 'q2', user1: '1', user2: '2', maxDurationS: 0 }), 'the ACK');
    assert.deepEqual(ack, { id: 'q2', result: 0 });
    await waitFor(() => s.got.some((g) => g.text === 'ACK: id=q2'), 'the ACK of the RESPONSE');
    // The RESPONSE came before it was asked for.
    const response = await client.response('q2');
    assert.deepEqual(response, { id: 'q2', result: 0, outcome: 'bridged', durationS: 9, cause: 16 });
    assert.equal(rec.acks.length, 1, 'the second ACK is a late copy');
    assert.deepEqual(rec.responses, [{ r: response, repeat: false }]);
    assert.deepEqual(
      s.got.map((g) => g.text).filter((t) => t.startsWith('ACK')),
      ['ACK: id=q2'],
      'a RESPONSE for an id this client never sent is not acknowledged',
    );
  } finally {
    await client.close();
    s.close();
  }
});

test('response(): an abort signal and close() end the wait', async () => {
  const s = await server();
  const client = await CallBackClient.open({ host: '127.0.0.1', port: s.port });
  const stop = new AbortController();
  const aborted = client.response('r1', stop.signal);
  stop.abort(new Error('enough'));
  await assert.rejects(aborted, /enough/);
  const pending = client.response('r2');
  await client.close();
  await assert.rejects(pending, ClientClosedError);
  await client.close();
  await assert.rejects(client.response('r3'), ClientClosedError);
  s.close();
});

test('cancel: the RESPONSE, or the ACK refusing it', async () => {
  const s = await server('127.0.0.1', (text, srv) => {
    const m = parseIif(text);
    if (!m.ok || m.message.method !== 'CANCEL') return;
    const id = m.message.params.get('id');
    void srv.say(id === 'k1' ? 'RESPONSE: id=k1;result=0;duration=30;cause=16' : `ACK: id=${id};result=6;reason=unknown-id`);
  });
  const client = await CallBackClient.open({ host: '127.0.0.1', port: s.port });
  try {
    assert.deepEqual(await keepAlive(client.cancel('k1'), 'cancel k1'), {
      kind: 'response',
      response: { id: 'k1', result: 0, outcome: 'bridged', durationS: 30, cause: 16 },
    });
    assert.deepEqual(await keepAlive(client.cancel('k2'), 'cancel k2'), { kind: 'ack', ack: { id: 'k2', result: 6, reason: 'unknown-id' } });
  } finally {
    await client.close();
    s.close();
  }
});

test('a host name is looked up; replies are matched whatever the spelling of the address', async (t) => {
  const s = await server('127.0.0.1', (text, srv) => void (text.startsWith('REQUEST') && srv.say('ACK: id=h1;result=0')));
  const client = await CallBackClient.open({ host: 'localhost', port: s.port });
  try {
    assert.equal(client.server.address, '127.0.0.1');
    assert.deepEqual(await keepAlive(client.request({ id: 'h1', user1: '1', user2: '2', maxDurationS: 0 }), 'h1'), { id: 'h1', result: 0 });
  } finally {
    await client.close();
    s.close();
  }
  let s6: Server;
  try {
    s6 = await server('::1', (text, srv) => void (text.startsWith('REQUEST') && srv.say('ACK: id=h2;result=0')));
  } catch {
    t.skip('no IPv6 loopback here');
    return;
  }
  const client6 = await CallBackClient.open({ host: '[0:0:0:0:0:0:0:1]', port: s6.port });
  try {
    assert.deepEqual(await keepAlive(client6.request({ id: 'h2', user1: '1', user2: '2', maxDurationS: 0 }), 'h2'), { id: 'h2', result: 0 });
  } finally {
    await client6.close();
    s6.close();
  }
});
