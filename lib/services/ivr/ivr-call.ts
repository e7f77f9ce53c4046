/**
 * One call to an IVR number: the caller's incoming leg, answered by the server itself, a media
 * endpoint the server speaks and listens through, and the IVR session running the file's flow.
 * A `callto` opens an outgoing leg to the destination (ringback to the caller meanwhile); when it
 * answers, the two legs are joined by a bridge and the call goes on as any call between phones.
 *
 * Media: with the relay on (the default) the caller's media flows through a relay session whose
 * other side is first the endpoint (on a loopback or bind address), then the destination's phone:
 * the caller's SDP never changes, so no re-INVITE is needed (the destination is offered exactly
 * the codec the caller already uses, see ivr-sdp.ts). With the relay off the endpoint talks to the
 * caller directly and `callto` is refused ('fail'), as joining would need a new offer to the caller.
 *
 * Records: the IVR part is one record (route `ivr:<file>`, from the INVITE to the hang-up or the
 * handover); each `callto` is a record of its own (route `local`), answered or not.
 */
import { createResponse, type SipRequest, type SipResponse } from '../../sip/message.js';
import type { ServerTransaction } from '../../sip/transaction/layer.js';
import type { Endpoint } from '../../sip/transport/types.js';
import { systemClock } from '../../sip/transaction/clock.js';
import { CallTag, DEFAULT_CAUSE, parseReasonCause, type CallSummary } from '../../cdr/record.js';
import { SdpError } from '../../media/sdp.js';
import { MediaEndpoint, type Playback } from '../../media/endpoint/endpoint.js';
import { parseDtmfInfo } from '../../media/endpoint/dtmf.js';
import { IncomingLeg, type IncomingLegOwner } from '../../pbx/legs/incoming-leg.js';
import { bindingTargets } from '../../pbx/legs/fork-target.js';
import { OutgoingLeg, type OutgoingLegOwner } from '../../pbx/legs/outgoing-leg.js';
import type { LegEnv } from '../../pbx/legs/leg.js';
import { Bridge } from '../../pbx/bridge.js';
import { MediaPath, type MediaSession } from '../../pbx/media-path.js';
import type { Route } from '../../pbx/router.js';
import { hostPort } from '../../pbx/call-recorder.js';
import { parseCSeq } from '../../sip/headers/cseq.js';
import { contactTarget } from '../../pbx/contact-target.js';
import type { IvrDocument } from './model.js';
import { IvrSession, type CallToOutcome, type IvrChannel, type IvrEnd } from './session.js';
import { answerSdp, audioTarget, chooseAudio, narrowOffer, type AudioChoice } from './ivr-sdp.js';
import type { PromptCache } from './prompts.js';

export interface IvrCallEnv extends LegEnv {
  mediaHost(peer: string, hint?: string): string;
  noAnswerMs: number;
  maxDurationMs: number;
}

export interface IvrCallDeps {
  env: IvrCallEnv;
  route(number: string): Route;
  /** A relay session (null: relay off; undefined: no ports left). */
  newMedia(label: string): MediaSession | null | undefined | Promise<MediaSession | null | undefined>;
  /** Where the endpoint's socket binds: the relay's address (its sessions are reached there), or the media address without relay. */
  endpointBind: string;
  prompts: PromptCache;
  timeZone: string | undefined;
  /** The caller sent no media for this long: the call is released (cause 102); 0 = never. */
  inactivityMs: number;
  /** Writes a call record (the recorder decides about unanswered ones). */
  record(summary: CallSummary): void;
  /** The IVR part is over (the call may go on through a bridge): the session slot is free. */
  left(call: IvrCall): void;
  /** Nothing of the call is left. */
  ended(call: IvrCall): void;
  /** The call moved: answered by the IVR, a `callto` started or failed, joined to its destination. */
  changed?(call: IvrCall): void;
}

export type IvrCallPhase = 'starting' | 'ivr' | 'bridged' | 'ended';
type Phase = IvrCallPhase;

let sessionIds = Math.floor(Math.random() * 1e9);

