import { parseMessage, type ParseLimits } from './parser.js';
import { createResponse, serialize, type SipMessage, type SipRequest, type SipResponse } from './message.js';
import { topViaStampFacts } from './headers/via.js';
import { TransactionLayer, type TransactionUser } from './transaction/layer.js';
import type { TimerConfig } from './transaction/timers.js';
import { UdpTransport, type UdpOptions } from './transport/udp.js';
import { NativeUdpTransport, nativeUdpAddon, nativeUdpUnavailable } from './transport/native-udp.js';
import { TcpTransport } from './transport/tcp.js';
import { TlsTransport } from './transport/tls.js';
import { ConnectionLimits } from './transport/connection-limits.js';
import type { StreamOptions } from './transport/stream.js';
import type { Endpoint, TransportName } from './transport/types.js';
import type { SecureContextOptions } from 'node:tls';
import type { Logger } from '../log.js';
import type { WorkerRouter } from './worker-router.js';
import type { RateEntry, SourceGuard } from '../security/guard.js';
import type { OverloadControl } from '../security/overload.js';
import { newTag, toTag } from './transaction/message-keys.js';

export interface StackOptions {
  bind4: string;
  /** Empty string: no IPv6 sockets. */
  bind6: string;
  port: number;
  transports: TransportName[];
  /** With 'tls' in `transports`: its port (0 picks a free one), credentials and handshake time. */
  tls?: { port: number; credentials: SecureContextOptions; handshakeTimeoutMs: number };
  udpBufferBytes: number;
  /** Who does UDP socket I/O: the native addon's I/O thread, Node's dgram, or native when built. */
  udpEngine?: 'auto' | 'native' | 'node';
  /** Native engine: how long (µs) datagrams arriving at an idle server wait for others to be handled together. */
  udpCoalesceUs?: number;
  limits: ParseLimits;
  /** Most TCP and TLS connections open at once, in all and from one source address (absent: the total alone). */
  tcpMaxConnections: number;
  maxConnectionsPerSource?: number;
  tcpIdleMs: number;
  timers: TimerConfig;
  maxServerTransactions: number;
  serverHeader: string;
  logger: Logger;
  /** How often datagrams the native UDP engine dropped are reported (warn `udp.dropped`); default 10 s. */
  udpDropReportMs?: number;
  /**
   * Several processes share the SIP port (sip.workers): the UDP sockets come from this function
   * (SO_REUSEPORT file descriptors), and each process also opens a private UDP port of its own,
   * written in the Via and Contact of what it originates, so that responses and in-dialog
   * requests come back to the process that holds the transaction or dialog.
   */
  sharedUdp?: (address: string, port: number) => number;
  /** With sharedUdp: hands messages that belong to a sibling process over to it. */
  router?: WorkerRouter;
  /**
   * Bans, the per-source rate limit and scanner User-Agents (lib/security/guard.ts): asked before
   * a message is parsed and once it is, and for every TCP connection at accept.
   */
  guard?: SourceGuard;
  /** Overload control (lib/security/overload.ts): while active, new work is refused or shed. */
  overload?: OverloadControl;
}

export interface StackCounters {
  received: number;
  parseErrors: number;
  droppedResponses: number;
  sent: number;
}

/** Request methods counted by name in MessageCounts.requests; any other counts as 'other'. */
export const COUNTED_METHODS = [
  'INVITE', 'ACK', 'BYE', 'CANCEL', 'REGISTER', 'OPTIONS', 'INFO', 'UPDATE', 'PRACK',
  'SUBSCRIBE', 'NOTIFY', 'REFER', 'MESSAGE', 'PUBLISH',
] as const;
/** Index of 'other' in MessageCounts.requests. */
export const OTHER_METHOD = COUNTED_METHODS.length;
const METHOD_INDEX = new Map<string, number>(COUNTED_METHODS.map((m, i) => [m, i]));

/**
 * Messages by kind, kept only once someone asks for them (countMessages(): the metrics): plain
 * numbers bumped on the receive and send paths, read when scraped.
 */
