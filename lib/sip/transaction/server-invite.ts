/**
 * INVITE server transaction, RFC 3261 §17.2.1 (figure 7) as amended by RFC 6026 §7.1: a 2xx
 * moves it to Accepted, where retransmitted INVITEs are absorbed until Timer L fires.
 */
import { createResponse, type SipRequest, type SipResponse } from '../message.js';
import { isConnectionTransport } from '../transport/types.js';
import type { TimerHandle } from './clock.js';
import type { Expirable } from './expiry-queue.js';
import { detach, tagOf } from './message-keys.js';
import type { Destination, ServerInviteState, ServerTableEntry, ServerTransaction, TransactionContext } from './types.js';

export type AckOutcome = 'absorbed' | 'to-tu';

export class ServerInviteTransaction implements ServerTransaction, ServerTableEntry, Expirable {
  state: ServerInviteState = 'Proceeding';
  expirySeq = 0;
  next: ServerTableEntry | undefined = undefined;
  private lastResponse: SipResponse | null = null;
  private invite: SipRequest | undefined;
  /** The To tag of the final response, kept once that response itself is let go of. */
  private finalToTag: string | undefined;
  /** The one short timer alive at a time: 100 Trying in Proceeding, Timer G in Completed. */
  private shortTimer: TimerHandle | null = null;
  /** The short timers' callback; dropped once no short timer can start again (Accepted, Confirmed). */
  private onShortTimer: (() => void) | null = () => this.shortTimerFired();
  private gInterval = 0;

  constructor(
    private readonly ctx: TransactionContext,
    /** Table key: the branch or the RFC 2543 key. */
    readonly key: string,
    /** Lower-case sent-by of the top Via; '' for RFC 2543 keys. */
    readonly sentBy: string,
    request: SipRequest,
    readonly destination: Destination,
  ) {
    this.invite = request;
    // §17.2.1: send 100 Trying unless the TU answers within 200 ms.
    this.shortTimer = ctx.clock.setTimer(this.timers.trying, this.onShortTimer!);
  }

  /**
   * The INVITE; undefined once the transaction only absorbs retransmissions and ACKs (Accepted,
   * Confirmed): at a thousand calls a second, 32 s of INVITEs with their SDP is a lot to keep.
   */
  get request(): SipRequest | undefined {
    return this.invite;
  }

  get kind(): 'server-invite' {
    return 'server-invite';
  }

  /** Method of the transaction's request, as the layer's matching reads it. */
  get method(): 'INVITE' {
    return 'INVITE';
  }

  /** The response most recently sent, if any. */
  get response(): SipResponse | null {
    return this.lastResponse;
  }

  private get timers() {
    return this.ctx.durations(isConnectionTransport(this.destination.transport));
  }

  /**
   * Event: the INVITE arrived again. Proceeding: the most recent provisional response is sent
   * again. Completed: the final response is sent again. Accepted (RFC 6026) and Confirmed: absorbed.
   */
  receiveRetransmission(): void {
    if ((this.state === 'Proceeding' || this.state === 'Completed') && this.lastResponse !== null) {
      this.transmit(this.lastResponse);
    }
  }

  /**
   * Event: an ACK matched this transaction. Completed -> Confirmed (Timer G stops, Timer I
   * starts). In Accepted the ACK belongs to the TU (RFC 6026 §7.1); elsewhere it is absorbed.
   */
  receiveAck(): AckOutcome {
    if (this.state === 'Accepted') return 'to-tu';
    if (this.state !== 'Completed') return 'absorbed';
    this.state = 'Confirmed';
    this.stopShortTimer();
    this.letGo();
    this.startLongTimer(this.timers.I);
    return 'absorbed';
  }

  /** Event: the TU passes a response. */
  respond(res: SipResponse): void {
    const status = res.status;
    if (this.state === 'Accepted') {
      // RFC 6026 §7.1: further 2xx from the TU (its own retransmissions) go to the transport.
      if (status >= 200 && status < 300) this.transmit(res);
      return;
    }
    if (this.state !== 'Proceeding') return;
    this.stopShortTimer();
    this.lastResponse = res;
    if (status < 200) {
      this.transmit(res);
      return;
    }
    this.ctx.inviteAnswered();
    const t = this.timers;
    if (status < 300) {
      this.state = 'Accepted';
      const sent = this.transmit(res);
      this.letGo();
      if (sent) this.startLongTimer(t.L);
      return;
    }
    this.state = 'Completed';
    if (!this.transmit(res)) return;
    if (t.retransmit) {
      this.gInterval = t.T1;
      this.shortTimer = this.ctx.clock.setTimer(this.gInterval, this.onShortTimer!);
    }
    this.startLongTimer(t.H);
  }

  /** Timer H (Completed), I (Confirmed) or L (Accepted) fired. */
  onExpiry(): void {
    const state = this.state;
    if (state !== 'Completed' && state !== 'Confirmed' && state !== 'Accepted') return;
    this.terminate();
    // §17.2.1: Timer H means the ACK never came; the TU is told.
    if (state === 'Completed') this.ctx.onAckTimeout(this);
  }

  /** To tag of the response sent so far, for matching ACKs of RFC 2543 peers (§17.2.3). */
  responseToTag(): string | undefined {
    return this.lastResponse === null ? this.finalToTag : tagOf(this.lastResponse.headers.get('to'));
  }

  /** From Accepted or Confirmed on, nothing is sent again by the transaction itself. */
  private letGo(): void {
    if (this.lastResponse !== null) {
      const tag = tagOf(this.lastResponse.headers.get('to'));
      this.finalToTag = tag === undefined ? undefined : detach(tag);
    }
    this.lastResponse = null;
    this.invite = undefined;
    this.onShortTimer = null;
  }

  /** Stops every timer without further sends (layer shutdown). */
  dispose(): void {
    this.stopShortTimer();
    this.state = 'Terminated';
    this.expirySeq++;
  }

  private shortTimerFired(): void {
    this.shortTimer = null;
    if (this.state === 'Proceeding' && this.lastResponse === null && this.invite !== undefined) {
      const trying = createResponse(this.invite, 100);
      // §8.2.6.1: a Timestamp in the request is copied into the 100 (Trying).
      const ts = this.invite.headers.get('timestamp');
      if (ts !== undefined) trying.headers.append('timestamp', ts);
      this.lastResponse = trying;
      this.transmit(trying);
    } else if (this.state === 'Completed' && this.lastResponse !== null) {
      // Timer G: retransmit, doubling up to T2.
      if (!this.transmit(this.lastResponse)) return;
      this.gInterval = Math.min(2 * this.gInterval, this.timers.T2);
      this.shortTimer = this.ctx.clock.setTimer(this.gInterval, this.onShortTimer!);
    }
  }

  private startLongTimer(ms: number): void {
    this.expirySeq++;
    if (ms === 0) this.terminate();
    else this.ctx.expiry.schedule(this, ms);
  }

  private stopShortTimer(): void {
    if (this.shortTimer !== null) {
      this.ctx.clock.clearTimer(this.shortTimer);
      this.shortTimer = null;
    }
  }

  private transmit(res: SipResponse): boolean {
    if (this.ctx.transmit(res, this.destination) === null) return true;
    // §17.2.4: a response we cannot send leaves nothing for this transaction to do.
    this.terminate();
    return false;
  }

  private terminate(): void {
    if (this.state === 'Terminated') return;
    if (this.state === 'Proceeding') this.ctx.inviteAnswered();
    this.stopShortTimer();
    this.state = 'Terminated';
    this.expirySeq++;
    this.ctx.removeServer(this);
  }
}
