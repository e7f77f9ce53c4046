// lib/admin/client.ts and `minisipserver status` over real HTTP against a small stand-in for the
// admin API (node:http in this file): snapshots, the bearer token, DELETE of a call, the event
// stream with Last-Event-ID after the server drops it, `reset` and id gaps causing a refetch, a
// server restart; then the built CLI (`status --once`, `--json`, not running, wrong token).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdminClient, AdminError, locateServer, SseParser, type FeedStatus, type SseMessage, type Snapshot } from '../../lib/admin/client.js';
import type { CallBackView, CallView, ExtensionView, IvrView, LiveEvent, LiveSource, SequencedEvent, Summary } from '../../lib/admin/types.js';
import { AdminServer } from '../../lib/admin/http.js';

const TOKEN = 'stub-token-0123456789abcdef0123456789';
const T0 = Date.now() - 3_600_000;
const scratch = mkdtempSync(join(tmpdir(), 'mss-status-http-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function call(id: string, caller: string, callee: string): CallView {
  return {
    id,
    caller,
    callerName: 'Alice',
    callee,
    dialled: callee,
    route: 'local',
    state: 'answered',
    startTime: T0,
    answerTime: T0 + 2000,
    codec: 'PCMA',
    media: 'audio',
    packets: { aToB: 10, bToA: 12 },
  };
}

function snapshot(startTime = T0, node = 'stub'): Snapshot {
  const summary: Summary = {
    version: '9.9.9',
    node,
    startTime,
    uptimeSeconds: Math.floor((Date.now() - startTime) / 1000),
    extensions: { total: 2, registered: 1 },
    contacts: 1,
    calls: { active: 1, started: 1, answered: 1 },
    callbacks: 0,
    ivr: 0,
    trunks: [],
    process: { cpuPercent: 0, rssBytes: 0 },
  };
  return {
    summary,
    extensions: [
      { number: '101', name: 'Alice', state: 'talking', contacts: [{ contact: 'sip:101@127.0.0.1:5070', address: '127.0.0.1:5070', transport: 'udp', userAgent: 'SIPp', expiresAt: Date.now() + 600_000 }] },
      { number: '102', name: 'Bob', state: 'offline', contacts: [] },
    ],
    calls: [call('call-1', '101', '102')],
    callbacks: [],
    ivr: [],
  };
}

interface Seen {
  method: string;
  path: string;
  lastEventId: string | undefined;
  auth: string | undefined;
}

/** A stand-in for lib/admin/http.ts: the routes status uses, an SSE stream with a backlog. */
class StubAdmin {
  readonly seen: Seen[] = [];
  readonly streams = new Set<http.ServerResponse>();
  readonly backlog: SequencedEvent[] = [];
  readonly hungUp: string[] = [];
  nextId = 1;
  /** Answer 404 for these paths (endpoints that do not exist yet). */
  readonly absent = new Set<string>(['/api/v1/callbacks']);

  private constructor(
    readonly server: http.Server,
    public snap: Snapshot,
  ) {}

  static async start(snap: Snapshot, port = 0): Promise<StubAdmin> {
    let stub: StubAdmin | null = null;
    const server = http.createServer((req, res) => stub!.handle(req, res));
    stub = new StubAdmin(server, snap);
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(port, '127.0.0.1', () => res());
    });
    return stub;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  count(path: string): number {
    return this.seen.filter((s) => s.path === path).length;
  }

  emit(event: LiveEvent, skip = 0): number {
    this.nextId += skip;
    const e: SequencedEvent = { id: this.nextId++, time: Date.now(), event };
    this.backlog.push(e);
    for (const s of this.streams) this.write(s, e);
    return e.id;
  }

  reset(): void {
    // As lib/admin/http.ts does: the reset names the newest event id.
    for (const s of this.streams) s.write(`id: ${this.nextId - 1}\nevent: reset\ndata: {"reason":"backlog"}\n\n`);
  }

  /** Ends every open stream (the client should reconnect). */
  dropStreams(): void {
    for (const s of this.streams) s.destroy();
    this.streams.clear();
  }

  async close(): Promise<void> {
    this.dropStreams();
    this.server.closeAllConnections();
    await new Promise<void>((res) => this.server.close(() => res()));
  }

  private write(res: http.ServerResponse, e: SequencedEvent): void {
    res.write(`id: ${e.id}\nevent: ${e.event.type}\ndata: ${JSON.stringify(e.event)}\n\n`);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '').split('?')[0]!;
    const lastEventId = req.headers['last-event-id'] as string | undefined;
    this.seen.push({ method: req.method ?? '', path, lastEventId, auth: req.headers.authorization });
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return json(401, { error: 'unauthorized' });
    if (this.absent.has(path)) return json(404, { error: 'not found' });
    if (req.method === 'DELETE' && path.startsWith('/api/v1/calls/')) {
      const id = decodeURIComponent(path.slice('/api/v1/calls/'.length));
      const known = this.snap.calls.some((c) => c.id === id);
      if (known) this.hungUp.push(id);
      return known ? json(200, { released: id }) : json(404, { error: 'no such call' });
    }
    if (req.method !== 'GET') return json(405, { error: 'method' });
    switch (path) {
      case '/api/v1/summary':
        return json(200, this.snap.summary);
      case '/api/v1/extensions':
        return json(200, this.snap.extensions);
      case '/api/v1/calls':
        return json(200, this.snap.calls);
      case '/api/v1/callbacks':
        return json(200, this.snap.callbacks);
      case '/api/v1/ivr':
        return json(200, this.snap.ivr);
      case '/api/v1/events': {
        res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
        res.write(': hello\n\n');
        if (lastEventId !== undefined) {
          const last = Number(lastEventId);
          const first = this.backlog[0]?.id ?? this.nextId;
          if (last < first - 1 || last >= this.nextId) res.write('event: reset\ndata: {}\n\n');
          else for (const e of this.backlog) if (e.id > last) this.write(res, e);
        }
        this.streams.add(res);
        res.on('close', () => this.streams.delete(res));
        return;
      }
      default:
        return json(404, { error: 'not found' });
    }
  }
}

