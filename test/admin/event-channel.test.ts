// The WebSocket event channel (lib/admin/event-channel.ts) over real sockets on loopback, with
// `ws` as the client and a fake LiveSource that the test drives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { WebSocket } from 'ws';
import { EventChannel, type EventChannelOptions } from '../../lib/admin/event-channel.js';
import type { CallBackView, CallView, ExtensionView, IvrView, LiveEvent, LiveSource, SequencedEvent } from '../../lib/admin/types.js';
import { keepAlive, waitFor } from '../helpers/keep-alive.js';

// ---------------------------------------------------------------------------------------------
// A fake live state: the extensions it reports, and events the test emits.

class FakeLive implements LiveSource {
  exts: ExtensionView[] = [];
  private readonly listeners = new Set<(e: SequencedEvent) => void>();
  private seq = 0;
  summary(): never {
    throw new Error('not used by the event channel');
  }
  extensions(): ExtensionView[] {
    return this.exts;
  }
  calls(): CallView[] {
    return [];
  }
  callbacks(): CallBackView[] {
    return [];
  }
  ivr(): IvrView[] {
    return [];
  }
  releaseCall(): boolean {
    return false;
  }
  subscribe(listener: (e: SequencedEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  since(): SequencedEvent[] | null {
    return null;
  }
  get subscribers(): number {
    return this.listeners.size;
  }
  emit(event: LiveEvent): void {
    const e: SequencedEvent = { id: ++this.seq, time: Date.now(), event };
    for (const l of this.listeners) l(e);
  }
}

function ext(number: string, state: ExtensionView['state']): ExtensionView {
  return { number, name: `Ext ${number}`, state, contacts: [] };
}

function call(id: string, caller: string, callee: string, state: CallView['state'] = 'ringing'): CallView {
  return {
    id,
    caller,
    callerName: '',
    callee,
    dialled: callee,
    route: 'local',
    state,
    startTime: 1_700_000_000_000,
    answerTime: state === 'answered' ? 1_700_000_003_000 : null,
    codec: '',
    media: '',
    packets: { aToB: 0, bToA: 0 },
  };
}

interface LogLine {
  level: string;
  event: string;
  fields: Record<string, unknown>;
  peer: boolean;
}

async function channel(opts: Partial<EventChannelOptions> = {}, live = new FakeLive()) {
  const logs: LogLine[] = [];
  const ch = new EventChannel(
    {
      live,
      log: (level, event, fields) => void logs.push({ level, event, fields, peer: false }),
      peerLog: (level, event, fields) => void logs.push({ level, event, fields, peer: true }),
    },
    { bind: '127.0.0.1', port: 'ephemeral', allow: ['127.0.0.1'], ...opts },
  );
  const port = await ch.start();
  return { ch, live, logs, port: port ?? 0, url: `ws://127.0.0.1:${port ?? 0}/` };
}

// ---------------------------------------------------------------------------------------------
// A client that records what it receives.

interface Peer {
  ws: WebSocket;
  got: Array<Record<string, unknown>>;
  raw: string[];
  /** The next message not taken yet (bounded wait). */
  next(what?: string): Promise<Record<string, unknown>>;
  /** Settles with the close code. */
  closed: Promise<number>;
  isClosed(): boolean;
}

async function connect(url: string, options: { localAddress?: string } = {}): Promise<Peer> {
  const ws = new WebSocket(url, options);
  const got: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  let taken = 0;
  let closedFlag = false;
  const closed = new Promise<number>((resolve) =>
    ws.on('close', (code) => {
      closedFlag = true;
      resolve(code);
    }),
  );
  ws.on('message', (data) => {
    const text = String(data);
    raw.push(text);
    got.push(JSON.parse(text) as Record<string, unknown>);
  });
  ws.on('error', () => undefined);
  await keepAlive(
    new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => reject(new Error(`handshake answered ${res.statusCode}`)));
      ws.once('error', reject);
    }),
    'the WebSocket handshake',
  );
  return {
    ws,
    got,
    raw,
    closed,
    isClosed: () => closedFlag,
    async next(what = 'a message') {
      await waitFor(() => got.length > taken || closedFlag, what);
      if (got.length <= taken) throw new Error(`connection closed while waiting for ${what}`);
      return got[taken++]!;
    },
  };
}

