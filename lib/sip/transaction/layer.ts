/**
 * The transaction layer of RFC 3261 §17: owns the server and client transaction tables, matches
 * incoming requests (§17.2.3) and responses (§17.1.3) to them, answers CANCEL (§9.2) and sheds
 * load with a stateless 503 when the server table is full.
 */
import { createResponse, type SipMessage, type SipRequest, type SipResponse } from '../message.js';
import { systemClock, type Clock } from './clock.js';
import { ClientInviteTransaction } from './client-invite.js';
import { ClientNonInviteTransaction } from './client-non-invite.js';
import { ExpiryScheduler } from './expiry-queue.js';
import { RetainedBytes } from './retained-bytes.js';
import {
  clientKey,
  cseqMethod,
  detach,
  internMethod,
  legacyServerKey,
  MAGIC_COOKIE,
  newBranch,
  newTag,
  toTag,
  topVia,
  viaBranch,
  viaSentBy,
} from './message-keys.js';
import { ServerInviteTransaction } from './server-invite.js';
import { ServerNonInviteTransaction } from './server-non-invite.js';
import { resolveTimerConfig, timerDurations, type TimerConfig, type TimerDurations } from './timers.js';
import {
  sameSource,
  type ClientTransaction,
  type ClientTransactionUser,
  type Destination,
  type RetainedResponse,
  type Evictable,
  type ServerTableEntry,
  type ServerTransaction,
  type TransactionContext,
  type TransactionUser,
} from './types.js';

export type {
  ClientTransaction,
  ClientTransactionUser,
  Destination,
  ServerTransaction,
  TransactionUser,
} from './types.js';

export interface TransactionLayerOptions {
  /**
   * Hands a message to the transport; may throw on a transport error. It may return the bytes
   * it sent: with `sendBytes` given, a non-INVITE server transaction then keeps only those bytes
   * (not the response object) for its retransmissions during Timer J.
   */
  send(msg: SipMessage, dest: Destination): Buffer | void;
  /**
   * Sends bytes that `send` returned earlier, unchanged, to `dest`; may throw on a transport
   * error. Without it, retransmissions go through `send` with the response object.
   */
  sendBytes?(data: Buffer, dest: Destination): void;
  clock?: Clock;
  timers?: Partial<TimerConfig>;
  tu: TransactionUser;
  /** Live server transactions allowed; requests beyond get a stateless 503. Default 100000. */
  maxServerTransactions?: number;
  /** Coalescing window of the long timers (B, D, F, H, I, J, K, L, M), default 100 ms. */
  longTimerResolution?: number;
  /**
   * Told about a fault thrown by a client transaction's user from a timer (timeout, transport
   * error): no request handler surrounds those calls, so the fault is reported here instead of
   * reaching the event loop. Default: rethrown.
   */
  onUserError?: (err: unknown) => void;
}

export interface TransactionStats {
  /** Live server transactions. */
  serverTransactions: number;
  /** Live client transactions. */
  clientTransactions: number;
  /** INVITE server transactions still waiting for the final response: calls being set up. */
  invitesInProgress: number;
  /** Responses that matched no client transaction (§17.1.3), or could not be matched at all. */
  strayResponses: number;
  /** Retransmitted requests, ACKs and responses handled inside a transaction. */
  retransmissionsAbsorbed: number;
  /** Requests refused with a stateless 503 because the server table was full. */
  overloadRejections: number;
  /** Completed non-INVITE transactions ended before Timer J to make room for new requests. */
  evictedEarly: number;
  /** Requests without a usable top Via, dropped unanswered. */
  malformedRequests: number;
  /** Sends that threw. */
  transportErrors: number;
}

type ServerTx = ServerInviteTransaction | ServerNonInviteTransaction;
type ClientTx = ClientInviteTransaction | ClientNonInviteTransaction;

/**
 * Legitimate traffic files one or two transactions per branch (INVITE and its CANCEL). A peer
 * reusing one branch from many sent-by values is refused rather than allowed to build long chains.
 */
