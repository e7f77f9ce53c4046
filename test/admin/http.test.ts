/**
 * The admin HTTP server over real HTTP on 127.0.0.1 with a FakeLive: the JSON shapes of every
 * endpoint (each field name written out, so that a rename fails here), DELETE of a call, the
 * identical 401, the limits, the event stream (ids, replay after a reconnect, reset after a gap,
 * a reader that does not read), close(), a port in use, and the examples of docs/ADMIN.md.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CallBackView, CallView, ExtensionView, IvrView, LiveEvent, LiveSource, SequencedEvent, Summary } from '../../lib/admin/types.js';
import { waitFor } from '../helpers/keep-alive.js';
import http from 'node:http';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { AdminServer, type AdminServerDeps, type AdminServerOptions } from '../../lib/admin/http.js';
import { FakeLive, sampleLive } from '../helpers/fake-live.js';
import { keepAlive } from '../helpers/keep-alive.js';

interface LogLine {
  level: string;
  event: string;
  fields: Record<string, unknown>;
  peer: boolean;
}

interface AdminHarness {
  live: FakeLive;
  admin: AdminServer;
  token: string;
  logs: LogLine[];
  port: number;
  url: string;
  auth: { Authorization: string };
  close(): Promise<void>;
}

function logDeps(logs: LogLine[]): Pick<AdminServerDeps, 'log' | 'peerLog'> {
  return {
    log: (level, event, fields) => logs.push({ level, event, fields, peer: false }),
    peerLog: (level, event, fields) => logs.push({ level, event, fields, peer: true }),
  };
}

async function startAdmin(o: { live?: FakeLive; opts?: Partial<AdminServerOptions>; deps?: Partial<AdminServerDeps> } = {}): Promise<AdminHarness> {
  const live = o.live ?? sampleLive();
  const token = randomBytes(32).toString('hex');
  const logs: LogLine[] = [];
  const admin = new AdminServer({ live, token, metricsToken: true, version: '0.1.0', ...logDeps(logs), ...o.deps }, { listen: '127.0.0.1:0', ...o.opts });
  const info = await keepAlive(admin.start(), 'admin.start()');
  assert.ok(info, 'the admin server started');
  return { live, admin, token, logs, port: info.port, url: info.url, auth: { Authorization: `Bearer ${o.deps?.token ?? token}` }, close: () => admin.close() };
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** One request on a connection of its own. */
function call(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
  return keepAlive(
    new Promise<Answer>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    }),
    `${method} ${path}`,
  );
}

/** Writes `text` on a new connection and returns all that comes back until the server closes it. */
function rawExchange(port: number, text: string, limitMs = 5000): Promise<string> {
  return keepAlive(
    new Promise<string>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      let got = '';
      s.setEncoding('utf8');
      s.on('data', (c: string) => (got += c));
      s.on('error', (err) => (got ? resolve(got) : reject(err)));
      s.on('close', () => resolve(got));
      s.write(text);
    }),
    'a raw exchange',
    limitMs,
  );
}

interface SseMessage {
  id?: string;
  event: string;
  data: string;
}

/** An event stream opened with node's http client; messages are parsed as they arrive. */
class SseReader {
  readonly messages: SseMessage[] = [];
  comments = 0;
  retry: number | null = null;
  ended = false;
  /** Bytes of data received (kept when keepData is false too). */
  bytes = 0;
  private buffer = '';

  private constructor(
    readonly req: http.ClientRequest,
    readonly res: http.IncomingMessage,
    private readonly keepData: boolean,
  ) {
    res.setEncoding('utf8');
    res.on('data', (c: string) => this.push(c));
    const done = () => {
      this.ended = true;
    };
    res.on('end', done);
    res.on('close', done);
    res.on('error', done);
    req.on('error', done);
  }

  static open(port: number, headers: Record<string, string>, path = '/api/v1/events', keepData = true): Promise<SseReader> {
    return keepAlive(
      new Promise<SseReader>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, method: 'GET', path, headers: { Accept: 'text/event-stream', ...headers }, agent: false }, (res) => {
          resolve(new SseReader(req, res, keepData));
        });
        req.on('error', reject);
        req.end();
      }),
      `GET ${path}`,
    );
  }

  get status(): number {
    return this.res.statusCode ?? 0;
  }

  /** The ids of the messages received, as numbers. */
  get ids(): number[] {
    return this.messages.filter((m) => m.id !== undefined).map((m) => Number(m.id));
  }

  close(): void {
    this.req.destroy();
  }

  private push(chunk: string): void {
    this.bytes += chunk.length;
    this.buffer += chunk;
    for (;;) {
      const end = this.buffer.indexOf('\n\n');
      if (end < 0) return;
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const m: SseMessage = { event: 'message', data: '' };
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) {
          this.comments++;
          continue;
        }
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'id') m.id = value;
        else if (field === 'event') m.event = value;
        else if (field === 'data') data.push(value);
        else if (field === 'retry') this.retry = Number(value);
      }
      if (data.length === 0) continue;
      m.data = this.keepData ? data.join('\n') : '';
      this.messages.push(m);
    }
  }
}

