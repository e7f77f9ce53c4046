/**
 * The application-server (AS) side of the call-back protocol (iif.ts), as `minisipserver callback`
 * uses it: one UDP socket on an ephemeral port that sends REQUEST and CANCEL (resent until
 * answered), acknowledges every RESPONSE for the ids it sent, and listens to the server alone.
 */
import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import DgramAsPromised, { type RemoteInfo, type SocketAsPromised } from 'dgram-as-promised';
import { ACK_RESULTS, formatIif, parseIif, RESPONSE_RESULTS, type CallBackRequest, type IifMethod, type ResponseOutcome } from './iif.js';

/** Total time a REQUEST or CANCEL is resent for when nothing answers it. */
export const DEFAULT_TIMEOUT_MS = 8000;
/** The first gap between sends of a REQUEST or CANCEL; each next gap doubles, up to MAX_GAP_MS. */
export const FIRST_GAP_MS = 500;
export const MAX_GAP_MS = 4000;

export interface CallBackAck {
  id: string;
  /** 0 accepted; else a value of ACK_RESULTS. */
  result: number;
  /** The word of `result` (the datagram may leave it out), e.g. unknown-number; none when accepted. */
  reason?: string;
}

export interface CallBackResponse {
  id: string;
  /** A value of RESPONSE_RESULTS, or null when the RESPONSE had none. */
  result: number | null;
  /** The name of `result`, e.g. bridged or user2-failed. */
  outcome: ResponseOutcome | null;
  /** Talk seconds. */
  durationS: number;
  /** Q.850 cause, or null when the RESPONSE had none. */
  cause: number | null;
}

/** What answered a CANCEL: the call-back's RESPONSE, or an ACK refusing it (result 6: unknown id). */
export type CancelOutcome = { kind: 'response'; response: CallBackResponse } | { kind: 'ack'; ack: CallBackAck };

/** Progress, for printing. */
export interface CallBackClientEvents {
  /** A REQUEST or CANCEL went out; `attempt` 1 is the first send, above 1 a retransmission. */
  sent?(e: { method: IifMethod; id: string; attempt: number; text: string }): void;
  /** The ACK answering a pending REQUEST or CANCEL (late duplicates are not reported). */
  ack?(ack: CallBackAck): void;
  /** A RESPONSE, already acknowledged; `repeat` when the server sent it again (the ACK is sent again too). */
  response?(response: CallBackResponse, repeat: boolean): void;
}

export interface CallBackClientOptions {
  /** Host name or IP of the server. */
  host: string;
  port: number;
  /** See DEFAULT_TIMEOUT_MS. */
  timeoutMs?: number;
  events?: CallBackClientEvents;
}

/** Nothing answered a REQUEST or CANCEL within the time allowed. */
export class NoAnswerError extends Error {
  constructor(
    readonly method: IifMethod,
    readonly id: string,
    readonly timeoutMs: number,
  ) {
    super(`no answer to ${method} id=${id} within ${timeoutMs / 1000} s`);
    this.name = 'NoAnswerError';
  }
}

/** The client was closed while this was awaited. */
export class ClientClosedError extends Error {
  constructor() {
    super('the call-back client was closed');
    this.name = 'ClientClosedError';
  }
}

/** A fresh request id that the codec accepts: `cb-` + the time in base 36 + random hex. */
export function newCallBackId(): string {
  return `cb-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** `host:port`, IPv6 in brackets. */
export function formatHostPort(host: string, port: number): string {
  return `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}

/** The REQUEST datagram of `r` (duration left out when 0: no cap). */
export function requestText(r: CallBackRequest): string {
  const pairs: Array<[string, string | number]> = [['id', r.id]];
  if (r.caller1 !== undefined) pairs.push(['caller1', r.caller1]);
  pairs.push(['user1', r.user1]);
  if (r.caller2 !== undefined) pairs.push(['caller2', r.caller2]);
  pairs.push(['user2', r.user2]);
  if (r.maxDurationS > 0) pairs.push(['duration', r.maxDurationS]);
  return formatIif('REQUEST', pairs);
}

/**
 * The CANCEL datagram for `id`. The server sends no answer larger than the datagram it answers, and
 * `ACK: id=X;result=6;reason=unknown-id` is longer than `CANCEL: id=X`: a `pad` parameter (unknown
 * to the server, so ignored) makes room for it.
 */
export function cancelText(id: string): string {
  const bare = formatIif('CANCEL', [['id', id]]);
  const answer = formatIif('ACK', [['id', id], ['result', ACK_RESULTS['unknown-id']], ['reason', 'unknown-id']]);
  const missing = answer.length - bare.length;
  return missing <= 0 ? bare : formatIif('CANCEL', [['id', id], ['pad', '0'.repeat(Math.max(1, missing - ';pad='.length))]]);
}

const ACK_WORDS = new Map<number, string>(Object.entries(ACK_RESULTS).map(([word, n]) => [n, word]));
const OUTCOMES = new Map<number, ResponseOutcome>(Object.entries(RESPONSE_RESULTS).map(([word, n]) => [n, word as ResponseOutcome]));

