/**
 * A client of the admin API of a running `minisipserver serve` (docs/ADMIN.md): the JSON
 * snapshots, DELETE of a call, and the Server-Sent Events stream with reconnection. Used by
 * `minisipserver status`; it has no dependency on the server's code, only on the JSON shapes.
 *
 * LiveFeed keeps a consumer in step with the server: it opens the event stream first, then
 * fetches the snapshots (buffering the events that arrive meanwhile), and fetches them again
 * on a `reset` event, when the event ids show a gap, or when the server restarted while the
 * stream was down. Its cost does not grow with the number of extensions except at those
 * (re)fetches.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import type { CallBackView, CallView, ExtensionView, IvrView, LiveEvent, SequencedEvent, Summary } from './types.js';

export interface Snapshot {
  summary: Summary;
  extensions: ExtensionView[];
  calls: CallView[];
  callbacks: CallBackView[];
  ivr: IvrView[];
}

export type AdminErrorKind =
  /** No address file, or nothing listening at the address. */
  | 'not-running'
  /** The server answered 401: wrong or missing token. */
  | 'unauthorized'
  /** The token file cannot be read, or the address is not a URL. */
  | 'setup'
  /** No answer within the time limit. */
  | 'timeout'
  /** Another HTTP status, or a body that is not what the API returns. */
  | 'http';

export class AdminError extends Error {
  override name = 'AdminError';
  constructor(
    readonly kind: AdminErrorKind,
    message: string,
    readonly status?: number,
    /** A few words for a status line: "connection refused", "ECONNRESET", "401". */
    readonly brief: string = message,
  ) {
    super(message);
  }
}

export const ADDRESS_FILE = 'admin.address';
export const TOKEN_FILE = 'admin.token';

export interface ServerLocation {
  /** Base URL, without a trailing slash: http://127.0.0.1:8080 */
  url: string;
  token: string;
  tokenFile: string;
}

/**
 * Finds the admin API: `url` (else the one line of <dataDir>/admin.address) and the token in
 * `tokenFile` (else <dataDir>/admin.token). Throws AdminError `not-running` when there is no
 * address file, `setup` when a file cannot be read or the address is not an http(s) URL.
 */
export function locateServer(opts: { dataDir: string; url?: string | undefined; tokenFile?: string | undefined }): ServerLocation {
  let url = opts.url;
  if (url === undefined) {
    const file = join(opts.dataDir, ADDRESS_FILE);
    try {
      url = readFileSync(file, 'utf8').trim().split(/\r?\n/)[0]!.trim();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        throw new AdminError('not-running', `the server is not running: ${file} does not exist (start \`minisipserver serve --data-dir ${opts.dataDir}\` with admin.listen set, or give --url and --token-file)`);
      }
      throw new AdminError('setup', `cannot read ${file}: ${(err as Error).message}`);
    }
    if (url === '') throw new AdminError('not-running', `the server is not running: ${file} is empty (is the admin API turned off with admin.listen ""?)`);
  }
  const base = normaliseUrl(url);
  const tokenFile = opts.tokenFile ?? join(opts.dataDir, TOKEN_FILE);
  let token: string;
  try {
    token = readFileSync(tokenFile, 'utf8').trim();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'it does not exist' : code === 'EACCES' ? 'permission denied (run as the user of the server, or give --token-file)' : (err as Error).message;
    throw new AdminError('setup', `cannot read the admin token ${tokenFile}: ${why}`);
  }
  if (token === '') throw new AdminError('setup', `the admin token file ${tokenFile} is empty`);
  return { url: base, token, tokenFile };
}