export interface MessageCounts {
  /**
   * Requests received, retransmissions included, by index in COUNTED_METHODS (OTHER_METHOD for
   * the rest). A request handed over to a sibling process (sip.workers) is counted there.
   */
  requests: number[];
  /**
   * Responses sent, by class: index 1 = 1xx ... 6 = 6xx (0 unused). Each response sent counts,
   * a UAS's 2xx retransmissions included; the transaction layer sending a response's stored
   * bytes again (an absorbed retransmission) does not.
   */
  responses: number[];
}

/**
 * Wires transports, the parser and the transaction layer: bytes in, requests handed to the
 * transaction user (the PBX core); messages out, serialized and sent to the right socket.
 */
export class SipStack {
  readonly transactions: TransactionLayer;
  readonly counters: StackCounters = { received: 0, parseErrors: 0, droppedResponses: 0, sent: 0 };
  /** Null until countMessages() is called: nothing is counted by method or class before. */
  private messageCounts: MessageCounts | null = null;
  private readonly udp: Array<UdpTransport | NativeUdpTransport> = [];
  private udpEngineUsed: 'native' | 'node' = 'node';
  private readonly tcp: TcpTransport[] = [];
  private readonly tls: TlsTransport[] = [];
  private tlsBoundPort = 0;
  private boundPort = 0;
  private privatePort = 0;
  /** Where sibling processes' private ports are reached, per address family. */
  private readonly siblingAddress: Record<4 | 6, string> = { 4: '127.0.0.1', 6: '::1' };
  /** Full message text in the log at debug level (for interop work; costly, so decided once). */
  private readonly trace: boolean;
  private readonly guard: SourceGuard | null;
  private readonly overload: OverloadControl | null;

  /**
   * @param statelessAnswer asked first for every request but ACK and CANCEL: a response it
   *   returns is sent with no transaction (RFC 3261 section 8.2.7: a stateless UAS, the usual way
   *   to challenge unauthenticated requests); null hands the request to the transaction layer.
   */
  constructor(
    private readonly opts: StackOptions,
    tu: TransactionUser,
    private readonly statelessAnswer?: (req: SipRequest, source: Endpoint) => SipResponse | null,
  ) {
    this.trace = opts.logger.enabled('debug');
    this.guard = opts.guard ?? null;
    this.overload = opts.overload ?? null;
    this.transactions = new TransactionLayer({
      send: (msg, dest) => this.send(msg, dest),
      sendBytes: (data, dest) => this.sendData(data, dest),
      timers: opts.timers,
      tu,
      maxServerTransactions: opts.maxServerTransactions,
      onUserError: (err) => opts.logger.error('sip.timer_handler_error', { error: (err as Error).stack ?? String(err) }),
    });
  }

  /** The port every transport listens on (resolved when `port` was 0). */
  get port(): number {
    return this.boundPort;
  }

  /** The port to write in Via and Contact: the private one when the SIP port is shared. */
  get dialogPort(): number {
    return this.privatePort || this.boundPort;
  }

  /** The SIP over TLS port; 0 without TLS. */
  get tlsPort(): number {
    return this.tlsBoundPort;
  }

  /** New TLS connections get these credentials, open ones keep theirs; throws when they make no usable context. */
  setTlsCredentials(credentials: SecureContextOptions): void {
    for (const t of this.tls) t.setCredentials(credentials);
  }

  /** Starts counting requests by method and responses by class (idempotent); the live counts. */
  countMessages(): MessageCounts {
    this.messageCounts ??= { requests: Array.from({ length: OTHER_METHOD + 1 }, () => 0), responses: [0, 0, 0, 0, 0, 0, 0] };
    return this.messageCounts;
  }

  /** The UDP engine in use (decided at start). */
  get udpEngine(): 'native' | 'node' {
    return this.udpEngineUsed;
  }

  private chooseUdpEngine(): (o: UdpOptions) => Promise<UdpTransport | NativeUdpTransport> {
    const wanted = this.opts.udpEngine ?? 'node';
    if (wanted === 'native' && nativeUdpAddon() === null) throw new Error(`sip.udpEngine native: ${nativeUdpUnavailable()}`);
    if (wanted === 'auto' && nativeUdpAddon() === null) this.opts.logger.info('sip.udp_engine_fallback', { engine: 'node', reason: nativeUdpUnavailable() });
    this.udpEngineUsed = wanted !== 'node' && nativeUdpAddon() !== null ? 'native' : 'node';
    return this.udpEngineUsed === 'native' ? (o) => NativeUdpTransport.open(o) : (o) => UdpTransport.open(o);
  }

