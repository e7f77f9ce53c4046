/**
 * The media relay of the B2BUA: every stream of a call flows through a pair of relay ports on
 * each side, and the SDP of each side is rewritten to point at the relay. No SIP knowledge here;
 * the call engine hands over SDP bodies and decides the address to advertise. See docs/MEDIA.md.
 */
import { isIPv4 } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { RelayBackend, RelayLogger } from './backend.js';
import { loadFailure, loadNativeAddon, NATIVE_BUILD_COMMAND, NativeBackend } from './native.js';
import { NodeBackend } from './node-backend.js';
import { PairSupply, type BoundPair, type Shortage } from './pair-supply.js';
import { PortPool } from './port-pool.js';
import { parseSdp, SdpError, SdpUnsupportedError, streamTargets, writeForOtherSide, type StreamTarget } from './sdp.js';

export { SdpError, SdpUnsupportedError } from './sdp.js';

export interface MediaRelayOptions {
  /** IPv4 address the relay sockets bind to, e.g. '0.0.0.0' or '127.0.0.1'. */
  bind: string;
  /** Port range; RTP on even ports, RTCP = RTP + 1. */
  portMin: number;
  portMax: number;
  /** 'auto' = native when the addon is built, else node. */
  engine: 'auto' | 'native' | 'node';
  /** 0 = never; see RelaySession.onInactive. */
  inactivityMs: number;
  /** Default: one session per two port pairs of the range. */
  maxSessions?: number;
  /** Node engine: port pairs kept bound ahead at least (default 64; it grows to one second of demand). */
  reservePairs?: number;
  logger?: RelayLogger;
}

export type Side = 'a' | 'b';

export interface StreamStats {
  index: number;
  media: string;
  aToB: number;
  bToA: number;
  bytesAToB: number;
  bytesBToA: number;
  /** Packets dropped on this stream's ports: strangers after latching, no target yet, hold. */
  dropped: number;
}

/** What the relay did since it opened, over all its ports (MediaRelay.totals()). */
export interface RelayTotals {
  /** Packets (RTP and RTCP) that arrived and were forwarded. */
  packets: number;
  /** Their bytes (UDP payload). */
  bytes: number;
  /** Packets that arrived and were dropped: strangers after latching, no target yet, hold, send failures, late packets of ended calls. */
  dropped: number;
}

/** Both engines keep running totals across their sockets' resets. */
type CountingBackend = RelayBackend & { totals(): RelayTotals };

/** m= lines relayed per session; lines beyond are answered with port 0. */
export const MAX_STREAMS = 8;
const DEFAULT_RESERVE_PAIRS = 64;
const INACTIVITY_TICK_MAX_MS = 1000;
const INACTIVITY_TICK_MIN_MS = 50;

/** One m= line: the ports side A sends to (facing.a) and the ports side B sends to (facing.b). */
interface Stream {
  media: string;
  facing: Record<Side, BoundPair>;
}

/** What a session needs from its relay. */
interface SessionHost {
  readonly backend: RelayBackend;
  readonly logger: RelayLogger | undefined;
  takeStreamPairs(label: string): Record<Side, BoundPair> | null;
  releasePair(pair: BoundPair): void;
  sessionClosed(session: RelaySession): void;
}

/** The limits a new session or stream can run into; see LimitReporter. */
export type RelayLimit = 'range' | 'maxSessions' | 'open-files' | 'node-reserve';

export class MediaRelay {
  private readonly sessions = new Set<RelaySession>();
  /** Sessions waiting for ports bound on demand (Node engine), counted against maxSessions. */
  private waiting = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly host: SessionHost;
  private readonly limits: LimitReporter;

  private constructor(
    private readonly backend: CountingBackend,
    private readonly supply: PairSupply,
    private readonly maxSessions: number,
    private readonly inactivityMs: number,
    private readonly logger: RelayLogger | undefined,
    range: { portMin: number; portMax: number; pairs: number },
  ) {
    this.host = {
      backend,
      logger,
      takeStreamPairs: (label) => this.takeStreamPairs(label),
      releasePair: (pair) => this.supply.release(pair),
      sessionClosed: (session) => this.sessions.delete(session),
    };
    this.limits = new LimitReporter(logger, { ...range, maxSessions });
  }