// ---- contract field names (written out here so that a rename in the code fails a test) ----

const SUMMARY_KEYS = ['version', 'node', 'startTime', 'uptimeSeconds', 'extensions', 'contacts', 'calls', 'callbacks', 'ivr', 'trunks', 'process'];
const TRUNK_KEYS = ['name', 'kind', 'up', 'registration', 'lastStatus', 'activeCalls'];
const EXTENSION_KEYS = ['number', 'name', 'state', 'contacts'];
const CONTACT_KEYS = ['contact', 'address', 'transport', 'userAgent', 'expiresAt'];
const CALL_KEYS = ['id', 'caller', 'callerName', 'callee', 'dialled', 'route', 'state', 'startTime', 'answerTime', 'codec', 'media', 'packets'];
const CALLBACK_KEYS = ['id', 'user1', 'user2', 'state', 'startTime', 'answerTime'];
const IVR_KEYS = ['id', 'caller', 'number', 'file', 'startTime'];

function keys(o: unknown): string[] {
  assert.ok(o !== null && typeof o === 'object' && !Array.isArray(o), `an object: ${JSON.stringify(o)}`);
  return Object.keys(o as object).sort();
}

function assertKeys(o: unknown, expected: string[], what: string): void {
  assert.deepEqual(keys(o), [...expected].sort(), `the fields of ${what}`);
}

function jsonOf(a: Answer): unknown {
  assert.equal(a.headers['content-type'], 'application/json; charset=utf-8');
  return JSON.parse(a.text);
}

function extensionEvent(number: string, state: 'offline' | 'online' | 'ringing' | 'talking'): LiveEvent {
  return { type: 'extension', number, state };
}

function bigCallEvent(i: number, size: number): LiveEvent {
  return {
    type: 'call',
    action: 'created',
    call: { id: `big-${i}`, caller: '101', callerName: 'x'.repeat(size), callee: '102', dialled: '102', route: 'local', state: 'ringing', startTime: 1, answerTime: null, codec: '', media: '', packets: { aToB: 0, bToA: 0 } },
  };
}

async function withAdmin(t: TestContext, o: Parameters<typeof startAdmin>[0] = {}): Promise<AdminHarness> {
  const h = await startAdmin(o);
  t.after(() => h.close());
  return h;
}

// ---- the JSON API ----

test('GET /api/v1/summary: every field of the contract, the live values, the last event id', async (t) => {
  const h = await withAdmin(t);
  h.live.emit(extensionEvent('104', 'offline'));
  const a = await call(h.port, 'GET', '/api/v1/summary', h.auth);
  assert.equal(a.status, 200);
  assert.equal(a.headers['cache-control'], 'no-store');
  assert.equal(a.headers['x-last-event-id'], '1');
  assert.equal(a.headers['access-control-allow-origin'], undefined, 'no CORS');
  const s = jsonOf(a) as Summary;
  assertKeys(s, SUMMARY_KEYS, 'the summary');
  assertKeys(s.extensions, ['total', 'registered'], 'summary.extensions');
  assertKeys(s.calls, ['active', 'started', 'answered'], 'summary.calls');
  assert.equal(s.trunks.length, 1);
  assertKeys(s.trunks[0], TRUNK_KEYS, 'a trunk');
  assert.deepEqual(s, JSON.parse(JSON.stringify(h.live.summary())));
  assert.equal(s.extensions.total, 7);
  assert.equal(s.extensions.registered, 6);
  assert.equal(s.contacts, 7);
});

test('GET /api/v1/extensions: every field, contacts, filters by state and by number or name', async (t) => {
  const h = await withAdmin(t);
  const all = jsonOf(await call(h.port, 'GET', '/api/v1/extensions', h.auth)) as ExtensionView[];
  assert.ok(Array.isArray(all));
  assert.equal(all.length, 7);
  for (const e of all) {
    assertKeys(e, EXTENSION_KEYS, `extension ${e.number}`);
    for (const c of e.contacts) assertKeys(c, CONTACT_KEYS, `a contact of ${e.number}`);
  }
  assert.deepEqual(all, JSON.parse(JSON.stringify(h.live.extensions())));
  assert.equal(all.find((e) => e.number === '105')!.contacts.length, 2);

  const numbers = async (query: string): Promise<string[]> => {
    const a = await call(h.port, 'GET', `/api/v1/extensions${query}`, h.auth);
    assert.equal(a.status, 200, a.text);
    return (JSON.parse(a.text) as ExtensionView[]).map((e) => e.number);
  };
  assert.deepEqual(await numbers('?state=online'), ['107']);
  assert.deepEqual(await numbers('?state=ringing,talking'), ['101', '102', '103', '105', '106']);
  assert.deepEqual(await numbers('?state=offline'), ['104']);
  assert.deepEqual(await numbers('?q=ALI'), ['101']);
  assert.deepEqual(await numbers('?q=recep'), ['105']);
  assert.deepEqual(await numbers('?q=10'), ['101', '102', '103', '104', '105', '106', '107']);
  assert.deepEqual(await numbers('?q=107'), ['107']);
  assert.deepEqual(await numbers('?q=room&state=online'), ['107']);
  assert.deepEqual(await numbers('?q=room&state=offline'), []);
  assert.deepEqual(await numbers('?q=Meeting%20Room'), ['107']);
  assert.deepEqual(await numbers('?state=&q='), ['101', '102', '103', '104', '105', '106', '107']);
  const bad = await call(h.port, 'GET', '/api/v1/extensions?state=busy', h.auth);
  assert.equal(bad.status, 400);
  assertKeys(jsonOf(bad), ['error'], 'an error');
});