export class CallBackClient {
  private readonly events: CallBackClientEvents;
  private readonly timeoutMs: number;
  private readonly serverMatch: BlockList | null;
  /** REQUESTs waiting for their ACK, and CANCELs waiting for a refusing ACK, by id. */
  private readonly requestAcks = new Map<string, (ack: CallBackAck) => void>();
  private readonly cancelAcks = new Map<string, (ack: CallBackAck) => void>();
  /** Ids whose RESPONSE this client acknowledges, and the RESPONSEs received. */
  private readonly tracked = new Set<string>();
  private readonly responses = new Map<string, CallBackResponse>();
  private readonly responseWaiters = new Map<string, Set<(r: CallBackResponse) => void>>();
  private readonly acksInFlight = new Set<Promise<void>>();
  private closed = false;
  private rejectClosed: (err: Error) => void = () => undefined;
  /** Rejects when the client closes: every wait races it. */
  private readonly closing: Promise<never>;
  private readonly receiving: Promise<void>;

  private constructor(
    private readonly socket: SocketAsPromised,
    /** The server's IP and port: the only source listened to. */
    readonly server: { address: string; port: number },
    options: CallBackClientOptions,
  ) {
    this.events = options.events ?? {};
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.serverMatch = addressMatcher(server.address);
    this.closing = new Promise<never>((_, reject) => (this.rejectClosed = reject));
    this.closing.catch(() => undefined);
    this.receiving = this.receive();
  }

  /**
   * A client bound to an ephemeral port of the server's address family. A host name is looked up
   * first, IPv4 preferred (`localhost` reaches a server bound to 0.0.0.0).
   */
  static async open(options: CallBackClientOptions): Promise<CallBackClient> {
    const host = options.host.startsWith('[') && options.host.endsWith(']') ? options.host.slice(1, -1) : options.host;
    const address = isIP(host) ? host : (await lookup(host, { verbatim: false })).address;
    const socket = DgramAsPromised.createSocket(isIP(address) === 6 ? 'udp6' : 'udp4');
    try {
      await socket.bind(0);
    } catch (err) {
      await socket.close().catch(() => undefined);
      throw err;
    }
    return new CallBackClient(socket, { address, port: options.port }, options);
  }

  /** The local port the client sends from (the server answers there). */
  get localPort(): number {
    return this.socket.address().port;
  }

  /**
   * Sends the REQUEST, resent until an ACK with its id arrives; resolves to that ACK (accepted or
   * not), rejects with NoAnswerError after `timeoutMs`. The RESPONSE that follows is acknowledged
   * as it arrives: await it with response().
   */
  async request(r: CallBackRequest, timeoutMs = this.timeoutMs): Promise<CallBackAck> {
    if (this.requestAcks.has(r.id)) throw new Error(`a REQUEST with id ${r.id} is already waiting for its ACK`);
    this.tracked.add(r.id);
    const acked = new Promise<CallBackAck>((resolve) => this.requestAcks.set(r.id, resolve));
    try {
      return await this.resend('REQUEST', r.id, requestText(r), acked, timeoutMs);
    } finally {
      this.requestAcks.delete(r.id);
    }
  }

