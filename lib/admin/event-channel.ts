/**
 * The event channel (miniSIPServer compatible, docs/EVENT-CHANNEL.md): a WebSocket server on TCP
 * `eventChannel.port` that pushes JSON messages with a mandatory `command` to monitoring
 * applications: `userStatus` for extensions, `callStatus` for calls, and (our extension)
 * `callbackStatus` and `ivrStatus`. Clients are authorised by source address at the handshake
 * (403 otherwise, 503 beyond `maxClients`). Each client's send buffer is bounded: a client that
 * does not read is dropped, the server never waits for it. A protocol-level ping drops dead peers.
 */
import http from 'node:http';
import { BlockList, isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, WebSocket, type RawData } from 'ws';
import { addressList } from '../config/address-entry.js';
import type { LiveEvent, LiveSource, SequencedEvent } from './types.js';

type Level = 'debug' | 'info' | 'warn' | 'error';

export interface EventChannelDeps {
  live: LiveSource;
  log(level: Level, event: string, fields: Record<string, unknown>): void;
  /** Events a stranger can cause: rate-limited. */
  peerLog(level: Level, event: string, fields: Record<string, unknown>): void;
}

export interface EventChannelOptions {
  /** Address to listen on (the SIP bind address; `::` takes IPv4 too, as ::ffff: addresses). */
  bind: string;
  /** TCP port; 0: the channel is off. 'ephemeral': a port the system picks (tests). */
  port: number | 'ephemeral';
  /** IPs or CIDR ranges allowed to connect; empty: nobody (logged). */
  allow: string[];
  /** Connected clients at most; the next handshake is answered 503. Default 32. */
  maxClients?: number;
  /** Bytes queued for one client at most before it is dropped as too slow. Default 1 MiB. */
  maxBufferedBytes?: number;
  /** Interval of the protocol-level ping; a client that has not answered the previous one is dropped. Default 30 s. */
  pingMs?: number;
  /** Time for a connection to send its whole handshake request. Default 10 s. */
  handshakeTimeoutMs?: number;
}

/** Largest message a client may send (ws maxPayload); a bigger one closes the connection (1009). */
export const MAX_CLIENT_MESSAGE_BYTES = 4096;
/** How long close() lets clients answer the close frame before cutting them off. */
const CLOSE_GRACE_MS = 1000;
/** TCP connections that have not completed a handshake yet, beyond the clients. */
const SPARE_CONNECTIONS = 64;

/** The messages the channel sends (docs/EVENT-CHANNEL.md): a public contract, add fields only. */
export type ChannelMessage =
  | { command: 'userStatus'; userName: string; status: 'online' | 'offline' | 'ringing' | 'talking' }
  | { command: 'callStatus'; sipID: string; callID: string; caller: string; callee: string; state: 'ringing' | 'answered' }
  | { command: 'callStatus'; sipID: string; callID: string; caller: string; callee: string; state: 'ended'; status: number; callTag: number; cause: number }
  | { command: 'callbackStatus'; id: string; user1: string; user2: string; state: 'starting' | 'calling1' | 'calling2' | 'bridged' }
  | { command: 'callbackStatus'; id: string; user1: string; user2: string; state: 'ended'; result: number; cause: number }
  | { command: 'ivrStatus'; callID: string; caller: string; number: string; file: string; state: 'started' | 'ended' }
  | { command: 'pong' }
  | { command: 'error'; reason: string };

/** The channel message for a live event, or null for events the channel does not report (registrations). */
export function channelMessage(e: LiveEvent): ChannelMessage | null {
  switch (e.type) {
    case 'extension':
      return { command: 'userStatus', userName: e.number, status: e.state };
    case 'call': {
      const c = e.call;
      const base = { command: 'callStatus' as const, sipID: c.id, callID: c.id, caller: c.caller, callee: c.callee };
      if (e.action === 'ended') return { ...base, state: 'ended', status: e.status, callTag: e.callTag, cause: e.cause };
      return { ...base, state: e.action === 'created' ? 'ringing' : 'answered' };
    }
    case 'callback': {
      const b = e.callback;
      const base = { command: 'callbackStatus' as const, id: b.id, user1: b.user1, user2: b.user2 };
      if (e.action === 'ended') return { ...base, state: 'ended', result: e.result, cause: e.cause };
      return { ...base, state: e.action === 'started' ? b.state : e.action };
    }
    case 'ivr':
      return { command: 'ivrStatus', callID: e.ivr.id, caller: e.ivr.caller, number: e.ivr.number, file: e.ivr.file, state: e.action };
    case 'registration':
      return null;
  }
}

interface Client {
  ws: WebSocket;
  /** host:port, for the log. */
  from: string;
  /** Answered the last ping (or connected since). */
  alive: boolean;
  /** Dropped or closing: nothing more is sent. */
  gone: boolean;
}

const REASONS: Record<number, string> = { 403: 'Forbidden', 426: 'Upgrade Required', 503: 'Service Unavailable' };

