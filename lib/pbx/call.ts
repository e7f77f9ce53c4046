/**
 * A call between extensions, set up: the caller's incoming leg, an outgoing leg forked to the
 * callee's phones, and once a phone answers, a bridge between the two. Until then this class
 * carries the callee's progress to the caller (provisional responses, the answer, the failure
 * with its Q.850 cause); after it, the bridge relays and releases, and this class keeps what the
 * record needs.
 */
import { detach } from '../sip/transaction/message-keys.js';
import { createResponse, type SipRequest, type SipResponse } from '../sip/message.js';
import type { ServerTransaction } from '../sip/transaction/layer.js';
import type { Endpoint } from '../sip/transport/types.js';
import { CallTag, causeForFinalResponse, DEFAULT_CAUSE, parseReasonCause } from '../cdr/record.js';
import type { ForkTarget } from './legs/fork-target.js';
import { SdpUnsupportedError, srtpAnswerProblem, type StreamSecurity } from '../media/sdp.js';
import { arrivedOverTls, hasSdesKeys, isReliable, isSdp, isTlsTransport, offersSrtp, srtpStreams, transportText } from './call-messages.js';
import { Bridge, type CallOutcome } from './bridge.js';
import { MediaPath, type MediaSession, type Side } from './media-path.js';
import { IncomingLeg, type IncomingLegOwner } from './legs/incoming-leg.js';
import { OutgoingLeg, type OutgoingCall, type OutgoingLegOwner } from './legs/outgoing-leg.js';
import type { LegEnv } from './legs/leg.js';

export { reasonValue } from './call-messages.js';
export type { CallOutcome } from './bridge.js';
export type { MediaSession, Side } from './media-path.js';

/** What a call needs from the server around it. */
export interface CallEnv extends LegEnv {
  mediaHost(peer: string, hint?: string): string;
  noAnswerMs: number;
  maxDurationMs: number;
  ended(call: Call, outcome: CallOutcome): void;
  /** The call is admitted and its route known; its callee's leg is about to be dialled. */
  started?(call: Call): void;
  /** The callee answered (the bridge is up); the caller's 200 goes next. */
  answered?(call: Call): void;
  /**
   * media.requireSrtpOverTls: an offer carrying SDES keys (a=crypto) is refused (488) unless it
   * arrived over TLS, and is sent on only to phones reached over TLS. Off (default): relayed, with
   * one `call.srtp_keys_in_clear` info line per call.
   */
  requireSrtpOverTls?: boolean;
}

/**
 * Where the callee's leg goes: registered phones (the leg forks to each), or a trunk (one target,
 * with its own From/To, an account for its challenges, its codec filter), possibly with a
 * fallback to try when it fails.
 */
export interface Destination {
  targets: ForkTarget[];
  fromUri?: string;
  toUri?: string;
  credentials?: { username: string; password: string };
  /** Headers the INVITE carries for this destination besides those passed from the caller. */
  extra?: Array<[string, string]>;
  /** The offer as this destination may see it; null when nothing in it is acceptable there. */
  filterOffer?(sdp: string): string | null;
  /** For the record: `local`, `trunk:<name>`. */
  route: string;
  /** This destination is no longer used by the call (a trunk's call count). */
  release?(): void;
  /** What to try when this destination failed (`best`: its final response, null for none); null: nothing. */
  fallback?(best: SipResponse | null): Destination | null;
}

/** Headers of the caller's INVITE that go on to the callee (others are hop-by-hop or ours). */
const PASSED_INVITE_HEADERS = ['alert-info', 'call-info', 'priority', 'subject', 'organization', 'accept-language'];

export type CallPhase = 'ringing' | 'answered' | 'ended';
type Phase = CallPhase;

export class Call implements IncomingLegOwner, OutgoingLegOwner {
  private phase: Phase = 'ringing';
  readonly startMs = Date.now();
  answerMs: number | undefined;
  endMs: number | undefined;
  answerSdp: string | undefined;
  outcome: CallOutcome | undefined;
  mediaSummary: string | undefined;