  async start(): Promise<void> {
    const { opts } = this;
    const openUdp = opts.transports.includes('udp') ? this.chooseUdpEngine() : UdpTransport.open;
    const onMessage = (data: Buffer, source: Endpoint, waitedMs?: number) => this.receive(data, source, false, waitedMs);
    const families: Array<{ family: 4 | 6; address: string }> = [{ family: 4, address: opts.bind4 }];
    if (opts.bind6) families.push({ family: 6, address: opts.bind6 });
    const connections = new ConnectionLimits({
      maxTotal: opts.tcpMaxConnections,
      maxPerSource: opts.maxConnectionsPerSource ?? opts.tcpMaxConnections,
      ...(this.guard !== null ? { admit: (address: string) => this.guard!.admitConnection(address) } : {}),
    });
    const streamOptions = (transport: 'tcp' | 'tls', address: string, port: number): StreamOptions => ({
      address,
      port,
      limits: opts.limits,
      connections,
      idleMs: opts.tcpIdleMs,
      onMessage,
      onFramingError: (error, remote) => opts.logger.peer('warn', `${transport}.framing_error`, { remote, error }),
      onRefused: (reason, remote) => opts.logger.peer('warn', `${transport}.connection_refused`, { remote, reason }),
    });
    let port = opts.port;
    let tlsPort = opts.tls?.port ?? 0;
    // Port 0: the kernel picks the UDP port, and TCP (and IPv6) must then get the same number,
    // which another program may hold: then everything is closed and another number picked.
    const ephemeral = opts.port === 0;
    let attemptsLeft = ephemeral ? EPHEMERAL_ATTEMPTS : 1;
    listen: for (;;) {
      attemptsLeft--;
      for (const { family, address } of families) {
        try {
          if (opts.transports.includes('udp')) {
            const common = { family, bufferBytes: opts.udpBufferBytes, coalesceUs: opts.udpCoalesceUs ?? 0, onMessage, onError: (err: Error) => opts.logger.warn('udp.error', { error: err.message }) };
            const fd = opts.sharedUdp?.(address, port);
            // A banned source's datagrams are dropped by the transport itself, before anything is
            // copied or parsed (the private port of sip.workers gets siblings' hand-overs: not there).
            const guard = this.guard;
            const drop = guard !== null ? { drop: (a: string) => guard.banned(a) } : {};
            const t = await openUdp({ ...common, ...drop, address, port, ...(fd !== undefined ? { fd, onMessage: (data: Buffer, source: Endpoint, waitedMs?: number) => this.receive(data, source, true, waitedMs) } : {}) });
            port = t.port;
            this.udp.push(t);
            if (opts.sharedUdp) {
              // Receives only: sends leave from the shared socket (pushed first), so that phones
              // behind NAT see requests coming from the SIP port they registered to.
              const own = await openUdp({ ...common, address, port: this.privatePort, onMessage: (data, source) => this.receivePrivate(data, source) });
              this.udp.push(own);
              if (family === 4 || this.privatePort === 0) this.privatePort = own.port;
              this.siblingAddress[family] = isWildcard(own.address) ? LOOPBACK_FOR[family] : own.address;
            }
          }
          if (opts.transports.includes('tcp')) {
            const t = await TcpTransport.open(streamOptions('tcp', address, port));
            port = t.port;
            this.tcp.push(t);
          }
          if (opts.transports.includes('tls') && opts.tls) {
            const { credentials, handshakeTimeoutMs } = opts.tls;
            const onHandshakeFailed = (error: string, remote: string) => opts.logger.peer('info', 'tls.handshake_failed', { remote, error });
            const t = await TlsTransport.open({ ...streamOptions('tls', address, tlsPort), credentials, handshakeTimeoutMs, onHandshakeFailed });
            tlsPort = this.tlsBoundPort = t.port;
            this.tls.push(t);
          }
        } catch (err) {
          const e = err as NodeJS.ErrnoException;
          if (family === 6 && (e.code === 'EAFNOSUPPORT' || e.code === 'EADDRNOTAVAIL')) {
            opts.logger.warn('sip.ipv6_unavailable', { address, error: e.code });
            continue;
          }
          if (ephemeral && e.code === 'EADDRINUSE' && attemptsLeft > 0) {
            await this.closeTransports();
            port = 0;
            tlsPort = opts.tls?.port ?? 0;
            continue listen;
          }
          await this.stop();
          throw new Error(
            `cannot listen on ${family === 6 ? `[${address}]` : address}:${port} (${e.code ?? e.message})` +
              (e.code === 'EADDRINUSE' ? ': another program uses this port; stop it or choose another with --sip-port' : '') +
              (e.code === 'EACCES' ? ': ports below 1024 need root or CAP_NET_BIND_SERVICE; choose another with --sip-port' : ''),
          );
        }
        this.boundPort = port;
      }
      break;
    }
    for (const t of this.udp) opts.logger.info('sip.listening', { transport: 'udp', address: t.address, port: t.port, engine: this.udpEngineUsed });
    for (const t of [...this.tcp, ...this.tls]) opts.logger.info('sip.listening', { transport: t.transport, address: t.address, port: t.port });
    this.startDropReports();
  }

