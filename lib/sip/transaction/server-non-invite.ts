/**
 * Non-INVITE server transaction, RFC 3261 §17.2.2 (figure 8).
 *
 * This is the registrar's hot path (one per REGISTER, alive 64*T1 in Completed over UDP), so it
 * holds no clock timer of its own: Timer J goes through the shared {@link ExpiryScheduler}.
 */
import type { SipRequest, SipResponse } from '../message.js';
import type { Expirable } from './expiry-queue.js';
import type { Destination, ServerNonInviteState, ServerTableEntry, ServerTransaction, TransactionContext } from './types.js';

export class ServerNonInviteTransaction implements ServerTransaction, ServerTableEntry, Expirable {
  state: ServerNonInviteState = 'Trying';
  expirySeq = 0;
  next: ServerTableEntry | undefined = undefined;
  private lastResponse: SipResponse | null = null;

  constructor(
    private readonly ctx: TransactionContext,
    readonly key: string,
    readonly sentBy: string,
    readonly request: SipRequest,
    readonly destination: Destination,
  ) {}

  get kind(): 'server-non-invite' {
    return 'server-non-invite';
  }

  /** The response most recently sent, if any. */
  get response(): SipResponse | null {
    return this.lastResponse;
  }

  /**
   * Event: the request arrived again. Trying: absorbed. Proceeding / Completed: the last
   * response is passed to the transport again (§17.2.2).
   */
  receiveRetransmission(): void {
    if (this.lastResponse !== null && (this.state === 'Proceeding' || this.state === 'Completed')) {
      this.transmit(this.lastResponse);
    }
  }

  /** Event: the TU passes a response. Anything after the final response is discarded (§17.2.2). */
  respond(res: SipResponse): void {
    if (this.state === 'Completed' || this.state === 'Terminated') return;
    this.lastResponse = res;
    if (res.status < 200) {
      this.state = 'Proceeding';
      this.transmit(res);
      return;
    }
    this.state = 'Completed';
    if (!this.transmit(res)) return;
    const j = this.ctx.durations(this.destination.transport === 'tcp').J;
    if (j === 0) this.terminate();
    else this.ctx.expiry.schedule(this, j);
  }

  /** Timer J fired. */
  onExpiry(): void {
    if (this.state === 'Completed') this.terminate();
  }

  /** Stops everything without further sends (layer shutdown). */
  dispose(): void {
    this.state = 'Terminated';
    this.expirySeq++;
  }

  private transmit(res: SipResponse): boolean {
    if (this.ctx.transmit(res, this.destination) === null) return true;
    // §17.2.4: a response we cannot send leaves nothing for this transaction to do.
    this.terminate();
    return false;
  }

  private terminate(): void {
    if (this.state === 'Terminated') return;
    this.state = 'Terminated';
    this.expirySeq++;
    this.ctx.removeServer(this);
  }
}
