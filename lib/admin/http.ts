/**
 * The admin HTTP server of `serve` (docs/ADMIN.md): a JSON API over the live state, a Server-Sent
 * Events stream of its changes and Prometheus' /metrics, on `admin.listen`. node:http only.
 *
 * Every request needs `Authorization: Bearer <token>` (compared in constant time); a wrong,
 * missing or malformed one gets the very same 401. Limits: connections, header size and count,
 * header and request time, body size, a token bucket per source address, event streams at once
 * and the bytes a stream may have waiting for a slow reader (beyond: the stream is cut, never
 * buffered without bound). A port in use is logged and the server runs on without the API.
 */
import http from 'node:http';
import type { EventEmitter } from 'node:events';
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP, type Socket } from 'node:net';
import type { ExtensionState, LiveSource, SequencedEvent } from './types.js';

type Level = 'debug' | 'info' | 'warn' | 'error';

export interface AdminMetrics {
  /** Content-Type of the exposition (prom-client's `register.contentType`). */
  contentType: string;
  render(): Promise<string>;
}

export interface AdminServerDeps {
  live: LiveSource;
  /** Absent: GET /metrics answers 404. */
  metrics?: AdminMetrics;
  /** The bearer token (loadOrCreateToken). */
  token: string;
  /** admin.metricsToken: false serves /metrics without the token. */
  metricsToken: boolean;
  log(level: Level, event: string, fields: Record<string, unknown>): void;
  /** Events a stranger can cause (bad token, limits): rate-limited. */
  peerLog(level: Level, event: string, fields: Record<string, unknown>): void;
  version: string;
}

export interface AdminServerOptions {
  /** host:port (`[::1]:8080` for IPv6); port 0 picks a free one; "" is off (start() resolves null). */
  listen: string;
  /** TCP connections at once; more are closed at once. Default 64. */
  maxConnections?: number;
  /** Request body bytes (no route takes a body); more: 413. Default 4096. */
  maxBodyBytes?: number;
  /** Bytes of the request line and headers together; more: 431. Default 8192. */
  maxHeaderBytes?: number;
  /** Header lines kept of a request (the rest are ignored). Default 64. */
  maxHeadersCount?: number;
  /** Requests per second per source address (token bucket); 0: no limit. Default 50. */
  ratePerSecond?: number;
  /** Bucket size: requests a source may make at once. Default 100. */
  rateBurst?: number;
  /** Event streams open at once; more: 503. Default 32 (half of maxConnections). */
  maxStreams?: number;
  /**
   * Bytes an event stream may have waiting for its reader: a stream above this for sseStallMs
   * without draining, or above twice this (plus its replay), is cut. Default 1 MiB.
   */
  sseMaxBufferBytes?: number;
  /** See sseMaxBufferBytes. Default 2000. */
  sseStallMs?: number;
  /** Heartbeat comment on every event stream this often. Default 15000. */
  heartbeatMs?: number;
  /** Time to receive the request line and headers; then 408. Default 10000. */
  headersTimeoutMs?: number;
  /** Time to receive a whole request; then 408. Default 30000. */
  requestTimeoutMs?: number;
  /** An idle keep-alive connection is closed after this. Default 5000. */
  keepAliveTimeoutMs?: number;
}

export interface AdminStartInfo {
  /** Where clients reach the API (a wildcard listen address is given as the loopback one). */
  url: string;
  port: number;
}

const JSON_TYPE = 'application/json; charset=utf-8';
const REALM = 'minisipserver';
const STATES: readonly ExtensionState[] = ['offline', 'online', 'ringing', 'talking'];
const CALLS_PREFIX = '/api/v1/calls/';

interface Stream {
  res: http.ServerResponse;
  from: string;
  /** The id of the last event written to it (replayed events and live ones never repeat). */
  sentUpTo: number;
  /** Since when (ms) more than sseMaxBufferBytes wait to be sent; 0: not now. */
  overSince: number;
  /** Bytes waiting that cut the stream at once. */
  cap: number;
}