export class IvrCall implements IncomingLegOwner {
  private phase: Phase = 'starting';
  readonly startMs = Date.now();
  private answerMs: number | undefined;
  private readonly leg: IncomingLeg;
  private media: MediaPath | null = null;
  private endpoint: MediaEndpoint | null = null;
  private choice: AudioChoice | null = null;
  private session: IvrSession | null = null;
  private playing: Playback | null = null;
  private onward: Onward | null = null;
  private bridge: Bridge | null = null;
  private callerSdp = Buffer.alloc(0);
  private recorded = false;
  /** Keys seen so far: a key pressed while a prompt is being loaded interrupts it too (barge-in). */
  private keysPressed = 0;
  private readonly earlyKeys: string[] = [];
  private readonly offer: string;
  /** The number a `callto` joined the caller to (phase bridged). */
  private joinedTo: string | null = null;

  constructor(
    private readonly deps: IvrCallDeps,
    private readonly doc: IvrDocument,
    readonly fileName: string,
    invite: SipRequest,
    tx: ServerTransaction,
    private readonly source: Endpoint,
    readonly caller: { number: string; displayName: string },
    readonly dialled: string,
  ) {
    this.leg = new IncomingLeg(deps.env, invite, tx, source, this);
    this.offer = invite.body.toString('utf8');
  }

  get callId(): string {
    return this.leg.dialog.callId;
  }

  get inviteTx(): ServerTransaction {
    return this.leg.inviteTx;
  }

  get state(): Phase {
    return this.phase;
  }

  /** The number a `callto` rings now (in the IVR), or the one the caller was joined to (bridged); null otherwise. */
  get onwardNumber(): string | null {
    if (this.phase === 'bridged') return this.joinedTo;
    return this.phase === 'ivr' ? (this.onward?.number ?? null) : null;
  }

  /** CANCEL before the IVR answered (it answers within milliseconds, once its media is ready). */
  cancelledByCaller(cancel: SipRequest): void {
    if (this.phase !== 'starting') return;
    const cause = parseReasonCause(cancel.headers.getAll('reason').join(', ')) ?? DEFAULT_CAUSE[CallTag.CallerCancel];
    this.refuse(487, CallTag.CallerCancel, cause);
  }

  get inIvr(): boolean {
    return this.phase === 'starting' || this.phase === 'ivr';
  }

  /** Answers the caller and starts the flow; refuses the call when its offer has no G.711 audio or no ports are left. */
  async begin(): Promise<void> {
    try {
      await this.answer();
    } catch (err) {
      this.onInternalError(err);
    }
  }

  private async answer(): Promise<void> {
    const choice = this.chooseCodec();
    if (!choice) return;
    this.choice = choice;
    const session = await this.deps.newMedia(this.callId);
    if (this.phase !== 'starting') {
      session?.close();
      return;
    }
    if (session === undefined) {
      this.refuse(503, CallTag.RoutingFailure, 47, 'Service Unavailable (no media ports left)');
      return;
    }
    this.media = new MediaPath(session, (peer, hint) => this.deps.env.mediaHost(peer, hint));
    const bind = this.deps.endpointBind;
    const endpoint = await MediaEndpoint.open({
      bind,
      codec: choice.codec,
      payloadType: choice.payloadType,
      telephoneEventPayloadType: choice.telephoneEvent,
      latch: session === null,
      signalAddress: this.source.address,
      // Tones in the audio are listened for even when telephone-events were agreed: phones that
      // offer them do not always send them. The endpoint counts one press once either way.
      inband: 'always',
      idle: 'silence',
      handedOver: true,
      inactivityMs: this.deps.inactivityMs,
    });
    if (this.phase !== 'starting') {
      void endpoint.close();
      return;
    }
    this.endpoint = endpoint;
    endpoint.on('digit', (key) => this.onKey(key));
    endpoint.on('inactive', () => {
      if (this.phase !== 'ivr') return;
      this.deps.env.log('info', 'ivr.media_timeout', { callId: this.callId, file: this.fileName });
      this.session?.callerHungUp();
      this.hangUp(DEFAULT_CAUSE[CallTag.MediaTimeout], CallTag.MediaTimeout);
    });
    const advertise = this.deps.env.mediaHost(this.source.address, this.leg.hint);
    const local = bind === '0.0.0.0' ? '127.0.0.1' : bind;
    let sdp: string;
    if (session) {
      // The relay's side b is the endpoint: where it must send is what side a's offer becomes.
      const towardsEndpoint = this.media.rewrite('a', Buffer.from(this.offer), { address: local, port: 0, transport: 'udp' }, this.source.address).toString('utf8');
      const target = audioTarget(towardsEndpoint, choice.index);
      if (target) endpoint.setRemote(target.address === '0.0.0.0' ? local : target.address, target.port);
      const ours = answerSdp(choice, this.offer, local, endpoint.localPort, ++sessionIds);
      sdp = this.media.rewrite('b', Buffer.from(ours), this.source, local, this.leg.hint).toString('utf8');
    } else {
      const target = audioTarget(this.offer, choice.index);
      if (target) endpoint.setRemote(target.address, target.port);
      sdp = answerSdp(choice, this.offer, advertise, endpoint.localPort, ++sessionIds);
    }
    this.callerSdp = Buffer.from(sdp);
    this.phase = 'ivr';
    this.answerMs = Date.now();
    this.deps.changed?.(this);
    this.leg.answer('OK', this.callerSdp, () => this.startFlow());
  }

