/**
 * RFC 3262 section 3, as the UAS of the caller's INVITE: reliable provisional responses carry
 * Require: 100rel and an RSeq, are retransmitted (T1 doubling up to T2) until the caller's PRACK,
 * and the next one waits until the previous one is acknowledged. A 2xx must wait for the PRACK
 * of a reliable response that carried SDP.
 */
import { createResponse, type SipRequest, type SipResponse } from '../sip/message.js';
import type { ServerTransaction } from '../sip/transaction/layer.js';

const MAX_QUEUED = 8;

interface Outstanding {
  res: SipResponse;
  rseq: number;
  hasSdp: boolean;
  timer: NodeJS.Timeout | undefined;
  interval: number;
  sentAt: number;
}

export class ReliableProvisionals {
  private rseq = Math.floor(Math.random() * 0x7fffff) + 1;
  private outstanding: Outstanding | null = null;
  private readonly queue: SipResponse[] = [];
  private afterAck: (() => void) | null = null;

  constructor(
    private readonly inviteTx: ServerTransaction,
    private readonly timers: { t1: number; t2: number },
    /** Over TCP nothing is retransmitted (RFC 3262 section 3 relies on the transport). */
    private readonly reliableTransport: boolean,
    /** False once the call is answered or ended: retransmissions stop. */
    private readonly ringing: () => boolean,
  ) {}

  send(res: SipResponse): void {
    if (this.outstanding !== null) {
      if (this.queue.length < MAX_QUEUED) this.queue.push(res);
      return;
    }
    const rseq = ++this.rseq;
    res.headers.append('require', '100rel');
    res.headers.append('rseq', String(rseq));
    const state: Outstanding = { res, rseq, hasSdp: res.body.length > 0, timer: undefined, interval: this.timers.t1, sentAt: Date.now() };
    this.outstanding = state;
    this.inviteTx.respond(res);
    if (this.reliableTransport) return;
    const tick = (): void => {
      if (this.outstanding !== state || !this.ringing()) return;
      if (Date.now() - state.sentAt >= 64 * this.timers.t1) {
        // No PRACK: stop retransmitting; a held 2xx goes now rather than never.
        this.done();
        return;
      }
      this.inviteTx.respond(res);
      state.interval = Math.min(state.interval * 2, this.timers.t2);
      state.timer = setTimeout(tick, state.interval);
      state.timer.unref();
    };
    state.timer = setTimeout(tick, state.interval);
    state.timer.unref();
  }

  /** The caller's PRACK: 200 when its RAck names the outstanding response, else 481. */
  onPrack(req: SipRequest, tx: ServerTransaction): void {
    const rack = /^\s*(\d+)\s+(\d+)\s+INVITE\s*$/i.exec(req.headers.get('rack') ?? '');
    const out = this.outstanding;
    if (!rack || out === null || Number(rack[1]) !== out.rseq) {
      tx.respond(createResponse(req, 481, undefined));
      return;
    }
    tx.respond(createResponse(req, 200));
    this.done();
  }

  /** Runs `send2xx` now, or once the reliable response with SDP in flight is acknowledged. */
  sendFinal(send2xx: () => void): void {
    if (this.outstanding?.hasSdp) this.afterAck = send2xx;
    else send2xx();
  }

  stop(): void {
    if (this.outstanding?.timer) clearTimeout(this.outstanding.timer);
    this.outstanding = null;
    this.queue.length = 0;
    this.afterAck = null;
  }

  private done(): void {
    if (this.outstanding?.timer) clearTimeout(this.outstanding.timer);
    this.outstanding = null;
    const next = this.queue.shift();
    if (next && this.ringing()) {
      this.send(next);
      return;
    }
    const held = this.afterAck;
    this.afterAck = null;
    held?.();
  }
}
