/**
 * The call-back service of `serve` (../shared/spec/callback.md): a UDP socket on `callback.port`
 * where an application server (AS) asks for two numbers to be connected. Datagrams from outside
 * `callback.asAddress` are dropped unanswered; a REQUEST is answered with an ACK at once (the same
 * ACK again for a retransmission, never a second call); each accepted REQUEST gets exactly one
 * RESPONSE, resent until the AS acknowledges it. No answer is larger than the datagram it answers.
 */
import dgram from 'node:dgram';
import { BlockList, isIP } from 'node:net';
import { addressList } from '../../config/address-entry.js';
import { hostPort } from '../../pbx/call-recorder.js';
import { ACK_RESULTS, callBackRequest, formatIif, parseIif, RESPONSE_RESULTS, type AckReason, type CallBackRequest, type IifMessage } from './iif.js';
import { CallBackSession, type CallBackOutcome, type CallBackSessionDeps } from './session.js';

export interface CallBackSettings {
  port: number;
  /** IPs or CIDR ranges the AS may send from; empty = anyone. */
  asAddress: string[];
  defaultCaller: string;
  maxActive: number;
  video: boolean;
}

type Level = 'debug' | 'info' | 'warn' | 'error';

/**
 * Told of each call-back accepted: started (nothing called yet), changed (calling1, calling2,
 * bridged: see session.state), ended (the RESPONSE's result and cause). Called synchronously:
 * keep it cheap, never throw.
 */
export interface CallBackObserver {
  started(session: CallBackSession): void;
  changed(session: CallBackSession): void;
  ended(session: CallBackSession, result: number, cause: number): void;
}

export interface CallBackServiceDeps extends Omit<CallBackSessionDeps, 'finished' | 'defaultCaller' | 'video' | 'changed'> {
  /** Address the socket binds to (the SIP bind address). */
  bind: string;
  /** Calls need the media relay (the ringback and the join); false: every REQUEST is refused. */
  relayOn: boolean;
  log(level: Level, event: string, fields: Record<string, unknown>): void;
  /** Events a stranger can cause: rate-limited. */
  peerLog(level: Level, event: string, fields: Record<string, unknown>): void;
}

/** Gaps between the sends of a RESPONSE; it is given up this long after the last one. */
const RESPONSE_RESENDS_MS = [500, 1000, 2000, 4000];
const RESPONSE_GIVE_UP_MS = 8000;
/** Finished call-backs remembered for retransmissions (REQUEST, CANCEL) and late ACKs. */
const REMEMBER_MS = 64_000;
const REMEMBER_MAX = 4096;

interface Entry {
  id: string;
  /** host:port the REQUEST came from: answers go there. */
  address: string;
  port: number;
  /** The REQUEST's parameters, to tell a retransmission from another request with this id. */
  key: string;
  ack: string;
  /** Where a CANCEL/RELEASE came from when that is not the REQUEST's source: it gets the RESPONSE too. */
  canceller: { address: string; port: number } | null;
  session: CallBackSession | null;
  response: string | null;
  responseAcked: boolean;
  resendTimer: NodeJS.Timeout | undefined;
  finishedAtMs: number;
}

export class CallBackService {
  private socket: dgram.Socket | null = null;
  private readonly entries = new Map<string, Entry>();
  private active = 0;
  private accepting = true;
  private allowList: BlockList | null;
  private settings: CallBackSettings;
  /** Settles when every RESPONSE sent at shutdown was acknowledged. */
  private drained: (() => void) | null = null;
  /** The live state (admin API, event channel); undefined: nobody listens. */
  observer: CallBackObserver | undefined = undefined;

  constructor(private readonly deps: CallBackServiceDeps, settings: CallBackSettings) {
    this.settings = { ...settings };
    this.allowList = addressList(settings.asAddress);
  }

  /** The port listened on, or 0 when the service is off. */
  get port(): number {
    return this.socket ? this.socket.address().port : 0;
  }

  get activeCount(): number {
    return this.active;
  }