const MAX_CHAIN = 16;

export class TransactionLayer {
  readonly stats: TransactionStats = {
    serverTransactions: 0,
    clientTransactions: 0,
    invitesInProgress: 0,
    strayResponses: 0,
    retransmissionsAbsorbed: 0,
    overloadRejections: 0,
    evictedEarly: 0,
    malformedRequests: 0,
    transportErrors: 0,
  };

  /** Keyed by branch (or RFC 2543 key); transactions sharing one are chained via `next`. */
  private readonly servers = new Map<string, ServerTx>();
  private serverCount = 0;
  /** Transactions filed under the key of the last findServer() that found nothing. */
  private chainLength = 0;
  private readonly clients = new Map<string, ClientTx>();
  private readonly ctx: TransactionContext;
  private readonly tu: TransactionUser;
  private readonly onUserError: ((err: unknown) => void) | undefined;
  private readonly maxServers: number;
  /**
   * Completed non-INVITE server transactions in the order they completed. When the table is
   * full the oldest of them ends before its Timer J: it has already answered and only absorbs
   * retransmissions, which after a few seconds hardly come any more, whereas refusing new
   * requests with 503 would fail real work. Entries whose transaction already ended are skipped.
   */
  private completedFifo: Array<Evictable | undefined> = [];
  private completedHead = 0;

  constructor(opts: TransactionLayerOptions) {
    const clock = opts.clock ?? systemClock;
    const cfg = resolveTimerConfig(opts.timers);
    const unreliable = timerDurations(cfg, false);
    const reliable = timerDurations(cfg, true);
    const send = opts.send;
    const sendBytes = opts.sendBytes;
    const stats = this.stats;
    const clients = this.clients;
    this.tu = opts.tu;
    this.maxServers = opts.maxServerTransactions ?? 100_000;
    this.onUserError = opts.onUserError;
    this.ctx = {
      clock,
      expiry: new ExpiryScheduler(clock, opts.longTimerResolution ?? 100),
      responseBytes: new RetainedBytes(),
      durations: (isReliable: boolean): TimerDurations => (isReliable ? reliable : unreliable),
      transmit(msg: SipMessage, dest: Destination): Error | null {
        try {
          send(msg, dest);
          return null;
        } catch (err) {
          stats.transportErrors++;
          return err instanceof Error ? err : new Error(String(err));
        }
      },
      transmitRetained(res: SipResponse, dest: Destination): RetainedResponse | null {
        try {
          const out = send(res, dest);
          return sendBytes !== undefined && Buffer.isBuffer(out) ? out : res;
        } catch {
          stats.transportErrors++;
          return null;
        }
      },
      retransmit(data: RetainedResponse, dest: Destination): boolean {
        try {
          if (Buffer.isBuffer(data)) sendBytes!(data, dest);
          else send(data, dest);
          return true;
        } catch {
          stats.transportErrors++;
          return false;
        }
      },
      removeServer: (tx: ServerTableEntry): void => this.unlinkServer(tx),
      inviteAnswered(): void {
        stats.invitesInProgress--;
      },
      completed: (tx: Evictable): void => this.noteCompleted(tx),
      removeClient(tx: { readonly key: string }): void {
        if (clients.get(tx.key) === tx) {
          clients.delete(tx.key);
          stats.clientTransactions = clients.size;
        }
      },
      onAckTimeout: (tx: ServerTransaction): void => this.tu.onAckTimeout?.(tx),
    };
  }

