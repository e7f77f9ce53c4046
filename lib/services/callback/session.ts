/**
 * One call-back: two outgoing legs and a bridge. The server calls user1 with an offer of its own
 * (its media endpoint, through a relay session); when user1 answers it hears a ringback tone from
 * the endpoint while user2 is called with what user1 answered (so whatever user2 accepts, user1
 * already sends it: no re-INVITE); when user2 answers, the relay's side b moves from the endpoint
 * to user2 and a bridge joins the legs. Exactly one outcome is reported, whatever happens.
 *
 * Records: one per leg, route `callback:<id>`, each like a call between extensions (the AS
 * release is callTag 8, admin-release).
 */
import type { SipRequest, SipResponse } from '../../sip/message.js';
import { createResponse } from '../../sip/message.js';
import type { ServerTransaction } from '../../sip/transaction/layer.js';
import { CallTag, causeForFinalResponse, DEFAULT_CAUSE, parseReasonCause, type CallSummary } from '../../cdr/record.js';
import { MediaEndpoint, type Playback } from '../../media/endpoint/endpoint.js';
import { bindingTargets, type ForkTarget } from '../../pbx/legs/fork-target.js';
import { OutgoingLeg, type OutgoingCall, type OutgoingLegOwner } from '../../pbx/legs/outgoing-leg.js';
import type { Destination } from '../../pbx/call.js';
import { trunkDestination } from '../../trunks/destination.js';
import type { LegEnv } from '../../pbx/legs/leg.js';
import { Bridge } from '../../pbx/bridge.js';
import { MediaPath, type MediaSession } from '../../pbx/media-path.js';
import type { Route } from '../../pbx/router.js';
import { isSdp } from '../../pbx/call-messages.js';
import { srtpAnswerProblem, streamSecurityOf, type StreamSecurity } from '../../media/sdp.js';
import { audioTarget, chooseAudio } from '../ivr/ivr-sdp.js';
import { callBackOffer } from './offer-sdp.js';
import type { CallBackRequest, ResponseOutcome } from './iif.js';

export interface CallBackEnv extends LegEnv {
  mediaHost(peer: string, hint?: string): string;
  noAnswerMs: number;
  maxDurationMs: number;
}

export interface CallBackSessionDeps {
  env: CallBackEnv;
  route(number: string): Route;
  /** A relay session (null: relay off; undefined: no ports left). */
  newMedia(label: string): MediaSession | null | undefined | Promise<MediaSession | null | undefined>;
  /** Where the endpoint's socket binds (the relay reaches it there). */
  endpointBind: string;
  /** Offer user1 a video stream too. */
  video: boolean;
  /** Number shown to user1 when the REQUEST has no caller1 ('' = anonymous). */
  defaultCaller: string;
  record(summary: CallSummary, answered: boolean): void;
  /** Called once: the call-back is over (nothing of it is left but the report). */
  finished(session: CallBackSession, outcome: CallBackOutcome): void;
  /** The session moved to calling1, calling2 or bridged (state shows which). */
  changed?(session: CallBackSession): void;
}

export interface CallBackOutcome {
  outcome: ResponseOutcome;
  /** Whole seconds from user2's answer to the release; 0 without a bridge. */
  durationS: number;
  /** Q.850. */
  cause: number;
}

export type CallBackPhase = 'starting' | 'calling1' | 'calling2' | 'bridged' | 'ended';
type Phase = CallBackPhase;

let sessionIds = Math.floor(Math.random() * 1e9);

/** Where a leg goes: a phone's contacts, or a trunk (its From, To, account and codec filter). */
interface LegPlan {
  targets: ForkTarget[];
  trunk: Destination | null;
}

/** One leg as the record sees it. */
interface LegRecord {
  leg: OutgoingLeg | null;
  caller: string;
  number: string;
  dialled: string;
  startMs: number;
  answerMs?: number;
  /** The leg went out on a trunk (the record's party is outside). */
  outside?: boolean;
}