  /** The call-backs in progress, oldest first. */
  list(): CallBackSession[] {
    const out: CallBackSession[] = [];
    for (const e of this.entries.values()) if (e.session) out.push(e.session);
    return out;
  }

  /** Opens the socket (nothing with port 0). A port in use is logged, and the server runs on without the service. */
  async start(): Promise<void> {
    const { port } = this.settings;
    if (port === 0) {
      this.deps.log('info', 'callback.off', { reason: 'callback.port is 0' });
      return;
    }
    const bind = this.deps.bind;
    const socket = dgram.createSocket({ type: isIP(bind) === 6 ? 'udp6' : 'udp4' });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(port, bind, () => {
          socket.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      socket.close();
      this.deps.log('error', 'callback.port_unavailable', {
        port,
        bind,
        error: (err as Error).message,
        hint: 'another program holds this UDP port: free it or set callback.port (0 turns the call-back service off); the server runs without it',
      });
      return;
    }
    socket.on('message', (msg, rinfo) => {
      try {
        this.onDatagram(msg, rinfo.address, rinfo.port);
      } catch (err) {
        this.deps.log('warn', 'callback.internal_error', { error: (err as Error).stack ?? String(err) });
      }
    });
    socket.on('error', (err) => this.deps.log('warn', 'callback.socket_error', { error: err.message }));
    this.socket = socket;
    if (!this.allowList) {
      this.deps.log('warn', 'callback.open_to_all', { port: this.port, hint: 'callback.asAddress is empty: any host that reaches this port can order calls; list the application server addresses' });
    }
    if (!this.deps.relayOn) this.deps.log('warn', 'callback.needs_relay', { hint: 'call-backs are refused (result 5) while media.relay is never' });
    this.deps.log('info', 'callback.listening', { port: this.port, bind, asAddress: this.settings.asAddress });
  }

  /** Limits and numbers for call-backs from now on (SIGHUP); the port needs a restart. */
  setSettings(next: Pick<CallBackSettings, 'asAddress' | 'defaultCaller' | 'maxActive' | 'video'>): void {
    this.settings = { ...this.settings, ...next };
    this.allowList = addressList(next.asAddress);
  }

  /** Shutdown: no new call-backs; each one in progress ends and sends its RESPONSE. */
  releaseAll(): number {
    this.accepting = false;
    let n = 0;
    for (const e of this.entries.values()) {
      if (!e.session) continue;
      n++;
      e.session.stop();
    }
    return n;
  }

  /** Waits (at most `ms`) for the AS to acknowledge the RESPONSEs owed, then closes the socket. */
  async close(ms = 1000): Promise<void> {
    if (this.unacked() > 0 && this.socket) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, ms);
        this.drained = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    this.drained = null;
    for (const e of this.entries.values()) clearTimeout(e.resendTimer);
    const s = this.socket;
    this.socket = null;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private unacked(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.response !== null && !e.responseAcked) n++;
    return n;
  }

  private allowed(address: string): boolean {
    if (!this.allowList) return true;
    const plain = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
    return this.allowList.check(plain, isIP(plain) === 6 ? 'ipv6' : 'ipv4');
  }

  private onDatagram(msg: Buffer, address: string, port: number): void {
    if (!this.allowed(address)) {
      this.deps.peerLog('warn', 'callback.foreign_source', { from: hostPort(address, port), hint: 'not in callback.asAddress: dropped unanswered' });
      return;
    }
    const parsed = parseIif(msg);
    if (!parsed.ok) {
      this.deps.peerLog('info', 'callback.bad_message', { from: hostPort(address, port), error: parsed.error, detail: parsed.detail });
      if (parsed.method === 'REQUEST' && parsed.id !== undefined) this.answer(msg, address, port, ackText(parsed.id, 'bad-request'), ackText(parsed.id, 'bad-request', false));
      return;
    }
    const m = parsed.message;
    switch (m.method) {
      case 'REQUEST':
        this.onRequest(m, msg, address, port);
        return;
      case 'ACK':
        this.onAck(m, address);
        return;
      case 'CANCEL':
      case 'RELEASE':
        this.onCancel(m, msg, address, port);
        return;
      case 'RESPONSE':
        this.deps.peerLog('info', 'callback.bad_message', { from: hostPort(address, port), error: 'unexpected', detail: 'RESPONSE goes from the server to the AS' });
    }
  }