  /** The RESPONSE for `id` (at once if it came already); no time limit but `signal` and close(). */
  response(id: string, signal?: AbortSignal): Promise<CallBackResponse> {
    this.tracked.add(id);
    const known = this.responses.get(id);
    if (known) return Promise.resolve(known);
    let stop = (): void => undefined;
    const got = new Promise<CallBackResponse>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const waiters = this.responseWaiters.get(id) ?? new Set();
      this.responseWaiters.set(id, waiters);
      const onAbort = () => reject(signal?.reason);
      waiters.add(resolve);
      signal?.addEventListener('abort', onAbort, { once: true });
      stop = () => {
        waiters.delete(resolve);
        if (waiters.size === 0) this.responseWaiters.delete(id);
        signal?.removeEventListener('abort', onAbort);
      };
    });
    return Promise.race([got, this.closing]).finally(() => stop());
  }

  /**
   * Sends CANCEL for `id`, resent until the RESPONSE of the call-back or a refusing ACK (unknown id)
   * arrives; rejects with NoAnswerError after `timeoutMs`.
   */
  async cancel(id: string, timeoutMs = this.timeoutMs): Promise<CancelOutcome> {
    if (this.cancelAcks.has(id)) throw new Error(`a CANCEL of id ${id} is already waiting for its answer`);
    this.tracked.add(id);
    const done = new AbortController();
    const refused = new Promise<CallBackAck>((resolve) => this.cancelAcks.set(id, resolve));
    const answered = Promise.race([
      this.response(id, done.signal).then((response): CancelOutcome => ({ kind: 'response', response })),
      refused.then((ack): CancelOutcome => ({ kind: 'ack', ack })),
    ]);
    try {
      return await this.resend('CANCEL', id, cancelText(id), answered, timeoutMs);
    } finally {
      this.cancelAcks.delete(id);
      done.abort();
    }
  }

  /**
   * Closes the socket; pending calls reject with ClientClosedError. With `lingerMs`, once a
   * RESPONSE was received the socket first stays open that long (cut short by `signal`) so that a
   * RESPONSE resent because an ACK was lost is acknowledged again.
   */
  async close(options: { lingerMs?: number; signal?: AbortSignal } = {}): Promise<void> {
    if (this.closed) return this.receiving;
    const linger = options.lingerMs ?? 0;
    if (linger > 0 && this.responses.size > 0 && !options.signal?.aborted) {
      // Unref'd: the open socket holds the process meanwhile.
      await sleep(linger, undefined, { ref: false, ...(options.signal ? { signal: options.signal } : {}) }).catch(() => undefined);
    }
    if (this.closed) return this.receiving;
    this.closed = true;
    this.rejectClosed(new ClientClosedError());
    await Promise.all(this.acksInFlight);
    await this.socket.close().catch(() => undefined);
    await this.receiving;
  }

  /**
   * Sends `text` now and again after 500 ms, 1 s, 2 s, 4 s, 4 s... until `answered` settles;
   * rejects with NoAnswerError once `timeoutMs` has passed, or with the error of a failed send.
   */
  private async resend<T>(method: IifMethod, id: string, text: string, answered: Promise<T>, timeoutMs: number): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const started = Date.now();
    let attempt = 0;
    const failed = new Promise<never>((_, reject) => {
      const send = (gapMs: number) => {
        attempt++;
        this.events.sent?.({ method, id, attempt, text });
        this.socket.send(text, this.server.port, this.server.address).catch(reject);
        const left = timeoutMs - (Date.now() - started);
        const giveUp = gapMs >= left;
        // Unref'd: the open socket holds the process while an answer is awaited.
        timer = setTimeout(() => (giveUp ? reject(new NoAnswerError(method, id, timeoutMs)) : send(Math.min(gapMs * 2, MAX_GAP_MS))), Math.max(0, giveUp ? left : gapMs));
        timer.unref();
      };
      send(FIRST_GAP_MS);
    });
    try {
      return await Promise.race([answered, failed, this.closing]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Best effort (a lost ACK brings the RESPONSE again); close() lets it leave first. */
  private sendAck(id: string): void {
    const sending = this.socket
      .send(formatIif('ACK', [['id', id]]), this.server.port, this.server.address)
      .then(() => undefined, () => undefined)
      .finally(() => this.acksInFlight.delete(sending));
    this.acksInFlight.add(sending);
  }

  private async receive(): Promise<void> {
    while (!this.closed) {
      let packet;
      try {
        packet = await this.socket.recv();
      } catch {
        continue; // a socket error: the next datagram is awaited all the same
      }
      if (!packet) return; // closed
      this.onDatagram(packet.msg, packet.rinfo);
    }
  }

  private fromServer(rinfo: RemoteInfo): boolean {
    if (rinfo.port !== this.server.port) return false;
    if (rinfo.address === this.server.address) return true;
    const family = isIP(rinfo.address) === 6 ? 'ipv6' : 'ipv4';
    try {
      return this.serverMatch?.check(rinfo.address, family) ?? false;
    } catch {
      return false;
    }
  }

  private onDatagram(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.closed || !this.fromServer(rinfo)) return;
    const parsed = parseIif(msg);
    if (!parsed.ok) return;
    const m = parsed.message;
    const id = m.params.get('id');
    if (id === undefined) return;
    if (m.method === 'ACK') {
      const resultText = m.params.get('result');
      if (resultText === undefined) return;
      const result = Number(resultText);
      const ack: CallBackAck = { id, result };
      const reason = result === 0 ? undefined : (ACK_WORDS.get(result) ?? m.params.get('reason'));
      if (reason !== undefined) ack.reason = reason;
      const forRequest = this.requestAcks.get(id);
      const forCancel = result === 0 ? undefined : this.cancelAcks.get(id);
      // A refusal goes to a pending CANCEL when it says unknown-id or no REQUEST is pending.
      const to = forCancel && (result === ACK_RESULTS['unknown-id'] || !forRequest) ? forCancel : forRequest;
      if (!to) return; // a late copy of an ACK already received
      this.events.ack?.(ack);
      to(ack);
      return;
    }
    if (m.method !== 'RESPONSE' || !this.tracked.has(id)) return;
    this.sendAck(id);
    const result = m.params.has('result') ? Number(m.params.get('result')) : null;
    const cause = m.params.get('cause');
    const response: CallBackResponse = {
      id,
      result,
      outcome: result === null ? null : (OUTCOMES.get(result) ?? null),
      durationS: Number(m.params.get('duration') ?? '0'),
      cause: cause === undefined ? null : Number(cause),
    };
    const repeat = this.responses.has(id);
    if (!repeat) this.responses.set(id, response);
    this.events.response?.(response, repeat);
    if (repeat) return;
    const waiters = this.responseWaiters.get(id);
    this.responseWaiters.delete(id);
    for (const w of waiters ?? []) w(response);
  }
}

/** Matches the spellings of one IP (e.g. ::1 and 0:0:0:0:0:0:0:1); null when it cannot. */
function addressMatcher(address: string): BlockList | null {
  try {
    const list = new BlockList();
    list.addAddress(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
    return list;
  } catch {
    return null;
  }
}
