/**
 * With `sip.workers` above 1 the primary process serves the admin API, the event stream, the
 * event channel and /metrics for the whole server. Each worker sends its live state over the IPC
 * channel (a snapshot every FEED_MS, each event as it happens); this class merges them: calls,
 * call-backs and IVR sessions of every worker, an extension's state the highest any worker gives
 * it, the extension list and contacts read from the shared store.
 */
import type { Store } from '../store/store.js';
import { hostPort } from '../pbx/call-recorder.js';
import { EventLog } from './event-log.js';
import { ProcessUsage } from './process-usage.js';
import type {
  CallBackView,
  CallView,
  ExtensionState,
  ExtensionView,
  IvrView,
  LiveEvent,
  LiveSource,
  SequencedEvent,
  Summary,
} from './types.js';

/** How often a worker sends its snapshot. */
export const FEED_MS = 2000;

/** Worker -> primary. */
export type WorkerFeed =
  | { type: 'live-snapshot'; summary: Summary; calls: CallView[]; callbacks: CallBackView[]; ivr: IvrView[]; states: Array<[string, ExtensionState]> }
  | { type: 'live-event'; event: LiveEvent }
  | { type: 'metrics'; reqId: number; metrics: unknown[] };

/** Primary -> worker. */
export type PrimaryCommand = { type: 'live-hello' } | { type: 'live-release'; id: string } | { type: 'metrics-request'; reqId: number };

interface WorkerView {
  summary: Summary | null;
  calls: Map<string, CallView>;
  callbacks: Map<string, CallBackView>;
  ivr: Map<string, IvrView>;
  states: Map<string, ExtensionState>;
}

const RANK: Record<ExtensionState, number> = { offline: 0, online: 1, ringing: 2, talking: 3 };

export interface WorkersLiveDeps {
  /** The shared store (this process's own connection). */
  store: Pick<Store, 'listExtensions' | 'loadBindings' | 'dataVersion'>;
  version: string;
  node: string;
  /** Sends a command to worker `index`. */
  send(index: number, command: PrimaryCommand): void;
  workers: number;
  now?: () => number;
  backlog?: number;
}

export class WorkersLive implements LiveSource {
  private readonly log: EventLog;
  private readonly usage = new ProcessUsage();
  private readonly views: WorkerView[] = [];
  /** The merged state last told (absent: offline). */
  private readonly merged = new Map<string, ExtensionState>();
  private readonly now: () => number;
  private readonly startTime: number;
  private extensionList: ReturnType<Store['listExtensions']> | null = null;
  private extensionVersion = Number.NaN;

  constructor(private readonly deps: WorkersLiveDeps) {
    this.now = deps.now ?? Date.now;
    this.startTime = this.now();
    this.log = new EventLog(deps.backlog ?? 10_000, this.now);
    for (let i = 0; i < deps.workers; i++) this.views.push(emptyView());
  }

  /** A message from worker `index` (anything that is not a live feed is ignored). */
  feed(index: number, msg: WorkerFeed): void {
    const view = this.views[index];
    if (!view || typeof msg !== 'object' || msg === null) return;
    if (msg.type === 'live-snapshot') this.takeSnapshot(index, view, msg);
    else if (msg.type === 'live-event') this.takeEvent(index, view, msg.event);
  }

  /** Worker `index` was started again: what it had is gone. */
  workerRestarted(index: number): void {
    const old = this.views[index];
    if (!old) return;
    this.views[index] = emptyView();
    for (const number of old.states.keys()) this.settle(number);
  }

  private takeSnapshot(index: number, view: WorkerView, snap: Extract<WorkerFeed, { type: 'live-snapshot' }>): void {
    view.summary = snap.summary;
    view.calls = new Map(snap.calls.map((c) => [c.id, c]));
    view.callbacks = new Map(snap.callbacks.map((c) => [c.id, c]));
    view.ivr = new Map(snap.ivr.map((c) => [c.id, c]));
    const before = view.states;
    view.states = new Map(snap.states);
    for (const number of new Set([...before.keys(), ...view.states.keys()])) this.settle(number);
    void index;
  }

  private takeEvent(_index: number, view: WorkerView, event: LiveEvent): void {
    switch (event.type) {
      case 'extension':
        if (event.state === 'offline') view.states.delete(event.number);
        else view.states.set(event.number, event.state);
        this.settle(event.number);
        return;
      case 'call':
        if (event.action === 'ended') view.calls.delete(event.call.id);
        else view.calls.set(event.call.id, event.call);
        break;
      case 'callback':
        if (event.action === 'ended') view.callbacks.delete(event.callback.id);
        else view.callbacks.set(event.callback.id, event.callback);
        break;
      case 'ivr':
        if (event.action === 'ended') view.ivr.delete(event.ivr.id);
        else view.ivr.set(event.ivr.id, event.ivr);
        break;
      case 'registration':
        break;
    }
    this.log.emit(event);
  }