/** `host:port` for a log line or a URL. */
function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** `host:port` or `[v6]:port` → its parts, or null. */
export function parseListen(listen: string): { host: string; port: number } | null {
  const m = /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/.exec(listen) ?? /^([0-9.]+|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(listen);
  if (!m) return null;
  const port = Number(m[2]);
  if (port > 65535) return null;
  return { host: m[1]!, port };
}

function plainAddress(address: string | undefined): string {
  if (!address) return '?';
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address === 'localhost';
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Per-source token buckets, bounded in number. */
class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number; limited: boolean }>();
  private static readonly MAX_SOURCES = 4096;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
  ) {}

  /** 0 when the request may go on; otherwise the whole seconds to wait, and whether this is the first refusal in a row. */
  take(key: string, now: number): { wait: number; first: boolean } {
    if (this.rate <= 0) return { wait: 0, first: false };
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= RateLimiter.MAX_SOURCES) this.sweep(now);
      b = { tokens: this.burst, at: now, limited: false };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) * this.rate) / 1000);
      b.at = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      b.limited = false;
      return { wait: 0, first: false };
    }
    const first = !b.limited;
    b.limited = true;
    return { wait: Math.max(1, Math.ceil((1 - b.tokens) / this.rate)), first };
  }

  /** Forgets full buckets (they behave like new ones), then the oldest if there are still too many. */
  private sweep(now: number): void {
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((now - b.at) * this.rate) / 1000 >= this.burst) this.buckets.delete(k);
    }
    for (const k of this.buckets.keys()) {
      if (this.buckets.size < RateLimiter.MAX_SOURCES / 2) break;
      this.buckets.delete(k);
    }
  }
}

export class AdminServer {
  private server: http.Server | null = null;
  private readonly streams = new Set<Stream>();
  private heartbeat: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | null;
  /** The id of the newest event of the live state; null while unknown (see lastEventIdNow). */
  private lastSeen: number | null;
  private readonly expectedToken: Buffer;
  private readonly limiter: RateLimiter;
  private readonly unauthorizedBody = JSON.stringify({ error: 'unauthorized' }) + '\n';
  private readonly o: Required<Omit<AdminServerOptions, 'listen'>> & { listen: string };
  private closed = false;

  constructor(
    private readonly deps: AdminServerDeps,
    opts: AdminServerOptions,
  ) {
    const maxConnections = opts.maxConnections ?? 64;
    this.o = {
      listen: opts.listen,
      maxConnections,
      maxBodyBytes: opts.maxBodyBytes ?? 4096,
      maxHeaderBytes: opts.maxHeaderBytes ?? 8192,
      maxHeadersCount: opts.maxHeadersCount ?? 64,
      ratePerSecond: opts.ratePerSecond ?? 50,
      rateBurst: opts.rateBurst ?? 100,
      maxStreams: opts.maxStreams ?? Math.max(1, Math.floor(maxConnections / 2)),
      sseMaxBufferBytes: opts.sseMaxBufferBytes ?? 1024 * 1024,
      sseStallMs: opts.sseStallMs ?? 2000,
      heartbeatMs: opts.heartbeatMs ?? 15_000,
      headersTimeoutMs: opts.headersTimeoutMs ?? 10_000,
      requestTimeoutMs: opts.requestTimeoutMs ?? 30_000,
      keepAliveTimeoutMs: opts.keepAliveTimeoutMs ?? 5000,
    };
    this.expectedToken = sha256(deps.token);
    this.limiter = new RateLimiter(this.o.ratePerSecond, Math.max(1, this.o.rateBurst));
    // Followed from construction on, so that every snapshot can say which event it includes.
    this.lastSeen = lastEventIdNow(deps.live);
    this.unsubscribe = deps.live.subscribe((e) => this.onEvent(e));
  }

  /** Event streams open now. */
  get streamCount(): number {
    return this.streams.size;
  }

  /** The port listened on, or 0. */
  get port(): number {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : 0;
  }