/** `host:port` or a URL -> `http(s)://host:port` without a trailing slash; a wildcard host becomes loopback. */
export function normaliseUrl(text: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw new AdminError('setup', `not a URL of the admin API: ${JSON.stringify(text)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new AdminError('setup', `not an http(s) URL: ${JSON.stringify(text)}`);
  if (u.hostname === '0.0.0.0') u.hostname = '127.0.0.1';
  if (u.hostname === '[::]') u.hostname = '[::1]';
  return u.href.replace(/\/+$/, '');
}

/** One message of a text/event-stream. */
export interface SseMessage {
  /** The `event:` field; 'message' when there is none. */
  event: string;
  data: string;
  /** The `id:` field of this message, if it had one. */
  id?: string;
}

/**
 * Incremental parser of the text/event-stream format (the WHATWG rules: `field: value` lines,
 * `:` comments, a blank line dispatches, `data` lines joined by newlines, CR, LF or CRLF).
 */
export class SseParser {
  private buffer = '';
  private data: string[] = [];
  private event = '';
  private id: string | undefined;
  private sawCr = false;
  /** The last `retry:` value in ms, if any. */
  retryMs: number | undefined;

  constructor(private readonly onMessage: (m: SseMessage) => void) {}

  push(chunk: string): void {
    let text = chunk;
    if (this.sawCr && text.startsWith('\n')) text = text.slice(1); // the LF of a CRLF split across chunks
    this.sawCr = false;
    this.buffer += text;
    let start = 0;
    for (;;) {
      const m = /\r\n|\r|\n/g;
      m.lastIndex = start;
      const found = m.exec(this.buffer);
      if (!found) break;
      if (found[0] === '\r' && found.index === this.buffer.length - 1) {
        this.sawCr = true; // maybe the first half of CRLF
      }
      this.line(this.buffer.slice(start, found.index));
      start = found.index + found[0].length;
    }
    this.buffer = this.buffer.slice(start);
  }

  private line(line: string): void {
    if (line === '') {
      // A message without data is dispatched too when it names an event (a bare `event: reset`).
      if (this.data.length > 0 || this.event !== '') {
        const msg: SseMessage = { event: this.event || 'message', data: this.data.join('\n') };
        if (this.id !== undefined) msg.id = this.id;
        this.onMessage(msg);
      }
      this.data = [];
      this.event = '';
      this.id = undefined;
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\0')) this.id = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.retryMs = Number(value);
  }
}

export interface AdminClientOptions {
  /** Limit for a JSON request and for the headers of the event stream; default 10 s. */
  timeoutMs?: number;
}

/** An open event stream: its messages until it ends. */
export interface EventStreamHandle {
  /** Resolves when the stream ends (the server closed it, or close() was called); rejects on a network error. */
  done: Promise<void>;
  close(): void;
}

const SEEN_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'EADDRNOTAVAIL']);

export class AdminClient {
  private base: URL;
  private readonly timeoutMs: number;

  constructor(
    url: string,
    private token: string,
    opts: AdminClientOptions = {},
  ) {
    this.base = new URL(normaliseUrl(url));
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  /** The base URL, without a trailing slash. */
  get url(): string {
    return this.base.href.replace(/\/+$/, '');
  }

  /** Points the client at another address or token (a server restarted on another port). */
  retarget(url: string, token: string): void {
    this.base = new URL(normaliseUrl(url));
    this.token = token;
  }

  summary(): Promise<Summary> {
    return this.getJson<Summary>('/api/v1/summary');
  }

  extensions(): Promise<ExtensionView[]> {
    return this.getJson<ExtensionView[]>('/api/v1/extensions');
  }

  calls(): Promise<CallView[]> {
    return this.getJson<CallView[]>('/api/v1/calls');
  }

  /** The call-backs in progress; [] when the server has no such endpoint (404). */
  callbacks(): Promise<CallBackView[]> {
    return this.getJson<CallBackView[]>('/api/v1/callbacks', true);
  }

  /** The IVR sessions; [] when the server has no such endpoint (404). */
  ivr(): Promise<IvrView[]> {
    return this.getJson<IvrView[]>('/api/v1/ivr', true);
  }

  async snapshot(): Promise<Snapshot> {
    return (await this.snapshotAt()).snapshot;
  }

  /**
   * The snapshots and the id of the newest event all of them include (the least of their
   * X-Last-Event-Id headers; null when the server does not say): events up to it are in them.
   */
  async snapshotAt(): Promise<{ snapshot: Snapshot; lastEventId: number | null }> {
    const parts = await Promise.all([
      this.getJsonAt<Summary>('/api/v1/summary'),
      this.getJsonAt<ExtensionView[]>('/api/v1/extensions'),
      this.getJsonAt<CallView[]>('/api/v1/calls'),
      this.getJsonAt<CallBackView[]>('/api/v1/callbacks', true),
      this.getJsonAt<IvrView[]>('/api/v1/ivr', true),
    ]);
    const ids = parts.map((p) => p.lastEventId);
    const lastEventId = ids.every((id) => id !== null) ? Math.min(...(ids as number[])) : null;
    const [summary, extensions, calls, callbacks, ivr] = parts;
    return {
      snapshot: { summary: summary.body as Summary, extensions: extensions.body as ExtensionView[], calls: calls.body as CallView[], callbacks: callbacks.body as CallBackView[], ivr: ivr.body as IvrView[] },
      lastEventId,
    };
  }

  /** Releases a call: true when the server released it, false when it knows no such call (404). */
  async hangup(id: string): Promise<boolean> {
    const res = await this.send('DELETE', `/api/v1/calls/${encodeURIComponent(id)}`, {});
    const body = await this.readBody(res);
    if (res.statusCode === 404) return false;
    this.check(res, body);
    return true;
  }

  /**
   * Opens the event stream (sending Last-Event-ID when given) and resolves once the server has
   * answered 200; `onMessage` then receives every message until the stream ends.
   */
  async openEvents(opts: { lastEventId?: string | undefined; onMessage: (m: SseMessage) => void; idleMs?: number }): Promise<EventStreamHandle> {
    const headers: Record<string, string> = { Accept: 'text/event-stream', 'Cache-Control': 'no-cache' };
    if (opts.lastEventId !== undefined) headers['Last-Event-ID'] = opts.lastEventId;
    const res = await this.send('GET', '/api/v1/events', headers, true);
    if (res.statusCode !== 200) {
      const body = await this.readBody(res);
      this.check(res, body);
      throw new AdminError('http', `${this.base.origin}/api/v1/events answered ${res.statusCode}`, res.statusCode);
    }
    const type = String(res.headers['content-type'] ?? '');
    if (!type.startsWith('text/event-stream')) {
      res.destroy();
      throw new AdminError('http', `${this.base.origin}/api/v1/events is not an event stream (${type || 'no content type'})`);
    }
    res.setEncoding('utf8');
    const parser = new SseParser(opts.onMessage);
    let closed = false;
    // Nothing at all (not even the server's heartbeat) for idleMs: the connection is dead.
    let idle: NodeJS.Timeout | null = null;
    const watchIdle = () => {
      if (!opts.idleMs) return;
      if (idle) clearTimeout(idle);
      idle = setTimeout(() => res.destroy(), opts.idleMs);
    };
    watchIdle();
    res.on('close', () => {
      if (idle) clearTimeout(idle);
    });
    const done = new Promise<void>((resolve, reject) => {
      res.on('data', (chunk: string) => {
        watchIdle();
        if (!closed) parser.push(chunk);
      });
      res.on('end', () => resolve());
      res.on('close', () => resolve()); // destroyed, or the socket went away without an end
      res.on('error', (err) => (closed ? resolve() : reject(this.networkError(err))));
    });
    return {
      done,
      close: () => {
        closed = true;
        res.destroy();
      },
    };
  }

  /** Snapshots plus live events, kept consistent across resets and reconnections. */
  watch(handlers: FeedHandlers, opts: FeedOptions = {}): LiveFeed {
    return new LiveFeed(this, handlers, opts);
  }

  private async getJson<T>(path: string, absentIsEmpty = false): Promise<T> {
    return (await this.getJsonAt<T>(path, absentIsEmpty)).body;
  }

  private async getJsonAt<T>(path: string, absentIsEmpty = false): Promise<{ body: T; lastEventId: number | null }> {
    const res = await this.send('GET', path, { Accept: 'application/json' });
    const body = await this.readBody(res);
    if (absentIsEmpty && res.statusCode === 404) return { body: [] as T, lastEventId: null };
    this.check(res, body);
    const header = res.headers['x-last-event-id'];
    const lastEventId = typeof header === 'string' && /^\d+$/.test(header) ? Number(header) : null;
    try {
      return { body: JSON.parse(body) as T, lastEventId };
    } catch {
      throw new AdminError('http', `${this.base.origin}${path} did not answer JSON`);
    }
  }

  private check(res: http.IncomingMessage, body: string): void {
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) return;
    if (status === 401) {
      throw new AdminError('unauthorized', `the server at ${this.base.origin} refused the token (401): is it the admin.token of this server's data directory?`, 401, 'token refused (401)');
    }
    const detail = body.trim().slice(0, 200);
    throw new AdminError('http', `${this.base.origin} answered ${status}${detail ? `: ${detail}` : ''}`, status, `HTTP ${status}`);
  }

  /** A request; the time limit covers the headers of the answer, and its body too unless `stream`. */
  private send(method: string, path: string, headers: Record<string, string>, stream = false): Promise<http.IncomingMessage> {
    const target = new URL(this.base.pathname.replace(/\/$/, '') + path, this.base);
    const lib = target.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = lib.request(target, { method, headers: { ...headers, Authorization: `Bearer ${this.token}` } }, (res) => {
        if (stream) clearTimeout(timer);
        else res.on('close', () => clearTimeout(timer));
        resolve(res);
      });
      const timer = setTimeout(() => {
        req.destroy(new AdminError('timeout', `no answer from ${this.base.origin} within ${Math.round(this.timeoutMs / 1000)} s`, undefined, 'no answer'));
      }, this.timeoutMs);
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(this.networkError(err));
      });
      req.end();
    });
  }

  private readBody(res: http.IncomingMessage): Promise<string> {
    return new Promise((resolve, reject) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        if (body.length < 64 * 1024 * 1024) body += c;
      });
      res.on('end', () => resolve(body));
      res.on('error', (err) => reject(this.networkError(err)));
      res.on('close', () => {
        if (!res.complete) reject(this.networkError(Object.assign(new Error('the answer was cut short'), { code: 'ECONNRESET' })));
      });
    });
  }

  private networkError(err: Error): AdminError {
    if (err instanceof AdminError) return err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ECONNREFUSED') {
      return new AdminError(
        'not-running',
        `the server is not running: nothing answers at ${this.base.origin} (connection refused; check that \`minisipserver serve\` runs and its admin.listen)`,
        undefined,
        'connection refused',
      );
    }
    if (code !== undefined && SEEN_CODES.has(code)) return new AdminError('not-running', `cannot reach ${this.base.origin}: ${code}`, undefined, code);
    return new AdminError('not-running', `cannot reach ${this.base.origin}: ${err.message}`, undefined, err.message);
  }
}