  /** Counters of the native UDP sockets at the last report, to log what changed since. */
  private reportedDrops = { receiveDropped: 0, sendDropped: 0, sendErrors: 0 };
  private dropReport: NodeJS.Timeout | undefined;

  /** Every udpDropReportMs: one warn line with what the native UDP engine dropped since the last. */
  private startDropReports(): void {
    const natives = this.udp.filter((t): t is NativeUdpTransport => t instanceof NativeUdpTransport);
    if (natives.length === 0) return;
    this.dropReport = setInterval(() => {
      const now = { receiveDropped: 0, sendDropped: 0, sendErrors: 0 };
      for (const t of natives) {
        const c = t.counters();
        now.receiveDropped += c.receiveDropped;
        now.sendDropped += c.sendDropped;
        now.sendErrors += c.sendErrors;
      }
      const last = this.reportedDrops;
      if (now.receiveDropped !== last.receiveDropped || now.sendDropped !== last.sendDropped || now.sendErrors !== last.sendErrors) {
        this.opts.logger.warn('udp.dropped', {
          received: now.receiveDropped - last.receiveDropped,
          sends: now.sendDropped - last.sendDropped,
          sendErrors: now.sendErrors - last.sendErrors,
          hint: 'received: the server fell behind (see docs/DEPLOY.md, More than one core); sends: the socket stayed full; sendErrors: the kernel refused a destination',
        });
        this.reportedDrops = now;
      }
    }, this.opts.udpDropReportMs ?? 10_000);
    this.dropReport.unref();
  }

  /**
   * How long (ms) received UDP datagrams have been queueing without the server catching up: the
   * native I/O thread's queue. Null with Node's dgram, whose backlog in the kernel is not seen.
   */
  receiveBacklogMs(): number | null {
    let ms: number | null = null;
    for (const t of this.udp) if (t instanceof NativeUdpTransport) ms = Math.max(ms ?? 0, t.backlogMs());
    return ms;
  }

  /** Closes every TCP and TLS connection from `address` (a source just banned); how many. */
  closeConnectionsFrom(address: string): number {
    let n = 0;
    for (const t of [...this.tcp, ...this.tls]) n += t.closeFrom(address);
    return n;
  }

  async stop(): Promise<void> {
    clearInterval(this.dropReport);
    this.transactions.close();
    await this.closeTransports();
  }

  private async closeTransports(): Promise<void> {
    await Promise.all([...this.udp.map((t) => t.close()), ...this.tcp.map((t) => t.close()), ...this.tls.map((t) => t.close())]);
    this.udp.length = 0;
    this.tcp.length = 0;
    this.tls.length = 0;
  }

  /** A datagram on this process's private port: ours, or handed over by a sibling process. */
  private receivePrivate(data: Buffer, source: Endpoint): void {
    const inner = this.opts.router?.unwrap(data);
    if (inner) this.receive(inner.data, inner.source);
    else this.receive(data, source);
  }

