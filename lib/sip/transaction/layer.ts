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
import {
  clientKey,
  cseqMethod,
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
import type {
  ClientTransaction,
  ClientTransactionUser,
  Destination,
  ServerTableEntry,
  ServerTransaction,
  TransactionContext,
  TransactionUser,
} from './types.js';

export type {
  ClientTransaction,
  ClientTransactionUser,
  Destination,
  ServerTransaction,
  TransactionUser,
} from './types.js';

export interface TransactionLayerOptions {
  /** Hands a message to the transport; may throw on a transport error. */
  send(msg: SipMessage, dest: Destination): void;
  clock?: Clock;
  timers?: Partial<TimerConfig>;
  tu: TransactionUser;
  /** Live server transactions allowed; requests beyond get a stateless 503. Default 100000. */
  maxServerTransactions?: number;
  /** Coalescing window of the long timers (B, D, F, H, I, J, K, L, M), default 100 ms. */
  longTimerResolution?: number;
}

export interface TransactionStats {
  /** Live server transactions. */
  serverTransactions: number;
  /** Live client transactions. */
  clientTransactions: number;
  /** Responses that matched no client transaction (§17.1.3), or could not be matched at all. */
  strayResponses: number;
  /** Retransmitted requests, ACKs and responses handled inside a transaction. */
  retransmissionsAbsorbed: number;
  /** Requests refused with a stateless 503 because the server table was full. */
  overloadRejections: number;
  /** Requests without a usable top Via, dropped unanswered. */
  malformedRequests: number;
  /** Sends that threw. */
  transportErrors: number;
}

type ServerTx = ServerInviteTransaction | ServerNonInviteTransaction;
type ClientTx = ClientInviteTransaction | ClientNonInviteTransaction;

/** Where a request is filed: its table key and the sent-by the chain entry must also match. */
interface ServerSlot {
  key: string;
  sentBy: string;
  /** Transactions already filed under `key` (set by findServer when nothing matched). */
  chainLength: number;
}

/**
 * Legitimate traffic files one or two transactions per branch (INVITE and its CANCEL). A peer
 * reusing one branch from many sent-by values is refused rather than allowed to build long chains.
 */
const MAX_CHAIN = 16;

export class TransactionLayer {
  readonly stats: TransactionStats = {
    serverTransactions: 0,
    clientTransactions: 0,
    strayResponses: 0,
    retransmissionsAbsorbed: 0,
    overloadRejections: 0,
    malformedRequests: 0,
    transportErrors: 0,
  };

  /** Keyed by branch (or RFC 2543 key); transactions sharing one are chained via `next`. */
  private readonly servers = new Map<string, ServerTx>();
  private serverCount = 0;
  /** Reused by serverSlot(): one lookup at a time, no allocation per message. */
  private readonly slot: ServerSlot = { key: '', sentBy: '', chainLength: 0 };
  private readonly clients = new Map<string, ClientTx>();
  private readonly ctx: TransactionContext;
  private readonly tu: TransactionUser;
  private readonly maxServers: number;

  constructor(opts: TransactionLayerOptions) {
    const clock = opts.clock ?? systemClock;
    const cfg = resolveTimerConfig(opts.timers);
    const unreliable = timerDurations(cfg, false);
    const reliable = timerDurations(cfg, true);
    const send = opts.send;
    const stats = this.stats;
    const clients = this.clients;
    this.tu = opts.tu;
    this.maxServers = opts.maxServerTransactions ?? 100_000;
    this.ctx = {
      clock,
      expiry: new ExpiryScheduler(clock, opts.longTimerResolution ?? 100),
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
      removeServer: (tx: ServerTableEntry): void => this.unlinkServer(tx),
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
    const slot = this.serverSlot(req, via, isAck ? 'INVITE' : method, source);
    const existing = this.findServer(slot, isAck ? 'INVITE' : method);

    if (isAck) {
      this.receiveAck(req, existing, source);
      return;
    }
    if (existing !== undefined) {
      this.stats.retransmissionsAbsorbed++;
      existing.receiveRetransmission();
      return;
    }
    if (this.serverCount >= this.maxServers || slot.chainLength >= MAX_CHAIN) {
      this.stats.overloadRejections++;
      this.ctx.transmit(createResponse(req, 503, undefined, newTag()), source);
      return;
    }
    if (method === 'CANCEL') {
      this.receiveCancel(req, via, slot.key, slot.sentBy, source);
      return;
    }
    const tx =
      method === 'INVITE'
        ? new ServerInviteTransaction(this.ctx, slot.key, slot.sentBy, req, source)
        : new ServerNonInviteTransaction(this.ctx, slot.key, slot.sentBy, req, source);
    this.addServer(tx);
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
    const tx =
      req.method === 'INVITE'
        ? new ClientInviteTransaction(this.ctx, key, req, dest, user)
        : new ClientNonInviteTransaction(this.ctx, key, req, dest, user);
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
    this.clients.clear();
    this.ctx.expiry.close();
    this.stats.serverTransactions = 0;
    this.stats.clientTransactions = 0;
  }

  /**
   * §17.2.3: with a magic-cookie branch, the branch is the key and sent-by and method are
   * compared on the chain; otherwise the RFC 2543 key (which holds the method) is used.
   */
  /**
   * Besides the RFC 3261 section 17.2.3 keys, a request only matches a transaction if it comes
   * from the same transport source: a real retransmission always does, while a stranger who
   * copies a branch must not be able to suppress or hijack another client's transaction.
   */
  private serverSlot(req: SipRequest, via: string, method: string, source: Destination): ServerSlot {
    const slot = this.slot;
    const branch = viaBranch(via);
    const origin = source.transport === 'tcp' ? `tcp#${source.connectionId ?? 0}` : `${source.address}:${source.port}`;
    if (branch !== undefined && branch.startsWith(MAGIC_COOKIE)) {
      slot.key = branch;
      slot.sentBy = `${viaSentBy(via) ?? ''} ${origin}`;
    } else {
      slot.key = legacyServerKey(req, via, method);
      slot.sentBy = origin;
    }
    return slot;
  }

  private findServer(slot: ServerSlot, method: string): ServerTx | undefined {
    let tx = this.servers.get(slot.key);
    let n = 0;
    for (; tx !== undefined; n++) {
      if (tx.sentBy === slot.sentBy && tx.request.method === method) return tx;
      tx = tx.next as ServerTx | undefined;
    }
    slot.chainLength = n;
    return undefined;
  }

  private addServer(tx: ServerTx): void {
    tx.next = this.servers.get(tx.key);
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
  private receiveCancel(cancel: SipRequest, via: string, key: string, sentBy: string, source: Destination): void {
    const cancelTx = new ServerNonInviteTransaction(this.ctx, key, sentBy, cancel, source);
    this.addServer(cancelTx);
    const found = this.findServer(this.serverSlot(cancel, via, 'INVITE', source), 'INVITE');
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