/** The status code the handshake is refused with (the client sees 'unexpected-response'). */
async function refusedWith(url: string, options: { localAddress?: string } = {}): Promise<number> {
  const ws = new WebSocket(url, options);
  ws.on('error', () => undefined);
  return keepAlive(
    new Promise<number>((resolve, reject) => {
      ws.once('open', () => reject(new Error('the handshake was accepted')));
      ws.once('unexpected-response', (req, res) => {
        resolve(res.statusCode ?? 0);
        res.resume();
        req.destroy();
      });
    }),
    'the refused handshake',
  );
}

/** A client that completes the handshake, then never reads again (nor answers pings). */
async function deafClient(port: number): Promise<net.Socket> {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => undefined);
  await keepAlive(new Promise<void>((resolve) => s.once('connect', () => resolve())), 'TCP connect');
  s.write(
    [
      'GET / HTTP/1.1',
      `Host: 127.0.0.1:${port}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
      'Sec-WebSocket-Version: 13',
      '',
      '',
    ].join('\r\n'),
  );
  let head = '';
  await keepAlive(
    new Promise<void>((resolve, reject) => {
      const onData = (d: Buffer) => {
        head += d.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        s.off('data', onData);
        s.pause();
        if (head.startsWith('HTTP/1.1 101')) resolve();
        else reject(new Error(`handshake answered ${head.split('\r\n')[0]}`));
      };
      s.on('data', onData);
    }),
    'the raw handshake',
  );
  return s;
}

function logged(logs: LogLine[], event: string): LogLine[] {
  return logs.filter((l) => l.event === event);
}

// ---------------------------------------------------------------------------------------------

test('on connect: the userStatus of every extension that is not offline, one message each, then the events', async () => {
  const live = new FakeLive();
  live.exts = [ext('100', 'online'), ext('101', 'offline'), ext('102', 'talking'), ext('103', 'ringing')];
  const { ch, url, logs } = await channel({}, live);
  try {
    const p = await connect(url);
    assert.deepEqual(await p.next(), { command: 'userStatus', userName: '100', status: 'online' });
    assert.deepEqual(await p.next(), { command: 'userStatus', userName: '102', status: 'talking' });
    assert.deepEqual(await p.next(), { command: 'userStatus', userName: '103', status: 'ringing' });
    assert.equal(p.raw[0], '{"command":"userStatus","userName":"100","status":"online"}');
    // Nothing more in the burst: the answer to a ping comes next.
    p.ws.send('{"command":"ping"}');
    assert.deepEqual(await p.next(), { command: 'pong' });
    assert.equal(p.got.length, 4);
    const connected = logged(logs, 'event_channel.client_connected');
    assert.equal(connected.length, 1);
    assert.match(String(connected[0]!.fields.from), /^127\.0\.0\.1:\d+$/);
    assert.equal(connected[0]!.fields.clients, 1);
    assert.equal(logged(logs, 'event_channel.listening')[0]!.fields.port, ch.port);
    p.ws.close();
    assert.equal(await keepAlive(p.closed, 'close'), 1005);
  } finally {
    await ch.close();
  }
});

test('events: userStatus, callStatus, callbackStatus and ivrStatus in order, with their exact fields; registrations are not sent', async () => {
  const { ch, live, url } = await channel();
  try {
    const p = await connect(url);
    const a = await connect(url);
    const c = call('a84b4c76e66710@pc33.example.com', '100', '101');
    live.emit({ type: 'registration', action: 'added', number: '100', contact: 'sip:100@192.0.2.7:5062', address: '192.0.2.7:5062', transport: 'udp', userAgent: '', expiresAt: 0 });
    live.emit({ type: 'extension', number: '100', state: 'online' });
    live.emit({ type: 'call', action: 'created', call: c });
    live.emit({ type: 'extension', number: '101', state: 'ringing' });
    live.emit({ type: 'call', action: 'answered', call: { ...c, state: 'answered', answerTime: 1_700_000_003_000 } });
    live.emit({ type: 'extension', number: '100', state: 'talking' });
    live.emit({ type: 'call', action: 'ended', call: { ...c, state: 'answered' }, status: 200, callTag: 0, cause: 16 });
    live.emit({ type: 'extension', number: '101', state: 'offline' });
    const cb: CallBackView = { id: '7', user1: '100', user2: '0123456', state: 'starting', startTime: 1, answerTime: null };
    live.emit({ type: 'callback', action: 'started', callback: cb });
    live.emit({ type: 'callback', action: 'calling2', callback: { ...cb, state: 'calling2' } });
    live.emit({ type: 'callback', action: 'bridged', callback: { ...cb, state: 'bridged' } });
    live.emit({ type: 'callback', action: 'ended', callback: { ...cb, state: 'bridged' }, result: 0, cause: 16 });
    const iv: IvrView = { id: 'ivr-call@198.51.100.4', caller: '102', number: '800', file: 'menu.xml', startTime: 1 };
    live.emit({ type: 'ivr', action: 'started', ivr: iv });
    live.emit({ type: 'ivr', action: 'ended', ivr: iv });
    live.emit({ type: 'call', action: 'ended', call: call('x@y', '102', '999'), status: 486, callTag: 3, cause: 17 });

    const want = [
      { command: 'userStatus', userName: '100', status: 'online' },
      { command: 'callStatus', sipID: c.id, callID: c.id, caller: '100', callee: '101', state: 'ringing' },
      { command: 'userStatus', userName: '101', status: 'ringing' },
      { command: 'callStatus', sipID: c.id, callID: c.id, caller: '100', callee: '101', state: 'answered' },
      { command: 'userStatus', userName: '100', status: 'talking' },
      { command: 'callStatus', sipID: c.id, callID: c.id, caller: '100', callee: '101', state: 'ended', status: 200, callTag: 0, cause: 16 },
      { command: 'userStatus', userName: '101', status: 'offline' },
      { command: 'callbackStatus', id: '7', user1: '100', user2: '0123456', state: 'starting' },
      { command: 'callbackStatus', id: '7', user1: '100', user2: '0123456', state: 'calling2' },
      { command: 'callbackStatus', id: '7', user1: '100', user2: '0123456', state: 'bridged' },
      { command: 'callbackStatus', id: '7', user1: '100', user2: '0123456', state: 'ended', result: 0, cause: 16 },
      { command: 'ivrStatus', callID: iv.id, caller: '102', number: '800', file: 'menu.xml', state: 'started' },
      { command: 'ivrStatus', callID: iv.id, caller: '102', number: '800', file: 'menu.xml', state: 'ended' },
      { command: 'callStatus', sipID: 'x@y', callID: 'x@y', caller: '102', callee: '999', state: 'ended', status: 486, callTag: 3, cause: 17 },
    ];
    for (const peer of [p, a]) {
      for (const [i, w] of want.entries()) {
        const m = await peer.next(`message ${i}`);
        // Field by field: the same keys, each with the same value.
        assert.deepEqual(Object.keys(m).sort(), Object.keys(w).sort(), `message ${i} fields`);
        for (const [k, v] of Object.entries(w)) assert.equal(m[k], v, `message ${i} field ${k}`);
      }
    }
    // The exact text of one of each.
    assert.equal(p.raw[1], `{"command":"callStatus","sipID":"${c.id}","callID":"${c.id}","caller":"100","callee":"101","state":"ringing"}`);
    assert.equal(p.raw[5], `{"command":"callStatus","sipID":"${c.id}","callID":"${c.id}","caller":"100","callee":"101","state":"ended","status":200,"callTag":0,"cause":16}`);
    // Nothing after them (the pong comes straight after).
    p.ws.send('{"command":"ping"}');
    assert.deepEqual(await p.next(), { command: 'pong' });
  } finally {
    await ch.close();
  }
});

test('a source outside eventChannel.allow is refused at the handshake with 403, peer-logged; plain HTTP gets 403 or 426', async () => {
  const { ch, url, port, logs } = await channel({ allow: ['127.0.0.1'] });
  try {
    assert.equal(await refusedWith(url, { localAddress: '127.0.0.2' }), 403);
    const refused = logged(logs, 'event_channel.client_refused');
    assert.equal(refused.length, 1);
    assert.equal(refused[0]!.peer, true);
    assert.equal(refused[0]!.fields.status, 403);
    assert.match(String(refused[0]!.fields.from), /^127\.0\.0\.2:\d+$/);
    assert.equal(ch.clientCount, 0);
    assert.equal(logged(logs, 'event_channel.client_connected').length, 0);

    // A plain HTTP request: 426 from an allowed source, 403 from another.
    const get = (localAddress: string) =>
      keepAlive(
        new Promise<number>((resolve, reject) => {
          const req = http.get({ host: '127.0.0.1', port, path: '/', localAddress, agent: false }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          });
          req.on('error', reject);
        }),
        'plain GET',
      );
    assert.equal(await get('127.0.0.1'), 426);
    assert.equal(await get('127.0.0.2'), 403);

    // The list can change while running (SIGHUP); a range covers 127.0.0.2.
    ch.setAllow(['127.0.0.0/8']);
    const p = await connect(url, { localAddress: '127.0.0.2' });
    assert.equal(ch.clientCount, 1);
    p.ws.close();
    await keepAlive(p.closed, 'close');
  } finally {
    await ch.close();
  }
});

test('an empty allow list refuses everyone (and says so at start)', async () => {
  const { ch, url, logs } = await channel({ allow: [] });
  try {
    assert.equal(logged(logs, 'event_channel.nobody_allowed').length, 1);
    assert.equal(await refusedWith(url), 403);
  } finally {
    await ch.close();
  }
});

test('listening on :: the IPv4 client arrives as ::ffff:127.0.0.1 and is matched against the IPv4 list', async (t) => {
  const { ch, port, logs } = await channel({ bind: '::', allow: ['127.0.0.1'] });
  if (port === 0) {
    t.skip(`no IPv6 here: ${JSON.stringify(logged(logs, 'event_channel.port_unavailable')[0]?.fields)}`);
    return;
  }
  try {
    const p = await connect(`ws://127.0.0.1:${port}/`);
    assert.equal(ch.clientCount, 1);
    assert.match(String(logged(logs, 'event_channel.client_connected')[0]!.fields.from), /^\[::ffff:127\.0\.0\.1\]:\d+$/);
    assert.equal(await refusedWith(`ws://127.0.0.1:${port}/`, { localAddress: '127.0.0.2' }), 403);
    p.ws.close();
    await keepAlive(p.closed, 'close');
  } finally {
    await ch.close();
  }
});

