/**
 * All calls of the server: new INVITEs (authentication, identity, limits, number analysis),
 * in-dialog requests found by Call-ID and tag, CANCEL, the per-extension and total limits, the
 * record of every call and failed attempt, and the release of everything at shutdown.
 */
import { createResponse, type SipRequest, type SipResponse } from '../sip/message.js';
import { parseNameAddr } from '../sip/headers/name-addr.js';
import { parseUri, unescapeUriPart } from '../sip/uri.js';
import type { ServerTransaction } from '../sip/transaction/layer.js';
import { toTag as toTagOf } from '../sip/transaction/message-keys.js';
import type { Endpoint } from '../sip/transport/types.js';
import { CallTag, DEFAULT_CAUSE, parseReasonCause } from '../cdr/record.js';
import type { Authenticator } from './authenticator.js';
import { Call, reasonValue, type CallEnv, type CallOutcome, type MediaSession } from './call.js';
import type { DialogUser } from './legs/leg.js';
import type { CallRecorder } from './call-recorder.js';
import { dialledNumber, type Router } from './router.js';
import type { Binding } from './registrar.js';

export interface CallLimits {
  maxPerExtension: number;
  maxTotal: number;
}

export interface CallManagerDeps {
  env: Omit<CallEnv, 'fileDialog' | 'ended'>;
  auth: Authenticator;
  router: Router;
  limits: CallLimits;
  recorder: CallRecorder | null;
  /**
   * A media session for a new call, or null (relay off); undefined when no ports are left. May
   * be a promise when ports are being bound (the Node relay engine after a burst).
   */
  newMedia(label: string): MediaSession | null | undefined | Promise<MediaSession | null | undefined>;
  newTag(): string;
  /** The IVR service: numbers bound to IVR files are checked before extensions. */
  ivr?: {
    handles(dialled: string): boolean;
    offer(req: SipRequest, tx: ServerTransaction, source: Endpoint, caller: { number: string; displayName: string }, dialled: string, toTag: string): void;
    readonly activeCount: number;
    /** A CANCEL for an INVITE the IVR has not answered yet. */
    cancelled(inviteTx: ServerTransaction, cancel: SipRequest): void;
  };
}

export interface CallStats {
  active: number;
  started: number;
  answered: number;
}

export class CallManager {
  private readonly dialogs = new Map<string, DialogUser>();
  private readonly byInviteTx = new Map<ServerTransaction, Call>();
  private readonly waitingForMedia = new Map<ServerTransaction, Admission>();
  private readonly perExtension = new Map<string, number>();
  private readonly calls = new Set<Call>();
  /** What calls need from the server (also the IVR's legs: they file their dialogs here). */
  readonly env: CallEnv;
  /** The IVR service, once the server has one. */
  ivr: CallManagerDeps['ivr'];
  private accepting = true;
  private readonly otherServices: Array<{ readonly activeCount: number }> = [];
  readonly stats: CallStats = { active: 0, started: 0, answered: 0 };

  constructor(private readonly deps: CallManagerDeps) {
    this.ivr = deps.ivr;
    this.env = {
      ...deps.env,
      fileDialog: (callId, tag, user) => {
        const key = dialogKey(callId, tag);
        if (user) this.dialogs.set(key, user);
        else this.dialogs.delete(key);
      },
      ended: (call, outcome) => this.onEnded(call, outcome),
    };
  }

  /** Limits and timers for calls set up from now on (a configuration reload). */
  setLimits(l: { maxPerExtension?: number; maxTotal?: number; noAnswerMs?: number; maxDurationMs?: number }): void {
    if (l.maxPerExtension !== undefined) this.deps.limits.maxPerExtension = l.maxPerExtension;
    if (l.maxTotal !== undefined) this.deps.limits.maxTotal = l.maxTotal;
    if (l.noAnswerMs !== undefined) this.env.noAnswerMs = l.noAnswerMs;
    if (l.maxDurationMs !== undefined) this.env.maxDurationMs = l.maxDurationMs;
  }

  get activeCount(): number {
    return this.calls.size;
  }