async function until(ok: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((res) => setTimeout(res, 10));
  }
}

function freePort(): Promise<number> {
  return new Promise((res) => {
    const s = http.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => res(p));
    });
  });
}

test('the SSE parser: fields, comments, multi-line data, CRLF split across chunks, a bare event', () => {
  const got: SseMessage[] = [];
  const p = new SseParser((m) => got.push(m));
  p.push(': comment\nid: 7\nevent: call\ndata: {"a":\ndata: 1}\n\n');
  p.push('data: x\r');
  p.push('\n\r\nevent: reset\n\nretry: 3000\ndata:no-space\n');
  p.push('\n');
  assert.deepEqual(got, [
    { event: 'call', data: '{"a":\n1}', id: '7' },
    { event: 'message', data: 'x' },
    { event: 'reset', data: '' },
    { event: 'message', data: 'no-space' },
  ]);
  assert.equal(p.retryMs, 3000);
});

test('locateServer reads the address and token files; says when there are none', () => {
  const dir = join(scratch, 'locate');
  mkdirSync(dir, { recursive: true });
  assert.throws(() => locateServer({ dataDir: dir }), (e: unknown) => e instanceof AdminError && e.kind === 'not-running' && /admin\.address does not exist/.test(e.message));
  writeFileSync(join(dir, 'admin.address'), 'http://0.0.0.0:8080\n');
  assert.throws(() => locateServer({ dataDir: dir }), (e: unknown) => e instanceof AdminError && e.kind === 'setup' && /admin\.token/.test(e.message));
  writeFileSync(join(dir, 'admin.token'), `${TOKEN}\n`);
  assert.deepEqual(locateServer({ dataDir: dir }), { url: 'http://127.0.0.1:8080', token: TOKEN, tokenFile: join(dir, 'admin.token') });
  assert.equal(locateServer({ dataDir: dir, url: '127.0.0.1:9000/' }).url, 'http://127.0.0.1:9000');
});

test('client: snapshots with the bearer token, absent endpoints as [], DELETE of a call, 401', async () => {
  const stub = await StubAdmin.start(snapshot());
  try {
    const client = new AdminClient(stub.url, TOKEN);
    const snap = await client.snapshot();
    assert.deepEqual(snap, { ...stub.snap, callbacks: [] });
    assert.ok(stub.seen.every((s) => s.auth === `Bearer ${TOKEN}`));
    assert.equal(await client.hangup('call-1'), true);
    assert.equal(await client.hangup('nope'), false);
    assert.deepEqual(stub.hungUp, ['call-1']);
    await assert.rejects(new AdminClient(stub.url, 'wrong-token-wrong-token').summary(), (e: unknown) => e instanceof AdminError && e.kind === 'unauthorized' && e.status === 401);
  } finally {
    await stub.close();
  }
  const port = await freePort();
  await assert.rejects(new AdminClient(`http://127.0.0.1:${port}`, TOKEN).summary(), (e: unknown) => e instanceof AdminError && e.kind === 'not-running' && /connection refused/.test(e.message));
});