  private chooseCodec(): AudioChoice | null {
    let choice: AudioChoice | null = null;
    let why = 'the offer has no PCMU or PCMA audio';
    if (this.offer.length === 0) why = 'the INVITE carries no SDP offer';
    else {
      try {
        choice = chooseAudio(this.offer);
      } catch (err) {
        why = err instanceof SdpError ? err.message : String(err);
      }
    }
    if (choice) return choice;
    this.deps.env.log('info', 'ivr.refused', { callId: this.callId, file: this.fileName, reason: why });
    this.refuse(488, CallTag.CalleeRejected, 88, `Not Acceptable Here (${why})`);
    return null;
  }

  /** A key from any source; keys before the flow starts (media may beat the ACK) are kept for it. */
  private onKey(key: string): void {
    this.keysPressed++;
    if (this.session) this.session.digit(key);
    else if (this.earlyKeys.length < 32) this.earlyKeys.push(key);
  }

  private startFlow(): void {
    if (this.phase !== 'ivr' || this.session) return;
    const session = new IvrSession(this.doc, this.channel(), {
      caller: this.caller.number,
      called: this.dialled,
      clock: systemClock,
      ...(this.deps.timeZone ? { timeZone: this.deps.timeZone } : {}),
      log: (level, event, fields) => this.log(level, event, { callId: this.callId, ...fields }),
    });
    this.session = session;
    const started = session.start();
    for (const key of this.earlyKeys.splice(0)) session.digit(key);
    started.then(
      (end) => this.onFlowEnd(end),
      (err: unknown) => this.onInternalError(err),
    );
  }

  private log(level: 'debug' | 'info' | 'warn' | 'error', event: string, fields: Record<string, unknown>): void {
    this.deps.env.log(level === 'error' ? 'warn' : level, event, fields);
  }

  private onFlowEnd(end: IvrEnd): void {
    if (end.reason === 'connected' || end.reason === 'caller-hungup') return;
    // The session has called hangup() already; this is for a flow that ended without it.
    if (this.inIvr) this.hangUp(end.cause ?? 16);
  }

  private channel(): IvrChannel {
    return {
      play: (prompts, opts) => this.play(prompts, opts.bargeIn),
      callTo: (destination) => this.callTo(destination),
      hangup: (cause) => this.hangUp(cause),
    };
  }