test('GET /api/v1/calls, /callbacks, /ivr: every field of the contract', async (t) => {
  const h = await withAdmin(t);
  const calls = jsonOf(await call(h.port, 'GET', '/api/v1/calls', h.auth)) as CallView[];
  assert.equal(calls.length, 2);
  for (const c of calls) {
    assertKeys(c, CALL_KEYS, `call ${c.id}`);
    assertKeys(c.packets, ['aToB', 'bToA'], 'call.packets');
  }
  assert.deepEqual(calls, JSON.parse(JSON.stringify(h.live.calls())));
  assert.equal(calls[1]!.answerTime, null);

  const callbacks = jsonOf(await call(h.port, 'GET', '/api/v1/callbacks', h.auth)) as CallBackView[];
  assert.equal(callbacks.length, 1);
  assertKeys(callbacks[0], CALLBACK_KEYS, 'a call-back');
  assert.deepEqual(callbacks, h.live.callbacks());

  const ivr = jsonOf(await call(h.port, 'GET', '/api/v1/ivr', h.auth)) as IvrView[];
  assert.equal(ivr.length, 1);
  assertKeys(ivr[0], IVR_KEYS, 'an IVR session');
  assert.deepEqual(ivr, h.live.ivr());

  h.live.callList = [];
  h.live.callbackList = [];
  h.live.ivrList = [];
  for (const path of ['/api/v1/calls', '/api/v1/callbacks', '/api/v1/ivr']) {
    const a = await call(h.port, 'GET', path, h.auth);
    assert.equal(a.status, 200);
    assert.equal(a.text, '[]\n', `${path} with nothing in progress`);
  }
});

test('DELETE /api/v1/calls/{id}: 204 when released (URL-decoded id), 404 otherwise, logged', async (t) => {
  const h = await withAdmin(t);
  const id = '3c2a9e7f41b84c0d@192.168.1.22';
  const a = await call(h.port, 'DELETE', `/api/v1/calls/${encodeURIComponent(id)}`, h.auth);
  assert.equal(a.status, 204);
  assert.equal(a.text, '');
  assert.deepEqual(h.live.released, [id]);
  assert.ok(h.logs.some((l) => l.event === 'admin.call_released' && l.level === 'info' && l.fields.id === id && !l.peer));
  // The raw form works as well ('@' needs no escape in a path).
  const b = await call(h.port, 'DELETE', '/api/v1/calls/a84b4c76e66710@192.168.1.25', h.auth);
  assert.equal(b.status, 204);

  const again = await call(h.port, 'DELETE', `/api/v1/calls/${encodeURIComponent(id)}`, h.auth);
  assert.equal(again.status, 404);
  assert.deepEqual(jsonOf(again), { error: 'no such call' });
  const badEscape = await call(h.port, 'DELETE', '/api/v1/calls/%zz', h.auth);
  assert.equal(badEscape.status, 400);
  assertKeys(jsonOf(badEscape), ['error'], 'an error');
  const get = await call(h.port, 'GET', '/api/v1/calls/x', h.auth);
  assert.equal(get.status, 405);
  assert.equal(get.headers.allow, 'DELETE');
  const nested = await call(h.port, 'DELETE', '/api/v1/calls/a/b', h.auth);
  assert.equal(nested.status, 404);
  const none = await call(h.port, 'DELETE', '/api/v1/calls/', h.auth);
  assert.equal(none.status, 404);
  assert.deepEqual(h.live.released, [id, 'a84b4c76e66710@192.168.1.25']);
});

test('unknown path: 404 JSON; wrong method: 405 with Allow', async (t) => {
  const h = await withAdmin(t);
  for (const path of ['/', '/api/v1', '/api/v1/nothing', '/api/v1/summary/', '/api/v2/summary', '/API/V1/SUMMARY']) {
    const a = await call(h.port, 'GET', path, h.auth);
    assert.equal(a.status, 404, path);
    assert.deepEqual(jsonOf(a), { error: 'not found' });
  }
  for (const [method, path] of [
    ['POST', '/api/v1/summary'],
    ['DELETE', '/api/v1/extensions'],
    ['PUT', '/api/v1/calls'],
    ['POST', '/api/v1/callbacks'],
    ['PATCH', '/api/v1/ivr'],
    ['POST', '/api/v1/events'],
    ['POST', '/metrics'],
  ] as const) {
    const a = await call(h.port, method, path, h.auth);
    assert.equal(a.status, 405, `${method} ${path}`);
    assert.equal(a.headers.allow, 'GET');
    assert.deepEqual(jsonOf(a), { error: 'method not allowed' });
  }
});

