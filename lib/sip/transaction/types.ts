/**
 * Shapes shared by the transaction layer and the four state machines.
 */
import type { SipMessage, SipRequest, SipResponse } from '../message.js';
import type { Clock } from './clock.js';
import type { ExpiryScheduler } from './expiry-queue.js';
import type { RetainedBytes } from './retained-bytes.js';
import type { TimerDurations } from './timers.js';
import { isConnectionTransport, type Endpoint } from '../transport/types.js';

/** Where a message came from or goes to; TCP and TLS are reliable transports (RFC 3261 §17). */
export type Destination = Endpoint;

export type ServerInviteState = 'Proceeding' | 'Completed' | 'Confirmed' | 'Accepted' | 'Terminated';
export type ServerNonInviteState = 'Trying' | 'Proceeding' | 'Completed' | 'Terminated';
export type ClientInviteState = 'Calling' | 'Proceeding' | 'Completed' | 'Accepted' | 'Terminated';
export type ClientNonInviteState = 'Trying' | 'Proceeding' | 'Completed' | 'Terminated';

export interface ServerTransaction {
  readonly kind: 'server-invite' | 'server-non-invite';
  readonly state: ServerInviteState | ServerNonInviteState;
  /**
   * The request that started the transaction. A non-INVITE transaction lets go of it once its
   * final response is sent (undefined from Completed on): read it in `onRequest`, not later.
   */
  readonly request: SipRequest | undefined;
  /** Where responses go: the source the request came from. */
  readonly destination: Destination;
  /** Sends `res` and drives the state machine. Responses after the final one are ignored. */
  respond(res: SipResponse): void;
}

export interface ClientTransaction {
  readonly kind: 'client-invite' | 'client-non-invite';
  readonly state: ClientInviteState | ClientNonInviteState;
  /**
   * The request sent. Let go of once a final response came (undefined from Completed or
   * Accepted on): what is left only absorbs retransmissions, for up to 64*T1.
   */
  readonly request: SipRequest | undefined;
  readonly destination: Destination;
  /**
   * INVITE, Accepted (RFC 6026 section 7.2): the responses still to come (2xx retransmissions,
   * for 64*T1) go to `user` from now on, a lighter one than the TU that set up the call.
   */
  handOver?(user: ClientTransactionUser): void;
}

export interface ClientTransactionUser {
  onResponse(res: SipResponse): void;
  /** Timer B or F fired (RFC 3261 §17.1.1.2, §17.1.2.2). */
  onTimeout(): void;
  /** The transport refused to send (RFC 3261 §17.1.4). */
  onTransportError?(err: Error): void;
}

export interface TransactionUser {
  /** `tx` is null for an ACK that matches no transaction (ACK to a 2xx, RFC 3261 §17.2.3). */
  onRequest(req: SipRequest, tx: ServerTransaction | null, source: Destination): void;
  /** Called after the layer answered the CANCEL itself (200, or 481 when `inviteTx` is null). */
  onCancel?(cancel: SipRequest, inviteTx: ServerTransaction | null, source: Destination): void;
  /** Timer H fired: no ACK came for a non-2xx final response (RFC 3261 §17.2.1). */
  onAckTimeout?(tx: ServerTransaction): void;
}

/**
 * How the layer files a server transaction: under `key` (the branch, or the RFC 2543 key), with
 * transactions sharing a branch (INVITE and its CANCEL, other sent-by) chained through `next`.
 * A request matches an entry when sent-by, method and transport source are equal (RFC 3261
 * §17.2.3 plus the same-source rule of the layer).
 */
export interface ServerTableEntry {
  readonly key: string;
  /** sent-by of the top Via (lower case); '' for RFC 2543 keys, which already contain the Via. */
  readonly sentBy: string;
  /** Method of the request (INVITE for an INVITE transaction, never ACK). */
  readonly method: string;
  /** The transport source of the request, compared by {@link sameSource}. */
  readonly destination: Destination;
  next: ServerTableEntry | undefined;
}

/**
 * Same transport source: the same connection for TCP and TLS (connection ids are unique across
 * both), the same address and port for UDP.
 */
export function sameSource(a: Destination, b: Destination): boolean {
  if (isConnectionTransport(a.transport)) return b.transport === a.transport && (a.connectionId ?? 0) === (b.connectionId ?? 0);
  return b.transport === 'udp' && a.port === b.port && a.address === b.address;
}

/** What a non-INVITE server transaction keeps to answer a retransmission: bytes or the response. */
export type RetainedResponse = Buffer | SipResponse;

/** What a state machine needs from the layer that owns it. */
/** A Completed transaction that may be ended early to make room (see TransactionLayer). */
export interface Evictable {
  /** Ends the transaction if it is still Completed; true when it did. */
  evict(): boolean;
}

export interface TransactionContext {
  readonly clock: Clock;
  readonly expiry: ExpiryScheduler;
  /** Slab store for the response bytes Completed non-INVITE server transactions keep. */
  readonly responseBytes: RetainedBytes;
  durations(reliable: boolean): TimerDurations;
  /** Hands a message to the transport. Returns the error instead of throwing it. */
  transmit(msg: SipMessage, dest: Destination): Error | null;
  /**
   * Sends a response and returns what to keep for retransmitting it: the bytes the transport
   * sent (when `send` returns them and `sendBytes` exists), else the response itself; null when
   * the send failed (counted as a transport error).
   */
  transmitRetained(res: SipResponse, dest: Destination): RetainedResponse | null;
  /** Sends again what {@link transmitRetained} returned. False when the send failed. */
  retransmit(data: RetainedResponse, dest: Destination): boolean;
  /** Removes a terminated transaction from the tables. */
  removeServer(tx: ServerTableEntry): void;
  /** An INVITE server transaction left Proceeding (final response sent, or it ended). */
  inviteAnswered(): void;
  /** A non-INVITE server transaction entered Completed: the first to give way when the table is full. */
  completed(tx: Evictable): void;
  removeClient(tx: { readonly key: string }): void;
  onAckTimeout(tx: ServerTransaction): void;
}