  /**
   * Entry point for bytes from any transport. Never throws. `shared`: it came in on the SIP port
   * shared with sibling processes, and may belong to one of them. `waitedMs`: how long it waited
   * in the receive queue (overload control refuses new work that waited too long).
   */
  receive(data: Buffer, source: Endpoint, shared = false, waitedMs = 0): void {
    this.counters.received++;
    // A banned source, or one over its rate, costs a lookup or two here and nothing more.
    const guard = this.guard;
    let entry: RateEntry | null = null;
    if (guard !== null) {
      entry = guard.admit(source.address);
      if (entry === null) return;
    }
    if (this.trace) this.opts.logger.debug('sip.in', { from: `${source.transport}:${source.address}:${source.port}`, message: data.subarray(0, 4096).toString('utf8') });
    const result = parseMessage(data, { datagram: source.transport === 'udp', limits: this.opts.limits });
    if (!result.ok) {
      this.counters.parseErrors++;
      if (entry !== null) guard!.message(entry, null, source.address);
      this.opts.logger.peer('info', 'sip.bad_message', { from: `${source.address}:${source.port}`, error: result.error });
      if (result.request && result.request.method !== 'ACK') {
        // RFC 3261 section 8.2.6.1: a stateless answer naming the fault in its reason phrase.
        this.stampVia(result.request, source);
        const reason = result.status === 400 ? `Bad Request (${sanitizeReason(result.error)})` : undefined;
        this.send(createResponse(result.request, result.status, reason), source);
      }
      return;
    }
    const msg = result.message;
    if (shared && this.opts.router) {
      const owner = this.opts.router.ownerOf(msg);
      if (owner >= 0) {
        const family = source.address.includes(':') ? 6 : 4;
        this.sendData(this.opts.router.wrap(data, source), { transport: 'udp', address: this.siblingAddress[family], port: this.opts.router.peers[owner]! });
        return;
      }
    }
    // Charged to the source (a scanner's request is dropped here); a request the transaction
    // layer absorbs as a retransmission is refunded below: retransmissions do not count twice.
    if (entry !== null && !guard!.message(entry, msg, source.address)) return;
    const counts = this.messageCounts;
    if (counts !== null && msg.kind === 'request') {
      const i = METHOD_INDEX.get(msg.method) ?? OTHER_METHOD;
      counts.requests[i] = counts.requests[i]! + 1;
    }
    try {
      if (msg.kind === 'request') {
        this.stampVia(msg, source);
        const overload = this.overload;
        if (overload !== null && (overload.active || waitedMs >= overload.lateMs) && this.refusedForOverload(msg, source, waitedMs >= overload.lateMs)) return;
        if (this.statelessAnswer !== undefined && msg.method !== 'ACK' && msg.method !== 'CANCEL') {
          const res = this.statelessAnswer(msg, source);
          if (res !== null) {
            this.send(res, source);
            return;
          }
        }
        if (entry === null) {
          this.transactions.receiveRequest(msg, source);
        } else {
          const stats = this.transactions.stats;
          const absorbed = stats.retransmissionsAbsorbed;
          this.transactions.receiveRequest(msg, source);
          if (stats.retransmissionsAbsorbed !== absorbed) guard!.refund(entry);
        }
      } else {
        this.transactions.receiveResponse(msg, source);
      }
    } catch (err) {
      // A fault in request handling answers 500 and is logged; the server keeps serving.
      this.opts.logger.error('sip.handler_error', { error: (err as Error).stack ?? String(err) });
      if (msg.kind === 'request' && msg.method !== 'ACK') this.send(createResponse(msg, 500), source);
    }
  }

  /**
   * While overloaded, or for a request that waited too long to be handled (`late`): true when the
   * request starts something new and is refused (a stateless 503 with Retry-After) or shed
   * (dropped). In-dialog requests, ACK and CANCEL are never refused.
   */
  private refusedForOverload(req: SipRequest, source: Endpoint, late: boolean): boolean {
    const method = req.method;
    if (method === 'ACK' || method === 'CANCEL' || toTag(req) !== undefined) return false;
    // A retransmission goes to its transaction, which answers it as it answered the first copy.
    if (this.transactions.hasServerTransaction(req, source)) return false;
    const verdict = this.overload!.verdict(req, source, late);
    if (verdict === 'serve') return false;
    if (verdict === 'reject') {
      const res = createResponse(req, 503, undefined, newTag());
      res.headers.append('Retry-After', this.overload!.retryAfter);
      this.send(res, source);
    }
    return true;
  }