export type FeedState = 'connecting' | 'live' | 'reconnecting' | 'closed';

export interface FeedStatus {
  state: FeedState;
  /** Reconnection attempts since the stream was last up. */
  attempt: number;
  /** Why the stream is down, while reconnecting. */
  error?: string;
}

export interface FeedHandlers {
  /** The whole state: at the start, and again after a reset, a gap or a server restart. */
  snapshot(s: Snapshot): void;
  /** One change, in order, after the snapshot it applies to. */
  event(e: SequencedEvent): void;
  status?(s: FeedStatus): void;
}

export interface FeedOptions {
  /** First delay before reconnecting, doubled each attempt up to maxBackoffMs; default 250 ms. */
  backoffMs?: number;
  /** Default 5000 ms. */
  maxBackoffMs?: number;
  /** Time of an event whose data carries none; default Date.now. */
  clock?: () => number;
  /** A stream silent this long (the server sends a heartbeat every 15 s) is taken as dead; default 45 s, 0: never. */
  idleMs?: number;
  /**
   * Where the server is now, asked before each reconnection (e.g. <data dir>/admin.address read
   * again: a restarted server may listen on another port); null or a throw: unchanged.
   */
  locate?: () => { url: string; token: string } | null;
}

/** Snapshots and the event stream of one server; see the file comment. */
export class LiveFeed {
  private lastId: number | null = null;
  private serverStart: number | null = null;
  private stream: EventStreamHandle | null = null;
  /** Events held back while a snapshot is being fetched. */
  private buffer: SequencedEvent[] | null = null;
  private fetching: Promise<void> | null = null;
  private fetchAgain = false;
  /** Refetches started, to tell whether one began while something else was awaited. */
  private fetches = 0;
  private closed = false;
  private wake: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly clock: () => number;
  private readonly idleMs: number;
  private readonly locate: FeedOptions['locate'];
  private loop: Promise<void> | null = null;

