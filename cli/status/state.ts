/**
 * The local copy of a server's live state for `minisipserver status`: loaded from the snapshots,
 * kept current by applying the events of the stream. Mutable (10,000 extensions are not copied
 * at each registration); `version` increases at each change and listeners are told. The rows a
 * pane shows (filtered, sorted) are derived by the functions below, without React.
 */
import type { Snapshot, FeedStatus } from '../../lib/admin/client.js';
import type { CallBackView, CallView, ContactView, ExtensionState, ExtensionView, IvrView, SequencedEvent, Summary } from '../../lib/admin/types.js';

/** A contact as the status screen knows it: from a snapshot, or from a registration event (which may lack details). */
export interface ContactRow {
  contact: string;
  address: string;
  transport: ContactView['transport'] | '';
  userAgent: string;
  /** Epoch ms; null when a registration event did not say. */
  expiresAt: number | null;
}

export interface ExtensionRow {
  number: string;
  name: string;
  state: ExtensionState;
  contacts: ContactRow[];
}

/** Fields a registration event may carry beyond those of LiveEvent (used when present). */
interface RegistrationDetails {
  userAgent?: unknown;
  transport?: unknown;
  expiresAt?: unknown;
}

/** Optional process figures of a summary (not in Summary yet): shown in the header when present. */
export interface ProcessFigures {
  cpuPercent?: number;
  rssBytes?: number;
}

const MINUTE = 60_000;

export class LiveStore {
  summary: Summary | null = null;
  /** Client clock when the summary was fetched: uptime = uptimeSeconds + time since then. */
  summaryAt = 0;
  readonly extensions = new Map<string, ExtensionRow>();
  readonly calls = new Map<string, CallView>();
  readonly callbacks = new Map<string, CallBackView>();
  readonly ivr = new Map<string, IvrView>();
  connection: FeedStatus = { state: 'connecting', attempt: 0 };
  /** Times of the calls created in the last minute (event time). */
  private created: number[] = [];
  lastEventId = 0;
  version = 0;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly clock: () => number = Date.now) {}

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** Replaces everything with a snapshot. */
  load(s: Snapshot): void {
    this.summary = s.summary;
    this.summaryAt = this.clock();
    this.extensions.clear();
    for (const e of s.extensions) {
      this.extensions.set(e.number, { number: e.number, name: e.name, state: e.state, contacts: e.contacts.map((c) => ({ ...c })) });
    }
    this.calls.clear();
    for (const c of s.calls) this.calls.set(c.id, c);
    this.callbacks.clear();
    for (const c of s.callbacks) this.callbacks.set(c.id, c);
    this.ivr.clear();
    for (const i of s.ivr) this.ivr.set(i.id, i);
    this.changed();
  }

  /** Updates the summary alone (e.g. a periodic refresh of process figures). */
  setSummary(summary: Summary): void {
    this.summary = summary;
    this.summaryAt = this.clock();
    this.changed();
  }

  setConnection(s: FeedStatus): void {
    this.connection = s;
    this.changed();
  }

  /** New packet counters of the calls still here (calls are not added or removed: events do that). */
  mergePackets(calls: CallView[]): void {
    let any = false;
    for (const c of calls) {
      const mine = this.calls.get(c.id);
      if (mine && (mine.packets.aToB !== c.packets.aToB || mine.packets.bToA !== c.packets.bToA)) {
        this.calls.set(c.id, { ...mine, packets: c.packets });
        any = true;
      }
    }
    if (any) this.changed();
  }

  apply(seq: SequencedEvent): void {
    this.lastEventId = seq.id;
    const e = seq.event;
    switch (e.type) {
      case 'registration': {
        const ext = this.extension(e.number);
        const details = e as unknown as RegistrationDetails;
        const i = ext.contacts.findIndex((c) => c.contact === e.contact);
        if (e.action === 'removed' || e.action === 'expired') {
          if (i !== -1) ext.contacts = ext.contacts.filter((_, j) => j !== i);
          if (ext.contacts.length === 0 && ext.state === 'online') ext.state = 'offline';
        } else {
          const old = i === -1 ? undefined : ext.contacts[i];
          const row: ContactRow = {
            contact: e.contact,
            address: e.address,
            transport: details.transport === 'udp' || details.transport === 'tcp' || details.transport === 'tls' ? details.transport : (old?.transport ?? ''),
            userAgent: typeof details.userAgent === 'string' ? details.userAgent : (old?.userAgent ?? ''),
            expiresAt: typeof details.expiresAt === 'number' ? details.expiresAt : null,
          };
          ext.contacts = i === -1 ? [...ext.contacts, row] : ext.contacts.map((c, j) => (j === i ? row : c));
          if (ext.state === 'offline') ext.state = 'online';
        }
        break;
      }
      case 'extension':
        this.extension(e.number).state = e.state;
        break;
      case 'call':
        if (e.action === 'ended') this.calls.delete(e.call.id);
        else {
          if (e.action === 'created' && !this.calls.has(e.call.id)) this.countCreated(seq.time);
          this.calls.set(e.call.id, e.call);
        }
        break;
      case 'callback':
        if (e.action === 'ended') this.callbacks.delete(e.callback.id);
        else this.callbacks.set(e.callback.id, e.callback);
        break;
      case 'ivr':
        if (e.action === 'ended') this.ivr.delete(e.ivr.id);
        else this.ivr.set(e.ivr.id, e.ivr);
        break;
    }
    this.changed();
  }

  /** Calls created in the minute before `now` (counted from the events seen). */
  callsPerMinute(now: number): number {
    this.prune(now);
    return this.created.length;
  }

  /** Extensions with at least one contact. */
  registeredCount(): number {
    let n = 0;
    for (const e of this.extensions.values()) if (e.contacts.length > 0) n++;
    return n;
  }

  uptimeSeconds(now: number): number | null {
    if (!this.summary) return null;
    return Math.max(0, Math.floor(this.summary.uptimeSeconds + (now - this.summaryAt) / 1000));
  }

  processFigures(): ProcessFigures | null {
    const p = (this.summary as (Summary & { process?: ProcessFigures }) | null)?.process;
    if (!p || typeof p !== 'object') return null;
    const out: ProcessFigures = {};
    if (typeof p.cpuPercent === 'number') out.cpuPercent = p.cpuPercent;
    if (typeof p.rssBytes === 'number') out.rssBytes = p.rssBytes;
    return Object.keys(out).length > 0 ? out : null;
  }

  private extension(number: string): ExtensionRow {
    let ext = this.extensions.get(number);
    if (!ext) {
      ext = { number, name: '', state: 'offline', contacts: [] };
      this.extensions.set(number, ext);
    }
    return ext;
  }

  private countCreated(time: number): void {
    this.created.push(time);
    if (this.created.length > 4096) this.prune(this.clock());
  }

  private prune(now: number): void {
    let i = 0;
    while (i < this.created.length && this.created[i]! <= now - MINUTE) i++;
    if (i > 0) this.created = this.created.slice(i);
  }

  private changed(): void {
    this.version++;
    for (const l of this.listeners) l();
  }
}

