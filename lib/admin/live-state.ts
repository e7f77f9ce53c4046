/**
 * The live state of a running server (lib/admin/types.ts): snapshots read from the registrar, the
 * call manager, the call-back and IVR services and the trunks, and a stream of numbered events
 * fed by their observers, with a bounded backlog for clients that reconnect.
 *
 * Extension state, from highest to lowest:
 *   talking  the extension takes part in an answered call: caller or callee of a call (for a ring
 *            group, the member whose phone answered), a call-back leg that answered (user1 from
 *            its answer on, while user2 is called, then both once bridged), the caller of an IVR
 *            call once the IVR answered, and the extension an IVR `callto` joined it to;
 *   ringing  the extension takes part in a call not answered yet: being called (every member of a
 *            ring group, a call-back leg being called, an IVR `callto` destination) or calling
 *            itself (the caller of a call still ringing, of an IVR call not answered yet);
 *   online   it has at least one binding in the registrar (an expired binding counts until the
 *            registrar's sweep removes it, within a second: the state changes with its event);
 *   offline  none of the above.
 * Only extensions take a state: the outside parties of trunk calls and call-backs do not. An
 * `extension` event is emitted when the state of an extension changes, right after the event that
 * changed it (registration, call, callback, ivr).
 */
import { describeMedia, hostPort } from '../pbx/call-recorder.js';
import { hostPortText } from '../pbx/call-messages.js';
import { contactTarget } from '../pbx/contact-target.js';
import { normaliseDialled } from '../pbx/router.js';
import type { Binding, BindingChange, RegistrarObserver } from '../pbx/registrar.js';
import type { CallOutcome } from '../pbx/call.js';
import type { CallStats } from '../pbx/calls.js';
import type { ExtensionRecord, Store } from '../store/store.js';
import { EventLog } from './event-log.js';
import { ProcessUsage } from './process-usage.js';
import type {
  CallBackView,
  CallView,
  ContactView,
  ExtensionState,
  ExtensionView,
  IvrView,
  LiveEvent,
  LiveSource,
  SequencedEvent,
  Summary,
  TrunkView,
} from './types.js';

// ---- what the live state reads (the real classes fit; tests may pass fakes) ---------------------

/** A call as CallManager holds it (lib/pbx/call.ts). */
export interface LiveCall {
  readonly callId: string;
  readonly caller: { number: string; displayName: string };
  readonly callee: { number: string; displayName: string };
  readonly dialled: string;
  readonly route: string;
  readonly startMs: number;
  readonly answerMs: number | undefined;
  readonly answerSdp: string | undefined;
  readonly mediaSummary: string | undefined;
  /** host:port of the phone that answered (or the first one called). */
  readonly calleeAddress: string;
  mediaPackets(): { aToB: number; bToA: number };
}

export interface LiveCallObserver {
  created(call: LiveCall): void;
  answered(call: LiveCall): void;
  ended(call: LiveCall, outcome: CallOutcome): void;
}

/** CallManager (lib/pbx/calls.ts). */
export interface LiveCalls {
  observer: LiveCallObserver | undefined;
  list(): readonly LiveCall[];
  release(callId: string): boolean;
  readonly stats: CallStats;
}

/** Registrar (lib/pbx/registrar.ts). */
export interface LiveRegistrar {
  observer: RegistrarObserver | undefined;
  bindingsOf(aor: string): readonly Binding[] | undefined;
  allBindings(): Binding[];
  readonly registeredCount: number;
  readonly bindingCount: number;
}

/** A call-back session (lib/services/callback/session.ts). */
export interface LiveCallBack {
  readonly request: { id: string; user1: string; user2: string };
  readonly state: 'starting' | 'calling1' | 'calling2' | 'bridged' | 'ended';
  readonly startMs: number;
  readonly answerMs: number | undefined;
  readonly user1Number: string | undefined;
  readonly user2Number: string | undefined;
}

