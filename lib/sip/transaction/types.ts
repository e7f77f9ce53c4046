/**
 * Shapes shared by the transaction layer and the four state machines.
 */
import type { SipMessage, SipRequest, SipResponse } from '../message.js';
import type { Clock } from './clock.js';
import type { ExpiryScheduler } from './expiry-queue.js';
import type { TimerDurations } from './timers.js';

/** Where a message came from or goes to. `tcp` means a reliable transport (RFC 3261 §17). */
export interface Destination {
  transport: 'udp' | 'tcp';
  address: string;
  port: number;
  connectionId?: number;
}

export type ServerInviteState = 'Proceeding' | 'Completed' | 'Confirmed' | 'Accepted' | 'Terminated';
export type ServerNonInviteState = 'Trying' | 'Proceeding' | 'Completed' | 'Terminated';
export type ClientInviteState = 'Calling' | 'Proceeding' | 'Completed' | 'Accepted' | 'Terminated';
export type ClientNonInviteState = 'Trying' | 'Proceeding' | 'Completed' | 'Terminated';

export interface ServerTransaction {
  readonly kind: 'server-invite' | 'server-non-invite';
  readonly state: ServerInviteState | ServerNonInviteState;
  readonly request: SipRequest;
  /** Where responses go: the source the request came from. */
  readonly destination: Destination;
  /** Sends `res` and drives the state machine. Responses after the final one are ignored. */
  respond(res: SipResponse): void;
}

export interface ClientTransaction {
  readonly kind: 'client-invite' | 'client-non-invite';
  readonly state: ClientInviteState | ClientNonInviteState;
  readonly request: SipRequest;
  readonly destination: Destination;
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
 */
export interface ServerTableEntry {
  readonly key: string;
  /** sent-by of the top Via (lower case); '' for RFC 2543 keys, which already contain the Via. */
  readonly sentBy: string;
  readonly request: SipRequest;
  next: ServerTableEntry | undefined;
}

/** What a state machine needs from the layer that owns it. */
export interface TransactionContext {
  readonly clock: Clock;
  readonly expiry: ExpiryScheduler;
  durations(reliable: boolean): TimerDurations;
  /** Hands a message to the transport. Returns the error instead of throwing it. */
  transmit(msg: SipMessage, dest: Destination): Error | null;
  /** Removes a terminated transaction from the tables. */
  removeServer(tx: ServerTableEntry): void;
  removeClient(tx: { readonly key: string }): void;
  onAckTimeout(tx: ServerTransaction): void;
}
