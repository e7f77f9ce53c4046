/**
 * Non-INVITE client transaction, RFC 3261 §17.1.2 (figure 6).
 */
import type { SipRequest, SipResponse } from '../message.js';
import { isConnectionTransport } from '../transport/types.js';
import type { TimerHandle } from './clock.js';
import type { Expirable } from './expiry-queue.js';
import type {
  ClientNonInviteState,
  ClientTransaction,
  ClientTransactionUser,
  Destination,
  TransactionContext,
} from './types.js';

/** What a transaction that no longer reports anything points to instead of its TU. */
const NO_USER: ClientTransactionUser = { onResponse: () => {}, onTimeout: () => {} };

export class ClientNonInviteTransaction implements ClientTransaction, Expirable {
  state: ClientNonInviteState = 'Trying';
  expirySeq = 0;
  private timerE: TimerHandle | null = null;
  private eInterval = 0;
  private onTimerE: (() => void) | null = null;

  private sent: SipRequest | undefined;
  private user: ClientTransactionUser;

  constructor(
    private readonly ctx: TransactionContext,
    readonly key: string,
    request: SipRequest,
    readonly destination: Destination,
    user: ClientTransactionUser,
  ) {
    this.sent = request;
    this.user = user;
  }

  /** The request; undefined once a final response came (see ClientTransaction.request). */
  get request(): SipRequest | undefined {
    return this.sent;
  }

  get kind(): 'client-non-invite' {
    return 'client-non-invite';
  }

  private get timers() {
    return this.ctx.durations(isConnectionTransport(this.destination.transport));
  }

  /** Sends the request; starts Timer E (unreliable only) and Timer F. */
  start(): void {
    const t = this.timers;
    if (!this.transmit()) return;
    if (t.retransmit) {
      this.eInterval = t.T1;
      this.onTimerE = () => this.timerEFired();
      this.timerE = this.ctx.clock.setTimer(this.eInterval, this.onTimerE);
    }
    this.ctx.expiry.schedule(this, t.F);
  }

  /**
   * Event: a response matched. Returns false when it was absorbed (a retransmission in
   * Completed) rather than passed to the TU.
   */
  receiveResponse(res: SipResponse): boolean {
    if (this.state !== 'Trying' && this.state !== 'Proceeding') return false;
    if (res.status < 200) {
      this.state = 'Proceeding';
      this.user.onResponse(res);
      return true;
    }
    this.state = 'Completed';
    this.stopTimerE();
    // Timer K: wait for response retransmissions; zero on reliable transports.
    this.expirySeq++;
    const k = this.timers.K;
    if (k === 0) this.terminate();
    else this.ctx.expiry.schedule(this, k);
    // Completed only absorbs retransmissions: neither the request nor the TU is needed again.
    const user = this.user;
    this.user = NO_USER;
    this.sent = undefined;
    user.onResponse(res);
    return true;
  }

  /** Timer F (Trying / Proceeding) or Timer K (Completed) fired. */
  onExpiry(): void {
    if (this.state === 'Completed') {
      this.terminate();
    } else if (this.state === 'Trying' || this.state === 'Proceeding') {
      this.terminate();
      this.user.onTimeout();
    }
  }

  dispose(): void {
    this.stopTimerE();
    this.state = 'Terminated';
    this.expirySeq++;
  }

  private timerEFired(): void {
    this.timerE = null;
    if (this.state !== 'Trying' && this.state !== 'Proceeding') return;
    if (!this.transmit()) return;
    // §17.1.2.2: doubling up to T2 in Trying; a flat T2 once a provisional response came.
    const t = this.timers;
    this.eInterval = this.state === 'Trying' ? Math.min(2 * this.eInterval, t.T2) : t.T2;
    this.timerE = this.ctx.clock.setTimer(this.eInterval, this.onTimerE!);
  }

  /** Timer E stops for good on a final response (and at the end): its callback goes with it. */
  private stopTimerE(): void {
    if (this.timerE !== null) {
      this.ctx.clock.clearTimer(this.timerE);
      this.timerE = null;
    }
    this.onTimerE = null;
  }

  private transmit(): boolean {
    if (this.sent === undefined) return false;
    const err = this.ctx.transmit(this.sent, this.destination);
    if (err === null) return true;
    // §17.1.4: a transport failure is reported to the TU and ends the transaction.
    this.terminate();
    if (this.user.onTransportError) this.user.onTransportError(err);
    else this.user.onTimeout();
    return false;
  }

  private terminate(): void {
    if (this.state === 'Terminated') return;
    this.stopTimerE();
    this.state = 'Terminated';
    this.expirySeq++;
    this.ctx.removeClient(this);
  }
}