  constructor(
    private readonly client: AdminClient,
    private readonly handlers: FeedHandlers,
    opts: FeedOptions = {},
  ) {
    this.backoffMs = opts.backoffMs ?? 250;
    this.maxBackoffMs = opts.maxBackoffMs ?? 5000;
    this.clock = opts.clock ?? Date.now;
    this.idleMs = opts.idleMs ?? 45_000;
    this.locate = opts.locate;
  }

  /**
   * Opens the stream, fetches and delivers the first snapshot, then keeps the stream up in the
   * background. Rejects (with an AdminError) when either fails, and the feed is then closed.
   */
  async start(): Promise<void> {
    this.status({ state: 'connecting', attempt: 0 });
    try {
      this.stream = await this.client.openEvents({ onMessage: (m) => this.message(m), idleMs: this.idleMs });
      await this.refetch();
    } catch (err) {
      this.close();
      throw err;
    }
    this.status({ state: 'live', attempt: 0 });
    this.loop = this.run(this.stream);
  }

  /** Fetches the snapshots again (events meanwhile are delivered after them). */
  refetch(): Promise<void> {
    if (this.fetching) {
      this.fetchAgain = true;
      return this.fetching;
    }
    this.buffer ??= [];
    this.fetches++;
    this.fetching = (async () => {
      try {
        let included: number | null = null;
        do {
          this.fetchAgain = false;
          const { snapshot, lastEventId } = await this.client.snapshotAt();
          if (this.closed) return;
          this.serverStart = snapshot.summary.startTime;
          included = lastEventId;
          this.handlers.snapshot(snapshot);
        } while (this.fetchAgain && !this.closed);
        const held = this.buffer ?? [];
        this.buffer = null;
        // Events the snapshot includes already are not applied again.
        for (const e of held) if (included === null || e.id > included) this.handlers.event(e);
      } finally {
        this.fetching = null;
        if (this.buffer !== null && !this.closed) {
          // The fetch failed: the events held are delivered anyway, the next refetch corrects them.
          const held = this.buffer;
          this.buffer = null;
          for (const e of held) this.handlers.event(e);
        }
      }
    })();
    return this.fetching;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stream?.close();
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
    this.status({ state: 'closed', attempt: 0 });
  }