  private onRequest(m: IifMessage, msg: Buffer, address: string, port: number): void {
    const checked = callBackRequest(m);
    if (!checked.ok) {
      const id = m.params.get('id');
      this.deps.peerLog('info', 'callback.bad_message', { from: hostPort(address, port), error: 'missing', detail: `REQUEST without ${checked.missing}` });
      if (id !== undefined) this.answer(msg, address, port, ackText(id, 'bad-request'), ackText(id, 'bad-request', false));
      return;
    }
    const request = checked.request;
    const key = requestKey(request);
    const known = this.entries.get(request.id);
    if (known) {
      if (known.key === key && known.address === address && known.port === port) {
        this.answer(msg, address, port, known.ack, known.ack); // a retransmission: the same ACK, no second call
        return;
      }
      if (known.session) {
        this.refuse(msg, address, port, request.id, 'duplicate-id');
        return;
      }
      this.forget(known);
    }
    if (!this.accepting || !this.deps.relayOn || !this.socket) return this.refuse(msg, address, port, request.id, 'unavailable');
    for (const n of [request.user1, request.user2]) {
      // A restricted class is no number for an application server: call-backs are granted none.
      const kind = this.deps.route(n).kind;
      if (kind === 'not-found' || kind === 'restricted') return this.refuse(msg, address, port, request.id, 'unknown-number', { number: n, ...(kind === 'restricted' ? { restricted: true } : {}) });
    }
    if (this.active >= this.settings.maxActive) return this.refuse(msg, address, port, request.id, 'limit-reached', { maxActive: this.settings.maxActive });
    this.accept(request, key, msg, address, port);
  }

  private accept(request: CallBackRequest, key: string, msg: Buffer, address: string, port: number): void {
    this.pruneRemembered();
    const entry: Entry = { id: request.id, address, port, key, ack: formatIif('ACK', [['id', request.id], ['result', ACK_RESULTS.accepted]]), canceller: null, session: null, response: null, responseAcked: false, resendTimer: undefined, finishedAtMs: 0 };
    const session = new CallBackSession(
      {
        ...this.deps,
        defaultCaller: this.settings.defaultCaller,
        video: this.settings.video,
        finished: (_s, outcome) => this.finished(entry, outcome),
        changed: (s) => this.observer?.changed(s),
      },
      request,
      hostPort(address, port),
    );
    entry.session = session;
    this.entries.set(request.id, entry);
    this.active++;
    this.answer(msg, address, port, entry.ack, entry.ack);
    this.deps.log('info', 'callback.accepted', { id: request.id, user1: request.user1, user2: request.user2, from: hostPort(address, port) });
    this.observer?.started(session);
    void session.start();
  }

  private refuse(msg: Buffer, address: string, port: number, id: string, reason: AckReason, fields: Record<string, unknown> = {}): void {
    this.deps.peerLog('info', 'callback.refused', { id, reason, from: hostPort(address, port), ...fields });
    this.answer(msg, address, port, ackText(id, reason), ackText(id, reason, false));
  }

  private onAck(m: IifMessage, address: string): void {
    const id = m.params.get('id');
    const e = id === undefined ? undefined : this.entries.get(id);
    if (!e || (e.address !== address && e.canceller?.address !== address) || e.response === null || e.responseAcked) return;
    e.responseAcked = true;
    clearTimeout(e.resendTimer);
    e.resendTimer = undefined;
    if (this.drained && this.unacked() === 0) this.drained();
  }