export class CallBackSession {
  private phase: Phase = 'starting';
  private media: MediaPath | null = null;
  private endpoint: MediaEndpoint | null = null;
  private ringback: Playback | null = null;
  private bridge: Bridge | null = null;
  private one: LegRecord | null = null;
  private two: LegRecord | null = null;
  private codec = '';
  private reported = false;
  /** Where user1's offer came back from: its dialog's peer, for advertising our media to it. */
  private user1Hint: string | undefined;
  /** The m= lines each leg was offered, for the SRTP check of its answer (the endpoint does plain RTP). */
  private offered: { 1: StreamSecurity[] | null; 2: StreamSecurity[] | null } = { 1: null, 2: null };
  /** Trunks the legs use (each counts the call until the session ends). */
  private readonly trunksUsed: Destination[] = [];
  readonly startMs = Date.now();

  constructor(
    private readonly deps: CallBackSessionDeps,
    readonly request: CallBackRequest,
    /** The AS that asked for it (host:port), for the records. */
    private readonly asAddress: string,
  ) {}

  get state(): Phase {
    return this.phase;
  }

  /** The number user1's leg calls (an extension's number, or the number dialled on a trunk), once known. */
  get user1Number(): string | undefined {
    return this.one?.number;
  }

  /** The number user2's leg calls, once user1 has answered. */
  get user2Number(): string | undefined {
    return this.two?.number;
  }

  /** When user2 answered (the bridge), or undefined. */
  get answerMs(): number | undefined {
    return this.two?.answerMs;
  }

  /** Talk seconds so far (0 before the bridge). */
  private talkSeconds(endMs = Date.now()): number {
    return this.two?.answerMs !== undefined ? Math.max(0, Math.floor((endMs - this.two.answerMs) / 1000)) : 0;
  }

  private get label(): string {
    return `callback:${this.request.id}`;
  }

  /** Calls user1. Failures end in the report, never in a throw. */
  async start(): Promise<void> {
    try {
      await this.callUser1();
    } catch (err) {
      this.internalError(err);
    }
  }

  private async callUser1(): Promise<void> {
    const route = this.deps.route(this.request.user1);
    const caller = this.request.caller1 ?? (this.deps.defaultCaller || 'anonymous');
    this.one = { leg: null, caller, number: route.number, dialled: this.request.user1, startMs: Date.now() };
    const plan = this.planLeg(route, caller, 'user1-failed');
    if (!plan) return;
    const session = await this.deps.newMedia(this.label);
    if (this.phase !== 'starting') {
      session?.close();
      return;
    }
    if (!session) {
      this.failBeforeBridge('user1-failed', CallTag.RoutingFailure, 503, 47);
      return;
    }
    this.media = new MediaPath(session, (peer, hint) => this.deps.env.mediaHost(peer, hint));
    this.media.onInactive = () => this.guarded(() => this.bridge?.release('both', CallTag.MediaTimeout));
    const bind = this.deps.endpointBind;
    const endpoint = await MediaEndpoint.open({ bind, codec: 'pcmu', telephoneEventPayloadType: 101, inband: 'off', idle: 'silence', handedOver: true });
    if (this.phase !== 'starting') {
      void endpoint.close();
      return;
    }
    this.endpoint = endpoint;
    const local = bind === '0.0.0.0' ? '127.0.0.1' : bind;
    const first = plan.targets[0]!;
    const ours = callBackOffer(local, endpoint.localPort, ++sessionIds, this.deps.video);
    const offer = this.media.rewrite('b', Buffer.from(ours), first.destination, local, first.localAddress);
    this.offered[1] = streamSecurityOf(ours);
    this.user1Hint = first.localAddress;
    const call = this.outgoing(caller, route.number, offer, plan, 'user1-failed');
    if (!call) return;
    this.phase = 'calling1';
    this.deps.changed?.(this);
    const leg = new OutgoingLeg(this.deps.env, call, new LegEvents(this, 1));
    this.one.leg = leg;
    this.one.startMs = Date.now();
    leg.start(plan.targets);
  }