  static async open(opts: MediaRelayOptions): Promise<MediaRelay> {
    checkOptions(opts);
    const pool = new PortPool(opts.portMin, opts.portMax);
    const backend = chooseBackend(opts, pool.capacity * 2);
    const maxSessions = opts.maxSessions ?? Math.max(1, Math.floor(pool.capacity / 2));
    const reserve = Math.min(pool.capacity, Math.max(2, opts.reservePairs ?? DEFAULT_RESERVE_PAIRS));
    const supply = new PairSupply(backend, pool, reserve, opts.logger);
    const range = { portMin: opts.portMin, portMax: opts.portMax, pairs: pool.capacity };
    const relay = new MediaRelay(backend, supply, maxSessions, opts.inactivityMs, opts.logger, range);
    await supply.settled();
    if (opts.inactivityMs > 0) {
      const tick = Math.min(INACTIVITY_TICK_MAX_MS, Math.max(INACTIVITY_TICK_MIN_MS, Math.floor(opts.inactivityMs / 3)));
      relay.timer = setInterval(() => relay.checkInactivity(), tick);
      relay.timer.unref();
    }
    relay.logger?.info('media.relay_open', { engine: backend.kind, bind: opts.bind, portMin: opts.portMin, portMax: opts.portMax });
    return relay;
  }

  get engine(): 'native' | 'node' {
    return this.backend.kind;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /**
   * Packets and bytes forwarded and packets dropped since the relay opened, over every port
   * (calls in progress, ended ones, idle pairs): monotonic, cheap enough for each scrape (it adds
   * up the counters of the open sockets).
   */
  totals(): RelayTotals {
    return this.backend.totals();
  }

  /** The most sessions at once (one per call with media). */
  get sessionLimit(): number {
    return this.maxSessions;
  }

  /**
   * A session with ports for its first stream, at once, or null. With the native engine null
   * means a real limit (logged at most once a second, naming it); with the Node engine it may
   * also mean that its reserve of bound pairs is empty for now: openSession() then waits.
   */
  createSession(label: string): RelaySession | null {
    const made = this.sessionNow(label);
    return typeof made === 'string' ? null : made;
  }

  /**
   * A session whenever the range has free ports: at once where it can (always with the native
   * engine), else a promise of one whose ports are bound on demand (the Node engine with its
   * reserve emptied by a burst). null, or a promise of null: a limit, logged as in createSession.
   */
  openSession(label: string): RelaySession | Promise<RelaySession | null> | null {
    const made = this.sessionNow(label);
    if (made !== 'empty') return typeof made === 'string' ? null : made;
    this.waiting++;
    return this.supply.take(2).then(
      (pairs) => {
        this.waiting--;
        if (pairs && !this.closed) return this.newSession(label, pairs);
        if (pairs) for (const p of pairs) this.supply.release(p);
        else this.reportShortage(label);
        return null;
      },
      (err: unknown) => {
        this.waiting--;
        throw err;
      },
    );
  }

  /** A session, or why there is none: 'empty' alone may change by waiting (Node engine). */
  private sessionNow(label: string): RelaySession | 'closed' | 'maxSessions' | Shortage {
    if (this.closed) return 'closed';
    if (this.sessions.size + this.waiting >= this.maxSessions) {
      this.limits.hit('maxSessions', label);
      return 'maxSessions';
    }
    const pairs = this.supply.takeNow(2);
    if (pairs) return this.newSession(label, pairs);
    if (this.supply.shortage !== 'empty') this.reportShortage(label);
    return this.supply.shortage;
  }

  /** Resolves once the reserve of bound port pairs has been refilled (for tests and benchmarks). */
  async settled(): Promise<void> {
    await this.supply.settled();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const s of [...this.sessions]) s.close();
    await this.supply.close();
    await this.backend.close();
  }

  private newSession(label: string, pairs: BoundPair[]): RelaySession {
    const session = new RelaySession(label, this.host, this.link(pairs[0]!, pairs[1]!), this.inactivityMs);
    this.sessions.add(session);
    return session;
  }

  private takeStreamPairs(label: string): Record<Side, BoundPair> | null {
    if (this.closed) return null;
    const pairs = this.supply.takeNow(2);
    if (pairs) return this.link(pairs[0]!, pairs[1]!);
    this.reportShortage(label);
    return null;
  }

  private link(a: BoundPair, b: BoundPair): Record<Side, BoundPair> {
    this.backend.link(a.rtp, b.rtp);
    this.backend.link(a.rtcp, b.rtcp);
    return { a, b };
  }

  private reportShortage(label: string): void {
    const why = this.supply.shortage;
    if (why === 'range' || why === 'open-files') this.limits.hit(why, label);
    // 'empty' for a further stream (Node engine): the line gets port 0, the reserve grows.
    else if (why === 'empty') this.limits.hit('node-reserve', label);
  }

  private checkInactivity(): void {
    const now = this.backend.nowMs();
    for (const s of this.sessions) s.checkInactivity(now);
  }
}

/**
 * "No media ports": one warn line a second at most, naming the limit that was hit and what to
 * configure, with the number of refusals since the last line.
 */