// ---- authentication ----

test('a missing, wrong or malformed token gets the same 401 everywhere, peer-logged without the token', async (t) => {
  const h = await withAdmin(t, { deps: { metrics: { contentType: 'text/plain; version=0.0.4; charset=utf-8', render: async () => 'm 1\n' } } });
  const wrongSameLength = h.token.replace(/^./, (c) => (c === 'a' ? 'b' : 'a'));
  const attempts: Array<Record<string, string>> = [
    {},
    { Authorization: `Bearer ${wrongSameLength}` },
    { Authorization: 'Bearer short' },
    { Authorization: `Bearer ${h.token}x` },
    { Authorization: `Basic ${Buffer.from(`admin:${h.token}`).toString('base64')}` },
    { Authorization: 'Bearer' },
    { Authorization: `Bearer ${h.token} ${h.token}` },
    { Authorization: h.token },
    { Authorization: '' },
  ];
  const reference = await call(h.port, 'GET', '/api/v1/summary', attempts[0]!);
  assert.equal(reference.status, 401);
  assert.deepEqual(jsonOf(reference), { error: 'unauthorized' });
  assert.equal(reference.headers['www-authenticate'], 'Bearer realm="minisipserver"');
  const comparable = (a: Answer) => {
    const { date: _date, ...headers } = a.headers;
    return { status: a.status, text: a.text, headers };
  };
  for (const path of ['/api/v1/summary', '/api/v1/extensions', '/api/v1/calls', '/api/v1/events', '/metrics', '/api/v1/nothing', '/']) {
    for (const headers of attempts) {
      const a = await call(h.port, 'GET', path, headers);
      assert.deepEqual(comparable(a), comparable(reference), `GET ${path} with ${JSON.stringify(headers).slice(0, 40)}`);
    }
  }
  const del = await call(h.port, 'DELETE', '/api/v1/calls/3c2a9e7f41b84c0d@192.168.1.22', { Authorization: `Bearer ${wrongSameLength}` });
  assert.deepEqual(comparable(del), comparable(reference));
  assert.deepEqual(h.live.released, [], 'nothing released without the token');

  const failures = h.logs.filter((l) => l.event === 'admin.auth_failed');
  assert.equal(failures.length, 7 * attempts.length + 2);
  assert.ok(failures.every((l) => l.peer && l.level === 'warn' && typeof l.fields.from === 'string'));
  assert.deepEqual([...new Set(failures.map((l) => l.fields.reason))].sort(), ['malformed', 'missing', 'wrong']);
  const logged = JSON.stringify(h.logs);
  assert.ok(!logged.includes(h.token), 'the token is never logged');
  assert.ok(!logged.includes(wrongSameLength), 'nor a wrong one');

  // The right token works with the scheme in any case.
  const ok = await call(h.port, 'GET', '/api/v1/summary', { Authorization: `bearer ${h.token}` });
  assert.equal(ok.status, 200);
});

// ---- /metrics ----

test('GET /metrics: the registry text with its content type, the token unless metricsToken is false, 404 without metrics', async (t) => {
  const text = '# HELP minisipserver_calls_active Calls in progress.\n# TYPE minisipserver_calls_active gauge\nminisipserver_calls_active 2\n';
  const metrics = { contentType: 'text/plain; version=0.0.4; charset=utf-8', render: async () => text };
  const h = await withAdmin(t, { deps: { metrics } });
  const a = await call(h.port, 'GET', '/metrics', h.auth);
  assert.equal(a.status, 200);
  assert.equal(a.headers['content-type'], metrics.contentType);
  assert.equal(a.text, text);
  assert.equal((await call(h.port, 'GET', '/metrics')).status, 401);

  const open = await withAdmin(t, { deps: { metrics, metricsToken: false } });
  const b = await call(open.port, 'GET', '/metrics');
  assert.equal(b.status, 200);
  assert.equal(b.text, text);
  assert.equal((await call(open.port, 'GET', '/api/v1/summary')).status, 401, 'only /metrics is open');

  const none = await withAdmin(t);
  const c = await call(none.port, 'GET', '/metrics', none.auth);
  assert.equal(c.status, 404);
  assertKeys(jsonOf(c), ['error'], 'an error');

  const failing = await withAdmin(t, { deps: { metrics: { contentType: 'text/plain', render: async () => Promise.reject(new Error('collector broke')) } } });
  const d = await call(failing.port, 'GET', '/metrics', failing.auth);
  assert.equal(d.status, 500);
  assert.ok(failing.logs.some((l) => l.event === 'admin.metrics_failed'));
});

// ---- limits ----

