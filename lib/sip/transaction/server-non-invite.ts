/**
 * Non-INVITE server transaction, RFC 3261 §17.2.2 (figure 8).
 *
 * This is the registrar's hot path: one per REGISTER, alive 64*T1 in Completed over UDP, so a
 * busy registrar holds about a million of them. It therefore holds no clock timer of its own
 * (Timer J goes through the shared {@link ExpiryScheduler}), and once the final response is sent
 * it keeps only what matching and a retransmission need: key, sent-by, method, destination and
 * the response, as bytes in the layer's {@link RetainedBytes} slabs when the transport reports
 * them. The request is let go at that point.
 */
import type { SipRequest, SipResponse } from '../message.js';
import { isConnectionTransport } from '../transport/types.js';
import type { Expirable } from './expiry-queue.js';
import { RetainedBytes } from './retained-bytes.js';
import type {
  Destination,
  RetainedResponse,
  ServerNonInviteState,
  ServerTableEntry,
  ServerTransaction,
  TransactionContext,
} from './types.js';

export class ServerNonInviteTransaction implements ServerTransaction, ServerTableEntry, Expirable {
  state: ServerNonInviteState = 'Trying';
  next: ServerTableEntry | undefined = undefined;
  /**
   * Two slots whose use depends on the state (one object field less for each of the million):
   *  - Trying: `held` = the request, `aux` = null
   *  - Proceeding: `held` = the request, `aux` = the last provisional response
   *  - Completed: `held` = what a retransmission resends: a slab of the layer's RetainedBytes with
   *    `aux` = the span in it, or the bytes / the response itself with `aux` = -1
   *  - Terminated: `held` = undefined, `aux` = null
   */
  private held: SipRequest | RetainedResponse | undefined;
  private aux: SipResponse | number | null = null;

  /**
   * @param key table key (branch or RFC 2543 key), @param sentBy lower-case sent-by of the top
   * Via ('' for RFC 2543 keys), @param method the request method: these live as long as the
   * transaction, so they should not be slices of the message text.
   */
  constructor(
    private readonly ctx: TransactionContext,
    readonly key: string,
    readonly sentBy: string,
    readonly method: string,
    request: SipRequest,
    readonly destination: Destination,
  ) {
    this.held = request;
  }

  /**
   * Constant: Timer J is the only long timer, scheduled once on entering Completed, and
   * onExpiry() does nothing in any other state (no object field for a sequence number).
   */
  get expirySeq(): number {
    return 0;
  }

  get kind(): 'server-non-invite' {
    return 'server-non-invite';
  }

  /** The request, until the final response is sent: undefined in Completed and Terminated. */
  get request(): SipRequest | undefined {
    const state = this.state;
    return state === 'Trying' || state === 'Proceeding' ? (this.held as SipRequest) : undefined;
  }

  /**
   * Event: the request arrived again. Trying: absorbed. Proceeding / Completed: the last
   * response is passed to the transport again (§17.2.2).
   */
  receiveRetransmission(): void {
    if (this.state === 'Completed') {
      const held = this.held as RetainedResponse;
      const span = this.aux as number;
      const data = span >= 0 ? RetainedBytes.view(held as Buffer, span) : held;
      if (!this.ctx.retransmit(data, this.destination)) this.terminate();
    } else if (this.state === 'Proceeding') {
      this.transmit(this.aux as SipResponse);
    }
  }

  /** Event: the TU passes a response. Anything after the final response is discarded (§17.2.2). */
  respond(res: SipResponse): void {
    const state = this.state;
    if (state === 'Completed' || state === 'Terminated') return;
    if (res.status < 200) {
      this.state = 'Proceeding';
      this.aux = res;
      this.transmit(res);
      return;
    }
    this.state = 'Completed';
    this.held = undefined;
    this.aux = null;
    const kept = this.ctx.transmitRetained(res, this.destination);
    // §17.2.4: a response we cannot send leaves nothing for this transaction to do.
    if (kept === null) return this.terminate();
    const j = this.ctx.durations(isConnectionTransport(this.destination.transport)).J;
    if (j === 0) return this.terminate();
    const span = Buffer.isBuffer(kept) ? this.ctx.responseBytes.copy(kept) : -1;
    this.held = span >= 0 ? this.ctx.responseBytes.slab : kept;
    this.aux = span;
    this.ctx.expiry.schedule(this, j);
    this.ctx.completed(this);
  }

  /** Ends a Completed transaction before Timer J, to make room under load. */
  evict(): boolean {
    if (this.state !== 'Completed') return false;
    this.terminate();
    return true;
  }

  /** Timer J fired. */
  onExpiry(): void {
    if (this.state === 'Completed') this.terminate();
  }

  /** Stops everything without further sends (layer shutdown). */
  dispose(): void {
    this.state = 'Terminated';
    this.held = undefined;
    this.aux = null;
  }

  private transmit(res: SipResponse): void {
    // §17.2.4: a response we cannot send leaves nothing for this transaction to do.
    if (this.ctx.transmit(res, this.destination) !== null) this.terminate();
  }

  private terminate(): void {
    if (this.state === 'Terminated') return;
    this.state = 'Terminated';
    this.held = undefined;
    this.aux = null;
    this.ctx.removeServer(this);
  }
}