  private onCancel(m: IifMessage, msg: Buffer, address: string, port: number): void {
    const id = m.params.get('id');
    if (id === undefined) return;
    const e = this.entries.get(id);
    if (!e) {
      this.refuse(msg, address, port, id, 'unknown-id');
      return;
    }
    const elsewhere = address !== e.address || port !== e.port;
    if (e.session) {
      if (elsewhere) e.canceller = { address, port };
      this.deps.log('info', 'callback.cancel', { id, by: m.method, state: e.session.state, from: hostPort(address, port) });
      e.session.cancel();
    } else if (e.response !== null && this.socket) {
      this.send(e.response, address, port); // the RESPONSE already sent is the answer
    }
  }

  private finished(entry: Entry, outcome: CallBackOutcome): void {
    const session = entry.session;
    if (!session) return;
    entry.session = null;
    this.active--;
    entry.finishedAtMs = Date.now();
    const result = RESPONSE_RESULTS[outcome.outcome];
    entry.response = formatIif('RESPONSE', [['id', entry.id], ['result', result], ['duration', outcome.durationS], ['cause', outcome.cause]]);
    this.deps.log('info', 'callback.finished', { id: entry.id, outcome: outcome.outcome, duration: outcome.durationS, cause: outcome.cause });
    this.sendResponse(entry, 0);
    this.observer?.ended(session, result, outcome.cause);
  }

  private sendResponse(entry: Entry, attempt: number): void {
    if (entry.responseAcked || !this.socket || entry.response === null) return;
    this.send(entry.response, entry.address, entry.port);
    if (entry.canceller) this.send(entry.response, entry.canceller.address, entry.canceller.port);
    const wait = RESPONSE_RESENDS_MS[attempt] ?? RESPONSE_GIVE_UP_MS;
    entry.resendTimer = setTimeout(() => {
      entry.resendTimer = undefined;
      if (entry.responseAcked) return;
      if (attempt < RESPONSE_RESENDS_MS.length) this.sendResponse(entry, attempt + 1);
      else this.deps.log('warn', 'callback.response_unacknowledged', { id: entry.id, to: hostPort(entry.address, entry.port), sends: attempt + 1, hint: 'the AS never answered the RESPONSE with ACK: check that it listens on the port its REQUEST came from' });
    }, wait);
    entry.resendTimer.unref();
  }

  /** Sends `text`, or `shorter` when `text` is larger than the datagram it answers, or nothing. */
  private answer(request: Buffer, address: string, port: number, text: string, shorter: string): void {
    const fits = [text, shorter].find((t) => Buffer.byteLength(t) <= request.length);
    if (fits === undefined) {
      this.deps.peerLog('info', 'callback.answer_withheld', { from: hostPort(address, port), hint: 'the answer would be larger than the message: nothing sent' });
      return;
    }
    this.send(fits, address, port);
  }

  private send(text: string, address: string, port: number): void {
    this.socket?.send(text, port, address, (err) => {
      if (err) this.deps.peerLog('warn', 'callback.send_failed', { to: hostPort(address, port), error: err.message });
    });
  }

  private forget(e: Entry): void {
    clearTimeout(e.resendTimer);
    this.entries.delete(e.id);
  }

  /** Drops finished call-backs older than REMEMBER_MS, and the oldest beyond REMEMBER_MAX. */
  private pruneRemembered(): void {
    const now = Date.now();
    let finished = 0;
    for (const e of this.entries.values()) if (!e.session) finished++;
    for (const e of this.entries.values()) {
      if (e.session) continue;
      if (now - e.finishedAtMs < REMEMBER_MS && finished < REMEMBER_MAX) break;
      if (e.response !== null && !e.responseAcked && e.resendTimer !== undefined) continue;
      this.forget(e);
      finished--;
    }
  }
}

function ackText(id: string, reason: AckReason, withReason = true): string {
  const pairs: Array<[string, string | number]> = [['id', id], ['result', ACK_RESULTS[reason]]];
  if (withReason) pairs.push(['reason', reason]);
  return formatIif('ACK', pairs);
}

function requestKey(r: CallBackRequest): string {
  return [r.caller1 ?? '', r.user1, r.caller2 ?? '', r.user2, r.maxDurationS].join('\n');
}

/** The allowed sources, or null when any may send. Entries were checked by the config loader. */