  /**
   * RFC 3261 section 18.2.1 and RFC 3581 section 4: record where the request really came from in
   * the top Via (received, and rport when the client asked for it). Responses always go back to
   * the source address and port (symmetric response routing, as phones behind NAT need).
   */
  private stampVia(req: SipRequest, source: Endpoint): void {
    const via = topViaStampFacts(req);
    if (via === null) return;
    const wantsRport = via.rport;
    const hostDiffers = via.host !== source.address;
    if (!hostDiffers && !wantsRport) return;
    // Edit the text of the top Via element rather than re-format it: every other parameter
    // stays exactly as the client wrote it, and nothing is rebuilt on this per-request path.
    const h = req.headers;
    const i = h.names.indexOf('via');
    const line = h.values[i]!;
    const comma = line.indexOf(',') < 0 ? -1 : topLevelCommaIndex(line);
    let element = (comma < 0 ? line : line.slice(0, comma)).trimEnd();
    if (via.received) element = element.replace(RECEIVED_PARAM, '');
    if (wantsRport) element = element.replace(RPORT_PARAM, '');
    element += `;received=${source.address.includes(':') ? `[${source.address}]` : source.address}`;
    if (wantsRport) element += `;rport=${source.port}`;
    h.values[i] = comma < 0 ? element : element + line.slice(comma);
  }

  /** Serializes and sends; returns the bytes, which a transaction keeps for retransmissions. */
  send(msg: SipMessage, dest: Endpoint): Buffer {
    if (msg.kind === 'response') {
      if (!msg.headers.has('server')) msg.headers.append('Server', this.opts.serverHeader);
      const counts = this.messageCounts;
      if (counts !== null) {
        const c = (msg.status / 100) | 0;
        if (c >= 1 && c <= 6) counts.responses[c] = counts.responses[c]! + 1;
      }
    }
    const data = serialize(msg);
    this.sendData(data, dest);
    return data;
  }

  /** Sends bytes already serialized (a retransmission). */
  sendData(data: Buffer, dest: Endpoint): void {
    this.counters.sent++;
    if (this.trace) this.opts.logger.debug('sip.out', { to: `${dest.transport}:${dest.address}:${dest.port}`, message: data.subarray(0, 4096).toString('utf8') });
    if (dest.transport !== 'udp') {
      // The server opens no connections: a phone is reached on the connection it keeps open.
      for (const t of dest.transport === 'tls' ? this.tls : this.tcp) if (dest.connectionId !== undefined && t.send(data, dest.connectionId)) return;
      this.opts.logger.peer('debug', `${dest.transport}.connection_gone`, { to: `${dest.address}:${dest.port}` });
      return;
    }
    const v6 = dest.address.includes(':');
    for (const t of this.udp) {
      if (t.address.includes(':') === v6) {
        t.send(data, dest.address, dest.port);
        return;
      }
    }
    this.opts.logger.peer('debug', 'udp.no_socket_for_family', { to: dest.address });
  }
}

function topLevelCommaIndex(value: string): number {
  let inQuote = false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 34) inQuote = !inQuote;
    else if (c === 44 && !inQuote) return i;
  }
  return -1;
}

/** An existing received or rport parameter of a Via element (replaced by what we saw). */
const RECEIVED_PARAM = /;\s*received\s*=\s*(\[[^\]]*\]|[^;,\s]*)/i;
const RPORT_PARAM = /;\s*rport(\s*=\s*\d*)?(?=\s*(;|$))/i;

/** A parse error text made safe for a reason phrase (printable ASCII, bounded). */
function sanitizeReason(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?').slice(0, 120);
}

/** Siblings listen on the same host: their private ports are reached on loopback. */
const LOOPBACK_FOR = { 4: '127.0.0.1', 6: '::1' } as const;
/** Ports picked for `port: 0` before giving up (each taken by another program for TCP or IPv6). */
const EPHEMERAL_ATTEMPTS = 8;

function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}