  readonly a: IncomingLeg;
  private b: OutgoingLeg | null = null;
  private bridge: Bridge | null = null;
  private readonly media: MediaPath;
  /** The relay session, kept for its packet counts (after close it keeps the last figures). */
  private readonly session: MediaSession | null;
  /** The callee's 2xx waits for the caller's ACK to be ACKed (late offer: the ACK carries the answer). */
  private bAckWaitsForA = false;
  private bAckCseq = 1;
  private destination: Destination | null = null;
  /** The offer (pointing at the relay) kept while a fallback destination may still need it. */
  private offerForB: Buffer = Buffer.alloc(0);
  /** Whether the record's party is an extension or a line/trunk (docs/CDR.md). */
  partyKind: 'local' | 'outside' = 'local';
  /** The m= lines of the caller's offer as the SRTP checks see them (null: no offer, or unreadable). */
  private offerStreams: StreamSecurity[] | null = null;

  constructor(
    private readonly env: CallEnv,
    invite: SipRequest,
    inviteTx: ServerTransaction,
    source: Endpoint,
    readonly caller: { number: string; displayName: string },
    readonly callee: { number: string; displayName: string },
    readonly dialled: string,
    media: MediaSession | null,
  ) {
    this.a = new IncomingLeg(env, invite, inviteTx, source, this);
    this.session = media;
    this.media = new MediaPath(media, (peer, hint) => env.mediaHost(peer, hint));
    this.media.onInactive = () => this.guarded(() => this.release('both', CallTag.MediaTimeout));
  }

  get callId(): string {
    return this.a.dialog.callId;
  }

  get state(): Phase {
    return this.phase;
  }

  /** Packets the relay carried so far (RTP and RTCP of every stream), each way; zeros without the relay. */
  mediaPackets(): { aToB: number; bToA: number } {
    let aToB = 0;
    let bToA = 0;
    if (this.session) {
      for (const s of this.session.stats()) {
        aToB += s.aToB;
        bToA += s.bToA;
      }
    }
    return { aToB, bToA };
  }

  get invite(): SipRequest {
    return this.a.invite;
  }

  get inviteTx(): ServerTransaction {
    return this.a.inviteTx;
  }

  get source(): Endpoint {
    return this.a.source;
  }

  /** Where the callee's leg went (for the record). */
  get calleeAddress(): string {
    return this.b?.calleeAddress ?? '';
  }

  /** The record's route: `local`, or the trunk the call went out on. */
  get route(): string {
    return this.routeLabel;
  }

  private routeLabel = 'local';

  // ---- set-up ---------------------------------------------------------------------------------

  /** Sends the INVITE to every target of the destination in parallel (first 2xx wins). */
  start(destination: Destination): void {
    this.routeLabel = destination.route;
    this.env.started?.(this);
    const inv = this.a.invite;
    let offer = inv.body;
    const first = destination.targets[0];
    if (inv.body.length > 0 && first) {
      this.offerStreams = srtpStreams(inv);
      if (hasSdesKeys(this.offerStreams) && !this.sdesKeysMayPass(destination)) return;
      try {
        // One rewrite for all forks (and fallbacks): every one is told the same relay ports.
        offer = this.media.rewrite('a', inv.body, first.destination, this.a.signalIp, first.localAddress);
      } catch (err) {
        if (err instanceof SdpUnsupportedError) {
          // Valid SDP the relay cannot carry (IPv6 media): this call goes with direct media.
          this.env.log('info', 'call.media_direct', { callId: this.callId, reason: err.message });
          this.media.goDirect();
        } else {
          this.env.log('warn', 'call.bad_sdp', { callId: this.callId, side: 'a', error: (err as Error).message }, true);
          destination.release?.();
          this.failA(488, CallTag.CalleeRejected, 79, 'Not Acceptable Here (unusable SDP offer)');
          return;
        }
      }
    }
    this.offerForB = offer;
    this.dial(destination);
  }