test('limits: body size (413), header size (431), request rate per source (429 with Retry-After)', async (t) => {
  const h = await withAdmin(t, { opts: { maxBodyBytes: 100, ratePerSecond: 2, rateBurst: 40 } });
  const small = await call(h.port, 'GET', '/api/v1/summary', { ...h.auth, 'Content-Type': 'text/plain' }, 'x'.repeat(100));
  assert.equal(small.status, 200, 'a body within the limit is read and ignored');

  const declared = await rawExchange(h.port, `GET /api/v1/summary HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${h.token}\r\nContent-Length: 100000\r\n\r\n`);
  assert.match(declared, /^HTTP\/1\.1 413 /);
  assert.match(declared, /\{"error":"request body over 100 bytes"\}/);
  const chunked = await rawExchange(h.port, `POST /api/v1/summary HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${(500).toString(16)}\r\n${'y'.repeat(500)}\r\n`);
  assert.match(chunked, /^HTTP\/1\.1 413 /);
  assert.ok(h.logs.some((l) => l.event === 'admin.body_too_large' && l.peer));

  const big = await call(h.port, 'GET', '/api/v1/summary', { ...h.auth, 'X-Padding': 'p'.repeat(9000) });
  assert.equal(big.status, 431);
  assertKeys(jsonOf(big), ['error'], 'an error');

  // The bucket: 40 at once (some spent above), then 429 with the seconds to wait.
  let limited: Answer | null = null;
  for (let i = 0; i < 60 && !limited; i++) {
    const a = await call(h.port, 'GET', '/api/v1/summary', h.auth);
    if (a.status === 429) limited = a;
    else assert.equal(a.status, 200);
  }
  assert.ok(limited, 'refused within the burst');
  assert.match(String(limited.headers['retry-after']), /^[1-9]\d*$/);
  assert.deepEqual(jsonOf(limited), { error: 'too many requests' });
  const withoutToken = await call(h.port, 'GET', '/api/v1/summary');
  assert.equal(withoutToken.status, 429, 'the rate is counted before the token: guessing is slowed down too');
  assert.equal(h.logs.filter((l) => l.event === 'admin.rate_limited').length, 1, 'logged once while refusing');
});

test('limits: a request whose headers do not arrive in time gets 408 and is closed', async (t) => {
  const h = await withAdmin(t, { opts: { headersTimeoutMs: 300, requestTimeoutMs: 600 } });
  const started = Date.now();
  const answer = await rawExchange(h.port, 'GET /api/v1/summary HTTP/1.1\r\nHost: x\r\n', 8000);
  assert.match(answer, /^HTTP\/1\.1 408 /);
  assert.ok(Date.now() - started < 5000);
});

test('limits: connections beyond maxConnections are closed at once; the others work on', async (t) => {
  const h = await withAdmin(t, { opts: { maxConnections: 2 } });
  const request = `GET /api/v1/summary HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${h.token}\r\n\r\n`;
  const held: net.Socket[] = [];
  t.after(() => held.forEach((s) => s.destroy()));
  for (let i = 0; i < 2; i++) {
    const s = net.connect(h.port, '127.0.0.1');
    held.push(s);
    let got = '';
    s.setEncoding('utf8');
    s.on('data', (c: string) => (got += c));
    s.write(request);
    await waitFor(() => got.includes('\r\n\r\n'), 'an answer on a kept-alive connection');
    assert.match(got, /^HTTP\/1\.1 200 /);
  }
  const third = net.connect(h.port, '127.0.0.1');
  let thirdGot = '';
  let thirdClosed = false;
  third.setEncoding('utf8');
  third.on('data', (c: string) => (thirdGot += c));
  third.on('error', () => {});
  third.on('close', () => (thirdClosed = true));
  third.write(request);
  await waitFor(() => thirdClosed, 'the third connection closed');
  assert.equal(thirdGot, '');
  assert.ok(h.logs.some((l) => l.event === 'admin.connection_limit' && l.peer));
  held[0]!.destroy();
  await waitFor(() => held[0]!.destroyed, 'a connection given back');
  // The server counts the connection gone once it sees it closed: retry briefly.
  let status = 0;
  for (let i = 0; i < 50 && status !== 200; i++) {
    status = (await call(h.port, 'GET', '/api/v1/summary', h.auth).catch(() => ({ status: 0 }) as Answer)).status;
  }
  assert.equal(status, 200);
});

// ---- the event stream ----

