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
import { Call, reasonValue, type CallEnv, type CallOutcome, type Destination, type MediaSession } from './call.js';
import { isSipsUri } from './call-messages.js';
import { bindingTargets } from './legs/fork-target.js';
import type { Trunk } from '../trunks/trunk.js';
import type { DidTarget } from '../trunks/config.js';
import { didTarget } from '../trunks/trunks.js';
import { trunkDestination } from '../trunks/destination.js';
import type { DialogUser } from './legs/leg.js';
import type { CallRecorder } from './call-recorder.js';
import { dialledNumber, normaliseDialled, type Router } from './router.js';
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
  /** The server listens for TLS: without it a sips: Request-URI is answered 416. */
  tls?: boolean;
  /** The trunks: incoming calls are recognised by their source, outgoing ones go by the dial plan. */
  trunks?: { fromSource(source: Endpoint): Trunk | null };
  /** The IVR service: numbers bound to IVR files are checked before extensions. */
  ivr?: {
    handles(dialled: string): boolean;
    offer(req: SipRequest, tx: ServerTransaction, source: Endpoint, caller: { number: string; displayName: string }, dialled: string, toTag: string, file?: string): void;
    readonly activeCount: number;
    /** A CANCEL for an INVITE the IVR has not answered yet. */
    cancelled(inviteTx: ServerTransaction, cancel: SipRequest): void;
  };
}

/**
 * Told of each call between phones (or over a trunk) once it is admitted as a Call: created
 * (its route known, the callee's leg about to be dialled), answered, ended (the outcome its record
 * carries). Called synchronously inside the call's handling: keep it cheap, never throw.
 */
export interface CallObserver {
  created(call: Call): void;
  answered(call: Call): void;
  ended(call: Call, outcome: CallOutcome): void;
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
  /** The extensions each call counts against `calls.maxPerExtension`. */
  private readonly extensionsOf = new Map<Call, readonly string[]>();
  private readonly calls = new Set<Call>();
  /** What calls need from the server (also the IVR's legs: they file their dialogs here). */
  readonly env: CallEnv;
  /** The IVR service, once the server has one. */
  ivr: CallManagerDeps['ivr'];
  private accepting = true;
  private readonly otherServices: Array<{ readonly activeCount: number }> = [];
  readonly stats: CallStats = { active: 0, started: 0, answered: 0 };
  /** The live state (admin API, event channel); undefined: nobody listens. */
  observer: CallObserver | undefined = undefined;

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
      started: (call) => this.observer?.created(call),
      answered: (call) => this.observer?.answered(call),
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

  /** The calls in progress (ringing or answered), oldest first. */
  list(): Call[] {
    return [...this.calls];
  }