  /** A new INVITE (no To tag) in its server transaction. */
  onInvite(req: SipRequest, tx: ServerTransaction, source: Endpoint): void {
    const toTag = this.deps.newTag();
    if (!this.accepting) {
      const res = createResponse(req, 503, 'Service Unavailable (shutting down)', toTag);
      res.headers.append('retry-after', '30');
      tx.respond(res);
      return;
    }
    const auth = this.deps.auth.authenticate(req, 'proxy', toTag);
    if (!auth.ok) {
      if (auth.response.status === 403) this.deps.env.log('warn', 'call.auth_failed', { from: `${source.address}:${source.port}` });
      tx.respond(auth.response);
      return;
    }
    const from = parseNameAddr(req.headers.get('from') ?? '');
    const fromUri = from ? parseUri(from.uri) : null;
    const callerNumber = fromUri?.user !== undefined ? unescapeUriPart(fromUri.user) : '';
    // Caller-ID is what the caller authenticated as: nobody calls in another extension's name.
    if (callerNumber !== auth.user) {
      tx.respond(createResponse(req, 403, 'Forbidden (From does not match the authenticated user)', toTag));
      return;
    }
    const startMs = Date.now();
    const dialled = dialledNumber(req.uri);
    const callerExt = this.deps.router.extension(auth.user);
    const caller = { number: auth.user, displayName: callerExt?.displayName || from?.displayName || '' };
    const ivr = this.ivr;
    if (ivr?.handles(dialled)) {
      if (this.totalCalls() >= this.deps.limits.maxTotal) {
        const res = createResponse(req, 503, 'Service Unavailable (call limit reached)', toTag);
        res.headers.append('reason', reasonValue(34));
        tx.respond(res);
        return;
      }
      ivr.offer(req, tx, source, caller, dialled, toTag);
      return;
    }
    const route = this.deps.router.route(dialled);
    const base = { req, source, caller: caller.number, callerName: caller.displayName, dialled, startMs };
    if (route.kind === 'not-found') {
      this.refuse(tx, base, route.number, 404, CallTag.UnknownNumber, toTag);
      return;
    }
    if (route.kind === 'unregistered') {
      this.refuse(tx, base, route.number, 480, CallTag.Unregistered, toTag);
      return;
    }
    if (this.totalCalls() >= this.deps.limits.maxTotal) {
      this.refuse(tx, base, route.number, 503, CallTag.RoutingFailure, toTag, 'Service Unavailable (call limit reached)', 34);
      return;
    }
    if (this.count(caller.number) >= this.deps.limits.maxPerExtension || this.count(route.number) >= this.deps.limits.maxPerExtension) {
      this.refuse(tx, base, route.number, 486, CallTag.Busy, toTag);
      return;
    }
    let media: ReturnType<CallManagerDeps['newMedia']>;
    try {
      media = this.deps.newMedia(req.headers.get('call-id') ?? '');
    } catch (err) {
      this.deps.env.log('warn', 'call.media_error', { error: (err as Error).message });
      media = undefined;
    }
    const admit: Admission = { base, tx, toTag, callee: { number: route.number, displayName: route.extension.displayName }, contacts: route.contacts };
    if (media instanceof Promise) this.admitWhenMediaReady(admit, media);
    else this.admitWithMedia(admit, media);
  }

  /**
   * Ports are being bound for this call (the Node relay engine after a burst): the INVITE waits
   * for them, counted against the limits. A CANCEL or a shutdown meanwhile ends it at once
   * (487/503, see stopWaiting); ports that come after that go straight back.
   */
  private admitWhenMediaReady(admit: Admission, pending: Promise<MediaSession | null | undefined>): void {
    this.waitingForMedia.set(admit.tx, admit);
    this.adjust(admit.base.caller, 1);
    this.adjust(admit.callee.number, 1);
    const settle = (media: MediaSession | null | undefined) => {
      if (!this.waitingForMedia.has(admit.tx)) {
        media?.close();
        return;
      }
      this.stopWaiting(admit);
      try {
        this.admitWithMedia(admit, media);
      } catch (err) {
        this.deps.env.log('warn', 'call.admit_failed', { error: (err as Error).message });
      }
    };
    pending.then(settle, (err: Error) => {
      this.deps.env.log('warn', 'call.media_error', { error: err.message });
      settle(undefined);
    });
  }

  /** The admission no longer waits for its ports: it is refused now, or goes on to a Call. */
  private stopWaiting(admit: Admission, refusal?: { status: 487; cancel: SipRequest } | { status: 503 }): void {
    this.waitingForMedia.delete(admit.tx);
    this.adjust(admit.base.caller, -1);
    this.adjust(admit.callee.number, -1);
    if (refusal?.status === 487) {
      const cause = parseReasonCause(refusal.cancel.headers.getAll('reason').join(', ')) ?? DEFAULT_CAUSE[CallTag.CallerCancel];
      this.refuse(admit.tx, admit.base, admit.callee.number, 487, CallTag.CallerCancel, admit.toTag, undefined, cause);
    } else if (refusal?.status === 503) {
      this.refuse(admit.tx, admit.base, admit.callee.number, 503, CallTag.ServerShutdown, admit.toTag, 'Service Unavailable (shutting down)');
    }
  }