test('feed: snapshot then events; reconnects with Last-Event-ID after the stream drops; reset and gaps refetch', async () => {
  const stub = await StubAdmin.start(snapshot());
  const snaps: Snapshot[] = [];
  const events: SequencedEvent[] = [];
  const statuses: FeedStatus[] = [];
  const feed = new AdminClient(stub.url, TOKEN).watch(
    { snapshot: (s) => snaps.push(s), event: (e) => events.push(e), status: (s) => statuses.push(s) },
    { backoffMs: 20, maxBackoffMs: 100 },
  );
  try {
    await feed.start();
    assert.equal(snaps.length, 1);
    assert.equal(statuses.at(-1)!.state, 'live');
    await until(() => stub.streams.size === 1, 'the stream');

    stub.emit({ type: 'extension', number: '102', state: 'online' });
    stub.emit({ type: 'registration', action: 'added', number: '102', contact: 'sip:102@127.0.0.1:5072', address: '127.0.0.1:5072', transport: 'udp', userAgent: '', expiresAt: 0 });
    await until(() => events.length === 2, 'two events');
    assert.deepEqual(events.map((e) => e.id), [1, 2]);
    assert.equal(events[1]!.event.type, 'registration');

    // The server drops the stream; events happen while the client is away.
    stub.dropStreams();
    stub.emit({ type: 'call', action: 'created', call: call('call-2', '102', '101') });
    stub.emit({ type: 'call', action: 'ended', call: call('call-2', '102', '101'), status: 200, callTag: 1, cause: 16 });
    await until(() => events.length === 4, 'the missed events, replayed');
    assert.ok(statuses.some((s) => s.state === 'reconnecting'));
    assert.equal(statuses.at(-1)!.state, 'live');
    const reconnect = stub.seen.filter((s) => s.path === '/api/v1/events').at(-1)!;
    assert.equal(reconnect.lastEventId, '2');
    assert.deepEqual(events.map((e) => e.id), [1, 2, 3, 4]);
    assert.equal(snaps.length, 1, 'the backlog covered the gap: no refetch');

    // `reset`: the snapshots are fetched again.
    const before = stub.count('/api/v1/extensions');
    stub.snap.extensions = stub.snap.extensions.slice(0, 1);
    stub.reset();
    await until(() => snaps.length === 2, 'the refetch after reset');
    assert.equal(stub.count('/api/v1/extensions'), before + 1);
    assert.equal(snaps[1]!.extensions.length, 1);

    // A gap in the ids (events lost): refetch too, and the event is still delivered after it.
    stub.emit({ type: 'extension', number: '101', state: 'online' }, 3);
    await until(() => snaps.length === 3 && events.length === 5, 'the refetch after a gap');
    assert.equal(events.at(-1)!.id, 8);
  } finally {
    feed.close();
    await feed.stopped();
    await stub.close();
  }
  assert.equal(statuses.at(-1)!.state, 'closed');
});

test('feed: a server restart (refused, then a new process numbering from 1) is followed by a refetch', async () => {
  let stub = await StubAdmin.start(snapshot());
  const port = stub.port;
  const snaps: Snapshot[] = [];
  const events: SequencedEvent[] = [];
  const statuses: FeedStatus[] = [];
  const feed = new AdminClient(stub.url, TOKEN).watch(
    { snapshot: (s) => snaps.push(s), event: (e) => events.push(e), status: (s) => statuses.push(s) },
    { backoffMs: 20, maxBackoffMs: 80 },
  );
  try {
    await feed.start();
    await until(() => stub.streams.size === 1, 'the stream');
    for (let i = 0; i < 3; i++) stub.emit({ type: 'extension', number: '101', state: i % 2 ? 'online' : 'talking' });
    await until(() => events.length === 3, 'three events');
    await stub.close();
    await until(() => statuses.some((s) => s.state === 'reconnecting' && s.error === 'connection refused'), 'reconnecting: refused');
    const restarted = snapshot(Date.now(), 'stub-restarted');
    stub = await StubAdmin.start(restarted, port);
    await until(() => snaps.length >= 2, 'the snapshot of the new process');
    assert.equal(snaps.at(-1)!.summary.node, 'stub-restarted');
    assert.equal(statuses.at(-1)!.state, 'live');
    stub.emit({ type: 'extension', number: '102', state: 'online' });
    await until(() => events.length === 4, 'an event of the new process');
    assert.equal(events.at(-1)!.id, 1);
  } finally {
    feed.close();
    await feed.stopped();
    await stub.close();
  }
});