  /**
   * A request from the transport. A retransmission is handled by its transaction; an ACK goes
   * to its INVITE transaction or, matching none (ACK to a 2xx), to the TU; anything else starts
   * a server transaction and is passed to the TU.
   */
  receiveRequest(req: SipRequest, source: Destination): void {
    const via = topVia(req);
    if (via === undefined || via.length === 0) {
      this.stats.malformedRequests++;
      return;
    }
    const method = req.method;
    const isAck = method === 'ACK';
    const txMethod = isAck ? 'INVITE' : method;
    // §17.2.3: with a magic-cookie branch, the branch is the key and sent-by and method are
    // compared on the chain; otherwise the RFC 2543 key (which holds the method) is used.
    const branch = viaBranch(via);
    const legacy = branch === undefined || !branch.startsWith(MAGIC_COOKIE);
    // The key is copied off the message text first (a new transaction files it for up to 64*T1),
    // so that the hash Map.get computes is the one Map.set finds on it.
    const key = detach(legacy ? legacyServerKey(req, via, txMethod) : branch);
    // sent-by is only needed when the key is filed already, or for a new transaction.
    let sentBy: string | undefined = undefined;
    let existing: ServerTx | undefined = undefined;
    const head = this.servers.get(key);
    if (head !== undefined) {
      sentBy = legacy ? '' : (viaSentBy(via) ?? '');
      existing = this.findServer(head, sentBy, txMethod, source);
    } else {
      this.chainLength = 0;
    }

    if (isAck) {
      this.receiveAck(req, existing, source);
      return;
    }
    if (existing !== undefined) {
      this.stats.retransmissionsAbsorbed++;
      existing.receiveRetransmission();
      return;
    }
    if (this.serverCount >= this.maxServers) this.evictCompleted();
    if (this.serverCount >= this.maxServers || this.chainLength >= MAX_CHAIN) {
      this.stats.overloadRejections++;
      this.ctx.transmit(createResponse(req, 503, undefined, newTag()), source);
      return;
    }
    // What a transaction files lives for up to 64*T1: no views on the message text (detach).
    const fileSentBy = detach(sentBy ?? (legacy ? '' : (viaSentBy(via) ?? '')));
    if (method === 'CANCEL') {
      this.receiveCancel(req, via, legacy, key, fileSentBy, source, head);
      return;
    }
    let tx: ServerTx;
    if (method === 'INVITE') {
      tx = new ServerInviteTransaction(this.ctx, key, fileSentBy, req, source);
      this.stats.invitesInProgress++;
    } else {
      tx = new ServerNonInviteTransaction(this.ctx, key, fileSentBy, internMethod(method), req, source);
    }
    this.addServer(tx, head);
    this.tu.onRequest(req, tx, source);
  }

  /** A response from the transport, matched per §17.1.3 by top Via branch and CSeq method. */
  receiveResponse(res: SipResponse, _source: Destination): void {
    const via = topVia(res);
    const branch = via === undefined ? undefined : viaBranch(via);
    const method = cseqMethod(res);
    const tx = branch && method ? this.clients.get(clientKey(branch, method)) : undefined;
    if (tx === undefined) {
      this.stats.strayResponses++;
      return;
    }
    if (!tx.receiveResponse(res)) this.stats.retransmissionsAbsorbed++;
  }

  /**
   * Starts a client transaction for `req` (not ACK: an ACK to a 2xx is sent by the TU directly).
   * A top Via without a branch gets a fresh one. A CANCEL arms the §9.1 timeout on the INVITE
   * transaction it cancels. Transport errors on the first send are reported synchronously.
   */
  sendRequest(req: SipRequest, dest: Destination, user: ClientTransactionUser): ClientTransaction {
    if (req.method === 'ACK') throw new TypeError('ACK is not sent through a client transaction');
    let via = topVia(req);
    if (via === undefined) throw new TypeError('request has no Via header');
    let branch = viaBranch(via);
    if (!branch) {
      branch = newBranch();
      via = `${via};branch=${branch}`;
      req.headers.shiftListElement('via');
      req.headers.prepend('via', via);
    }
    const key = clientKey(branch, req.method);
    if (this.clients.has(key)) throw new Error(`a client transaction with branch ${branch} ${req.method} exists`);
    const guarded = this.onUserError ? guardTimerCallbacks(user, this.onUserError) : user;
    const tx =
      req.method === 'INVITE'
        ? new ClientInviteTransaction(this.ctx, key, req, dest, guarded)
        : new ClientNonInviteTransaction(this.ctx, key, req, dest, guarded);
    this.clients.set(key, tx);
    this.stats.clientTransactions = this.clients.size;
    if (req.method === 'CANCEL') {
      const invite = this.clients.get(clientKey(branch, 'INVITE'));
      if (invite instanceof ClientInviteTransaction) invite.cancelSent();
    }
    tx.start();
    return tx;
  }

