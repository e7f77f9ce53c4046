/**
 * A LiveSource for tests of what reads the live state (admin API, event channel, status): plain
 * arrays the test edits, events it emits by hand with ids from 1 and a bounded backlog, and a
 * releaseCall that ends the call with callTag 8 as the real one does. `sampleLive()` fills it with
 * a small office (the data of the examples in docs/ADMIN.md).
 */
import type { CallBackView, CallView, ExtensionView, IvrView, LiveEvent, LiveSource, SequencedEvent, Summary, TrunkView } from '../../lib/admin/types.js';

export interface FakeLiveOptions {
  /** Events kept for since(); older ones are gone. Default 1000. */
  backlog?: number;
  now?: () => number;
  startTime?: number;
  version?: string;
  node?: string;
}

export class FakeLive implements LiveSource {
  extensionList: ExtensionView[] = [];
  callList: CallView[] = [];
  callbackList: CallBackView[] = [];
  ivrList: IvrView[] = [];
  trunkList: TrunkView[] = [];
  /** Calls started and answered since the start (the summary's counters). */
  started = 0;
  answered = 0;
  /** Ids releaseCall was asked for and found. */
  readonly released: string[] = [];
  now: () => number;
  readonly startTime: number;
  readonly version: string;
  readonly node: string;
  private readonly backlogSize: number;
  private readonly backlog: SequencedEvent[] = [];
  private nextId = 1;
  private readonly listeners = new Set<(e: SequencedEvent) => void>();

  constructor(opts: FakeLiveOptions = {}) {
    this.backlogSize = opts.backlog ?? 1000;
    this.now = opts.now ?? Date.now;
    this.startTime = opts.startTime ?? this.now();
    this.version = opts.version ?? '0.1.0';
    this.node = opts.node ?? 'pbx1';
  }

  /** Subscribers now. */
  get listenerCount(): number {
    return this.listeners.size;
  }

  /** The id of the newest event emitted (0: none yet). */
  get lastId(): number {
    return this.nextId - 1;
  }

  summary(): Summary {
    const now = this.now();
    return {
      version: this.version,
      node: this.node,
      startTime: this.startTime,
      uptimeSeconds: Math.floor((now - this.startTime) / 1000),
      extensions: { total: this.extensionList.length, registered: this.extensionList.filter((e) => e.contacts.length > 0).length },
      contacts: this.extensionList.reduce((n, e) => n + e.contacts.length, 0),
      calls: { active: this.callList.length, started: this.started, answered: this.answered },
      callbacks: this.callbackList.length,
      ivr: this.ivrList.length,
      trunks: this.trunkList,
      process: { cpuPercent: 2.5, rssBytes: 74_000_000 },
    };
  }

  extensions(): ExtensionView[] {
    return this.extensionList;
  }

  calls(): CallView[] {
    return this.callList;
  }

  callbacks(): CallBackView[] {
    return this.callbackList;
  }

  ivr(): IvrView[] {
    return this.ivrList;
  }

  releaseCall(id: string): boolean {
    const i = this.callList.findIndex((c) => c.id === id);
    if (i < 0) return false;
    const [call] = this.callList.splice(i, 1);
    this.released.push(id);
    this.emit({ type: 'call', action: 'ended', call: call!, status: call!.answerTime === null ? 487 : 200, callTag: 8, cause: 16 });
    return true;
  }