test('feed: start fails with not-running when nothing listens', async () => {
  const port = await freePort();
  const feed = new AdminClient(`http://127.0.0.1:${port}`, TOKEN).watch({ snapshot: () => undefined, event: () => undefined });
  await assert.rejects(feed.start(), (e: unknown) => e instanceof AdminError && e.kind === 'not-running');
});

// ---- Against the real admin server (lib/admin/http.ts) with a stand-in live state ---------

/** A LiveSource over fixed data, with a backlog of the events emitted. */
class FakeLive implements LiveSource {
  readonly events: SequencedEvent[] = [];
  readonly released: string[] = [];
  private readonly listeners = new Set<(e: SequencedEvent) => void>();
  constructor(public snap: Snapshot) {}
  get lastId(): number {
    return this.events.at(-1)?.id ?? 0;
  }
  summary(): Summary {
    return this.snap.summary;
  }
  extensions(): ExtensionView[] {
    return this.snap.extensions;
  }
  calls(): CallView[] {
    return this.snap.calls;
  }
  callbacks(): CallBackView[] {
    return this.snap.callbacks;
  }
  ivr(): IvrView[] {
    return this.snap.ivr;
  }
  releaseCall(id: string): boolean {
    const known = this.snap.calls.some((c) => c.id === id);
    if (known) this.released.push(id);
    return known;
  }
  subscribe(listener: (e: SequencedEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  since(lastId: number): SequencedEvent[] | null {
    return this.events.filter((e) => e.id > lastId);
  }
  emit(event: LiveEvent): void {
    const e = { id: this.lastId + 1, time: Date.now(), event };
    this.events.push(e);
    for (const l of this.listeners) l(e);
  }
}

async function startAdmin(live: LiveSource, port = 0): Promise<{ admin: AdminServer; url: string; port: number }> {
  const admin = new AdminServer(
    { live, token: TOKEN, metricsToken: true, log: () => undefined, peerLog: () => undefined, version: '9.9.9' },
    { listen: `127.0.0.1:${port}`, heartbeatMs: 200 },
  );
  const info = await admin.start();
  assert.ok(info, 'the admin server started');
  return { admin, url: info.url, port: info.port };
}

test('against lib/admin/http.ts: snapshots, DELETE, the stream, Last-Event-ID replay and a restart', async () => {
  const live = new FakeLive(snapshot());
  let server = await startAdmin(live);
  const port = server.port;
  const client = new AdminClient(server.url, TOKEN);
  const snaps: Snapshot[] = [];
  const events: SequencedEvent[] = [];
  const statuses: FeedStatus[] = [];
  const feed = client.watch({ snapshot: (s) => snaps.push(s), event: (e) => events.push(e), status: (s) => statuses.push(s) }, { backoffMs: 20, maxBackoffMs: 100, idleMs: 2000 });
  try {
    live.emit({ type: 'extension', number: '102', state: 'online' });
    const at = await client.snapshotAt();
    assert.deepEqual(at.snapshot, live.snap);
    assert.equal(at.lastEventId, 1, 'X-Last-Event-Id');
    assert.equal(await client.hangup('call-1'), true);
    assert.equal(await client.hangup('no-such-call'), false);
    assert.deepEqual(live.released, ['call-1']);
    await assert.rejects(new AdminClient(server.url, 'x'.repeat(32)).snapshot(), (e: unknown) => e instanceof AdminError && e.kind === 'unauthorized');

    await feed.start();
    await until(() => server.admin.streamCount === 1, 'the stream');
    live.emit({ type: 'call', action: 'created', call: call('call-2', '102', '101') });
    await until(() => events.length === 1, 'an event');
    assert.equal(events[0]!.id, 2);
    assert.equal(events[0]!.event.type, 'call');

    // The listener goes away and comes back (same process state): the missed events are replayed.
    await server.admin.close(100);
    live.emit({ type: 'call', action: 'ended', call: call('call-2', '102', '101'), status: 200, callTag: 1, cause: 16 });
    live.emit({ type: 'extension', number: '101', state: 'online' });
    server = await startAdmin(live, port);
    await until(() => events.length === 3, 'the replay');
    assert.deepEqual(events.map((e) => e.id), [2, 3, 4]);
    assert.equal(snaps.length, 1, 'nothing was lost: no refetch');

    // A restart: another process, ids from 1 again, another start time.
    await server.admin.close(100);
    const fresh = new FakeLive(snapshot(Date.now(), 'restarted'));
    server = await startAdmin(fresh, port);
    await until(() => snaps.length >= 2 && snaps.at(-1)!.summary.node === 'restarted', 'the refetch after the restart');
    fresh.emit({ type: 'extension', number: '101', state: 'talking' });
    await until(() => events.at(-1)!.id === 1, 'an event of the new process');
    assert.equal(statuses.at(-1)!.state, 'live');
  } finally {
    feed.close();
    await feed.stopped();
    await server.admin.close(100);
  }
});

// ---- The CLI, built (build/cli/main.js) ------------------------------------------------

function runCli(args: string[], timeoutMs = 20_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['build/cli/main.js', 'status', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`status ${args.join(' ')} did not exit within ${timeoutMs} ms:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test('status --once and --json through the CLI, with --url/--token-file and with --data-dir', async () => {
  const stub = await StubAdmin.start(snapshot());
  stub.absent.clear();
  const tokenFile = join(scratch, 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`);
  try {
    const once = await runCli(['--url', stub.url, '--token-file', tokenFile, '--once']);
    assert.equal(once.code, 0, once.stderr);
    assert.equal(once.stderr, '');
    const lines = once.stdout.split('\n');
    assert.match(lines[0]!, /^minisipserver 9\.9\.9 on stub, up 0?1:00:0\d; extensions 1\/2 registered, calls 1 active, call-backs 0, IVR sessions 0$/);
    assert.match(once.stdout, /^Extensions \(2\)\nNUMBER +NAME +STATE +CONTACTS +USER-AGENT +ADDRESS +EXPIRES\n101 +Alice +talking +1 +SIPp +127\.0\.0\.1:5070 +(9m5\d|10m00)s\n102 +Bob +offline +0\n/m);
    assert.match(once.stdout, /^Calls \(1\)\nCALLER -> CALLEE +STATE +DURATION +CODEC +MEDIA +PACKETS\n101 Alice -> 102 +answered +(59:5\d|1:00:\d\d) +PCMA +audio +10\/12\n/m);
    assert.match(once.stdout, /^Call-backs \(0\)$/m);
    assert.match(once.stdout, /^IVR \(0\)\n$/m);

    const json = await runCli(['--url', stub.url, '--token-file', tokenFile, '--json']);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), stub.snap);

    // --data-dir: the address and token files the server writes; without a terminal, as --once.
    const dataDir = join(scratch, 'data');
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(join(dataDir, 'admin.address'), `${stub.url}\n`);
    writeFileSync(join(dataDir, 'admin.token'), `${TOKEN}\n`);
    const plain = await runCli(['--data-dir', dataDir]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /^Extensions \(2\)$/m);

    const wrong = join(scratch, 'wrong-token');
    writeFileSync(wrong, 'not-the-token-not-the-token\n');
    const refused = await runCli(['--url', stub.url, '--token-file', wrong, '--once']);
    assert.equal(refused.code, 2);
    assert.equal(refused.stdout, '');
    assert.match(refused.stderr, /^minisipserver status: the server at http:\/\/127\.0\.0\.1:\d+ refused the token \(401\)[^\n]*\n$/);
  } finally {
    await stub.close();
  }
});

test('status when the server is not running: one line, exit 2', async () => {
  const empty = join(scratch, 'empty-data');
  mkdirSync(empty, { recursive: true });
  const noFile = await runCli(['--data-dir', empty]);
  assert.equal(noFile.code, 2);
  assert.equal(noFile.stdout, '');
  assert.match(noFile.stderr, /^minisipserver status: the server is not running: \S+admin\.address does not exist \(start `minisipserver serve[^\n]*\n$/);

  const port = await freePort();
  writeFileSync(join(empty, 'admin.address'), `http://127.0.0.1:${port}\n`);
  writeFileSync(join(empty, 'admin.token'), `${TOKEN}\n`);
  for (const args of [['--data-dir', empty], ['--data-dir', empty, '--json']]) {
    const refused = await runCli(args);
    assert.equal(refused.code, 2);
    assert.equal(refused.stdout, '');
    assert.match(refused.stderr, /^minisipserver status: the server is not running: nothing answers at http:\/\/127\.0\.0\.1:\d+ \(connection refused[^\n]*\n$/);
  }

  const usage = await runCli(['--bogus']);
  assert.equal(usage.code, 2);
});