  private async play(names: string[], bargeIn: boolean): Promise<'done' | 'interrupted' | 'hungup'> {
    const endpoint = this.endpoint;
    const choice = this.choice;
    if (!endpoint || !choice || !this.inIvr) return 'hungup';
    const keysBefore = this.keysPressed;
    const audio: Uint8Array[] = [];
    for (const name of names) {
      const a = await this.deps.prompts.get(name, choice.codec);
      if (a) audio.push(a);
    }
    if (!this.inIvr) return 'hungup';
    if (bargeIn && this.keysPressed > keysBefore) return 'interrupted';
    if (audio.length === 0) return 'done';
    const playback = endpoint.play(audio, { bargeIn });
    this.playing = playback;
    const result = await playback.result;
    if (this.playing === playback) this.playing = null;
    if (result === 'closed' || !this.inIvr) return 'hungup';
    return result;
  }

  private callTo(destination: string): Promise<CallToOutcome> {
    if (!this.inIvr || !this.endpoint || !this.choice) return Promise.resolve('hungup');
    const route = this.deps.route(destination);
    if (route.kind !== 'extension') {
      this.recordOnward(destination, route.number, null, route.kind === 'not-found' ? CallTag.UnknownNumber : CallTag.Unregistered, route.kind === 'not-found' ? 404 : 480);
      return Promise.resolve('unreachable');
    }
    if (!this.media?.relayed) {
      this.deps.env.log('warn', 'ivr.callto_needs_relay', { callId: this.callId, file: this.fileName, hint: 'callto joins the caller to another phone through the media relay: set media.relay: always' });
      return Promise.resolve('fail');
    }
    const contact = route.contacts[0]!;
    const offer = this.media.rewrite('a', Buffer.from(narrowOffer(this.choice, this.offer)), contactTarget(contact), this.source.address, contact.localAddress);
    const ringback = this.endpoint.playTone('ringback');
    return new Promise<CallToOutcome>((resolve) => {
      const onward = new Onward(this, route.number, destination, ringback, resolve);
      this.onward = onward;
      this.deps.changed?.(this);
      const leg = new OutgoingLeg(this.deps.env, {
        caller: this.caller,
        callee: { number: route.number },
        offer,
        contentType: 'application/sdp',
        extra: [],
        maxForwards: 70,
        reliableProvisionals: false,
        ringTimeoutMs: this.deps.env.noAnswerMs,
        callIdHost: this.deps.env.localHost(this.source.address, this.leg.hint),
      }, onward);
      onward.leg = leg;
      leg.start(bindingTargets(route.contacts));
    });
  }

  /** @internal Onward: the destination answered. */
  connect(onward: Onward, res: SipResponse, cseq: number): void {
    const leg = onward.leg!;
    leg.sendAck(cseq, Buffer.alloc(0));
    if (!this.inIvr || !this.media) {
      leg.bye(16);
      leg.end();
      onward.finish('hungup');
      return;
    }
    try {
      this.media.rewrite('b', res.body, this.source, leg.signalIp, this.leg.hint);
    } catch (err) {
      this.deps.env.log('warn', 'call.bad_sdp', { callId: this.callId, side: 'b', error: (err as Error).message }, true);
      leg.bye(79);
      leg.end();
      this.recordOnward(onward.dialled, onward.number, leg, CallTag.CalleeRejected, 488, 79);
      onward.finish('fail');
      return;
    }
    onward.ringback.stop();
    this.playing?.stop();
    void this.endpoint?.close();
    this.endpoint = null;
    this.phase = 'bridged';
    this.joinedTo = onward.number;
    // The IVR part ends here: its record, then the session slot.
    this.recordIvr(CallTag.CalleeBye, 16);
    this.deps.left(this);
    const answeredMs = Date.now();
    const startMs = onward.startMs;
    this.bridge = new Bridge(this.deps.env, this.leg, leg, this.media, {
      released: (outcome, mediaSummary) => {
        this.phase = 'ended';
        this.deps.record({
          ...this.baseSummary(),
          callee: onward.number,
          dialled: onward.dialled,
          route: 'local',
          startMs,
          answerMs: answeredMs,
          endMs: Date.now(),
          status: 200,
          tag: outcome.tag,
          cause: outcome.cause,
          calleeAddress: leg.calleeAddress,
          media: mediaSummary ?? 'audio',
        });
        this.deps.ended(this);
      },
    });
    this.deps.changed?.(this);
    onward.finish('connected');
  }