test('events: ids, event names, data the SequencedEvent; Last-Event-ID replays exactly what was missed', async (t) => {
  const h = await withAdmin(t);
  const first = await SseReader.open(h.port, h.auth);
  t.after(() => first.close());
  assert.equal(first.status, 200);
  assert.equal(first.res.headers['content-type'], 'text/event-stream; charset=utf-8');
  assert.equal(first.res.headers['cache-control'], 'no-store');
  const sent = [h.live.emit(extensionEvent('104', 'online')), h.live.emit({ type: 'registration', action: 'added', number: '104', contact: 'sip:104@192.168.1.24:5060', address: '192.168.1.24:5060', transport: 'udp', userAgent: '', expiresAt: 0 }), h.live.emit(extensionEvent('104', 'ringing'))];
  await waitFor(() => first.messages.length === 3, () => `3 events, got ${first.messages.length}`);
  assert.deepEqual(first.ids, [1, 2, 3]);
  assert.deepEqual(
    first.messages.map((m) => m.event),
    ['extension', 'registration', 'extension'],
  );
  for (const [i, m] of first.messages.entries()) {
    const data = JSON.parse(m.data) as SequencedEvent;
    assertKeys(data, ['id', 'time', 'event'], 'the data of an event');
    assert.deepEqual(data, sent[i]);
  }
  assert.equal(first.retry, 2000);

  first.close();
  await waitFor(() => h.admin.streamCount === 0, 'the first stream gone');
  h.live.emit(extensionEvent('104', 'talking'));
  h.live.emit(extensionEvent('103', 'online'));
  h.live.emit(extensionEvent('104', 'online'));

  const second = await SseReader.open(h.port, { ...h.auth, 'Last-Event-ID': '3' });
  t.after(() => second.close());
  await waitFor(() => second.messages.length === 3, 'the 3 missed events');
  h.live.emit(extensionEvent('104', 'offline'));
  await waitFor(() => second.messages.length === 4, 'the next live event');
  assert.deepEqual(second.ids, [4, 5, 6, 7], 'exactly the missed ones, then the live ones, no repeat');
  assert.ok(second.messages.every((m) => m.event === 'extension'));

  const third = await SseReader.open(h.port, h.auth, '/api/v1/events?lastEventId=5');
  t.after(() => third.close());
  await waitFor(() => third.messages.length === 2, 'the events after 5');
  assert.deepEqual(third.ids, [6, 7]);

  const current = await SseReader.open(h.port, { ...h.auth, 'Last-Event-ID': '7' });
  t.after(() => current.close());
  h.live.emit(extensionEvent('103', 'offline'));
  await waitFor(() => current.messages.length === 1, 'the next event');
  assert.deepEqual(current.ids, [8]);
  await waitFor(() => second.messages.length === 5 && third.messages.length === 3, 'every stream has event 8');
  assert.deepEqual(second.ids, [4, 5, 6, 7, 8]);

  const snapshot = await call(h.port, 'GET', '/api/v1/extensions', h.auth);
  assert.equal(snapshot.headers['x-last-event-id'], '8');

  const bad = await call(h.port, 'GET', '/api/v1/events', { ...h.auth, 'Last-Event-ID': 'abc' });
  assert.equal(bad.status, 400);
  assertKeys(jsonOf(bad), ['error'], 'an error');
});

test('events: a Last-Event-ID no longer in the backlog, or from another run, gets a reset', async (t) => {
  const live = new FakeLive({ backlog: 5 });
  for (let i = 0; i < 10; i++) live.emit(extensionEvent('101', i % 2 ? 'online' : 'ringing'));
  const h = await withAdmin(t, { live });

  const gap = await SseReader.open(h.port, { ...h.auth, 'Last-Event-ID': '2' });
  t.after(() => gap.close());
  await waitFor(() => gap.messages.length === 1, 'the reset');
  assert.deepEqual(gap.messages[0], { id: '10', event: 'reset', data: '{"reason":"backlog"}' });
  live.emit(extensionEvent('101', 'offline'));
  await waitFor(() => gap.messages.length === 2, 'the next live event');
  assert.equal(gap.messages[1]!.id, '11');

  // The backlog holds 7..11 now: 6 is the oldest id a client may name.
  const kept = await SseReader.open(h.port, { ...h.auth, 'Last-Event-ID': '6' });
  t.after(() => kept.close());
  await waitFor(() => kept.messages.length === 5, 'events 7..11');
  assert.deepEqual(kept.ids, [7, 8, 9, 10, 11]);
  const lost = await SseReader.open(h.port, { ...h.auth, 'Last-Event-ID': '5' });
  t.after(() => lost.close());
  await waitFor(() => lost.messages.length === 1, 'the reset');
  assert.equal(lost.messages[0]!.event, 'reset');

  // An id this server never gave (it restarted since): reset, with the current id.
  const future = await SseReader.open(h.port, { ...h.auth, 'Last-Event-ID': '500' });
  t.after(() => future.close());
  await waitFor(() => future.messages.length === 1, 'the reset');
  assert.deepEqual(future.messages[0], { id: '11', event: 'reset', data: '{"reason":"unknown"}' });
});