export class EventChannel {
  private server: http.Server | null = null;
  private wss: WebSocketServer | null = null;
  private readonly clients = new Set<Client>();
  private allowList: BlockList | null;
  private unsubscribe: (() => void) | null = null;
  private pingTimer: NodeJS.Timeout | undefined;
  private readonly maxClients: number;
  private readonly maxBufferedBytes: number;
  private readonly pingMs: number;

  constructor(
    private readonly deps: EventChannelDeps,
    private readonly opts: EventChannelOptions,
  ) {
    this.allowList = addressList(opts.allow);
    this.maxClients = opts.maxClients ?? 32;
    this.maxBufferedBytes = opts.maxBufferedBytes ?? 1024 * 1024;
    this.pingMs = opts.pingMs ?? 30_000;
  }

  /** The port listened on, 0 when not listening. */
  get port(): number {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : 0;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /**
   * Listens; resolves with the port, or null when the channel is off (port 0) or the port is taken
   * (logged: the server runs on without the channel).
   */
  async start(): Promise<number | null> {
    const { bind } = this.opts;
    if (this.opts.port === 0) {
      this.deps.log('info', 'event_channel.off', { reason: 'eventChannel.port is 0' });
      return null;
    }
    if (this.server) return this.port;
    const port = this.opts.port === 'ephemeral' ? 0 : this.opts.port;
    const handshakeMs = this.opts.handshakeTimeoutMs ?? 10_000;
    const server = http.createServer({ requestTimeout: handshakeMs, headersTimeout: handshakeMs, connectionsCheckingInterval: Math.min(1000, handshakeMs) }, (req, res) => {
      // Not a WebSocket handshake: nothing to serve here.
      const status = this.allowed(req.socket.remoteAddress) ? 426 : 403;
      if (status === 403) this.refused(req.socket, status, 'source not in eventChannel.allow');
      const body = status === 403 ? 'Forbidden\n' : 'This is the WebSocket event channel: connect with a WebSocket client.\n';
      res.writeHead(status, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body), Connection: 'close', ...(status === 426 ? { Upgrade: 'websocket' } : {}) });
      res.end(body);
    });
    server.maxConnections = this.maxClients + SPARE_CONNECTIONS;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ port, host: bind, exclusive: true }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      server.close();
      this.deps.log('warn', 'event_channel.port_unavailable', {
        port,
        bind,
        error: (err as Error).message,
        hint: 'another program holds this TCP port: free it or set eventChannel.port (0 turns the event channel off); the server runs without it',
      });
      return null;
    }
    server.on('error', (err) => this.deps.log('warn', 'event_channel.server_error', { error: err.message }));
    server.on('clientError', (_err, socket) => socket.destroy());
    const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_CLIENT_MESSAGE_BYTES, perMessageDeflate: false, clientTracking: false });
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket as Socket, head));
    this.server = server;
    this.wss = wss;
    this.unsubscribe = this.deps.live.subscribe((e) => this.onEvent(e));
    this.pingTimer = setInterval(() => this.pingAll(), this.pingMs);
    this.pingTimer.unref();
    if (!this.allowList) this.deps.log('warn', 'event_channel.nobody_allowed', { hint: 'eventChannel.allow is empty: every client is refused; list the addresses of the monitoring applications' });
    this.deps.log('info', 'event_channel.listening', { port: this.port, bind, allow: this.opts.allow });
    return this.port;
  }

  /** Sources allowed from now on (SIGHUP); clients already connected stay. */
  setAllow(allow: string[]): void {
    this.allowList = addressList(allow);
  }

  /** Closes every client (close code 1001, cut off after a grace second) and stops listening. */
  async close(): Promise<void> {
    clearInterval(this.pingTimer);
    this.pingTimer = undefined;
    this.unsubscribe?.();
    this.unsubscribe = null;
    const server = this.server;
    this.server = null;
    if (!server) return;
    // No new connections (a handshake arriving now is cut off), then the clients are told.
    this.wss?.close();
    this.wss = null;
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
    const closing = [...this.clients].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.ws.readyState === WebSocket.CLOSED) return resolve();
          c.ws.once('close', () => resolve());
          c.gone = true;
          c.ws.close(1001, 'server shutting down');
        }),
    );
    if (closing.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(closing), new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_GRACE_MS)))]);
      clearTimeout(timer);
    }
    for (const c of this.clients) c.ws.terminate();
    this.clients.clear();
    server.closeAllConnections();
    await stopped;
  }

  private allowed(address: string | undefined): boolean {
    if (!this.allowList || !address) return false;
    const plain = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
    const family = isIP(plain);
    if (family === 0) return false;
    return this.allowList.check(plain, family === 6 ? 'ipv6' : 'ipv4');
  }

  private refused(socket: Socket, status: number, reason: string): void {
    this.deps.peerLog('warn', 'event_channel.client_refused', { from: hostPort(socket.remoteAddress, socket.remotePort), status, reason });
  }

  private onUpgrade(req: http.IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const wss = this.wss;
    if (!wss) return void socket.destroy();
    if (!this.allowed(socket.remoteAddress)) {
      this.refused(socket, 403, 'source not in eventChannel.allow');
      return reject(socket, 403);
    }
    if (this.clients.size >= this.maxClients) {
      this.refused(socket, 503, `${this.maxClients} clients connected already (the most allowed)`);
      return reject(socket, 503);
    }
    const from = hostPort(socket.remoteAddress, socket.remotePort);
    wss.handleUpgrade(req, socket, head, (ws) => this.onClient(ws, from));
  }

  private onClient(ws: WebSocket, from: string): void {
    const client: Client = { ws, from, alive: true, gone: false };
    this.clients.add(client);
    this.deps.log('info', 'event_channel.client_connected', { from, clients: this.clients.size });
    ws.on('pong', () => (client.alive = true));
    ws.on('message', (data, isBinary) => this.onMessage(client, data, isBinary));
    // ws closes the connection itself after a protocol error (a message over maxPayload: 1009).
    ws.on('error', (err) => {
      const code = (err as Error & { code?: string }).code;
      this.drop(client, code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? `message over ${MAX_CLIENT_MESSAGE_BYTES} bytes` : `protocol error: ${err.message}`, false);
    });
    ws.on('close', (code) => {
      if (this.clients.delete(client) && !client.gone) this.deps.log('info', 'event_channel.client_closed', { from, code, clients: this.clients.size });
      client.gone = true;
    });
    // The current state, then every change: both in this tick, so no event slips between them.
    let extensions: ReturnType<LiveSource['extensions']>;
    try {
      extensions = this.deps.live.extensions();
    } catch (err) {
      this.deps.log('warn', 'event_channel.internal_error', { error: (err as Error).stack ?? String(err) });
      extensions = [];
    }
    for (const x of extensions) {
      if (x.state !== 'offline') this.send(client, JSON.stringify({ command: 'userStatus', userName: x.number, status: x.state } satisfies ChannelMessage));
    }
  }

  private onMessage(client: Client, data: RawData, isBinary: boolean): void {
    if (client.gone) return;
    const answer = (m: ChannelMessage) => this.send(client, JSON.stringify(m));
    if (isBinary) return answer({ command: 'error', reason: 'binary messages are not accepted: send JSON text' });
    let msg: unknown;
    try {
      msg = JSON.parse(rawText(data));
    } catch {
      this.deps.peerLog('debug', 'event_channel.bad_message', { from: client.from, error: 'malformed JSON' });
      return answer({ command: 'error', reason: 'malformed JSON' });
    }
    const command = msg !== null && typeof msg === 'object' && !Array.isArray(msg) ? (msg as { command?: unknown }).command : undefined;
    if (typeof command !== 'string') return answer({ command: 'error', reason: 'a message is a JSON object with a string "command"' });
    if (command === 'ping') return answer({ command: 'pong' });
    answer({ command: 'error', reason: `unknown command ${JSON.stringify(command.slice(0, 64))}` });
  }

  private onEvent(e: SequencedEvent): void {
    if (this.clients.size === 0) return;
    let m: ChannelMessage | null;
    try {
      m = channelMessage(e.event);
    } catch (err) {
      this.deps.log('warn', 'event_channel.internal_error', { error: (err as Error).stack ?? String(err) });
      return;
    }
    if (!m) return;
    const text = JSON.stringify(m);
    for (const c of this.clients) this.send(c, text);
  }

  /** Queues `text` for the client; drops it when what it has not read yet passes the bound. */
  private send(c: Client, text: string): void {
    if (c.gone || c.ws.readyState !== WebSocket.OPEN) return;
    c.ws.send(text);
    const queued = c.ws.bufferedAmount;
    if (queued > this.maxBufferedBytes) this.drop(c, `too slow: ${queued} bytes not read (the most is ${this.maxBufferedBytes})`, true);
  }

  private drop(c: Client, reason: string, terminate: boolean): void {
    if (c.gone) return;
    c.gone = true;
    this.clients.delete(c);
    this.deps.log('warn', 'event_channel.client_dropped', { from: c.from, reason, clients: this.clients.size });
    if (terminate) c.ws.terminate();
  }

  private pingAll(): void {
    for (const c of this.clients) {
      if (!c.alive) {
        this.drop(c, `no answer to the ping in ${this.pingMs} ms`, true);
        continue;
      }
      c.alive = false;
      try {
        c.ws.ping();
      } catch {
        // not open any more: its close event removes it
      }
    }
  }
}

function reject(socket: Socket, status: number): void {
  const body = `${REASONS[status] ?? 'Error'}\n`;
  socket.once('finish', () => socket.destroy());
  socket.end(`HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}

function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

function hostPort(address: string | undefined, port: number | undefined): string {
  if (!address) return '?';
  return address.includes(':') ? `[${address}]:${port ?? '?'}` : `${address}:${port ?? '?'}`;
}