  /**
   * SDES keys in the caller's offer (docs/MEDIA.md, "SRTP"): with media.requireSrtpOverTls they
   * must have come over TLS, else the call is refused (488, cause 57); without it the call goes on
   * with one info line saying the keys crossed the network readable. False: refused.
   */
  private sdesKeysMayPass(destination: Destination): boolean {
    const inv = this.a.invite;
    if (arrivedOverTls(inv, this.a.source)) return true;
    const transport = transportText(inv, this.a.source);
    if (this.env.requireSrtpOverTls) {
      this.env.log('info', 'call.srtp_refused', { callId: this.callId, caller: this.caller.number, transport, reason: 'the offer carries SDES keys (a=crypto) and did not arrive over TLS (media.requireSrtpOverTls)' });
      destination.release?.();
      this.failA(488, CallTag.CalleeRejected, 57, 'Not Acceptable Here (SRTP keys (a=crypto) are accepted over TLS only)');
      return false;
    }
    if (this.env.logs('info')) this.env.log('info', 'call.srtp_keys_in_clear', { callId: this.callId, caller: this.caller.number, transport });
    return true;
  }

  /** The callee's leg towards `destination` (the first one, or a fallback after a failure). */
  private dial(destination: Destination): void {
    this.destination = destination;
    this.routeLabel = destination.route;
    const inv = this.a.invite;
    let targets = destination.targets;
    if (this.env.requireSrtpOverTls && hasSdesKeys(this.offerStreams)) {
      // The keys go on to the callee: only over TLS too.
      targets = targets.filter((t) => isTlsTransport(t.destination.transport));
      if (targets.length === 0) {
        this.env.log('info', 'call.srtp_refused', { callId: this.callId, route: destination.route, reason: 'the callee is not reached over TLS and the offer carries SDES keys (media.requireSrtpOverTls)' });
        const next = destination.fallback?.(null) ?? null;
        this.leave(destination);
        if (next) this.dial(next);
        else this.failA(488, CallTag.CalleeRejected, 57, 'Not Acceptable Here (the callee is not reached over TLS, and SRTP keys travel over TLS only)');
        return;
      }
    }
    let offer = this.offerForB;
    if (offer.length > 0 && destination.filterOffer) {
      const filtered = destination.filterOffer(offer.toString('utf8'));
      if (filtered === null) {
        this.env.log('info', 'call.no_common_codec', { callId: this.callId, route: destination.route });
        const next = destination.fallback?.(null) ?? null;
        this.leave(destination);
        if (next) this.dial(next);
        else this.failA(488, CallTag.CalleeRejected, 65, 'Not Acceptable Here (no codec of the offer is allowed on the trunk)');
        return;
      }
      offer = Buffer.from(filtered, 'utf8');
    }
    if (!destination.fallback) this.offerForB = Buffer.alloc(0);
    const extra: Array<[string, string]> = [];
    for (const name of PASSED_INVITE_HEADERS) for (const v of inv.headers.getAll(name)) extra.push([name, v]);
    if (destination.extra) extra.push(...destination.extra);
    const contentType = inv.headers.get('content-type');
    const call: OutgoingCall = {
      caller: this.caller,
      callee: this.callee,
      offer,
      // Copied: a slice would keep the caller's whole INVITE text alive as long as the leg (64*T1 after the call).
      contentType: contentType === undefined ? undefined : detach(contentType),
      extra,
      maxForwards: Number(inv.headers.get('max-forwards') ?? '70'),
      reliableProvisionals: this.a.reliableProvisionals,
      ringTimeoutMs: this.env.noAnswerMs,
      callIdHost: this.env.localHost(this.a.source.address, this.a.hint),
    };
    if (destination.fromUri !== undefined) call.fromUri = destination.fromUri;
    if (destination.toUri !== undefined) call.toUri = destination.toUri;
    if (destination.credentials !== undefined) call.credentials = destination.credentials;
    this.b = new OutgoingLeg(this.env, call, this);
    this.b.start(targets);
  }

  /** The call stops using `destination` (its trunk's count goes down), once. */
  private leave(destination: Destination | null): void {
    if (!destination) return;
    if (this.destination === destination) this.destination = null;
    destination.release?.();
  }

  onProvisional(res: SipResponse): void {
    if (this.phase !== 'ringing') return;
    let body: Buffer | null = null;
    if (res.body.length > 0 && isSdp(res)) {
      // An early answer binds as the 2xx's does: SRTP offered, RTP answered ends the attempt.
      if (this.srtpRefused(res)) return;
      try {
        body = this.media.rewrite('b', res.body, this.a.source, this.b!.signalIp, this.a.hint);
        this.answerSdp = body.toString('utf8');
      } catch (err) {
        this.env.log('warn', 'call.bad_sdp', { callId: this.callId, side: 'b', error: (err as Error).message }, true);
      }
    }
    this.a.sendProvisional(res.status, res.reason, body, isReliable(res));
  }