test('beyond maxClients the handshake is answered 503; a place that frees up can be taken again', async () => {
  const { ch, live, url, logs } = await channel({ maxClients: 2 });
  try {
    const a = await connect(url);
    const b = await connect(url);
    assert.equal(await refusedWith(url), 503);
    const refused = logged(logs, 'event_channel.client_refused');
    assert.equal(refused.length, 1);
    assert.equal(refused[0]!.fields.status, 503);
    assert.equal(ch.clientCount, 2);
    a.ws.close();
    await keepAlive(a.closed, 'close');
    await waitFor(() => ch.clientCount === 1, 'the server to see the close');
    const c = await connect(url);
    assert.equal(ch.clientCount, 2);
    // The clients in place still get events.
    live.emit({ type: 'extension', number: '100', state: 'online' });
    assert.deepEqual(await b.next(), { command: 'userStatus', userName: '100', status: 'online' });
    assert.deepEqual(await c.next(), { command: 'userStatus', userName: '100', status: 'online' });
  } finally {
    await ch.close();
  }
});

test('a client that stops reading is dropped once its queue passes maxBufferedBytes; a reading client keeps receiving', async () => {
  const maxBufferedBytes = 256 * 1024;
  const { ch, live, url, port, logs } = await channel({ maxBufferedBytes });
  try {
    const reader = await connect(url);
    const deaf = await deafClient(port);
    await waitFor(() => ch.clientCount === 2, 'two clients');
    const big = 'x'.repeat(4000);
    const batch = 40; // 160 KB: under the bound for a client that reads
    let sent = 0;
    // Batches until the deaf client is dropped (the kernel's socket buffers take some MB first),
    // each one read by the reader before the next: bounded by the amount sent.
    while (logged(logs, 'event_channel.client_dropped').length === 0) {
      assert.ok(sent < 20_000, `not dropped after ${sent} messages of 4 KB`);
      for (let i = 0; i < batch; i++) {
        live.emit({ type: 'call', action: 'created', call: call(`c${sent}`, '100', big) });
        sent++;
      }
      await waitFor(() => reader.got.length === sent, () => `the reader to get ${sent} messages (has ${reader.got.length})`, 10_000);
    }
    const dropped = logged(logs, 'event_channel.client_dropped');
    assert.equal(dropped.length, 1);
    assert.equal(dropped[0]!.level, 'warn');
    assert.match(String(dropped[0]!.fields.reason), /too slow/);
    assert.equal(dropped[0]!.fields.from, `127.0.0.1:${deaf.localPort}`);
    assert.equal(ch.clientCount, 1);
    // The reader got every message, in order, and still gets new ones.
    assert.ok(reader.got.every((m, i) => m.sipID === `c${i}`));
    live.emit({ type: 'extension', number: '100', state: 'online' });
    await waitFor(() => reader.got.length === sent + 1, 'the message after the drop');
    assert.deepEqual(reader.got[sent], { command: 'userStatus', userName: '100', status: 'online' });
    deaf.destroy();
  } finally {
    await ch.close();
  }
});

