/**
 * Bound RTP/RTCP port pairs for the relay's streams, taken from the range's PortPool.
 *
 * Opening and closing sockets was most of the cost of setting up a relayed call, so a pair its
 * call released stays bound (unlinked, counters zeroed) and serves a later call once it has been
 * quiet for QUIET_MS; at most IDLE_MAX pairs are kept so, each for IDLE_KEEP_MS at most.
 *
 * Otherwise a pair is bound when it is asked for wherever the engine can bind at once: the native
 * engine binds in a few system calls on this thread, so a new call never waits for a refill and
 * never fails for want of a port while the range has one. Node's dgram binds asynchronously, so
 * for the Node engine a reserve of bound pairs is kept ahead, sized to the rate pairs were taken
 * at in the last second; when a burst empties it, takeNow() says 'empty' and take() binds the
 * pairs the caller needs on demand.
 */
import { performance } from 'node:perf_hooks';
import type { RelayBackend, RelayLogger } from './backend.js';
import type { PortPool } from './port-pool.js';

/** An even RTP port and RTCP = RTP + 1, both bound; rtp and rtcp are backend socket slots. */
export interface BoundPair {
  rtpPort: number;
  rtp: number;
  rtcp: number;
}

/**
 * Why the last take found no pair: 'empty' = the Node engine's reserve is empty for now (take()
 * binds more); the others are real limits: 'range' = every pair of the range is in use (by calls
 * or by other programs), 'open-files' = the process may open no more sockets, 'closed'.
 */
export type Shortage = 'empty' | 'range' | 'open-files' | 'closed';

/** Ports tried for one pair before the range counts as used up (ports held by other programs). */
const MAX_TRIES_PER_PAIR = 1024;
/**
 * A released pair stays bound this long before another call may use it: late packets of the
 * ended call (they are dropped, the pair being unlinked) do not reach the next one.
 */
export const QUIET_MS = 500;
/** Released pairs kept bound for reuse at most (opening and closing sockets is most of a relay set-up). */
const IDLE_MAX = 4096;
/** Idle pairs not reused within this time are closed, giving their descriptors back. */
const IDLE_KEEP_MS = 60_000;

export class PairSupply {
  private readonly ready: BoundPair[] = [];
  /** Released pairs, still bound, oldest first. */
  private readonly idle: Array<{ pair: BoundPair; since: number }> = [];
  private idleHead = 0;
  private filling: Promise<void> | null = null;
  private fillAgain = false;
  private closed = false;
  private second = 0;
  private takenThisSecond = 0;
  private takenLastSecond = 0;
  /** Set by every take that returns null. */
  shortage: Shortage = 'empty';

  constructor(
    private readonly backend: RelayBackend,
    private readonly pool: PortPool,
    /** Pairs kept bound ahead at least (Node engine only; the native engine binds on demand). */
    private readonly baseReserve: number,
    private readonly logger: RelayLogger | undefined,
  ) {}

  get bindsAtOnce(): boolean {
    return this.backend.openSocketNow !== undefined;
  }

  /** `count` pairs at once, or null (then `shortage` says why). */
  takeNow(count: number): BoundPair[] | null {
    if (this.closed) return this.refuse('closed');
    const now = performance.now();
    const quietBefore = now - QUIET_MS;
    const picked: BoundPair[] = [];
    while (picked.length < count) {
      // A pair of an ended call, else the reserve or a new one; at a limit, a pair released less
      // than QUIET_MS ago rather than no call at all.
      const pair =
        this.idleReleasedBefore(quietBefore) ??
        this.ready.shift() ??
        (this.bindsAtOnce ? (this.bindNow() ?? this.idleReleasedBefore(Infinity)) : null);
      if (!pair) break;
      picked.push(pair);
    }
    if (picked.length < count) {
      this.ready.unshift(...picked);
      if (this.bindsAtOnce) return null;
      this.startFill();
      return this.refuse('empty');
    }
    this.noteTaken(count, now);
    this.startFill();
    return picked;
  }

  /** `count` pairs, bound on demand when none are ready; null only on a real limit. */
  async take(count: number): Promise<BoundPair[] | null> {
    const now = this.takeNow(count);
    if (now || this.shortage !== 'empty') return now;
    const mine: BoundPair[] = [];
    while (mine.length < count) {
      const pair = this.ready.shift() ?? (await this.bindLater()) ?? this.idleReleasedBefore(Infinity) ?? (await this.fromRefill());
      if (!pair) {
        for (const p of mine) this.release(p);
        return null;
      }
      mine.push(pair);
    }
    if (this.closed) {
      for (const p of mine) this.closePair(p);
      return this.refuse('closed');
    }
    this.noteTaken(count, performance.now());
    return mine;
  }

  /** The range's last pairs may be in the reserve's refill, bound but not yet ready: wait for it. */
  private async fromRefill(): Promise<BoundPair | null> {
    if (this.shortage !== 'range') return null;
    for (let i = 0; i < 3 && this.ready.length === 0 && this.filling; i++) await this.filling;
    return this.ready.shift() ?? null;
  }

  /**
   * A pair its call no longer uses: kept bound for a later call (reset: unlinked, no target),
   * or, beyond IDLE_MAX, closed with its ports going to the back of the range.
   */
  release(pair: BoundPair): void {
    const now = performance.now();
    if (!this.closed && this.idle.length - this.idleHead < IDLE_MAX) {
      this.backend.resetSocket(pair.rtp);
      this.backend.resetSocket(pair.rtcp);
      this.idle.push({ pair, since: now });
    } else {
      this.closeAndReturn(pair);
    }
    while (this.idleHead < this.idle.length && this.idle[this.idleHead]!.since < now - IDLE_KEEP_MS) {
      this.closeAndReturn(this.idle[this.idleHead++]!.pair);
    }
    this.compactIdle();
    this.startFill();
  }