test('events: a replay larger than the buffer limit reaches a reader that reads; an unknown newest id gives a reset without id', async (t) => {
  const live = new FakeLive({ backlog: 100 });
  const h = await withAdmin(t, { live, opts: { sseMaxBufferBytes: 64 * 1024, sseStallMs: 5000 } });
  for (let i = 0; i < 40; i++) live.emit(bigCallEvent(i, 32 * 1024));
  const r = await SseReader.open(h.port, { ...h.auth, 'Last-Event-ID': '0' }, '/api/v1/events', false);
  t.after(() => r.close());
  await waitFor(() => r.messages.length === 40, () => `40 replayed events, got ${r.messages.length}`);
  assert.equal(r.ended, false);
  assert.ok(!h.logs.some((l) => l.event === 'admin.events_slow_client'));

  // A source without lastId whose backlog lost its start: the newest id is unknown until an event.
  const lossy = new FakeLive({ backlog: 2 });
  for (let i = 0; i < 5; i++) lossy.emit(extensionEvent('101', 'online'));
  const blind: LiveSource = {
    summary: () => lossy.summary(),
    extensions: () => lossy.extensions(),
    calls: () => lossy.calls(),
    callbacks: () => lossy.callbacks(),
    ivr: () => lossy.ivr(),
    releaseCall: (id) => lossy.releaseCall(id),
    subscribe: (l) => lossy.subscribe(l),
    since: (id) => lossy.since(id),
  };
  const b = await withAdmin(t, { live: blind as FakeLive });
  assert.equal((await call(b.port, 'GET', '/api/v1/calls', b.auth)).headers['x-last-event-id'], undefined);
  const gap = await SseReader.open(b.port, { ...b.auth, 'Last-Event-ID': '1' });
  t.after(() => gap.close());
  await waitFor(() => gap.messages.length === 1, 'the reset');
  assert.deepEqual(gap.messages[0], { event: 'reset', data: '{"reason":"backlog"}' });
  lossy.emit(extensionEvent('101', 'offline'));
  await waitFor(() => gap.messages.length === 2, 'the next event');
  assert.equal(gap.messages[1]!.id, '6');
  assert.equal((await call(b.port, 'GET', '/api/v1/calls', b.auth)).headers['x-last-event-id'], '6');
});

test('events: heartbeat comments while nothing happens; the request time limits do not end a stream', async (t) => {
  const h = await withAdmin(t, { opts: { heartbeatMs: 60, headersTimeoutMs: 200, requestTimeoutMs: 300 } });
  const r = await SseReader.open(h.port, h.auth);
  // 40 heartbeats: 2.4 s, over the 300 ms request limit and two of node's checks of it (every second).
  await waitFor(() => r.comments >= 40 || r.ended, 'forty heartbeats', 10_000);
  assert.equal(r.ended, false, 'the stream is still open');
  assert.equal(r.messages.length, 0);
  h.live.emit(extensionEvent('101', 'online'));
  await waitFor(() => r.messages.length === 1, 'an event after the quiet time');
  r.close();
  await waitFor(() => h.admin.streamCount === 0, 'the stream gone');
});

test('events: a reader that does not read is cut off; the server and the other streams go on', async (t) => {
  const h = await withAdmin(t, { opts: { sseMaxBufferBytes: 256 * 1024, sseStallMs: 200 } });
  const fast = await SseReader.open(h.port, h.auth, '/api/v1/events', false);
  const slow = await SseReader.open(h.port, h.auth, '/api/v1/events', false);
  t.after(() => {
    fast.close();
    slow.close();
  });
  slow.res.pause();
  slow.res.socket.pause();
  const size = 64 * 1024;
  let sent = 0;
  await keepAlive(
    (async () => {
      while (h.admin.streamCount > 1) {
        assert.ok(sent < 4000, `the slow reader is still connected after ${sent} events of ${size} bytes`);
        for (let i = 0; i < 4; i++) h.live.emit(bigCallEvent(sent++, size));
        await new Promise((r) => setImmediate(r));
      }
    })(),
    'the slow reader cut off',
    20_000,
  );
  const cut = h.logs.find((l) => l.event === 'admin.events_slow_client');
  assert.ok(cut && cut.peer, 'logged');
  assert.ok((cut.fields.waitingBytes as number) > 256 * 1024);
  // The server answers meanwhile, the fast reader got every event, in order, and stays.
  assert.equal((await call(h.port, 'GET', '/api/v1/summary', h.auth)).status, 200);
  await waitFor(() => fast.messages.length === sent, () => `all ${sent} events at the fast reader, got ${fast.messages.length}`, 15_000);
  assert.deepEqual(fast.ids, Array.from({ length: sent }, (_, i) => i + 1));
  assert.equal(fast.ended, false);
  assert.equal(h.admin.streamCount, 1);
  // The slow one finds its stream cut when it reads again.
  slow.res.socket.resume();
  slow.res.resume();
  await waitFor(() => slow.ended, 'the slow reader sees its stream end', 15_000);
  assert.ok(slow.messages.length < sent);
});