export interface LiveCallBackObserver {
  started(session: LiveCallBack): void;
  changed(session: LiveCallBack): void;
  ended(session: LiveCallBack, result: number, cause: number): void;
}

/** CallBackService (lib/services/callback/service.ts). */
export interface LiveCallBacks {
  observer: LiveCallBackObserver | undefined;
  list(): readonly LiveCallBack[];
  readonly activeCount: number;
}

/** An IVR call (lib/services/ivr/ivr-call.ts). */
export interface LiveIvrCall {
  readonly callId: string;
  readonly caller: { number: string; displayName: string };
  readonly dialled: string;
  readonly fileName: string;
  readonly startMs: number;
  readonly state: 'starting' | 'ivr' | 'bridged' | 'ended';
  readonly onwardNumber: string | null;
}

export interface LiveIvrObserver {
  started(call: LiveIvrCall): void;
  changed(call: LiveIvrCall): void;
  ended(call: LiveIvrCall): void;
}

/** IvrService (lib/services/ivr/service.ts). */
export interface LiveIvr {
  observer: LiveIvrObserver | undefined;
  list(): readonly LiveIvrCall[];
  readonly activeCount: number;
}

/** A trunk (lib/trunks/trunk.ts). */
export interface LiveTrunk {
  readonly name: string;
  readonly config: { readonly kind: 'register' | 'peer' };
  readonly up: boolean;
  readonly registrationState: { status: string; lastStatus?: number } | null;
  readonly active: number;
}

export interface LiveStateDeps {
  store: Pick<Store, 'listExtensions' | 'getExtension' | 'dataVersion'>;
  registrar: LiveRegistrar;
  calls: LiveCalls;
  callback?: LiveCallBacks;
  ivr?: LiveIvr;
  trunks?: { all(): readonly LiveTrunk[] };
  version: string;
  /** The node name (host name). */
  node: string;
  /** Epoch ms; default: when the LiveState is made. */
  startTime?: number;
  /** Events kept for since() (default 10,000). */
  backlog?: number;
  /** Emit `registration` events for refreshes too (default true; at thousands of REGISTERs a second they fill the backlog). */
  refreshEvents?: boolean;
  /** The extension list is checked for changes (the store's data version) at most this often (default 1000 ms). */
  extensionsCheckMs?: number;
  now?: () => number;
  /** Where a listener or observer fault is reported (it never reaches the server). */
  logger?: { warn(event: string, fields?: Record<string, unknown>): void };
}

const DEFAULT_BACKLOG = 10_000;

/** Which extensions one call, call-back or IVR call holds in which state. */
interface Involvement {
  ringing: readonly string[];
  talking: readonly string[];
}

const NOBODY: Involvement = { ringing: [], talking: [] };

export class LiveState implements LiveSource {
  private readonly now: () => number;
  readonly startTime: number;
  private readonly refreshEvents: boolean;
  private readonly checkMs: number;

  private readonly log: EventLog;
  private readonly usage = new ProcessUsage();

  // Extension state.
  private readonly involved = new Map<object, Involvement>();
  private readonly counts = new Map<string, { ringing: number; talking: number }>();
  /** The last state told (absent: offline). */
  private readonly states = new Map<string, ExtensionState>();
  /** Numbers found to be extensions or not, per parties of a call (cleared with the list). */
  private readonly extensionCheck = new Map<string, boolean>();
  /** Call-backs' last view state (their state is 'ended' by the time they are told ended). */
  private readonly callbackStates = new WeakMap<object, CallBackView['state']>();
  private readonly callbacksStarted = new WeakSet<object>();

  // The extension list, read once and kept until the store changes.
  private extensionList: ExtensionRecord[] | null = null;
  private extensionVersion = Number.NaN;
  private extensionsCheckedAt = -Infinity;
  private extensionsStale = false;

  private attached = false;
  private readonly registrarObserver: RegistrarObserver;
  private readonly callObserver: LiveCallObserver;
  private readonly callbackObserver: LiveCallBackObserver;
  private readonly ivrObserver: LiveIvrObserver;