  /** The idle pair released first, if that was before `before`. */
  private idleReleasedBefore(before: number): BoundPair | null {
    if (this.idleHead >= this.idle.length || this.idle[this.idleHead]!.since > before) return null;
    const { pair } = this.idle[this.idleHead++]!;
    this.compactIdle();
    // Again: what it dropped while idle is not the next call's.
    this.backend.resetSocket(pair.rtp);
    this.backend.resetSocket(pair.rtcp);
    return pair;
  }

  private compactIdle(): void {
    if (this.idleHead > 256 && this.idleHead * 2 > this.idle.length) {
      this.idle.splice(0, this.idleHead);
      this.idleHead = 0;
    }
  }

  private closeAndReturn(pair: BoundPair): void {
    this.closePair(pair);
    this.pool.give(pair.rtpPort);
  }

  /** Resolves once the Node engine's reserve is full (for tests and benchmarks). */
  async settled(): Promise<void> {
    this.startFill();
    for (let i = 0; i < 10 && this.filling; i++) await this.filling;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.filling;
    for (const pair of this.ready.splice(0)) this.closePair(pair);
    for (const { pair } of this.idle.splice(0)) this.closePair(pair);
    this.idleHead = 0;
  }

  private refuse(why: Shortage): null {
    this.shortage = why;
    return null;
  }

  private noteTaken(count: number, now: number): void {
    const second = Math.floor(now / 1000);
    if (second !== this.second) {
      this.takenLastSecond = second === this.second + 1 ? this.takenThisSecond : 0;
      this.takenThisSecond = 0;
      this.second = second;
    }
    this.takenThisSecond += count;
  }

  /** The Node engine's reserve: one second of the recent demand, at least baseReserve. */
  private reserveTarget(): number {
    if (this.bindsAtOnce) return 0;
    const demand = Math.max(this.baseReserve, this.takenLastSecond, this.takenThisSecond);
    return Math.min(this.pool.capacity, demand);
  }

  private startFill(): void {
    if (this.closed || this.ready.length >= this.reserveTarget()) return;
    if (this.filling) {
      this.fillAgain = true; // pairs taken or released while binding: look again afterwards
      return;
    }
    this.fillAgain = false;
    this.filling = this.fill()
      .catch((err: Error) => this.logger?.warn('media.fill_failed', { error: err.message }))
      .finally(() => {
        this.filling = null;
        if (this.fillAgain) this.startFill();
      });
  }

  private async fill(): Promise<void> {
    while (!this.closed && this.ready.length < this.reserveTarget()) {
      const pair = this.idleReleasedBefore(performance.now() - QUIET_MS) ?? (await this.bindLater()) ?? this.idleReleasedBefore(Infinity);
      if (!pair) break;
      if (this.closed) this.closePair(pair);
      else this.ready.push(pair);
    }
  }

  /**
   * Binds the next free pair of the range on this thread (native engine). The same walk over the
   * range as bindLater(), which has to await each bind.
   */
  private bindNow(): BoundPair | null {
    const open = this.backend.openSocketNow!.bind(this.backend);
    const skipped: number[] = [];
    try {
      for (let tries = 0; tries < MAX_TRIES_PER_PAIR; tries++) {
        const rtpPort = this.pool.take();
        if (rtpPort === undefined) return this.refuse('range');
        let rtp: number | undefined;
        try {
          rtp = open(rtpPort);
          return { rtpPort, rtp, rtcp: open(rtpPort + 1) };
        } catch (err) {
          if (rtp !== undefined) this.backend.closeSocket(rtp);
          const limit = this.bindFailed(rtpPort, err as NodeJS.ErrnoException, skipped);
          if (limit) return this.refuse(limit);
        }
      }
      return this.refuse('range');
    } finally {
      for (const port of skipped) this.pool.give(port);
    }
  }

  /** Binds the next free pair of the range, waiting for the engine (Node engine). */
  private async bindLater(): Promise<BoundPair | null> {
    const skipped: number[] = [];
    try {
      for (let tries = 0; tries < MAX_TRIES_PER_PAIR; tries++) {
        if (this.closed) return this.refuse('closed');
        const rtpPort = this.pool.take();
        if (rtpPort === undefined) return this.refuse('range');
        let rtp: number | undefined;
        try {
          rtp = await this.backend.openSocket(rtpPort);
          return { rtpPort, rtp, rtcp: await this.backend.openSocket(rtpPort + 1) };
        } catch (err) {
          if (rtp !== undefined) this.backend.closeSocket(rtp);
          const limit = this.bindFailed(rtpPort, err as NodeJS.ErrnoException, skipped);
          if (limit) return this.refuse(limit);
        }
      }
      return this.refuse('range');
    } finally {
      for (const port of skipped) this.pool.give(port);
    }
  }

  /** A pair that could not be bound: its port goes back; returns the limit hit, if one was. */
  private bindFailed(rtpPort: number, err: NodeJS.ErrnoException, skipped: number[]): Shortage | null {
    skipped.push(rtpPort);
    if (err.code === 'EMFILE' || err.code === 'ENFILE' || err.code === 'ENOBUFS') return 'open-files';
    if (err.code === 'ENOSPC') return 'range'; // the native engine's socket table is full
    // A port in use by another program is expected in a shared range: skip it, retry later.
    if (err.code === 'EADDRINUSE') this.logger?.debug('media.port_in_use', { port: rtpPort });
    else this.logger?.warn('media.port_unavailable', { port: rtpPort, error: err.message });
    return null;
  }

  private closePair(pair: BoundPair): void {
    this.backend.closeSocket(pair.rtp);
    this.backend.closeSocket(pair.rtcp);
  }
}