  /** @internal Onward: the destination failed; the caller stays with the IVR. */
  onwardFailed(onward: Onward, outcome: CallToOutcome, status: number, tag: CallTag, cause: number): void {
    onward.ringback.stop();
    this.recordOnward(onward.dialled, onward.number, onward.leg, tag, status, cause);
    if (this.onward === onward) {
      this.onward = null;
      this.deps.changed?.(this);
    }
    onward.finish(outcome);
  }

  private recordOnward(dialled: string, number: string, leg: OutgoingLeg | null, tag: CallTag, status: number, cause: number = DEFAULT_CAUSE[tag]): void {
    this.deps.record({
      ...this.baseSummary(),
      callee: number,
      dialled,
      route: 'local',
      startMs: this.onward?.startMs ?? Date.now(),
      endMs: Date.now(),
      status,
      tag,
      cause,
      calleeAddress: leg?.calleeAddress ?? '',
    });
  }

  private baseSummary(): CallSummary {
    return {
      callId: this.callId,
      caller: this.caller.number,
      callerName: this.caller.displayName,
      callee: this.dialled,
      dialled: this.dialled,
      route: `ivr:${this.fileName}`,
      startMs: this.startMs,
      endMs: Date.now(),
      status: 200,
      tag: CallTag.CallerBye,
      callerAddress: hostPort(this.source.address, this.source.port),
      codec: this.choice ? (this.choice.codec === 'pcmu' ? 'PCMU' : 'PCMA') : '',
      userAgent: this.leg.invite.headers.get('user-agent') ?? '',
    };
  }

  private recordIvr(tag: CallTag, cause: number, status = 200): void {
    if (this.recorded) return;
    this.recorded = true;
    const summary: CallSummary = { ...this.baseSummary(), endMs: Date.now(), status: this.answerMs !== undefined ? 200 : status, tag, cause, media: this.answerMs !== undefined ? 'audio' : '' };
    if (this.answerMs !== undefined) summary.answerMs = this.answerMs;
    this.deps.record(summary);
  }

  /** The IVR releases the caller (a `hangup`, a failed flow, shutdown). */
  hangUp(cause: number, tag: CallTag = CallTag.CalleeBye): void {
    if (this.phase === 'bridged') return;
    if (this.phase === 'starting') {
      this.refuse(tag === CallTag.ServerShutdown ? 503 : 480, tag, cause);
      return;
    }
    if (this.phase !== 'ivr') return;
    this.phase = 'ended';
    this.recordIvr(tag, cause);
    this.cleanUp();
    this.leg.end();
    this.leg.bye(cause);
    this.leg.forget();
    this.finished();
  }

  /** Shutdown: the caller is told 41 (or 503 before the answer), whatever phase. */
  release(tag: CallTag): void {
    if (this.phase === 'bridged') {
      this.bridge?.release('both', tag);
      return;
    }
    this.session?.callerHungUp();
    this.hangUp(DEFAULT_CAUSE[tag], tag);
  }

  private refuse(status: number, tag: CallTag, cause: number, reason?: string): void {
    if (this.phase !== 'starting') return;
    this.phase = 'ended';
    this.recordIvr(tag, cause, status);
    this.cleanUp();
    this.leg.reject(status, cause, reason);
    this.finished();
  }

  private finished(): void {
    this.deps.left(this);
    this.deps.ended(this);
  }

  private cleanUp(): void {
    this.playing?.stop();
    this.playing = null;
    const endpoint = this.endpoint;
    this.endpoint = null;
    void endpoint?.close();
    const onward = this.onward;
    this.onward = null;
    if (onward) onward.abandon();
    this.media?.close();
  }

  // ---- the caller's leg -----------------------------------------------------------------------

  onBye(req: SipRequest): void {
    if (this.phase !== 'ivr' && this.phase !== 'starting') return;
    const cause = parseReasonCause(req.headers.getAll('reason').join(', ')) ?? 16;
    this.phase = 'ended';
    this.recordIvr(CallTag.CallerBye, cause);
    this.session?.callerHungUp();
    this.cleanUp();
    this.leg.end();
    this.leg.forget();
    this.finished();
  }