test('ping: {"command":"ping"} gets {"command":"pong"}; protocol pings every pingMs, a peer that does not answer them is dropped', async () => {
  const { ch, url, port, logs } = await channel({ pingMs: 50 });
  try {
    const p = await connect(url);
    p.ws.send(JSON.stringify({ command: 'ping' }));
    assert.deepEqual(await p.next('pong'), { command: 'pong' });
    assert.equal(p.raw[0], '{"command":"pong"}');
    // ws answers protocol pings by itself: this client stays.
    let pings = 0;
    p.ws.on('ping', () => pings++);
    const deaf = await deafClient(port);
    await waitFor(() => ch.clientCount === 2, 'two clients');
    await waitFor(() => logged(logs, 'event_channel.client_dropped').length > 0, 'the deaf client to be dropped');
    const dropped = logged(logs, 'event_channel.client_dropped');
    assert.match(String(dropped[0]!.fields.reason), /no answer to the ping/);
    assert.equal(dropped[0]!.fields.from, `127.0.0.1:${deaf.localPort}`);
    await waitFor(() => pings >= 3, 'three protocol pings');
    assert.equal(ch.clientCount, 1);
    assert.equal(p.isClosed(), false);
    deaf.destroy();
  } finally {
    await ch.close();
  }
});

test('malformed or unknown input gets an error message and the connection stays; a message over 4 KiB closes it (1009)', async () => {
  const { ch, url, logs } = await channel();
  try {
    const p = await connect(url);
    const cases: Array<[string | Buffer, RegExp]> = [
      ['not json', /^malformed JSON$/],
      ['{"command":', /^malformed JSON$/],
      ['[1,2]', /"command"/],
      ['null', /"command"/],
      ['{"cmd":"ping"}', /"command"/],
      ['{"command":42}', /"command"/],
      ['{"command":"subscribe"}', /^unknown command "subscribe"$/],
      [Buffer.from([0x7b, 0x7d]), /binary/],
    ];
    for (const [input, reason] of cases) {
      p.ws.send(input);
      const m = await p.next(`the answer to ${String(input)}`);
      assert.deepEqual(Object.keys(m).sort(), ['command', 'reason']);
      assert.equal(m.command, 'error');
      assert.match(String(m.reason), reason, `answer to ${String(input)}`);
    }
    p.ws.send('{"command":"ping"}');
    assert.deepEqual(await p.next(), { command: 'pong' });
    assert.equal(ch.clientCount, 1);

    // Exactly 4 KiB is accepted; one byte more is not.
    const pad = (n: number) => JSON.stringify({ command: 'ping', pad: 'x'.repeat(n - '{"command":"ping","pad":""}'.length) });
    assert.equal(pad(4096).length, 4096);
    p.ws.send(pad(4096));
    assert.deepEqual(await p.next(), { command: 'pong' });
    p.ws.send(pad(4097));
    assert.equal(await keepAlive(p.closed, 'the close after an oversized message'), 1009);
    await waitFor(() => ch.clientCount === 0, 'the client to be gone');
    const dropped = logged(logs, 'event_channel.client_dropped');
    assert.equal(dropped.length, 1);
    assert.equal(dropped[0]!.fields.reason, 'message over 4096 bytes');
    assert.equal(logged(logs, 'event_channel.bad_message').length, 2);
  } finally {
    await ch.close();
  }
});