  private admitWithMedia(admit: Admission, media: MediaSession | null | undefined): void {
    const { base, tx, toTag, callee } = admit;
    if (media === undefined) {
      this.refuse(tx, base, callee.number, 503, CallTag.RoutingFailure, toTag, 'Service Unavailable (no media ports left)', 47);
      return;
    }
    // No 100 (Trying) of our own: the INVITE server transaction sends one if nothing else is
    // sent within 200 ms (RFC 3261 section 17.2.1), and the callee's 180 usually comes first.
    const caller = { number: base.caller, displayName: base.callerName };
    const call = new Call(this.env, base.req, tx, base.source, caller, callee, base.dialled, media);
    this.calls.add(call);
    this.byInviteTx.set(tx, call);
    this.adjust(caller.number, 1);
    this.adjust(callee.number, 1);
    this.stats.started++;
    this.stats.active = this.calls.size;
    if (this.deps.env.logs('info')) this.deps.env.log('info', 'call.started', { callId: call.callId, caller: caller.number, callee: callee.number, contacts: admit.contacts.length });
    call.start(admit.contacts);
  }

  /** A request with a To tag, or an ACK without a transaction. */
  onInDialog(req: SipRequest, tx: ServerTransaction | null): void {
    const tag = toTagOf(req);
    const user = tag === undefined ? undefined : this.dialogs.get(dialogKey(req.headers.get('call-id') ?? '', tag));
    if (!user) {
      if (tx) tx.respond(createResponse(req, 481));
      return;
    }
    user.onRequest(req, tx);
  }

  /** The layer answered a CANCEL 200; the INVITE it cancels gets 487 here. */
  onCancel(cancel: SipRequest, inviteTx: ServerTransaction | null): void {
    if (!inviteTx) return;
    const waiting = this.waitingForMedia.get(inviteTx);
    if (waiting) this.stopWaiting(waiting, { status: 487, cancel });
    else {
      const call = this.byInviteTx.get(inviteTx);
      if (call) call.cancelledByCaller(cancel);
      else this.ivr?.cancelled(inviteTx, cancel);
    }
  }

  /** Stops taking calls, releases every call (cause 41) and refuses those waiting for ports (503), writing their records. */
  releaseAll(): number {
    this.accepting = false;
    const n = this.calls.size + this.waitingForMedia.size;
    for (const admit of [...this.waitingForMedia.values()]) this.stopWaiting(admit, { status: 503 });
    for (const call of [...this.calls]) call.release('both', CallTag.ServerShutdown);
    return n;
  }

  private refuse(
    tx: ServerTransaction,
    base: { req: SipRequest; source: Endpoint; caller: string; callerName: string; dialled: string; startMs: number },
    callee: string,
    status: number,
    tag: CallTag,
    toTag: string,
    reason?: string,
    cause: number = DEFAULT_CAUSE[tag],
  ): void {
    const res: SipResponse = createResponse(base.req, status, reason, toTag);
    res.headers.append('reason', reasonValue(cause));
    tx.respond(res);
    if (this.deps.env.logs('info')) this.deps.env.log('info', 'call.refused', { caller: base.caller, dialled: base.dialled, status });
    this.deps.recorder?.failedAttempt({
      callId: base.req.headers.get('call-id') ?? '',
      caller: base.caller,
      callerName: base.callerName,
      callee,
      dialled: base.dialled,
      startMs: base.startMs,
      endMs: Date.now(),
      status,
      tag,
      cause,
      callerAddress: `${base.source.address}:${base.source.port}`,
      userAgent: base.req.headers.get('user-agent') ?? '',
    });
  }

  private onEnded(call: Call, outcome: CallOutcome): void {
    if (!this.calls.delete(call)) return;
    this.byInviteTx.delete(call.inviteTx);
    this.adjust(call.caller.number, -1);
    this.adjust(call.callee.number, -1);
    this.stats.active = this.calls.size;
    if (call.answerMs !== undefined) this.stats.answered++;
    if (this.deps.env.logs('info')) this.deps.env.log('info', 'call.ended', {
      callId: call.callId,
      caller: call.caller.number,
      callee: call.callee.number,
      status: outcome.status,
      callTag: outcome.tag,
      cause: outcome.cause,
    });
    this.deps.recorder?.callEnded(call, outcome);
  }

  private totalCalls(): number {
    let n = this.calls.size + this.waitingForMedia.size + (this.ivr?.activeCount ?? 0);
    for (const s of this.otherServices) n += s.activeCount;
    return n;
  }

  /** Calls a service places itself (call-backs) count against `calls.maxTotal` too. */
  countAlso(service: { readonly activeCount: number }): void {
    this.otherServices.push(service);
  }

  private count(number: string): number {
    return this.perExtension.get(number) ?? 0;
  }

  private adjust(number: string, delta: number): void {
    const n = this.count(number) + delta;
    if (n <= 0) this.perExtension.delete(number);
    else this.perExtension.set(number, n);
  }
}

/** A new call that passed authentication, routing and limits, on its way to a Call. */
interface Admission {
  base: { req: SipRequest; source: Endpoint; caller: string; callerName: string; dialled: string; startMs: number };
  tx: ServerTransaction;
  toTag: string;
  callee: { number: string; displayName: string };
  contacts: Binding[];
}

function dialogKey(callId: string, tag: string): string {
  return `${callId}\n${tag}`;
}