// ---- Rows of the panes: filter and sort -------------------------------------------------

export type PaneId = 'extensions' | 'calls' | 'callbacks' | 'ivr';
export const PANES: readonly PaneId[] = ['extensions', 'calls', 'callbacks', 'ivr'];

export interface SortOption<T> {
  name: string;
  compare: (a: T, b: T, now: number) => number;
}

/** Numbers in numeric order when both are digits ("9" before "10"), else as text. */
export function compareNumbers(a: string, b: string): number {
  const da = /^\d+$/.test(a);
  const db = /^\d+$/.test(b);
  if (da && db) {
    const ta = a.replace(/^0+(?=\d)/, '');
    const tb = b.replace(/^0+(?=\d)/, '');
    if (ta.length !== tb.length) return ta.length - tb.length;
    if (ta !== tb) return ta < tb ? -1 : 1;
    return a.length - b.length;
  }
  if (da !== db) return da ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareText(a: string, b: string): number {
  const la = a.toLowerCase();
  const lb = b.toLowerCase();
  return la < lb ? -1 : la > lb ? 1 : 0;
}

const STATE_ORDER: Record<ExtensionState, number> = { talking: 0, ringing: 1, online: 2, offline: 3 };

/** The earliest expiry of an extension's contacts (Infinity without one). */
export function nextExpiry(e: ExtensionRow): number {
  let min = Infinity;
  for (const c of e.contacts) if (c.expiresAt !== null && c.expiresAt < min) min = c.expiresAt;
  return min;
}

export const SORTS: { [P in PaneId]: SortOption<RowOf<P>>[] } = {
  extensions: [
    { name: 'number', compare: (a, b) => compareNumbers(a.number, b.number) },
    { name: 'state', compare: (a, b) => STATE_ORDER[a.state] - STATE_ORDER[b.state] || compareNumbers(a.number, b.number) },
    { name: 'name', compare: (a, b) => compareText(a.name, b.name) || compareNumbers(a.number, b.number) },
    { name: 'expires', compare: (a, b) => nextExpiry(a) - nextExpiry(b) || compareNumbers(a.number, b.number) },
  ],
  calls: [
    { name: 'newest', compare: (a, b) => b.startTime - a.startTime || compareText(a.id, b.id) },
    { name: 'longest', compare: (a, b) => a.startTime - b.startTime || compareText(a.id, b.id) },
    { name: 'caller', compare: (a, b) => compareNumbers(a.caller, b.caller) || a.startTime - b.startTime },
  ],
  callbacks: [
    { name: 'newest', compare: (a, b) => b.startTime - a.startTime || compareText(a.id, b.id) },
    { name: 'user1', compare: (a, b) => compareNumbers(a.user1, b.user1) || a.startTime - b.startTime },
  ],
  ivr: [
    { name: 'newest', compare: (a, b) => b.startTime - a.startTime || compareText(a.id, b.id) },
    { name: 'caller', compare: (a, b) => compareNumbers(a.caller, b.caller) || a.startTime - b.startTime },
  ],
};

export type RowOf<P extends PaneId> = P extends 'extensions' ? ExtensionRow : P extends 'calls' ? CallView : P extends 'callbacks' ? CallBackView : IvrView;

/** The key that identifies a row across updates. */
export function rowKey(pane: PaneId, row: ExtensionRow | CallView | CallBackView | IvrView): string {
  return pane === 'extensions' ? (row as ExtensionRow).number : (row as CallView).id;
}

/** The texts a filter is matched against: numbers and names. */
function searchable(pane: PaneId, row: ExtensionRow | CallView | CallBackView | IvrView): string[] {
  switch (pane) {
    case 'extensions': {
      const e = row as ExtensionRow;
      return [e.number, e.name];
    }
    case 'calls': {
      const c = row as CallView;
      return [c.caller, c.callerName, c.callee, c.dialled];
    }
    case 'callbacks': {
      const c = row as CallBackView;
      return [c.user1, c.user2, c.id];
    }
    case 'ivr': {
      const i = row as IvrView;
      return [i.caller, i.number, i.file];
    }
  }
}

/** Case-insensitive substring match of the filter on a row's numbers and names ('' matches all). */
export function matches(pane: PaneId, row: ExtensionRow | CallView | CallBackView | IvrView, filter: string): boolean {
  if (filter === '') return true;
  const f = filter.toLowerCase();
  return searchable(pane, row).some((t) => t.toLowerCase().includes(f));
}

/** The rows of a pane, filtered and sorted. */
export function paneRows<P extends PaneId>(store: LiveStore, pane: P, sortIndex: number, filter: string, now: number): RowOf<P>[] {
  const source = (
    pane === 'extensions' ? store.extensions : pane === 'calls' ? store.calls : pane === 'callbacks' ? store.callbacks : store.ivr
  ) as Map<string, RowOf<P>>;
  const rows: RowOf<P>[] = [];
  for (const r of source.values()) if (matches(pane, r, filter)) rows.push(r);
  const sorts = SORTS[pane] as SortOption<RowOf<P>>[];
  const sort = sorts[((sortIndex % sorts.length) + sorts.length) % sorts.length]!;
  rows.sort((a, b) => sort.compare(a, b, now));
  return rows;
}

export function sortName(pane: PaneId, sortIndex: number): string {
  const sorts = SORTS[pane];
  return sorts[((sortIndex % sorts.length) + sorts.length) % sorts.length]!.name;
}

export function sortCount(pane: PaneId): number {
  return SORTS[pane].length;
}

// ---- The visible window of a list -------------------------------------------------------

/**
 * The first row shown so that `cursor` is visible in `height` rows, moving the previous `top`
 * as little as possible and never leaving blank rows at the end when there are enough rows.
 */
export function windowTop(total: number, cursor: number, height: number, top: number): number {
  if (height <= 0 || total <= 0) return 0;
  let t = top;
  if (cursor < t) t = cursor;
  if (cursor >= t + height) t = cursor - height + 1;
  return Math.max(0, Math.min(t, Math.max(0, total - height)));
}

/** `cursor` moved by `delta`, kept within 0..total-1 (0 when empty). */
export function moveCursor(total: number, cursor: number, delta: number): number {
  if (total <= 0) return 0;
  return Math.max(0, Math.min(total - 1, cursor + delta));
}

/**
 * Where the selection is now: the index of the row with `key` when it is still shown (rows move
 * when they are sorted by state), else the previous index kept within the rows.
 */
export function resolveCursor(keys: (i: number) => string, total: number, key: string | null, index: number): number {
  if (total <= 0) return 0;
  if (key !== null) {
    // Look near the previous place first: usually the row has not moved far.
    const near = Math.max(0, Math.min(total - 1, index));
    for (let d = 0; d < 64; d++) {
      if (near + d < total && keys(near + d) === key) return near + d;
      if (d > 0 && near - d >= 0 && keys(near - d) === key) return near - d;
    }
    for (let i = 0; i < total; i++) if (keys(i) === key) return i;
  }
  return Math.max(0, Math.min(total - 1, index));
}