  /** Stops every timer and forgets every transaction. */
  close(): void {
    for (const head of this.servers.values()) {
      for (let tx: ServerTableEntry | undefined = head; tx !== undefined; tx = tx.next) (tx as ServerTx).dispose();
    }
    for (const tx of this.clients.values()) tx.dispose();
    this.servers.clear();
    this.serverCount = 0;
    this.completedFifo = [];
    this.completedHead = 0;
    this.clients.clear();
    this.ctx.expiry.close();
    this.ctx.responseBytes.reset();
    this.stats.serverTransactions = 0;
    this.stats.clientTransactions = 0;
    this.stats.invitesInProgress = 0;
  }

  /**
   * The transaction chained from `head` (filed under one key) with this sent-by and method
   * (RFC 3261 §17.2.3) that also came from the same transport source: a real retransmission
   * always does, while a stranger who copies a branch must not be able to suppress or hijack
   * another client's transaction. When none matches, `chainLength` tells how many are chained.
   */
  private noteCompleted(tx: Evictable): void {
    this.completedFifo.push(tx);
    // Timer J ends transactions in completion order, so ended ones gather at the head: drop a
    // few here, so that the list holds about as many entries as there are live transactions.
    for (let n = 0; n < 2 && this.completedHead < this.completedFifo.length - 1; n++) {
      const head = this.completedFifo[this.completedHead] as { state?: string } | undefined;
      if (head !== undefined && head.state !== 'Terminated') break;
      this.completedFifo[this.completedHead++] = undefined;
    }
    this.compactCompleted();
  }

  private evictCompleted(): void {
    const fifo = this.completedFifo;
    while (this.serverCount >= this.maxServers && this.completedHead < fifo.length) {
      const tx = fifo[this.completedHead];
      fifo[this.completedHead++] = undefined;
      if (tx !== undefined && tx.evict()) this.stats.evictedEarly++;
    }
    this.compactCompleted();
  }

  private compactCompleted(): void {
    const fifo = this.completedFifo;
    if (this.completedHead === fifo.length) {
      fifo.length = 0;
      this.completedHead = 0;
    } else if (this.completedHead >= 4096 && this.completedHead * 2 >= fifo.length) {
      this.completedFifo = fifo.slice(this.completedHead);
      this.completedHead = 0;
    }
  }

  /**
   * True when `req` (not an ACK) is a retransmission of a request a server transaction already
   * has (§17.2.3 matching): receiveRequest() would only hand it to that transaction. Overload
   * control asks this before refusing a new request, so that a retransmission is never answered
   * with a second, different final response.
   */
  hasServerTransaction(req: SipRequest, source: Destination): boolean {
    const via = topVia(req);
    if (via === undefined || via.length === 0) return false;
    const branch = viaBranch(via);
    const legacy = branch === undefined || !branch.startsWith(MAGIC_COOKIE);
    const head = this.servers.get(legacy ? legacyServerKey(req, via, req.method) : branch);
    if (head === undefined) return false;
    return this.findServer(head, legacy ? '' : (viaSentBy(via) ?? ''), req.method, source) !== undefined;
  }

  private findServer(head: ServerTx | undefined, sentBy: string, method: string, source: Destination): ServerTx | undefined {
    let tx = head;
    let n = 0;
    for (; tx !== undefined; n++) {
      if (tx.sentBy === sentBy && tx.method === method && sameSource(tx.destination, source)) return tx;
      tx = tx.next as ServerTx | undefined;
    }
    this.chainLength = n;
    return undefined;
  }