  /**
   * Where a leg to `route` goes, or null once the call-back has been reported failed: an
   * extension's phones, or the first trunk of a dial-plan rule that can take the call (a
   * call-back is granted no restricted class, and tries no fallback trunk).
   */
  private planLeg(route: Route, caller: string, failure: 'user1-failed' | 'user2-failed'): LegPlan | null {
    switch (route.kind) {
      case 'extension':
        return { targets: bindingTargets(route.contacts), trunk: null };
      case 'trunk': {
        const trunk = trunkDestination(route.trunks.slice(0, 1), route.number, { number: caller, displayName: '' });
        if (!trunk) {
          this.failBeforeBridge(failure, CallTag.RoutingFailure, 503, 34);
          return null;
        }
        this.trunksUsed.push(trunk);
        const rec = failure === 'user1-failed' ? this.one : this.two;
        if (rec) rec.outside = true;
        return { targets: trunk.targets, trunk };
      }
      case 'unregistered':
        this.failBeforeBridge(failure, CallTag.Unregistered, 480);
        return null;
      case 'restricted':
        this.failBeforeBridge(failure, CallTag.RoutingFailure, 403, 21);
        return null;
      case 'not-found':
        this.failBeforeBridge(failure, CallTag.UnknownNumber, 404);
        return null;
    }
  }

  /** The INVITE of a leg; null (and the call-back reported failed) when a trunk allows no codec of the offer. */
  private outgoing(caller: string, callee: string, offer: Buffer, plan: LegPlan, failure: 'user1-failed' | 'user2-failed'): OutgoingCall | null {
    const first = plan.targets[0]!;
    const call: OutgoingCall = {
      caller: { number: caller, displayName: '' },
      callee: { number: callee },
      offer,
      contentType: 'application/sdp',
      extra: [],
      maxForwards: 70,
      reliableProvisionals: false,
      ringTimeoutMs: this.deps.env.noAnswerMs,
      callIdHost: this.deps.env.localHost(first.destination.address, first.localAddress),
    };
    const trunk = plan.trunk;
    if (!trunk) return call;
    if (trunk.filterOffer) {
      const filtered = trunk.filterOffer(offer.toString('utf8'));
      if (filtered === null) {
        this.failBeforeBridge(failure, CallTag.CalleeRejected, 488, 65);
        return null;
      }
      call.offer = Buffer.from(filtered, 'utf8');
    }
    if (trunk.fromUri !== undefined) call.fromUri = trunk.fromUri;
    if (trunk.toUri !== undefined) call.toUri = trunk.toUri;
    if (trunk.credentials) call.credentials = trunk.credentials;
    if (trunk.extra) call.extra = [...trunk.extra];
    return call;
  }

  /** @internal LegEvents: a leg's 2xx. */
  answered(which: 1 | 2, res: SipResponse, cseq: number): void {
    const rec = which === 1 ? this.one! : this.two!;
    const leg = rec.leg!;
    leg.sendAck(cseq, Buffer.alloc(0));
    const expected: Phase = which === 1 ? 'calling1' : 'calling2';
    if (this.phase !== expected || !this.media) {
      leg.bye(16);
      leg.end();
      return;
    }
    rec.answerMs = Date.now();
    if (which === 1) this.user1Answered(leg, res);
    else this.user2Answered(leg, res);
  }