  onDialogRequest(req: SipRequest, tx: ServerTransaction): void {
    switch (req.method) {
      case 'INFO': {
        const key = parseDtmfInfo(req.headers.get('content-type') ?? '', req.body.toString('utf8'));
        if (key !== null) this.endpoint?.injectDigit(key, 'info');
        tx.respond(createResponse(req, 200));
        return;
      }
      case 'INVITE':
      case 'UPDATE': {
        // A session refresh or a new offer while the IVR speaks: our side stays as it is.
        if (this.leg.awaitingAck) {
          tx.respond(createResponse(req, 491));
          return;
        }
        const res = createResponse(req, 200, undefined, this.leg.dialog.localTag);
        res.headers.append('contact', this.leg.dialog.contact);
        res.headers.append('content-type', 'application/sdp');
        res.body = this.callerSdp;
        tx.respond(res);
        if (req.method === 'INVITE') this.leg.answerReInvite(res, parseCSeq(req.headers.get('cseq') ?? '')?.seq ?? 0, () => undefined);
        return;
      }
      default: {
        const res = createResponse(req, 405);
        res.headers.append('allow', this.deps.env.allow);
        tx.respond(res);
      }
    }
  }

  onNoAck(): void {
    if (this.phase === 'ivr') {
      this.session?.callerHungUp();
      this.hangUp(102, CallTag.NoResponse);
    }
  }

  onInternalError(err: unknown): void {
    this.deps.env.log('warn', 'call.internal_error', { callId: this.callId, error: (err as Error).stack ?? String(err) });
    try {
      this.session?.callerHungUp();
      if (this.phase === 'starting') this.refuse(500, CallTag.AdminRelease, 41);
      else this.hangUp(41, CallTag.AdminRelease);
    } catch {
      // the call is beyond help; the process is not
    }
  }
}

/** One `callto` in progress: the outgoing leg's owner until it answers or fails. */
class Onward implements OutgoingLegOwner {
  leg: OutgoingLeg | null = null;
  readonly startMs = Date.now();
  private done = false;

  constructor(
    private readonly call: IvrCall,
    readonly number: string,
    readonly dialled: string,
    readonly ringback: Playback,
    private readonly resolve: (outcome: CallToOutcome) => void,
  ) {}

  finish(outcome: CallToOutcome): void {
    if (this.done) return;
    this.done = true;
    this.resolve(outcome);
  }

  /** The caller left (or the server stops) while the destination rings. */
  abandon(): void {
    this.ringback.stop();
    this.leg?.cancel(16);
    this.leg?.end();
    this.leg?.forget();
    this.finish('hungup');
  }

  onProvisional(): void {}

  onAnswer(res: SipResponse, cseq: number): void {
    this.call.connect(this, res, cseq);
  }

  onFailure(best: SipResponse | null): void {
    this.leg?.end();
    if (best === null) {
      this.call.onwardFailed(this, 'unreachable', 408, CallTag.NoResponse, 102);
      return;
    }
    const s = best.status;
    const outcome: CallToOutcome =
      s === 486 || s === 600 ? 'busy' : s === 408 || s === 480 ? 'noanswer' : s === 404 || s === 410 || s === 484 || s === 604 ? 'unreachable' : s >= 400 && s < 500 ? 'reject' : s === 603 ? 'reject' : 'fail';
    const tag = outcome === 'busy' ? CallTag.Busy : outcome === 'noanswer' ? CallTag.NoAnswer : CallTag.CalleeRejected;
    this.call.onwardFailed(this, outcome, s, tag, DEFAULT_CAUSE[tag]);
  }

  onRingTimeout(): void {
    this.leg?.cancel(19);
    this.leg?.end();
    this.call.onwardFailed(this, 'noanswer', 480, CallTag.NoAnswer, 19);
  }

  onBye(): void {}
  onDialogRequest(req: SipRequest, tx: ServerTransaction): void {
    tx.respond(createResponse(req, 491));
  }
  onInternalError(err: unknown): void {
    this.call.onInternalError(err);
  }
}