  /** Resolves when the background loop has stopped (after close()). */
  async stopped(): Promise<void> {
    await this.loop;
  }

  private status(s: FeedStatus): void {
    this.handlers.status?.(s);
  }

  private message(m: SseMessage): void {
    if (this.closed) return;
    if (m.event === 'reset') {
      // The ids may start over (a restarted server): the next event is the new baseline.
      this.lastId = m.id !== undefined && /^\d+$/.test(m.id) ? Number(m.id) : null;
      void this.refetch().catch(() => undefined);
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(m.data);
    } catch {
      return; // not ours
    }
    const seq = toSequenced(parsed, m, this.clock);
    if (!seq) return;
    const gap = this.lastId !== null && seq.id !== this.lastId + 1;
    this.lastId = seq.id;
    if (gap) void this.refetch().catch(() => undefined);
    if (this.buffer) this.buffer.push(seq);
    else this.handlers.event(seq);
  }

  private async run(first: EventStreamHandle): Promise<void> {
    let stream: EventStreamHandle | null = first;
    let attempt = 0;
    let error: string | undefined;
    while (!this.closed) {
      if (stream) {
        try {
          await stream.done;
          error = 'closed by the server';
        } catch (err) {
          error = brief(err);
        }
        stream = null;
        this.stream = null;
        if (this.closed) break;
      }
      attempt++;
      this.status({ state: 'reconnecting', attempt, ...(error !== undefined ? { error } : {}) });
      await this.sleep(Math.min(this.maxBackoffMs, this.backoffMs * 2 ** Math.min(attempt - 1, 16)));
      if (this.closed) break;
      this.relocate();
      try {
        stream = await this.client.openEvents({
          lastEventId: this.lastId === null ? undefined : String(this.lastId),
          onMessage: (m) => this.message(m),
          idleMs: this.idleMs,
        });
      } catch (err) {
        error = brief(err);
        this.status({ state: 'reconnecting', attempt, error });
        continue;
      }
      if (this.closed) {
        stream.close();
        break;
      }
      this.stream = stream;
      attempt = 0;
      error = undefined;
      this.status({ state: 'live', attempt: 0 });
      // A restarted server numbers its events from 1 again and forgot the old ones: start over
      // (unless a `reset` or a gap already started a refetch).
      const fetchesBefore = this.fetches;
      try {
        const summary = await this.client.summary();
        if (this.serverStart !== null && summary.startTime !== this.serverStart && this.fetches === fetchesBefore && !this.closed) {
          this.lastId = null;
          await this.refetch();
        }
      } catch {
        // the stream tells soon enough
      }
    }
  }