test('a connection that does not complete its handshake in time is closed; a connected client is not timed out', async () => {
  const { ch, url, port } = await channel({ handshakeTimeoutMs: 300 });
  try {
    const p = await connect(url);
    const silent = net.connect(port, '127.0.0.1');
    silent.on('error', () => undefined);
    const partial = net.connect(port, '127.0.0.1');
    partial.on('error', () => undefined);
    partial.write('GET / HTTP/1.1\r\nHost: x\r\n');
    let closed = 0;
    silent.on('close', () => closed++);
    partial.on('close', () => closed++);
    silent.resume();
    partial.resume();
    await waitFor(() => closed === 2, 'both half-open connections to be closed', 5000);
    // The WebSocket client, connected for longer than the handshake time, is still served.
    p.ws.send('{"command":"ping"}');
    assert.deepEqual(await p.next(), { command: 'pong' });
    assert.equal(p.isClosed(), false);
  } finally {
    await ch.close();
  }
});

test('close() ends every client (1001), unsubscribes, and frees the port', async () => {
  const { ch, live, url, port } = await channel();
  const a = await connect(url);
  const b = await connect(url);
  assert.equal(live.subscribers, 1);
  await keepAlive(ch.close(), 'close()');
  assert.equal(await keepAlive(a.closed, 'a closed'), 1001);
  assert.equal(await keepAlive(b.closed, 'b closed'), 1001);
  assert.equal(live.subscribers, 0);
  assert.equal(ch.port, 0);
  assert.equal(ch.clientCount, 0);
  // The port is free again.
  const again = await channel({ port });
  try {
    assert.equal(again.port, port);
  } finally {
    await again.ch.close();
  }
});