class LimitReporter {
  private lastMs = -Infinity;
  private refusedSince = 0;

  constructor(
    private readonly logger: RelayLogger | undefined,
    private readonly range: { portMin: number; portMax: number; pairs: number; maxSessions: number },
  ) {}

  hit(limit: RelayLimit, label: string): void {
    this.refusedSince++;
    const now = performance.now();
    if (now - this.lastMs < 1000) return;
    this.lastMs = now;
    const refused = this.refusedSince;
    this.refusedSince = 0;
    this.logger?.warn('media.no_ports', { limit, label, refused, hint: this.hint(limit) });
  }

  private hint(limit: RelayLimit): string {
    const { portMin, portMax, pairs, maxSessions } = this.range;
    switch (limit) {
      case 'range':
        return `every port pair of media.portMin..media.portMax (${portMin}-${portMax}, ${pairs} pairs, two per stream of a call) is in use, by calls or by other programs: widen the range`;
      case 'maxSessions':
        return `${maxSessions} relayed calls at once, half the port pairs of ${portMin}-${portMax}: widen media.portMin..media.portMax`;
      case 'open-files':
        return 'the open-files limit is reached (each relayed stream holds 4 sockets): raise the hard limit (LimitNOFILE= in the systemd unit, or ulimit -Hn)';
      case 'node-reserve':
        return 'the node engine had no bound pair ready for a further stream of a call (that m= line got port 0): build the native relay (node scripts/build-native.mjs)';
    }
  }
}

function checkOptions(opts: MediaRelayOptions): void {
  if (!isIPv4(opts.bind)) throw new RangeError(`media relay: bind address ${opts.bind} is not an IPv4 address`);
  const portOk = (p: number) => Number.isInteger(p) && p >= 1 && p <= 65535;
  if (!portOk(opts.portMin) || !portOk(opts.portMax) || opts.portMax < opts.portMin) {
    throw new RangeError(`media relay: bad port range ${opts.portMin}..${opts.portMax}`);
  }
  if (new PortPool(opts.portMin, opts.portMax).capacity < 2) {
    throw new RangeError(`media relay: port range ${opts.portMin}..${opts.portMax} holds fewer than 2 RTP/RTCP pairs (one stream needs 2)`);
  }
  if (!(opts.inactivityMs >= 0)) throw new RangeError('media relay: inactivityMs must be >= 0');
  if (!['auto', 'native', 'node'].includes(opts.engine)) throw new RangeError(`media relay: unknown engine ${String(opts.engine)}`);
}

function chooseBackend(opts: MediaRelayOptions, maxSockets: number): CountingBackend {
  if (opts.engine === 'node') return new NodeBackend(opts.bind, opts.logger);
  const addon = loadNativeAddon();
  if (addon) return new NativeBackend(addon, opts.bind, maxSockets);
  if (opts.engine === 'native') {
    throw new Error(`media relay engine 'native' is not available (${loadFailure()}); build it with: ${NATIVE_BUILD_COMMAND}`);
  }
  opts.logger?.info('media.engine_fallback', { engine: 'node', reason: loadFailure() });
  return new NodeBackend(opts.bind, opts.logger);
}

export class RelaySession {
  /** Called once when the session stayed without any packet for inactivityMs after its first answer. */
  onInactive: (() => void) | null = null;
  private readonly streams: Array<Stream | undefined> = [];
  private spare: Record<Side, BoundPair> | null;
  private pendingOffer: { from: Side; lines: number } | null = null;
  private answeredAtMs = 0;
  private inactiveReported = false;
  private closed = false;
  private finalStats: StreamStats[] = [];
  private warnedTooManyStreams = false;

  /** @internal Sessions come from MediaRelay.createSession. */
  constructor(
    readonly label: string,
    private readonly host: SessionHost,
    firstStream: Record<Side, BoundPair>,
    private readonly inactivityMs: number,
  ) {
    this.spare = firstStream;
  }