  private user1Answered(leg: OutgoingLeg, res: SipResponse): void {
    const media = this.media!;
    const answer = res.body.length > 0 && isSdp(res) ? res.body : null;
    const local = this.endpoint!.localAddress;
    if (this.srtpRefused(1, res)) return;
    let towardsEndpoint: string;
    try {
      if (!answer) throw new Error('the 2xx carries no SDP answer');
      towardsEndpoint = media.rewrite('a', answer, { address: local, port: 0, transport: 'udp' }, leg.signalIp).toString('utf8');
    } catch (err) {
      this.deps.env.log('warn', 'callback.bad_sdp', { id: this.request.id, side: 'user1', error: (err as Error).message });
      this.failBeforeBridge('user1-failed', CallTag.CalleeRejected, 488, 79);
      return;
    }
    const choice = safeChooseAudio(answer.toString('utf8'));
    if (choice) {
      this.codec = choice.codec === 'pcmu' ? 'PCMU' : 'PCMA';
      this.endpoint!.setFormat(choice.codec, choice.payloadType, choice.telephoneEvent);
      const target = audioTarget(towardsEndpoint, choice.index);
      if (target) this.endpoint!.setRemote(target.address === '0.0.0.0' ? local : target.address, target.port);
      this.ringback = this.endpoint!.playTone('ringback');
    }
    const route = this.deps.route(this.request.user2);
    const caller = this.request.caller2 ?? this.one!.number;
    this.two = { leg: null, caller, number: route.number, dialled: this.request.user2, startMs: Date.now() };
    this.phase = 'calling2';
    this.deps.changed?.(this);
    const plan = this.planLeg(route, caller, 'user2-failed');
    if (!plan) return;
    const first = plan.targets[0]!;
    // user2 is offered what user1 answered: whatever it accepts of that, user1 already sends.
    const offer = media.rewrite('a', answer, first.destination, leg.signalIp, first.localAddress);
    this.offered[2] = streamSecurityOf(answer.toString('utf8'));
    const call = this.outgoing(caller, route.number, offer, plan, 'user2-failed');
    if (!call) return;
    const leg2 = new OutgoingLeg(this.deps.env, call, new LegEvents(this, 2));
    this.two.leg = leg2;
    leg2.start(plan.targets);
  }

  private user2Answered(leg: OutgoingLeg, res: SipResponse): void {
    const media = this.media!;
    const one = this.one!.leg!;
    if (this.srtpRefused(2, res)) {
      leg.bye(88);
      return;
    }
    try {
      if (res.body.length === 0 || !isSdp(res)) throw new Error('the 2xx carries no SDP answer');
      // The relay's side b is user2 from now on; what it returns for user1 is what user1 already has.
      media.rewrite('b', res.body, one.dialog.destination, leg.signalIp, this.user1Hint);
    } catch (err) {
      this.deps.env.log('warn', 'callback.bad_sdp', { id: this.request.id, side: 'user2', error: (err as Error).message });
      leg.bye(79);
      this.failBeforeBridge('user2-failed', CallTag.CalleeRejected, 488, 79);
      return;
    }
    this.stopEndpoint();
    this.phase = 'bridged';
    const maxS = this.request.maxDurationS;
    const serverMs = this.deps.env.maxDurationMs;
    const maxDurationMs = maxS > 0 ? (serverMs > 0 ? Math.min(serverMs, maxS * 1000) : maxS * 1000) : serverMs;
    this.bridge = new Bridge({ allow: this.deps.env.allow, maxDurationMs, log: (l, e, f) => this.deps.env.log(l, e, f) }, one, leg, media, {
      released: (outcome, mediaSummary) => {
        const endMs = Date.now();
        this.recordLeg(this.one!, outcome.tag, outcome.cause, 200, endMs, mediaSummary ?? 'audio');
        this.recordLeg(this.two!, outcome.tag, outcome.cause, 200, endMs, mediaSummary ?? 'audio');
        this.report({ outcome: 'bridged', durationS: this.talkSeconds(endMs), cause: outcome.cause });
      },
    });
    this.deps.changed?.(this);
    if (this.deps.env.logs('info')) this.deps.env.log('info', 'callback.bridged', { id: this.request.id, user1: this.one!.number, user2: this.two!.number });
  }