  subscribe(listener: (e: SequencedEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  since(lastId: number): SequencedEvent[] | null {
    if (lastId >= this.lastId) return [];
    const oldest = this.backlog[0]?.id ?? this.nextId;
    if (lastId + 1 < oldest) return null;
    return this.backlog.filter((e) => e.id > lastId);
  }

  /** Records `event` with the next id and hands it to every subscriber. */
  emit(event: LiveEvent): SequencedEvent {
    const e: SequencedEvent = { id: this.nextId++, time: this.now(), event };
    this.backlog.push(e);
    if (this.backlog.length > this.backlogSize) this.backlog.shift();
    for (const l of [...this.listeners]) l(e);
    return e;
  }
}

/** 2025-06-02 09:30:00 UTC: the examples' "now". */
export const SAMPLE_NOW = Date.UTC(2025, 5, 2, 9, 30, 0);

/**
 * A small office: seven extensions (one offline, one with two phones), a call out over a trunk,
 * one ringing inside, a call-back calling its second number, a caller in the IVR, one trunk.
 */
export function sampleLive(now: () => number = () => SAMPLE_NOW): FakeLive {
  const t = now();
  const live = new FakeLive({ now, startTime: t - 3 * 86_400_000 - 4 * 3_600_000 - 125_000, version: '0.1.0', node: 'pbx1' });
  const contact = (n: string, ip: string, port: number, ua: string, transport: 'udp' | 'tcp' = 'udp', expiresIn = 1800) => ({
    contact: `sip:${n}@${ip}:${port}${transport === 'tcp' ? ';transport=tcp' : ''}`,
    address: `${ip}:${port}`,
    transport,
    userAgent: ua,
    expiresAt: t + expiresIn * 1000,
  });
  live.extensionList = [
    { number: '101', name: 'Alice Martin', state: 'talking', contacts: [contact('101', '192.168.1.21', 5060, 'Yealink SIP-T46S 66.86.0.15', 'udp', 3412)] },
    { number: '102', name: 'Bob Chen', state: 'talking', contacts: [contact('102', '192.168.1.22', 5062, 'Grandstream GXP2170 1.0.11.23', 'udp', 1280)] },
    { number: '103', name: 'Carol Diaz', state: 'ringing', contacts: [contact('103', '192.168.1.23', 52184, 'Linphone/5.2.5 (belle-sip/5.2.94)', 'tcp', 587)] },
    { number: '104', name: 'Dan Evans', state: 'offline', contacts: [] },
    {
      number: '105',
      name: 'Reception',
      state: 'ringing',
      contacts: [contact('105', '192.168.1.25', 5060, 'Yealink SIP-T54W 96.86.0.70', 'udp', 3590), contact('105', '192.168.1.40', 61433, 'Zoiper rv2.10.20.2', 'udp', 245)],
    },
    { number: '106', name: 'Warehouse', state: 'talking', contacts: [contact('106', '192.168.1.26', 5060, 'Cisco/SPA303-7.6.2c', 'udp', 2970)] },
    { number: '107', name: 'Meeting Room', state: 'online', contacts: [contact('107', '192.168.1.27', 5060, 'PolycomRealPresenceTrio-Trio_8800-UA/7.2.2.1094', 'udp', 1715)] },
  ];
  live.callList = [
    {
      id: '3c2a9e7f41b84c0d@192.168.1.22',
      caller: '102',
      callerName: 'Bob Chen',
      callee: '15551234567',
      dialled: '915551234567',
      route: 'trunk:carrier',
      state: 'answered',
      startTime: t - 192_000,
      answerTime: t - 185_500,
      codec: 'PCMU',
      media: 'audio',
      packets: { aToB: 9271, bToA: 9264 },
    },
    {
      id: 'a84b4c76e66710@192.168.1.25',
      caller: '105',
      callerName: 'Reception',
      callee: '103',
      dialled: '103',
      route: 'local',
      state: 'ringing',
      startTime: t - 6_000,
      answerTime: null,
      codec: '',
      media: '',
      packets: { aToB: 0, bToA: 0 },
    },
  ];
  live.callbackList = [{ id: 'crm-20250602-0042', user1: '101', user2: '15557654321', state: 'calling2', startTime: t - 14_000, answerTime: t - 9_000 }];
  live.ivrList = [{ id: 'f81d4fae7dec11d0a76500a0c91e6bf6@192.168.1.26', caller: '106', number: '8000', file: 'main_menu.xml', startTime: t - 41_000 }];
  live.trunkList = [{ name: 'carrier', kind: 'register', up: true, registration: 'registered', lastStatus: 200, activeCalls: 1 }];
  live.started = 1342;
  live.answered = 1107;
  return live;
}