  /** Tells a change of an extension's merged state (the highest any worker gives it). */
  private settle(number: string): void {
    let best: ExtensionState = 'offline';
    for (const v of this.views) {
      const s = v.states.get(number);
      if (s && RANK[s] > RANK[best]) best = s;
    }
    const was = this.merged.get(number) ?? 'offline';
    if (best === was) return;
    if (best === 'offline') this.merged.delete(number);
    else this.merged.set(number, best);
    this.log.emit({ type: 'extension', number, state: best });
  }

  subscribe(listener: (e: SequencedEvent) => void): () => void {
    return this.log.subscribe(listener);
  }

  get lastId(): number {
    return this.log.lastId;
  }

  since(lastId: number): SequencedEvent[] | null {
    return this.log.since(lastId);
  }

  summary(): Summary {
    const now = this.now();
    const first = this.views.find((v) => v.summary)?.summary;
    // Registrations are in the shared store, whichever worker took them.
    const bindings = this.deps.store.loadBindings(now);
    const contacts = bindings.length;
    const registered = new Set(bindings.map((b) => b.aor)).size;
    const calls = { active: 0, started: 0, answered: 0 };
    let callbacks = 0;
    let ivr = 0;
    for (const v of this.views) {
      callbacks += v.callbacks.size;
      ivr += v.ivr.size;
      calls.active += v.calls.size;
      const s = v.summary;
      if (!s) continue;
      calls.started += s.calls.started;
      calls.answered += s.calls.answered;
    }
    return {
      version: this.deps.version,
      node: this.deps.node,
      startTime: this.startTime,
      uptimeSeconds: Math.max(0, Math.floor((now - this.startTime) / 1000)),
      extensions: { total: this.extensionRecords().length, registered },
      contacts,
      calls,
      callbacks,
      ivr,
      process: this.processUsage(),
      // The first worker alone registers the trunks: its view of them is the server's.
      trunks: this.views[0]?.summary?.trunks ?? first?.trunks ?? [],
    };
  }

  extensions(): ExtensionView[] {
    const byAor = new Map<string, ExtensionView['contacts']>();
    for (const b of this.deps.store.loadBindings(this.now())) {
      const list = byAor.get(b.aor) ?? [];
      list.push({ contact: b.contact, address: hostPort(b.sourceAddress, b.sourcePort), transport: b.transport, userAgent: b.userAgent ?? '', expiresAt: b.expiresAt });
      byAor.set(b.aor, list);
    }
    return this.extensionRecords().map((rec) => {
      const contacts = byAor.get(rec.number) ?? [];
      const state = this.merged.get(rec.number) ?? (contacts.length > 0 ? 'online' : 'offline');
      return { number: rec.number, name: rec.displayName, state, contacts };
    });
  }

  /** The workers' CPU and memory added up, with the primary's own. */
  private processUsage(): Summary['process'] {
    const own = this.usage.read();
    let cpuPercent = own.cpuPercent;
    let rssBytes = own.rssBytes;
    for (const v of this.views) {
      cpuPercent += v.summary?.process?.cpuPercent ?? 0;
      rssBytes += v.summary?.process?.rssBytes ?? 0;
    }
    return { cpuPercent: Math.round(cpuPercent * 10) / 10, rssBytes };
  }

  calls(): CallView[] {
    return this.views.flatMap((v) => [...v.calls.values()]);
  }

  callbacks(): CallBackView[] {
    return this.views.flatMap((v) => [...v.callbacks.values()]);
  }

  ivr(): IvrView[] {
    return this.views.flatMap((v) => [...v.ivr.values()]);
  }

  releaseCall(id: string): boolean {
    const index = this.views.findIndex((v) => v.calls.has(id));
    if (index < 0) return false;
    this.deps.send(index, { type: 'live-release', id });
    return true;
  }

  private extensionRecords(): ReturnType<Store['listExtensions']> {
    const version = this.deps.store.dataVersion();
    if (this.extensionList === null || version !== this.extensionVersion) {
      this.extensionList = this.deps.store.listExtensions();
      this.extensionVersion = version;
    }
    return this.extensionList;
  }
}

function emptyView(): WorkerView {
  return { summary: null, calls: new Map(), callbacks: new Map(), ivr: new Map(), states: new Map() };
}