test('close() cuts off a client that does not answer the close frame', async () => {
  const { ch, port } = await channel();
  const deaf = await deafClient(port);
  await waitFor(() => ch.clientCount === 1, 'the client');
  let ended = false;
  deaf.on('close', () => (ended = true));
  await keepAlive(ch.close(), 'close() with a deaf client', 4000);
  deaf.resume();
  await waitFor(() => ended, 'the deaf socket to be closed');
});

test('a port in use: start() gives null and logs a warning; port 0 is off', async () => {
  const holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  const taken = (holder.address() as net.AddressInfo).port;
  try {
    const { ch, logs, port } = await channel({ port: taken });
    assert.equal(port, 0); // start() gave null
    const w = logged(logs, 'event_channel.port_unavailable');
    assert.equal(w.length, 1);
    assert.equal(w[0]!.level, 'warn');
    assert.equal(w[0]!.fields.port, taken);
    assert.equal(logged(logs, 'event_channel.listening').length, 0);
    await ch.close();
  } finally {
    await new Promise<void>((resolve) => holder.close(() => resolve()));
  }
  const live = new FakeLive();
  const off = await channel({ port: 0 }, live);
  assert.equal(off.port, 0);
  assert.equal(await off.ch.start(), null);
  assert.equal(logged(off.logs, 'event_channel.off').length, 2);
  assert.equal(live.subscribers, 0);
  await off.ch.close();
});