  onAnswer(res: SipResponse, cseq: number): void {
    const b = this.b!;
    if (this.phase !== 'ringing') {
      b.sendAck(cseq, Buffer.alloc(0));
      b.bye(this.outcome?.cause ?? 16);
      return;
    }
    let answer = res.body;
    if (answer.length > 0 && isSdp(res)) {
      if (this.srtpRefused(res)) {
        b.sendAck(cseq, Buffer.alloc(0));
        b.bye(88);
        return;
      }
      try {
        answer = this.media.rewrite('b', answer, this.a.source, b.signalIp, this.a.hint);
      } catch (err) {
        this.env.log('warn', 'call.bad_sdp', { callId: this.callId, side: 'b', error: (err as Error).message }, true);
        b.sendAck(cseq, Buffer.alloc(0));
        this.answerMs = Date.now();
        this.failA(480, CallTag.CalleeRejected, 79);
        b.bye(79);
        return;
      }
      this.answerSdp = answer.toString('utf8');
    } else {
      answer = Buffer.alloc(0);
    }
    this.bAckWaitsForA = this.a.invite.body.length === 0;
    if (!this.bAckWaitsForA) b.sendAck(cseq, Buffer.alloc(0));
    this.bAckCseq = cseq;
    this.phase = 'answered';
    this.answerMs = Date.now();
    this.bridge = new Bridge(this.env, this.a, b, this.media, {
      beforeRelease: () => {
        if (!this.bAckWaitsForA) return;
        this.bAckWaitsForA = false;
        b.sendAck(this.bAckCseq, Buffer.alloc(0));
      },
      released: (outcome, mediaSummary) => this.finish(outcome, mediaSummary),
    });
    this.env.answered?.(this);
    this.a.answer(res.reason, answer, (ack) => this.onInitialAck(ack));
    if (this.env.logs('info')) this.env.log('info', 'call.answered', { callId: this.callId, caller: this.caller.number, callee: this.callee.number, contact: b.dialog.remoteTarget });
  }

  /**
   * An answer (in a 2xx or an 18x) that cannot carry the SRTP the caller offered, or that answers
   * plain RTP with SRTP (RFC 3264 section 6.1: the answer keeps the offer's proto): the caller gets
   * 488 with cause 88 (incompatible destination) rather than a call whose phones cannot read each
   * other's packets; the ringing forks are cancelled. True: the call has failed (the caller of
   * this owes the callee its ACK and BYE for a 2xx).
   */
  private srtpRefused(res: SipResponse): boolean {
    const offer = this.offerStreams;
    if (offer === null) return false;
    const answer = srtpStreams(res);
    if (answer === null) return false;
    const problem = srtpAnswerProblem(offer, answer);
    if (problem === null) return false;
    this.env.log('info', 'call.srtp_mismatch', { callId: this.callId, caller: this.caller.number, callee: this.callee.number, status: res.status, problem });
    const secure = offersSrtp(offer);
    this.failA(488, CallTag.CalleeRejected, 88, secure ? 'Not Acceptable Here (the callee does not do the SRTP the caller requires)' : 'Not Acceptable Here (the callee answered plain RTP with SRTP)');
    return true;
  }

  private onInitialAck(ack: SipRequest): void {
    if (!this.bAckWaitsForA) return;
    this.bAckWaitsForA = false;
    const b = this.b!;
    let body = ack.body;
    if (body.length > 0) {
      try {
        body = this.bridge!.rewrite('a', body, b.dialog.destination);
      } catch (err) {
        this.env.log('warn', 'call.bad_sdp', { callId: this.callId, side: 'a', error: (err as Error).message }, true);
        b.sendAck(this.bAckCseq, Buffer.alloc(0));
        this.release('both', CallTag.CallerBye, 79);
        return;
      }
    }
    b.sendAck(this.bAckCseq, body);
  }