  /**
   * A leg answered its plain RTP offer with SRTP (RTP/SAVP; RFC 3264 section 6.1 forbids it): the
   * ringback endpoint and the other phone could not read its packets, so the call-back fails with
   * 488 / cause 88 rather than carrying broken audio. (A phone that requires SRTP refuses the
   * offer with 488 itself: legFailed.)
   */
  private srtpRefused(which: 1 | 2, res: SipResponse): boolean {
    const offer = this.offered[which];
    const answer = offer && res.body.length > 0 && isSdp(res) ? streamSecurityOf(res.body.toString('utf8')) : null;
    const problem = offer && answer ? srtpAnswerProblem(offer, answer) : null;
    if (problem === null) return false;
    this.deps.env.log('info', 'callback.srtp_mismatch', { id: this.request.id, side: which === 1 ? 'user1' : 'user2', problem });
    this.failBeforeBridge(which === 1 ? 'user1-failed' : 'user2-failed', CallTag.CalleeRejected, 488, 88);
    return true;
  }

  /** @internal LegEvents: a leg ended without an answer. */
  legFailed(which: 1 | 2, best: SipResponse | null): void {
    const expected: Phase = which === 1 ? 'calling1' : 'calling2';
    if (this.phase !== expected) return;
    const outcome: ResponseOutcome = which === 1 ? 'user1-failed' : 'user2-failed';
    if (best === null) {
      this.failBeforeBridge(outcome, CallTag.NoResponse, 408, 102);
      return;
    }
    const tag = best.status === 486 || best.status === 600 ? CallTag.Busy : best.status === 480 || best.status === 408 ? CallTag.NoAnswer : CallTag.CalleeRejected;
    this.failBeforeBridge(outcome, tag, best.status, causeForFinalResponse(best.status, best.headers.getAll('reason').join(', ')));
  }

  /** @internal LegEvents: nobody answered within calls.noAnswerTimeout. */
  ringTimeout(which: 1 | 2): void {
    const expected: Phase = which === 1 ? 'calling1' : 'calling2';
    if (this.phase !== expected) return;
    this.failBeforeBridge(which === 1 ? 'user1-failed' : 'user2-failed', CallTag.NoAnswer, 480, 19);
  }

  /** @internal LegEvents: user1 hung up while user2 was being called. */
  user1Bye(req: SipRequest): void {
    if (this.phase !== 'calling2') return;
    const cause = parseReasonCause(req.headers.getAll('reason').join(', ')) ?? 16;
    this.one!.leg!.end();
    this.failBeforeBridge('user1-failed', CallTag.CallerBye, 200, cause, false);
  }

  /** The AS cancels or releases it, whatever its state (callTag 8, admin-release). */
  cancel(): void {
    if (this.phase === 'bridged') this.bridge?.release('both', CallTag.AdminRelease, 16);
    else this.failBeforeBridge('cancelled', CallTag.AdminRelease, 487, 16);
  }

  /** Shutdown: a bridged call is released with cause 41, the others end as server-stopped. */
  stop(): void {
    if (this.phase === 'bridged') this.bridge?.release('both', CallTag.ServerShutdown);
    else this.failBeforeBridge('server-stopped', CallTag.ServerShutdown, 503, DEFAULT_CAUSE[CallTag.ServerShutdown]);
  }

  internalError(err: unknown): void {
    this.deps.env.log('warn', 'callback.internal_error', { id: this.request.id, error: (err as Error).stack ?? String(err) });
    try {
      if (this.phase === 'bridged') this.bridge?.release('both', CallTag.AdminRelease, 41);
      else this.failBeforeBridge(this.phase === 'calling2' ? 'user2-failed' : 'user1-failed', CallTag.AdminRelease, 500, 41);
    } catch {
      // the call-back is beyond help; the process is not
    }
  }