test('events: at most maxStreams streams (503); close() ends every stream and closes the listener', async (t) => {
  const h = await startAdmin({ opts: { maxStreams: 2 } });
  let closed = false;
  t.after(() => (closed ? undefined : h.close()));
  const a = await SseReader.open(h.port, h.auth);
  const b = await SseReader.open(h.port, h.auth);
  const c = await call(h.port, 'GET', '/api/v1/events', h.auth);
  assert.equal(c.status, 503);
  assertKeys(jsonOf(c), ['error'], 'an error');
  assert.ok(h.logs.some((l) => l.event === 'admin.events_limit' && l.peer));
  // A reader that does not read does not hold close() up beyond its bound.
  b.res.pause();
  b.res.socket.pause();
  for (let i = 0; i < 4; i++) h.live.emit(bigCallEvent(i, 60_000));
  assert.equal(h.live.listenerCount, 1);
  const started = Date.now();
  await keepAlive(h.admin.close(500), 'close()', 5000);
  closed = true;
  assert.ok(Date.now() - started < 3000, 'close() is bounded');
  await waitFor(() => a.ended, 'the stream ended');
  assert.equal(h.admin.streamCount, 0);
  assert.equal(h.live.listenerCount, 0, 'unsubscribed from the live state');
  await assert.rejects(call(h.port, 'GET', '/api/v1/summary', h.auth), /ECONNREFUSED/);
  await h.admin.close();
});

// ---- starting ----

test('start(): a port in use or an unusable address resolves null with a warning ("": off); the rest runs on', async () => {
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  try {
    const port = (blocker.address() as net.AddressInfo).port;
    for (const listen of [`127.0.0.1:${port}`, '192.0.2.1:8080', 'not an address', '127.0.0.1:70000', '']) {
      const live = sampleLive();
      const logs: LogLine[] = [];
      const admin = new AdminServer({ live, token: 't'.repeat(64), metricsToken: true, version: '0.1.0', ...logDeps(logs) }, { listen });
      assert.equal(await keepAlive(admin.start(), `start() on ${listen}`), null, listen);
      const said = logs.find((l) => l.level === (listen === '' ? 'info' : 'warn'));
      assert.ok(said && ['admin.port_unavailable', 'admin.listen_invalid', 'admin.off'].includes(said.event), `${listen}: ${JSON.stringify(logs)}`);
      assert.equal(live.listenerCount, 0, 'no subscription left behind');
      await admin.close();
    }
  } finally {
    await new Promise<void>((r) => blocker.close(() => r()));
  }
});

test('start(): the URL to reach (a wildcard address is given as loopback), IPv6 brackets', async (t) => {
  const any = await withAdmin(t, { opts: { listen: '0.0.0.0:0' } });
  assert.equal(any.url, `http://127.0.0.1:${any.port}`);
  assert.ok(any.logs.some((l) => l.event === 'admin.exposed' && l.level === 'warn'), 'listening beyond loopback is warned about');
  assert.equal((await call(any.port, 'GET', '/api/v1/summary', any.auth)).status, 200);
  const local = await withAdmin(t);
  assert.equal(local.url, `http://127.0.0.1:${local.port}`);
  assert.ok(!local.logs.some((l) => l.event === 'admin.exposed'));
  const info = local.logs.find((l) => l.event === 'admin.listening');
  assert.ok(info && info.fields.url === local.url);
  assert.ok(!JSON.stringify(local.logs).includes(local.token));
  const v6 = new AdminServer({ live: sampleLive(), token: 't'.repeat(64), metricsToken: true, version: '0.1.0', ...logDeps([]) }, { listen: '[::1]:0' });
  t.after(() => v6.close());
  const r = await v6.start();
  if (r) assert.equal(r.url, `http://[::1]:${r.port}`); // null where the host has no IPv6
});

// ---- docs/ADMIN.md ----

test('docs/ADMIN.md: each example answer is what the server answers for the sample data', async (t) => {
  const doc = readFileSync(join(process.cwd(), 'docs/ADMIN.md'), 'utf8');
  const examples = [...doc.matchAll(/<!-- example: GET (\S+) -->\s*```json\n([\s\S]*?)```/g)];
  const paths = examples.map((m) => m[1]);
  assert.deepEqual(paths, ['/api/v1/summary', '/api/v1/extensions', '/api/v1/extensions?state=online', '/api/v1/calls', '/api/v1/callbacks', '/api/v1/ivr']);
  const h = await withAdmin(t);
  for (const [, path, text] of examples) {
    const a = await call(h.port, 'GET', path!, h.auth);
    assert.equal(a.status, 200);
    assert.deepEqual(JSON.parse(text!), JSON.parse(a.text), `the example of GET ${path}`);
  }
  // The transcript of the event stream: each message's id and name agree with its data.
  const transcript = /<!-- example: events -->\s*```text\n([\s\S]*?)```/.exec(doc);
  assert.ok(transcript, 'an event stream transcript');
  let count = 0;
  for (const block of transcript[1]!.split('\n\n')) {
    const id = /^id: (\d+)$/m.exec(block)?.[1];
    const event = /^event: (\S+)$/m.exec(block)?.[1];
    const data = /^data: (.*)$/m.exec(block)?.[1];
    if (!data || event === 'reset') continue;
    const seq = JSON.parse(data) as SequencedEvent;
    assert.equal(String(seq.id), id);
    assert.equal(seq.event.type, event);
    assertKeys(seq, ['id', 'time', 'event'], 'an event in the transcript');
    count++;
  }
  assert.ok(count >= 5, 'the transcript shows several events');
});