  onFailure(best: SipResponse | null): void {
    const next = this.phase === 'ringing' ? (this.destination?.fallback?.(best) ?? null) : null;
    if (next) {
      this.env.log('info', 'call.fallback', { callId: this.callId, from: this.routeLabel, to: next.route, status: best?.status ?? 0 });
      const failed = this.b!;
      failed.end();
      failed.forget();
      this.leave(this.destination);
      this.dial(next);
      return;
    }
    if (best === null) {
      this.failA(408, CallTag.NoResponse, DEFAULT_CAUSE[CallTag.NoResponse], 'Request Timeout (no answer from the phone)');
      return;
    }
    const status = best.status === 401 || best.status === 407 ? 403 : best.status;
    const tag = best.status === 486 || best.status === 600 ? CallTag.Busy : CallTag.CalleeRejected;
    const reasonHeader = best.headers.getAll('reason').join(', ');
    if (status === 488 && offersSrtp(this.offerStreams) && parseReasonCause(reasonHeader) === undefined) {
      // The callee refused an offer that requires SRTP: most likely it does not do SRTP.
      this.failA(488, tag, 88, 'Not Acceptable Here (the callee did not accept the SRTP offer)', best);
      return;
    }
    const cause = causeForFinalResponse(best.status, reasonHeader);
    this.failA(status, tag, cause, status === best.status ? best.reason : undefined, best);
  }

  onRingTimeout(): void {
    this.failA(480, CallTag.NoAnswer, DEFAULT_CAUSE[CallTag.NoAnswer], 'Temporarily Unavailable (no answer)');
  }

  /** Section 15: a caller may end an early dialog with BYE: like CANCEL. */
  onBye(_req: SipRequest): void {
    this.failA(487, CallTag.CallerCancel, DEFAULT_CAUSE[CallTag.CallerCancel]);
  }

  /** A request in the caller's early dialog: nothing to relay it to before the answer. */
  onDialogRequest(req: SipRequest, tx: ServerTransaction): void {
    tx.respond(createResponse(req, 491));
  }

  onNoAck(): void {
    this.release('both', CallTag.NoResponse, 102);
  }

  onInternalError(err: unknown): void {
    this.env.log('warn', 'call.internal_error', { callId: this.callId, error: (err as Error).stack ?? String(err) });
    try {
      this.release('both', CallTag.AdminRelease, 41);
    } catch {
      // the call is beyond help; the process is not
    }
  }

  private guarded(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.onInternalError(err);
    }
  }

  /** Ends an unanswered call: the record, CANCEL to ringing forks, the final response to the caller. */
  failA(status: number, tag: CallTag, cause: number, reason?: string, from?: SipResponse): void {
    if (this.phase !== 'ringing') return;
    this.phase = 'ended';
    this.outcome = { tag, cause, status };
    // The record first: once the caller hears the answer, the attempt is on disk.
    this.finish(this.outcome, this.media.close());
    this.b?.cancel(cause);
    this.b?.end();
    this.a.reject(status, cause, reason, from);
    this.b?.forget();
  }

  /** CANCEL from the caller (the layer has answered it 200): 487 to the INVITE. */
  cancelledByCaller(cancel: SipRequest): void {
    if (this.phase !== 'ringing') return;
    const cause = parseReasonCause(cancel.headers.getAll('reason').join(', ')) ?? DEFAULT_CAUSE[CallTag.CallerCancel];
    this.failA(487, CallTag.CallerCancel, cause);
  }

  /**
   * Ends the call: an unanswered one with a failure response to the caller (503 at shutdown,
   * else 480), an answered one through its bridge (BYE with a Reason to `towards`).
   */
  release(towards: Side | 'both', tag: CallTag, cause: number = DEFAULT_CAUSE[tag], status = 200): void {
    if (this.phase === 'ringing') {
      this.failA(tag === CallTag.ServerShutdown ? 503 : 480, tag, cause);
      return;
    }
    this.bridge?.release(towards, tag, cause, status);
  }

  private finish(outcome: CallOutcome, mediaSummary: string | undefined): void {
    this.leave(this.destination);
    this.offerForB = Buffer.alloc(0);
    this.phase = 'ended';
    this.outcome = outcome;
    this.endMs = Date.now();
    this.mediaSummary = mediaSummary;
    this.env.ended(this, outcome);
    this.answerSdp = undefined;
  }
}