  constructor(private readonly deps: LiveStateDeps) {
    this.now = deps.now ?? Date.now;
    this.startTime = deps.startTime ?? this.now();
    this.log = new EventLog(deps.backlog ?? DEFAULT_BACKLOG, this.now, (err) =>
      this.deps.logger?.warn('live.listener_removed', { error: (err as Error)?.message ?? String(err) }),
    );
    this.refreshEvents = deps.refreshEvents ?? true;
    this.checkMs = deps.extensionsCheckMs ?? 1000;
    this.registrarObserver = { binding: (change, b) => this.guard('registration', () => this.onBinding(change, b)) };
    this.callObserver = {
      created: (call) => this.guard('call', () => this.onCall('created', call)),
      answered: (call) => this.guard('call', () => this.onCall('answered', call)),
      ended: (call, outcome) => this.guard('call', () => this.onCallEnded(call, outcome)),
    };
    this.callbackObserver = {
      started: (s) => this.guard('callback', () => this.onCallBack(s)),
      changed: (s) => this.guard('callback', () => this.onCallBack(s)),
      ended: (s, result, cause) => this.guard('callback', () => this.onCallBackEnded(s, result, cause)),
    };
    this.ivrObserver = {
      started: (c) => this.guard('ivr', () => this.onIvr(c, 'started')),
      changed: (c) => this.guard('ivr', () => this.onIvr(c, null)),
      ended: (c) => this.guard('ivr', () => this.onIvr(c, 'ended')),
    };
  }

  /**
   * Sets the observers of the registrar, the call manager and the services, and takes the state
   * they are in now (registrations loaded at start, calls already up) without events.
   */
  attach(): this {
    if (this.attached) return this;
    this.attached = true;
    const { registrar, calls, callback, ivr } = this.deps;
    registrar.observer = this.registrarObserver;
    calls.observer = this.callObserver;
    if (callback) callback.observer = this.callbackObserver;
    if (ivr) ivr.observer = this.ivrObserver;
    for (const call of calls.list()) this.involve(call, this.callInvolvement(call), false);
    for (const s of callback?.list() ?? []) {
      this.callbacksStarted.add(s);
      if (s.state !== 'ended') this.callbackStates.set(s, s.state);
      this.involve(s, this.callBackInvolvement(s), false);
    }
    for (const c of ivr?.list() ?? []) this.involve(c, this.ivrInvolvement(c), false);
    const numbers = new Set<string>(this.counts.keys());
    for (const b of registrar.allBindings()) numbers.add(b.aor);
    for (const n of numbers) this.settle(n, false);
    return this;
  }

  /** Removes the observers (the server stops); events stop, snapshots still answer. */
  detach(): void {
    if (!this.attached) return;
    this.attached = false;
    const { registrar, calls, callback, ivr } = this.deps;
    if (registrar.observer === this.registrarObserver) registrar.observer = undefined;
    if (calls.observer === this.callObserver) calls.observer = undefined;
    if (callback?.observer === this.callbackObserver) callback.observer = undefined;
    if (ivr?.observer === this.ivrObserver) ivr.observer = undefined;
  }

  /** The extension list is read again at the next use (this process changed extensions itself). */
  invalidateExtensions(): void {
    this.extensionsStale = true;
    this.extensionCheck.clear();
  }

  // ---- events ---------------------------------------------------------------------------------

  /** Numbers the event, keeps it in the backlog and hands it to every listener, in order. */
  emit(event: LiveEvent): SequencedEvent {
    return this.log.emit(event);
  }

  subscribe(listener: (e: SequencedEvent) => void): () => void {
    return this.log.subscribe(listener);
  }

  /** The id of the newest event (0 before the first). */
  get lastId(): number {
    return this.log.lastId;
  }

  since(lastId: number): SequencedEvent[] | null {
    return this.log.since(lastId);
  }

