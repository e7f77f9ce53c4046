/**
 * INVITE client transaction, RFC 3261 §17.1.1 (figure 5) as amended by RFC 6026 §7.2: a 2xx
 * moves it to Accepted, where further 2xx are passed to the TU until Timer M fires.
 */
import { createRequest, Headers, type SipRequest, type SipResponse } from '../message.js';
import { isConnectionTransport } from '../transport/types.js';
import type { TimerHandle } from './clock.js';
import type { Expirable } from './expiry-queue.js';
import { cseqNumber, topVia } from './message-keys.js';
import type {
  ClientInviteState,
  ClientTransaction,
  ClientTransactionUser,
  Destination,
  TransactionContext,
} from './types.js';

/** What a transaction that no longer reports anything points to instead of its TU. */
const NO_USER: ClientTransactionUser = { onResponse: () => {}, onTimeout: () => {} };

export class ClientInviteTransaction implements ClientTransaction, Expirable {
  state: ClientInviteState = 'Calling';
  expirySeq = 0;
  private timerA: TimerHandle | null = null;
  private aInterval = 0;
  private onTimerA: (() => void) | null = null;
  private ack: SipRequest | null = null;
  /** Set once a CANCEL was sent: Timer B then also ends a transaction in Proceeding (§9.1). */
  private cancelled = false;

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

  /** The INVITE; undefined once a final response came (see ClientTransaction.request). */
  get request(): SipRequest | undefined {
    return this.sent;
  }

  get kind(): 'client-invite' {
    return 'client-invite';
  }

  private get timers() {
    return this.ctx.durations(isConnectionTransport(this.destination.transport));
  }

  /** Sends the INVITE; starts Timer A (unreliable only) and Timer B. */
  start(): void {
    const t = this.timers;
    if (!this.transmit(this.sent!)) return;
    if (t.retransmit) {
      this.aInterval = t.T1;
      this.onTimerA = () => this.timerAFired();
      this.timerA = this.ctx.clock.setTimer(this.aInterval, this.onTimerA);
    }
    this.ctx.expiry.schedule(this, t.B);
  }

  /**
   * §9.1: once the TU has sent a CANCEL, a final response must come within 64*T1 or the
   * transaction is given up, even in Proceeding.
   */
  cancelSent(): void {
    if (this.state !== 'Calling' && this.state !== 'Proceeding') return;
    this.cancelled = true;
    this.expirySeq++;
    this.ctx.expiry.schedule(this, this.timers.B);
  }

  /** Event: a response matched. Returns false when it was absorbed rather than passed to the TU. */
  receiveResponse(res: SipResponse): boolean {
    const status = res.status;
    const state = this.state;
    if (state === 'Calling' || state === 'Proceeding') {
      this.stopTimerA();
      if (status < 200) {
        this.state = 'Proceeding';
      } else if (status < 300) {
        this.state = 'Accepted';
        this.sent = undefined;
        this.startLongTimer(this.timers.M);
      } else {
        this.state = 'Completed';
        this.ack = this.buildAck(res, this.sent!);
        this.sent = undefined;
        if (this.transmit(this.ack)) this.startLongTimer(this.timers.D);
      }
      const user = this.user;
      // Completed only resends the ACK from here on: the TU (and all it holds) can go now.
      if (this.state === 'Completed') this.user = NO_USER;
      user.onResponse(res);
      return true;
    }
    if (state === 'Completed') {
      // §17.1.1.2: a retransmitted final response gets the ACK again and stays here.
      if (status >= 300 && this.ack !== null) this.transmit(this.ack);
      return false;
    }
    if (state === 'Accepted' && status >= 200 && status < 300) {
      // RFC 6026 §7.2: every 2xx is the TU's business (it may come from another fork).
      this.user.onResponse(res);
      return true;
    }
    return false;
  }

  handOver(user: ClientTransactionUser): void {
    if (this.state === 'Accepted') this.user = user;
  }

  /** Timer B (Calling), D (Completed) or M (Accepted) fired. */
  onExpiry(): void {
    const state = this.state;
    if (state === 'Calling' || (state === 'Proceeding' && this.cancelled)) {
      this.terminate();
      this.user.onTimeout();
    } else if (state === 'Completed' || state === 'Accepted') {
      this.terminate();
    }
    // §17.1.1.2: Timer B has no effect in Proceeding; the TU ends such a call with CANCEL.
  }

  dispose(): void {
    this.stopTimerA();
    this.state = 'Terminated';
    this.expirySeq++;
  }

  /**
   * §17.1.1.3: the ACK for a non-2xx final response has the INVITE's Request-URI, Call-ID,
   * From, CSeq number and Route headers, the response's To, and one Via: the INVITE's top Via
   * (so the same branch).
   */
  private buildAck(res: SipResponse, invite: SipRequest): SipRequest {
    const req = invite.headers;
    const h = new Headers();
    const via = topVia(invite);
    if (via !== undefined) h.append('via', via);
    h.append('max-forwards', '70');
    for (let i = 0; i < req.names.length; i++) if (req.names[i] === 'route') h.append('route', req.values[i]!);
    const from = req.get('from');
    if (from !== undefined) h.append('from', from);
    const to = res.headers.get('to') ?? req.get('to');
    if (to !== undefined) h.append('to', to);
    const callId = req.get('call-id');
    if (callId !== undefined) h.append('call-id', callId);
    h.append('cseq', `${cseqNumber(invite) ?? '1'} ACK`);
    return createRequest('ACK', invite.uri, h);
  }

  private timerAFired(): void {
    this.timerA = null;
    if (this.state !== 'Calling' || this.sent === undefined) return;
    if (!this.transmit(this.sent)) return;
    this.aInterval *= 2;
    this.timerA = this.ctx.clock.setTimer(this.aInterval, this.onTimerA!);
  }

  private startLongTimer(ms: number): void {
    this.expirySeq++;
    if (ms === 0) this.terminate();
    else this.ctx.expiry.schedule(this, ms);
  }

  /**
   * Timer A never starts again once any response came (§17.1.1.2): its callback goes too, as
   * the transaction may wait 64*T1 more in Accepted.
   */
  private stopTimerA(): void {
    if (this.timerA !== null) {
      this.ctx.clock.clearTimer(this.timerA);
      this.timerA = null;
    }
    this.onTimerA = null;
  }

  private transmit(msg: SipRequest): boolean {
    const err = this.ctx.transmit(msg, this.destination);
    if (err === null) return true;
    // §17.1.4: a transport failure is reported to the TU and ends the transaction.
    this.terminate();
    if (this.user.onTransportError) this.user.onTransportError(err);
    else this.user.onTimeout();
    return false;
  }

  private terminate(): void {
    if (this.state === 'Terminated') return;
    this.stopTimerA();
    this.sent = undefined;
    this.ack = null;
    this.state = 'Terminated';
    this.expirySeq++;
    this.ctx.removeClient(this);
  }
}