  /** Files `tx` at the head of its chain; `head` is the current head under `tx.key`. */
  private addServer(tx: ServerTx, head: ServerTx | undefined): void {
    tx.next = head;
    this.servers.set(tx.key, tx);
    this.stats.serverTransactions = ++this.serverCount;
  }

  private unlinkServer(tx: ServerTableEntry): void {
    const head = this.servers.get(tx.key);
    if (head === tx) {
      if (tx.next === undefined) this.servers.delete(tx.key);
      else this.servers.set(tx.key, tx.next as ServerTx);
    } else {
      let prev: ServerTableEntry | undefined = head;
      while (prev !== undefined && prev.next !== tx) prev = prev.next;
      if (prev === undefined) return;
      prev.next = tx.next;
    }
    tx.next = undefined;
    this.stats.serverTransactions = --this.serverCount;
  }

  private receiveAck(ack: SipRequest, tx: ServerTx | undefined, source: Destination): void {
    if (tx instanceof ServerInviteTransaction && this.ackMatches(ack, tx)) {
      if (tx.receiveAck() === 'absorbed') {
        this.stats.retransmissionsAbsorbed++;
        return;
      }
    }
    // No transaction (an ACK to a 2xx, §17.2.3) or Accepted (RFC 6026 §7.1): the TU's.
    this.tu.onRequest(ack, null, source);
  }

  /** For RFC 2543 keys the To tag of the ACK must also equal the one we sent (§17.2.3). */
  private ackMatches(ack: SipRequest, tx: ServerInviteTransaction): boolean {
    if (tx.key.charCodeAt(0) !== 76 /* 'L' */) return true;
    return toTag(ack) === tx.responseToTag();
  }

  /**
   * §9.2: a CANCEL matches the INVITE server transaction with the same key but method INVITE.
   * The layer answers it (200, or 481 without a match) through a server transaction of its own
   * and tells the TU, which then answers the INVITE with 487.
   */
  private receiveCancel(
    cancel: SipRequest,
    via: string,
    legacy: boolean,
    key: string,
    sentBy: string,
    source: Destination,
    head: ServerTx | undefined,
  ): void {
    const cancelTx = new ServerNonInviteTransaction(this.ctx, key, sentBy, 'CANCEL', cancel, source);
    this.addServer(cancelTx, head);
    // The INVITE has the same branch and sent-by; an RFC 2543 key is built again for INVITE.
    const inviteKey = legacy ? legacyServerKey(cancel, via, 'INVITE') : key;
    const found = this.findServer(this.servers.get(inviteKey), sentBy, 'INVITE', source);
    const invite = found instanceof ServerInviteTransaction ? found : null;
    if (invite === null) {
      cancelTx.respond(createResponse(cancel, 481, undefined, newTag()));
      this.tu.onCancel?.(cancel, null, source);
      return;
    }
    // §9.2: the To tag of the CANCEL response should equal that of the INVITE response.
    cancelTx.respond(createResponse(cancel, 200, undefined, invite.responseToTag() ?? newTag()));
    if (invite.state === 'Proceeding') this.tu.onCancel?.(cancel, invite, source);
  }
}

/** The user's timer-driven callbacks with their faults reported (responses arrive inside receive(), which already guards). */
function guardTimerCallbacks(user: ClientTransactionUser, report: (err: unknown) => void): ClientTransactionUser {
  const guard =
    (fn: (...args: never[]) => void) =>
    (...args: never[]): void => {
      try {
        fn(...args);
      } catch (err) {
        report(err);
      }
    };
  return {
    onResponse: (res) => user.onResponse(res),
    onTimeout: guard(() => user.onTimeout()),
    ...(user.onTransportError ? { onTransportError: guard((err: Error) => user.onTransportError!(err)) } : {}),
  };
}