  // ---- snapshots ------------------------------------------------------------------------------

  summary(): Summary {
    const now = this.now();
    const { registrar, calls, callback, ivr, trunks } = this.deps;
    return {
      version: this.deps.version,
      node: this.deps.node,
      startTime: this.startTime,
      uptimeSeconds: Math.max(0, Math.floor((now - this.startTime) / 1000)),
      extensions: { total: this.extensionRecords().length, registered: registrar.registeredCount },
      contacts: registrar.bindingCount,
      calls: { active: calls.stats.active, started: calls.stats.started, answered: calls.stats.answered },
      callbacks: callback?.activeCount ?? 0,
      ivr: ivr?.activeCount ?? 0,
      trunks: (trunks?.all() ?? []).map(trunkView),
      process: this.usage.read(),
    };
  }

  /** Every extension of the store, in the store's number order. */
  extensions(): ExtensionView[] {
    const out: ExtensionView[] = [];
    const registrar = this.deps.registrar;
    for (const rec of this.extensionRecords()) {
      const bindings = registrar.bindingsOf(rec.number);
      out.push({
        number: rec.number,
        name: rec.displayName,
        state: this.stateOf(rec.number, bindings),
        contacts: bindings ? bindings.map(contactView) : [],
      });
    }
    return out;
  }

  calls(): CallView[] {
    return this.deps.calls.list().map(callView);
  }

  callbacks(): CallBackView[] {
    const out: CallBackView[] = [];
    for (const s of this.deps.callback?.list() ?? []) if (s.state !== 'ended') out.push(this.callBackView(s));
    return out;
  }

  ivr(): IvrView[] {
    return (this.deps.ivr?.list() ?? []).map(ivrView);
  }

  releaseCall(id: string): boolean {
    return this.deps.calls.release(id);
  }

  // ---- observers ------------------------------------------------------------------------------