  /**
   * Takes the SDP that side `from` sent (offer or answer) and returns the SDP to forward to the
   * other side, pointing at the relay (`advertise` and the relay ports facing the other side).
   * Remembers where `from` receives each stream. `signalIp`, the address side `from` sends its
   * SIP from, may latch besides its SDP address (nobody else may: see backend.ts); omitted, any
   * source may latch. Throws SdpError on SDP it cannot relay.
   */
  rewrite(from: Side, sdp: string, advertise: string, signalIp = ''): string {
    if (this.closed) throw new SdpError(`relay session ${this.label} is closed`);
    if (!isIPv4(advertise)) throw new SdpUnsupportedError(`advertise address ${advertise} is not an IPv4 address`);
    const desc = parseSdp(sdp);
    const targets = streamTargets(desc);
    const isAnswer = this.pendingOffer !== null && this.pendingOffer.from !== from;
    // RFC 3264 §6: the answer has exactly as many m= lines as the offer, in the same order.
    if (isAnswer && targets.length !== this.pendingOffer!.lines) {
      throw new SdpError(`answer from side ${from} has ${targets.length} m= lines, the offer had ${this.pendingOffer!.lines}`);
    }
    const relayPorts = targets.map((t, i) => this.applyTarget(i, from, t, isIPv4(signalIp) ? signalIp : ''));
    if (isAnswer) {
      this.pendingOffer = null;
      if (this.answeredAtMs === 0) this.answeredAtMs = this.host.backend.nowMs();
    } else {
      this.pendingOffer = { from, lines: targets.length };
    }
    return writeForOtherSide(desc, relayPorts, advertise);
  }

  /** Packets forwarded per relayed m= line (RTP and RTCP together). After close(): the last figures. */
  stats(): StreamStats[] {
    if (this.closed) return this.finalStats.map((s) => ({ ...s }));
    const b = this.host.backend;
    const out: StreamStats[] = [];
    this.streams.forEach((s, index) => {
      if (!s) return;
      const { a: fa, b: fb } = s.facing;
      out.push({
        index,
        media: s.media,
        aToB: b.forwarded(fa.rtp) + b.forwarded(fa.rtcp),
        bToA: b.forwarded(fb.rtp) + b.forwarded(fb.rtcp),
        bytesAToB: b.forwardedBytes(fa.rtp) + b.forwardedBytes(fa.rtcp),
        bytesBToA: b.forwardedBytes(fb.rtp) + b.forwardedBytes(fb.rtcp),
        dropped: b.dropped(fa.rtp) + b.dropped(fa.rtcp) + b.dropped(fb.rtp) + b.dropped(fb.rtcp),
      });
    });
    return out;
  }

  /** Frees all ports of the session at once. */
  close(): void {
    if (this.closed) return;
    this.finalStats = this.stats();
    this.closed = true;
    this.streams.forEach((_, i) => this.releaseStream(i));
    if (this.spare) this.releasePairs(this.spare);
    this.spare = null;
    this.host.sessionClosed(this);
  }

  /** @internal Called by the relay's shared timer. */
  checkInactivity(nowMs: number): void {
    if (this.closed || this.inactiveReported || this.answeredAtMs === 0 || !this.onInactive) return;
    if (nowMs - Math.max(this.answeredAtMs, this.lastPacketMs()) < this.inactivityMs) return;
    this.inactiveReported = true;
    try {
      this.onInactive();
    } catch (err) {
      this.host.logger?.warn('media.on_inactive_failed', { label: this.label, error: (err as Error).message });
    }
  }

  private lastPacketMs(): number {
    const b = this.host.backend;
    let last = 0;
    for (const s of this.streams) {
      if (!s) continue;
      for (const p of [s.facing.a, s.facing.b]) last = Math.max(last, b.lastPacketMs(p.rtp), b.lastPacketMs(p.rtcp));
    }
    return last;
  }

  /** Returns the relay RTP port facing the other side for m= line `index`, or 0 to disable it. */
  private applyTarget(index: number, from: Side, target: StreamTarget | null, signalIp: string): number {
    if (target === null) {
      this.releaseStream(index);
      return 0;
    }
    if (index >= MAX_STREAMS) {
      if (!this.warnedTooManyStreams) this.host.logger?.warn('media.too_many_streams', { label: this.label, max: MAX_STREAMS });
      this.warnedTooManyStreams = true;
      return 0;
    }
    const stream = this.streams[index] ?? this.openStream(index, target.media);
    if (!stream) return 0; // the relay logged which limit
    stream.media = target.media;
    const facingFrom = stream.facing[from];
    this.host.backend.setTarget(facingFrom.rtp, target.rtp, signalIp);
    this.host.backend.setTarget(facingFrom.rtcp, target.rtcp, signalIp);
    return stream.facing[from === 'a' ? 'b' : 'a'].rtpPort;
  }

  private openStream(index: number, media: string): Stream | null {
    const facing = this.spare ?? this.host.takeStreamPairs(this.label);
    this.spare = null;
    if (!facing) return null;
    const stream = { media, facing };
    this.streams[index] = stream;
    return stream;
  }

  private releaseStream(index: number): void {
    const s = this.streams[index];
    if (!s) return;
    this.streams[index] = undefined;
    this.releasePairs(s.facing);
  }

  private releasePairs(facing: Record<Side, BoundPair>): void {
    this.host.releasePair(facing.a);
    this.host.releasePair(facing.b);
  }
}