  /**
   * Listens on `listen`. Null (after a warning) when the address is unusable or the port taken:
   * the rest of the server runs on without the API.
   */
  async start(): Promise<AdminStartInfo | null> {
    if (this.closed || this.server) throw new Error('AdminServer.start called twice or after close');
    if (this.o.listen === '') {
      this.deps.log('info', 'admin.off', { reason: 'admin.listen is ""' });
      this.stopFeed();
      return null;
    }
    const where = parseListen(this.o.listen);
    if (!where) {
      this.deps.log('warn', 'admin.listen_invalid', { listen: this.o.listen, hint: 'admin.listen must be host:port such as 127.0.0.1:8080; the server runs without the admin API' });
      this.stopFeed();
      return null;
    }
    const requestTimeout = this.o.requestTimeoutMs;
    const server = http.createServer(
      {
        maxHeaderSize: this.o.maxHeaderBytes,
        headersTimeout: requestTimeout > 0 ? Math.min(this.o.headersTimeoutMs, requestTimeout) : this.o.headersTimeoutMs,
        requestTimeout,
        keepAliveTimeout: this.o.keepAliveTimeoutMs,
        // How often the header and request times are checked (an unref'd timer in node).
        connectionsCheckingInterval: 1000,
      },
      (req, res) => this.onRequest(req, res),
    );
    server.maxHeadersCount = this.o.maxHeadersCount;
    server.maxConnections = this.o.maxConnections;
    server.keepAliveTimeout = this.o.keepAliveTimeoutMs;
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.onClientError(err, socket));
    (server as unknown as EventEmitter).on('drop', (data?: { remoteAddress?: string; remotePort?: number }) => {
      this.deps.peerLog('warn', 'admin.connection_limit', {
        from: data?.remoteAddress ? hostPort(plainAddress(data.remoteAddress), data.remotePort ?? 0) : '?',
        maxConnections: this.o.maxConnections,
      });
    });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: where.host, port: where.port }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      server.close();
      this.deps.log('warn', 'admin.port_unavailable', {
        listen: this.o.listen,
        error: (err as Error).message,
        hint: 'another program holds this address, or it is not one of this machine: free it or set admin.listen ("" turns the admin API off); the server runs without it',
      });
      this.stopFeed();
      return null;
    }
    server.on('error', (err) => this.deps.log('warn', 'admin.socket_error', { error: err.message }));
    this.server = server;
    const a = server.address();
    const bound = a && typeof a === 'object' ? a.address : where.host;
    const port = a && typeof a === 'object' ? a.port : where.port;
    const reachable = bound === '0.0.0.0' ? '127.0.0.1' : bound === '::' ? '::1' : bound;
    const url = `http://${hostPort(reachable, port)}`;
    this.deps.log('info', 'admin.listening', { url, listen: this.o.listen, version: this.deps.version, metricsToken: this.deps.metricsToken });
    if (!isLoopback(bound)) {
      this.deps.log('warn', 'admin.exposed', {
        listen: this.o.listen,
        hint: 'the admin API is reachable from other hosts over plain HTTP: the token crosses the network readable; keep it on 127.0.0.1, or behind a VPN or a TLS proxy',
      });
    }
    return { url, port };
  }

  /** Ends the event streams, stops listening and closes every connection (at most `graceMs` later). */
  async close(graceMs = 1000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopFeed();
    for (const s of this.streams) s.res.end();
    this.streams.clear();
    this.setHeartbeat();
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      let t: NodeJS.Timeout | undefined;
      server.close(() => {
        clearTimeout(t);
        resolve();
      });
      server.closeIdleConnections();
      t = setTimeout(() => server.closeAllConnections(), graceMs);
      t.unref();
    });
    this.server = null;
  }

  private stopFeed(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
  }

  // ---- requests ----

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const address = plainAddress(req.socket.remoteAddress);
    const from = hostPort(address, req.socket.remotePort ?? 0);
    if (this.closed) return this.error(res, 503, 'shutting down', { Connection: 'close' });
    const limited = this.limiter.take(address, Date.now());
    if (limited.wait > 0) {
      if (limited.first) this.deps.peerLog('info', 'admin.rate_limited', { from, ratePerSecond: this.o.ratePerSecond });
      return this.error(res, 429, 'too many requests', { 'Retry-After': String(limited.wait) });
    }
    const declared = req.headers['content-length'];
    const hasBody = req.headers['transfer-encoding'] !== undefined || (declared !== undefined && declared !== '0');
    if (!hasBody) return this.dispatch(req, res, from);
    if (declared !== undefined && !(Number(declared) <= this.o.maxBodyBytes)) return this.tooLarge(res, from);
    // No route takes a body; one within the limit is read (and dropped) so the connection can be reused.
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > this.o.maxBodyBytes && !over) {
        over = true;
        req.pause();
        this.tooLarge(res, from);
      }
    });
    req.on('end', () => {
      if (!over) this.dispatch(req, res, from);
    });
    req.on('error', () => res.destroy());
  }

  private tooLarge(res: http.ServerResponse, from: string): void {
    this.deps.peerLog('info', 'admin.body_too_large', { from, maxBodyBytes: this.o.maxBodyBytes });
    this.error(res, 413, `request body over ${this.o.maxBodyBytes} bytes`, { Connection: 'close' });
  }

  private dispatch(req: http.IncomingMessage, res: http.ServerResponse, from: string): void {
    try {
      this.route(req, res, from);
    } catch (err) {
      this.deps.log('error', 'admin.internal_error', { path: pathOf(req.url), error: (err as Error).stack ?? String(err) });
      if (!res.headersSent) this.error(res, 500, 'internal error');
      else res.destroy();
    }
  }

  private route(req: http.IncomingMessage, res: http.ServerResponse, from: string): void {
    const target = req.url ?? '/';
    const q = target.indexOf('?');
    const path = q < 0 ? target : target.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : target.slice(q + 1));
    const method = req.method ?? 'GET';

    if (!(path === '/metrics' && !this.deps.metricsToken) && !this.authorized(req, from, path)) {
      res.writeHead(401, {
        'Content-Type': JSON_TYPE,
        'Content-Length': Buffer.byteLength(this.unauthorizedBody),
        'Cache-Control': 'no-store',
        'WWW-Authenticate': `Bearer realm="${REALM}"`,
      });
      res.end(this.unauthorizedBody);
      return;
    }

    const live = this.deps.live;
    switch (path) {
      case '/api/v1/summary':
        if (method !== 'GET') return this.notAllowed(res, 'GET');
        return this.snapshot(res, live.summary());
      case '/api/v1/extensions': {
        if (method !== 'GET') return this.notAllowed(res, 'GET');
        const stateParam = query.get('state');
        let states: Set<string> | null = null;
        if (stateParam !== null && stateParam !== '') {
          states = new Set(stateParam.split(','));
          for (const s of states) {
            if (!STATES.includes(s as ExtensionState)) return this.error(res, 400, `state must be ${STATES.join(', ')} (or several, comma-separated), got ${s}`);
          }
        }
        const needle = (query.get('q') ?? '').toLowerCase();
        const all = live.extensions();
        const extensions =
          states === null && needle === ''
            ? all
            : all.filter((e) => (states === null || states.has(e.state)) && (needle === '' || e.number.toLowerCase().includes(needle) || e.name.toLowerCase().includes(needle)));
        return this.snapshot(res, extensions);
      }
      case '/api/v1/calls':
        if (method !== 'GET') return this.notAllowed(res, 'GET');
        return this.snapshot(res, live.calls());
      case '/api/v1/callbacks':
        if (method !== 'GET') return this.notAllowed(res, 'GET');
        return this.snapshot(res, live.callbacks());
      case '/api/v1/ivr':
        if (method !== 'GET') return this.notAllowed(res, 'GET');
        return this.snapshot(res, live.ivr());
      case '/api/v1/events':
        if (method !== 'GET') return this.notAllowed(res, 'GET');
        return this.openStream(req, res, query, from);
      case '/metrics':
        if (method !== 'GET') return this.notAllowed(res, 'GET');
        return this.serveMetrics(res);
    }
    if (path.startsWith(CALLS_PREFIX) && path.length > CALLS_PREFIX.length && !path.includes('/', CALLS_PREFIX.length)) {
      if (method !== 'DELETE') return this.notAllowed(res, 'DELETE');
      let id: string;
      try {
        id = decodeURIComponent(path.slice(CALLS_PREFIX.length));
      } catch {
        return this.error(res, 400, 'the call id is not valid percent-encoding');
      }
      if (!live.releaseCall(id)) return this.error(res, 404, 'no such call');
      this.deps.log('info', 'admin.call_released', { id, from });
      res.writeHead(204, { 'Cache-Control': 'no-store' });
      res.end();
      return;
    }
    return this.error(res, 404, 'not found');
  }

  /** The bearer token, in constant time; a failure is peer-logged with its reason (never the token). */
  private authorized(req: http.IncomingMessage, from: string, path: string): boolean {
    const header = req.headers.authorization;
    let reason: string;
    if (header === undefined) reason = 'missing';
    else {
      const m = /^Bearer +([\x21-\x7e]+) *$/i.exec(header);
      if (!m) reason = 'malformed';
      else if (timingSafeEqual(sha256(m[1]!), this.expectedToken)) return true;
      else reason = 'wrong';
    }
    this.deps.peerLog('warn', 'admin.auth_failed', { from, reason, path: path.slice(0, 100) });
    return false;
  }

  private serveMetrics(res: http.ServerResponse): void {
    const metrics = this.deps.metrics;
    if (!metrics) return this.error(res, 404, 'metrics are not available');
    metrics.render().then(
      (text) => {
        if (res.destroyed) return;
        res.writeHead(200, { 'Content-Type': metrics.contentType, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
        res.end(text);
      },
      (err: unknown) => {
        this.deps.log('warn', 'admin.metrics_failed', { error: (err as Error)?.message ?? String(err) });
        if (!res.destroyed) this.error(res, 500, 'metrics failed');
      },
    );
  }

  /**
   * A snapshot, with the id of the newest event it includes (X-Last-Event-Id, when known): a
   * client can ask the event stream for what came after it (Last-Event-ID), missing nothing.
   */
  private snapshot(res: http.ServerResponse, body: unknown): void {
    this.json(res, 200, body, this.lastSeen !== null ? { 'X-Last-Event-Id': String(this.lastSeen) } : undefined);
  }

  private json(res: http.ServerResponse, status: number, body: unknown, extra?: Record<string, string>): void {
    const text = JSON.stringify(body) + '\n';
    res.writeHead(status, {
      'Content-Type': JSON_TYPE,
      'Content-Length': Buffer.byteLength(text),
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      ...extra,
    });
    res.end(text);
  }

  private error(res: http.ServerResponse, status: number, message: string, extra?: Record<string, string>): void {
    this.json(res, status, { error: message }, extra);
  }

  private notAllowed(res: http.ServerResponse, allow: string): void {
    this.error(res, 405, 'method not allowed', { Allow: allow });
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    const code = err.code ?? '';
    const pending = (socket as unknown as { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
    if (code === 'ECONNRESET' || !socket.writable || (pending && pending.headersSent)) {
      socket.destroy();
      return;
    }
    const status = code === 'HPE_HEADER_OVERFLOW' ? 431 : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const message = status === 431 ? `request headers over ${this.o.maxHeaderBytes} bytes` : status === 408 ? 'request timeout' : 'bad request';
    this.deps.peerLog('info', 'admin.bad_request', { from: hostPort(plainAddress(socket.remoteAddress), socket.remotePort ?? 0), status, error: code || err.message });
    const body = JSON.stringify({ error: message }) + '\n';
    socket.end(
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: ${JSON_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n${body}`,
    );
  }

  // ---- the event stream ----

  private openStream(req: http.IncomingMessage, res: http.ServerResponse, query: URLSearchParams, from: string): void {
    if (this.streams.size >= this.o.maxStreams) {
      this.deps.peerLog('warn', 'admin.events_limit', { from, maxStreams: this.o.maxStreams });
      return this.error(res, 503, `too many event streams (at most ${this.o.maxStreams})`, { 'Retry-After': '5' });
    }
    const header = req.headers['last-event-id'];
    const raw = typeof header === 'string' && header.trim() !== '' ? header.trim() : query.get('lastEventId');
    let lastId: number | null = null;
    if (raw !== null && raw !== '') {
      if (!/^\d{1,15}$/.test(raw)) return this.error(res, 400, 'Last-Event-ID must be the id of an event (a whole number)');
      lastId = Number(raw);
    }

    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Accel-Buffering': 'no',
      // The socket is closed with the stream: a stream's connection is never reused.
      Connection: 'close',
    });
    req.socket.setNoDelay(true);
    req.socket.setKeepAlive(true, 30_000);
    const stream: Stream = { res, from, sentUpTo: this.lastSeen ?? 0, overSince: 0, cap: 0 };
    let head = 'retry: 2000\n\n';
    let replayed = 0;
    let reset: string | null = null;
    if (lastId !== null) {
      // since() and joining the stream happen in one turn: no event can fall between them.
      const known = this.lastSeen;
      const replay = known !== null && lastId > known ? null : this.deps.live.since(lastId);
      if (replay === null) {
        reset = known !== null && lastId > known ? 'unknown' : 'backlog';
        head += frame(known, 'reset', JSON.stringify({ reason: reset }));
      } else {
        for (const e of replay) {
          head += eventFrame(e);
          if (e.id > stream.sentUpTo) stream.sentUpTo = e.id;
          if (this.lastSeen === null || e.id > this.lastSeen) this.lastSeen = e.id;
        }
        replayed = replay.length;
      }
    }
    // A replay may be large: it is allowed on top of the usual limit while it is being read.
    stream.cap = 2 * this.o.sseMaxBufferBytes + head.length;
    this.streams.add(stream);
    this.setHeartbeat();
    res.on('drain', () => {
      stream.overSince = 0;
    });
    res.on('close', () => {
      this.streams.delete(stream);
      this.setHeartbeat();
      this.deps.log('debug', 'admin.events_closed', { from });
    });
    this.deps.log('debug', 'admin.events_opened', { from, lastEventId: lastId, replayed, ...(reset ? { reset } : {}) });
    this.write(stream, head);
  }

  private onEvent(e: SequencedEvent): void {
    if (this.lastSeen === null || e.id > this.lastSeen) this.lastSeen = e.id;
    if (this.streams.size === 0) return;
    const text = eventFrame(e);
    for (const s of this.streams) {
      if (e.id <= s.sentUpTo) continue;
      s.sentUpTo = e.id;
      this.write(s, text);
    }
  }

  /**
   * Writes to a stream. A reader that keeps more than sseMaxBufferBytes waiting for sseStallMs
   * (the socket never drained meanwhile), or lets its stream's cap pile up, is cut off: the memory
   * a stream holds stays bounded, and the client reconnects with Last-Event-ID.
   */
  private write(s: Stream, text: string): void {
    if (s.res.destroyed) return;
    s.res.write(text);
    const waiting = s.res.writableLength;
    if (waiting <= this.o.sseMaxBufferBytes) {
      s.overSince = 0;
      return;
    }
    const now = Date.now();
    if (s.overSince === 0) s.overSince = now;
    if (waiting <= s.cap && now - s.overSince < this.o.sseStallMs) return;
    this.deps.peerLog('warn', 'admin.events_slow_client', {
      from: s.from,
      waitingBytes: waiting,
      limit: this.o.sseMaxBufferBytes,
      hint: 'the client does not keep up with its event stream: disconnected (it may reconnect with Last-Event-ID)',
    });
    this.streams.delete(s);
    this.setHeartbeat();
    s.res.destroy();
  }

  /** One heartbeat timer for all streams, running only while there are some. */
  private setHeartbeat(): void {
    if (this.streams.size > 0 && !this.heartbeat && this.o.heartbeatMs > 0) {
      this.heartbeat = setInterval(() => {
        for (const s of this.streams) this.write(s, ': heartbeat\n\n');
      }, this.o.heartbeatMs);
      this.heartbeat.unref();
    } else if (this.streams.size === 0 && this.heartbeat) {
      clearInterval(this.heartbeat);
      this.heartbeat = undefined;
    }
  }
}

function pathOf(url: string | undefined): string {
  const u = url ?? '/';
  const q = u.indexOf('?');
  return (q < 0 ? u : u.slice(0, q)).slice(0, 100);
}

function frame(id: number | null, event: string, data: string): string {
  return `${id !== null ? `id: ${id}\n` : ''}event: ${event}\ndata: ${data}\n\n`;
}

function eventFrame(e: SequencedEvent): string {
  return frame(e.id, e.event.type, JSON.stringify(e));
}

/**
 * The newest event id of `live`: its `lastId` when it has one (LiveState does), else from
 * since(0) when that still holds the whole history; null when it cannot be known.
 */
function lastEventIdNow(live: LiveSource): number | null {
  const own = (live as { lastId?: unknown }).lastId;
  if (typeof own === 'number' && Number.isInteger(own) && own >= 0) return own;
  const all = live.since(0);
  if (all === null) return null;
  return all.length > 0 ? all[all.length - 1]!.id : 0;
}