  private guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.deps.logger?.warn('live.observer_failed', { what, error: (err as Error)?.stack ?? String(err) });
    }
  }

  private onBinding(change: BindingChange, b: Binding): void {
    if (change === 'refreshed' && !this.refreshEvents) return;
    this.emit({
      type: 'registration',
      action: change,
      number: b.aor,
      contact: b.contact,
      address: hostPort(b.sourceAddress, b.sourcePort),
      transport: b.transport,
      userAgent: b.userAgent ?? '',
      expiresAt: b.expiresAt,
    });
    if (change !== 'refreshed') this.settle(b.aor, true);
  }

  private onCall(action: 'created' | 'answered', call: LiveCall): void {
    this.emit({ type: 'call', action, call: callView(call) });
    this.involve(call, this.callInvolvement(call), true);
  }

  private onCallEnded(call: LiveCall, outcome: CallOutcome): void {
    const status = call.answerMs !== undefined ? 200 : outcome.status;
    this.emit({ type: 'call', action: 'ended', call: callView(call), status, callTag: outcome.tag, cause: outcome.cause });
    this.involve(call, NOBODY, true);
  }

  /**
   * A call-back started or moved on. `started` is told once user1 is being called (its view in
   * state calling1), or just before `ended` when it ended before that; then `calling2`, `bridged`.
   */
  private onCallBack(s: LiveCallBack): void {
    const state = s.state;
    if (state === 'ended') return;
    this.callbackStates.set(s, state);
    if (state === 'calling1' && !this.callbacksStarted.has(s)) {
      this.callbacksStarted.add(s);
      this.emit({ type: 'callback', action: 'started', callback: this.callBackView(s) });
    } else if (state === 'calling2' || state === 'bridged') {
      if (!this.callbacksStarted.has(s)) {
        this.callbacksStarted.add(s);
        this.emit({ type: 'callback', action: 'started', callback: this.callBackView(s) });
      }
      this.emit({ type: 'callback', action: state, callback: this.callBackView(s) });
    }
    this.involve(s, this.callBackInvolvement(s), true);
  }

  private onCallBackEnded(s: LiveCallBack, result: number, cause: number): void {
    if (!this.callbacksStarted.has(s)) {
      this.callbacksStarted.add(s);
      this.emit({ type: 'callback', action: 'started', callback: this.callBackView(s) });
    }
    this.emit({ type: 'callback', action: 'ended', callback: this.callBackView(s), result, cause });
    this.involve(s, NOBODY, true);
  }

  private onIvr(c: LiveIvrCall, action: 'started' | 'ended' | null): void {
    if (action) this.emit({ type: 'ivr', action, ivr: ivrView(c) });
    this.involve(c, action === 'ended' ? NOBODY : this.ivrInvolvement(c), true);
  }

  // ---- extension state ------------------------------------------------------------------------

  private callInvolvement(call: LiveCall): Involvement {
    const caller = this.extensionsAmong([call.caller.number]);
    const members = call.callee.number.split(',');
    const callees = this.extensionsAmong(members);
    if (call.answerMs === undefined) return { ringing: unique([...caller, ...callees]), talking: [] };
    // A ring group: the member whose phone answered (its binding's address is where the leg went).
    let answered = callees;
    if (members.length > 1) answered = callees.filter((n) => (this.deps.registrar.bindingsOf(n) ?? []).some((b) => targetText(b) === call.calleeAddress));
    return { ringing: [], talking: unique([...caller, ...answered]) };
  }

  private callBackInvolvement(s: LiveCallBack): Involvement {
    const one = s.user1Number !== undefined ? this.extensionsAmong([s.user1Number]) : [];
    const two = s.user2Number !== undefined ? this.extensionsAmong([s.user2Number]) : [];
    switch (s.state) {
      case 'calling1':
        return { ringing: one, talking: [] };
      case 'calling2':
        return { ringing: two.filter((n) => !one.includes(n)), talking: one };
      case 'bridged':
        return { ringing: [], talking: unique([...one, ...two]) };
      default:
        return NOBODY;
    }
  }

  private ivrInvolvement(c: LiveIvrCall): Involvement {
    const caller = this.extensionsAmong([c.caller.number]);
    const onward = c.onwardNumber !== null ? this.extensionsAmong([c.onwardNumber]) : [];
    switch (c.state) {
      case 'starting':
        return { ringing: caller, talking: [] };
      case 'ivr':
        return { ringing: onward.filter((n) => !caller.includes(n)), talking: caller };
      case 'bridged':
        return { ringing: [], talking: unique([...caller, ...onward]) };
      default:
        return NOBODY;
    }
  }

  /** Sets what `key` holds, and tells the extensions whose state changed by it. */
  private involve(key: object, next: Involvement, tell: boolean): void {
    const before = this.involved.get(key) ?? NOBODY;
    if (next === NOBODY) this.involved.delete(key);
    else this.involved.set(key, next);
    for (const n of before.ringing) this.count(n, -1, 0);
    for (const n of before.talking) this.count(n, 0, -1);
    for (const n of next.ringing) this.count(n, 1, 0);
    for (const n of next.talking) this.count(n, 0, 1);
    if (!tell) return;
    const touched = new Set<string>([...before.ringing, ...before.talking, ...next.ringing, ...next.talking]);
    for (const n of touched) this.settle(n, true);
  }

  private count(number: string, ringing: number, talking: number): void {
    const c = this.counts.get(number) ?? { ringing: 0, talking: 0 };
    c.ringing += ringing;
    c.talking += talking;
    if (c.ringing <= 0 && c.talking <= 0) this.counts.delete(number);
    else this.counts.set(number, c);
  }

  private stateOf(number: string, bindings = this.deps.registrar.bindingsOf(number)): ExtensionState {
    const c = this.counts.get(number);
    if (c !== undefined && c.talking > 0) return 'talking';
    if (c !== undefined && c.ringing > 0) return 'ringing';
    return bindings !== undefined && bindings.length > 0 ? 'online' : 'offline';
  }

  /** Takes the state of `number` now; emits an `extension` event when it changed. */
  private settle(number: string, tell: boolean): void {
    const state = this.stateOf(number);
    const before = this.states.get(number) ?? 'offline';
    if (state === before) return;
    if (state === 'offline') this.states.delete(number);
    else this.states.set(number, state);
    if (tell) this.emit({ type: 'extension', number, state });
  }

  /** The numbers among `numbers` that are extensions (outside parties take no state). */
  private extensionsAmong(numbers: readonly string[]): string[] {
    const out: string[] = [];
    for (const n of numbers) if (n !== '' && this.isExtension(n)) out.push(n);
    return out;
  }

  private isExtension(number: string): boolean {
    this.checkExtensions();
    const known = this.extensionCheck.get(number);
    if (known !== undefined) return known;
    const found = this.deps.store.getExtension(number) !== undefined;
    // Outside numbers are many and each asked once a call: only extensions are remembered.
    if (found) this.extensionCheck.set(number, true);
    return found;
  }

  /** Whether the store changed (its data version, read at most once per checkMs): the list is read again at its next use. */
  private checkExtensions(): void {
    const t = this.now();
    if (t - this.extensionsCheckedAt < this.checkMs) return;
    this.extensionsCheckedAt = t;
    const version = this.deps.store.dataVersion();
    if (version === this.extensionVersion) return;
    this.extensionVersion = version;
    this.extensionsStale = true;
    // A removed extension keeps no "is an extension" mark.
    this.extensionCheck.clear();
  }

  /** The store's extensions: one query, then kept until the store changes. */
  private extensionRecords(): ExtensionRecord[] {
    this.checkExtensions();
    if (this.extensionList === null || this.extensionsStale) {
      this.extensionsStale = false;
      this.extensionList = this.deps.store.listExtensions();
    }
    return this.extensionList;
  }

  private callBackView(s: LiveCallBack): CallBackView {
    const state = s.state === 'ended' ? (this.callbackStates.get(s) ?? 'starting') : s.state;
    return { id: s.request.id, user1: s.request.user1, user2: s.request.user2, state, startTime: s.startMs, answerTime: s.answerMs ?? null };
  }
}