  guarded(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.internalError(err);
    }
  }

  /**
   * Ends a call-back that was never bridged: the records first, then CANCEL to a ringing leg and
   * BYE to user1 when it had answered (unless it hung up itself), then the report.
   */
  private failBeforeBridge(outcome: ResponseOutcome, tag: CallTag, status: number, cause: number = DEFAULT_CAUSE[tag], byeUser1 = true): void {
    if (this.phase === 'ended' || this.phase === 'bridged') return;
    const phase = this.phase;
    this.phase = 'ended';
    const endMs = Date.now();
    const failing = phase === 'calling2' && outcome !== 'user1-failed' ? this.two : this.one;
    // user1's leg is answered once user2 is being called; its record carries why it ended.
    if (this.one) this.recordLeg(this.one, tag, cause, this.one.answerMs !== undefined ? 200 : failing === this.one ? status : 487, endMs, this.one.answerMs !== undefined ? 'audio' : '');
    if (this.two && phase === 'calling2') this.recordLeg(this.two, tag, cause, failing === this.two ? status : 487, endMs, '');
    for (const rec of [this.one, this.two]) {
      const leg = rec?.leg;
      if (!leg) continue;
      if (leg.answered) {
        leg.end();
        if (rec === this.one && byeUser1) leg.bye(cause);
      } else {
        leg.cancel(cause);
        leg.end();
      }
      leg.forget();
    }
    this.stopEndpoint();
    this.media?.close();
    this.report({ outcome, durationS: 0, cause });
  }

  private stopEndpoint(): void {
    this.ringback?.stop();
    this.ringback = null;
    const e = this.endpoint;
    this.endpoint = null;
    void e?.close();
  }

  private recordLeg(rec: LegRecord, tag: CallTag, cause: number, status: number, endMs: number, media: string): void {
    const summary: CallSummary = {
      callId: rec.leg?.callId ?? '',
      caller: rec.caller,
      callee: rec.number,
      dialled: rec.dialled,
      route: this.label,
      startMs: rec.startMs,
      endMs,
      status,
      tag,
      cause,
      callerAddress: this.asAddress,
      calleeAddress: rec.leg?.calleeAddress ?? '',
      codec: rec.answerMs !== undefined ? this.codec : '',
      media: rec.answerMs !== undefined ? media : '',
      partyKind: rec.outside ? 'outside' : 'local',
    };
    if (rec.answerMs !== undefined) summary.answerMs = rec.answerMs;
    this.deps.record(summary, rec.answerMs !== undefined);
  }

  private report(outcome: CallBackOutcome): void {
    if (this.reported) return;
    this.reported = true;
    this.phase = 'ended';
    for (const t of this.trunksUsed) t.release?.();
    this.deps.finished(this, outcome);
  }
}

function safeChooseAudio(sdp: string): ReturnType<typeof chooseAudio> {
  try {
    return chooseAudio(sdp);
  } catch {
    return null;
  }
}

/** The owner of one leg until the bridge takes it over. */
class LegEvents implements OutgoingLegOwner {
  constructor(
    private readonly session: CallBackSession,
    private readonly which: 1 | 2,
  ) {}

  onProvisional(): void {}

  onAnswer(res: SipResponse, cseq: number): void {
    this.session.guarded(() => this.session.answered(this.which, res, cseq));
  }

  onFailure(best: SipResponse | null): void {
    this.session.guarded(() => this.session.legFailed(this.which, best));
  }

  onRingTimeout(): void {
    this.session.guarded(() => this.session.ringTimeout(this.which));
  }

  onBye(req: SipRequest): void {
    if (this.which === 1) this.session.guarded(() => this.session.user1Bye(req));
  }

  /** Before the bridge there is nobody to pass a mid-call request to. */
  onDialogRequest(req: SipRequest, tx: ServerTransaction): void {
    tx.respond(createResponse(req, 491));
  }

  onInternalError(err: unknown): void {
    this.session.internalError(err);
  }
}