  private relocate(): void {
    if (!this.locate) return;
    try {
      const where = this.locate();
      if (where) this.client.retarget(where.url, where.token);
    } catch {
      // not there (yet): try the address known
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = () => {
        this.wake = null;
        if (this.timer) clearTimeout(this.timer);
        this.timer = null;
        resolve();
      };
      this.timer = setTimeout(() => this.wake?.(), ms);
    });
  }
}

function brief(err: unknown): string {
  return err instanceof AdminError ? err.brief : (err as Error).message;
}

const EVENT_TYPES = new Set(['registration', 'extension', 'call', 'callback', 'ivr']);

/** The message's data as a SequencedEvent: either one already, or a bare LiveEvent with the SSE id. */
function toSequenced(parsed: unknown, m: SseMessage, clock: () => number): SequencedEvent | null {
  if (parsed === null || typeof parsed !== 'object') return null;
  const o = parsed as Record<string, unknown>;
  if (typeof o.id === 'number' && o.event && typeof o.event === 'object' && EVENT_TYPES.has(String((o.event as { type?: unknown }).type))) {
    return { id: o.id, time: typeof o.time === 'number' ? o.time : clock(), event: o.event as LiveEvent };
  }
  if (!EVENT_TYPES.has(String(o.type))) return null;
  const id = m.id !== undefined && /^\d+$/.test(m.id) ? Number(m.id) : null;
  if (id === null) return null;
  const time = typeof o.time === 'number' ? o.time : clock();
  return { id, time, event: o as unknown as LiveEvent };
}