  /**
   * Releases the call whose caller's Call-ID is `callId` (the administrator, CDR callTag 8,
   * cause 16): an answered one with BYE to both phones, a ringing one with CANCEL to the callee's
   * phones and 480 to the caller. False when there is no such call.
   */
  release(callId: string): boolean {
    for (const call of this.calls) {
      if (call.callId !== callId) continue;
      call.release('both', CallTag.AdminRelease, DEFAULT_CAUSE[CallTag.AdminRelease]);
      return true;
    }
    return false;
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
    if (!this.deps.tls && isSipsUri(req.uri)) {
      // RFC 3261 section 8.2.2.1: a scheme this server cannot serve.
      tx.respond(createResponse(req, 416, 'Unsupported URI Scheme (sips: needs TLS, which this server does not listen for)', toTag));
      return;
    }
    const trunk = this.deps.trunks?.fromSource(source) ?? null;
    if (trunk) {
      this.onTrunkInvite(trunk, req, tx, source, toTag);
      return;
    }
    const auth = this.deps.auth.authenticate(req, 'proxy', toTag, source);
    if (!auth.ok) {
      if (auth.response.status === 403) this.deps.env.log('warn', 'call.auth_failed', { from: `${source.address}:${source.port}` }, true);
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
    const route = this.deps.router.route(dialled, { grants: callerExt?.allow ?? [] });
    const base: AttemptBase = { req, source, caller: caller.number, callerName: caller.displayName, dialled, startMs, route: 'local', partyKind: 'local' };
    switch (route.kind) {
      case 'not-found':
        this.refuse(tx, base, route.number, 404, CallTag.UnknownNumber, toTag);
        return;
      case 'unregistered':
        this.refuse(tx, base, route.number, 480, CallTag.Unregistered, toTag);
        return;
      case 'restricted':
        // The toll-fraud guard: a valid password is not enough to dial a restricted class.
        this.deps.env.log('warn', 'call.class_not_allowed', { caller: caller.number, dialled, class: route.rule.class, rule: route.rule.line });
        this.refuse(tx, { ...base, route: `trunk:${route.rule.trunk}`, partyKind: 'outside' }, route.number, 403, CallTag.RoutingFailure, toTag, `Forbidden (calls of class ${route.rule.class} are not allowed for this extension)`, 21);
        return;
      case 'trunk': {
        if (isSipsUri(req.uri)) {
          this.refuse(tx, { ...base, route: `trunk:${route.trunks[0]!.name}`, partyKind: 'outside' }, route.number, 480, CallTag.RoutingFailure, toTag, `Temporarily Unavailable (${SIPS_ONLY}: trunks are not)`);
          return;
        }
        const trunks = route.trunks;
        const number = route.number;
        this.admit(tx, toTag, { ...base, route: `trunk:${trunks[0]!.name}`, partyKind: 'outside' }, { number, displayName: '' }, [caller.number], () => trunkDestination(trunks, number, caller));
        return;
      }
      case 'extension': {
        const contacts = reachable(route.contacts, req);
        if (contacts.length === 0) {
          this.refuse(tx, base, route.number, 480, CallTag.Unregistered, toTag, `Temporarily Unavailable (${SIPS_ONLY}: the callee is not registered over TLS)`);
          return;
        }
        const destination: Destination = { targets: bindingTargets(contacts), route: 'local' };
        this.admit(tx, toTag, base, { number: route.number, displayName: route.extension.displayName }, [caller.number, route.number], () => destination);
        return;
      }
    }
  }

  /**
   * An INVITE that came over a trunk (its address, or an address its `allow` lists): carriers do
   * not answer challenges, so it is not challenged; its number goes through the trunk's DID map
   * only, never the dial plan, so nothing that comes in over a trunk goes back out.
   */
  private onTrunkInvite(trunk: Trunk, req: SipRequest, tx: ServerTransaction, source: Endpoint, toTag: string): void {
    const from = parseNameAddr(req.headers.get('from') ?? '');
    const fromUser = from ? parseUri(from.uri)?.user : undefined;
    const to = parseNameAddr(req.headers.get('to') ?? '');
    const toUser = to ? parseUri(to.uri)?.user : undefined;
    const { number, target } = didTarget(trunk.config, [dialledNumber(req.uri), toUser !== undefined ? unescapeUriPart(toUser) : '']);
    const caller = { number: fromUser !== undefined ? normaliseDialled(unescapeUriPart(fromUser)) : 'anonymous', displayName: from?.displayName ?? '' };
    const base: AttemptBase = { req, source, caller: caller.number, callerName: caller.displayName, dialled: number, startMs: Date.now(), route: `trunk:${trunk.name}`, partyKind: 'outside' };
    if (this.deps.env.logs('info')) this.deps.env.log('info', 'call.from_trunk', { trunk: trunk.name, caller: caller.number, number, target: target ? describeTarget(target) : 'none' });
    if (target === null) {
      this.refuse(tx, base, number, 404, CallTag.UnknownNumber, toTag);
      return;
    }
    if (trunk.full) {
      this.refuse(tx, base, number, 503, CallTag.RoutingFailure, toTag, 'Service Unavailable (trunk call limit reached)', 34);
      return;
    }
    if (target.kind === 'ivr') {
      if (!this.ivr || this.totalCalls() >= this.deps.limits.maxTotal) {
        this.refuse(tx, base, number, 503, CallTag.RoutingFailure, toTag, 'Service Unavailable (call limit reached)', 34);
        return;
      }
      this.ivr.offer(req, tx, source, caller, number, toTag, target.file);
      return;
    }
    const contacts: Binding[] = [];
    let known = 0;
    let displayName = '';
    for (const n of target.numbers) {
      const r = this.deps.router.route(n);
      if (r.kind !== 'extension' && r.kind !== 'unregistered') continue;
      known++;
      displayName ||= r.extension.displayName;
      if (r.kind === 'extension') contacts.push(...reachable(r.contacts, req));
    }
    const callee = { number: target.numbers.join(','), displayName };
    if (known === 0) {
      this.deps.env.log('warn', 'trunk.did_unknown_extension', { trunk: trunk.name, number, extensions: callee.number, hint: 'the DID map names no existing extension' });
      this.refuse(tx, base, callee.number, 404, CallTag.UnknownNumber, toTag);
      return;
    }
    if (contacts.length === 0) {
      this.refuse(tx, base, callee.number, 480, CallTag.Unregistered, toTag);
      return;
    }
    // A ring group is not counted per extension: one busy member must not stop the others ringing.
    const counted = target.numbers.length === 1 ? target.numbers : [];
    this.admit(tx, toTag, base, callee, counted, () => {
      trunk.active++;
      let released = false;
      return {
        targets: bindingTargets(contacts),
        route: `trunk:${trunk.name}`,
        release: () => {
          if (released) return;
          released = true;
          trunk.active--;
        },
      };
    });
  }

  /** Limits, then ports, then the Call. */
  private admit(
    tx: ServerTransaction,
    toTag: string,
    base: AttemptBase,
    callee: { number: string; displayName: string },
    /** The extensions taking part (an outside number is nobody's extension). */
    extensions: readonly string[],
    destination: () => Destination | null,
  ): void {
    if (this.totalCalls() >= this.deps.limits.maxTotal) {
      this.refuse(tx, base, callee.number, 503, CallTag.RoutingFailure, toTag, 'Service Unavailable (call limit reached)', 34);
      return;
    }
    if (extensions.some((n) => this.count(n) >= this.deps.limits.maxPerExtension)) {
      this.refuse(tx, base, callee.number, 486, CallTag.Busy, toTag);
      return;
    }
    let media: ReturnType<CallManagerDeps['newMedia']>;
    try {
      media = this.deps.newMedia(base.req.headers.get('call-id') ?? '');
    } catch (err) {
      this.deps.env.log('warn', 'call.media_error', { error: (err as Error).message });
      media = undefined;
    }
    const admit: Admission = { base, tx, toTag, callee, destination, extensions };
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
    for (const n of admit.extensions) this.adjust(n, 1);
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
    for (const n of admit.extensions) this.adjust(n, -1);
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
    const destination = admit.destination();
    if (destination === null) {
      media?.close();
      this.refuse(tx, base, callee.number, 503, CallTag.RoutingFailure, toTag, 'Service Unavailable (no trunk available)', 34);
      return;
    }
    // No 100 (Trying) of our own: the INVITE server transaction sends one if nothing else is
    // sent within 200 ms (RFC 3261 section 17.2.1), and the callee's 180 usually comes first.
    const caller = { number: base.caller, displayName: base.callerName };
    const call = new Call(this.env, base.req, tx, base.source, caller, callee, base.dialled, media);
    call.partyKind = base.partyKind;
    this.calls.add(call);
    this.byInviteTx.set(tx, call);
    for (const n of admit.extensions) this.adjust(n, 1);
    this.extensionsOf.set(call, admit.extensions);
    this.stats.started++;
    this.stats.active = this.calls.size;
    if (this.deps.env.logs('info')) this.deps.env.log('info', 'call.started', { callId: call.callId, caller: caller.number, callee: callee.number, route: destination.route, targets: destination.targets.length });
    call.start(destination);
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
    base: AttemptBase,
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
      route: base.route,
      partyKind: base.partyKind,
    });
  }

  private onEnded(call: Call, outcome: CallOutcome): void {
    if (!this.calls.delete(call)) return;
    this.byInviteTx.delete(call.inviteTx);
    for (const n of this.extensionsOf.get(call) ?? []) this.adjust(n, -1);
    this.extensionsOf.delete(call);
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
    this.observer?.ended(call, outcome);
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

/** What the record of an attempt needs from its INVITE and its routing. */
interface AttemptBase {
  req: SipRequest;
  source: Endpoint;
  caller: string;
  callerName: string;
  dialled: string;
  startMs: number;
  route: string;
  partyKind: 'local' | 'outside';
}

/** A new call that passed authentication, routing and limits, on its way to a Call. */
interface Admission {
  base: AttemptBase;
  tx: ServerTransaction;
  toTag: string;
  callee: { number: string; displayName: string };
  /** Where the callee's leg goes, chosen once the ports are there (a trunk's count starts then). */
  destination: () => Destination | null;
  /** The extensions taking part, counted against `calls.maxPerExtension`. */
  extensions: readonly string[];
}

const SIPS_ONLY = 'a sips: call goes over TLS only';

/**
 * The contacts a call may ring. A sips: Request-URI asks for TLS on every hop up to the callee
 * (RFC 3261 section 26.2.2, extended to the last hop by RFC 5630): only phones registered over
 * TLS are rung, over their own connection; ringing the others would downgrade the call.
 */
function reachable(contacts: Binding[], req: SipRequest): Binding[] {
  return isSipsUri(req.uri) ? contacts.filter((b) => b.transport === 'tls') : contacts;
}

function describeTarget(t: DidTarget): string {
  return t.kind === 'ivr' ? `ivr:${t.file}` : t.numbers.join(',');
}

function dialogKey(callId: string, tag: string): string {
  return `${callId}\n${tag}`;
}