function unique(numbers: string[]): string[] {
  return numbers.length < 2 ? numbers : [...new Set(numbers)];
}

function targetText(b: Binding): string {
  const t = contactTarget(b);
  return hostPortText(t.address, t.port);
}

function contactView(b: Binding): ContactView {
  return { contact: b.contact, address: hostPort(b.sourceAddress, b.sourcePort), transport: b.transport, userAgent: b.userAgent ?? '', expiresAt: b.expiresAt };
}

/** The view of a call; codec and media once it is answered (as its record has them). */
function callView(call: LiveCall): CallView {
  const answered = call.answerMs !== undefined;
  const media = answered ? describeMedia(call.answerSdp) : { kinds: '', codec: '' };
  return {
    id: call.callId,
    caller: call.caller.number,
    callerName: call.caller.displayName,
    callee: call.callee.number,
    dialled: call.dialled,
    route: call.route,
    state: answered ? 'answered' : 'ringing',
    startTime: call.startMs,
    answerTime: call.answerMs ?? null,
    codec: media.codec,
    media: answered ? call.mediaSummary || media.kinds : '',
    packets: call.mediaPackets(),
  };
}

function ivrView(c: LiveIvrCall): IvrView {
  return { id: c.callId, caller: c.caller.number, number: normaliseDialled(c.dialled), file: c.fileName, startTime: c.startMs };
}

function trunkView(t: LiveTrunk): TrunkView {
  const reg = t.registrationState;
  return { name: t.name, kind: t.config.kind, up: t.up, registration: reg?.status ?? null, lastStatus: reg?.lastStatus ?? null, activeCalls: t.active };
}
