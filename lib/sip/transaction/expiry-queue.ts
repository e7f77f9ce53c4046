/**
 * Cheap scheduling for the long, fixed-length transaction timers (B, D, F, H, I, J, K, L, M).
 *
 * A registrar under load keeps hundreds of thousands of transactions waiting in Completed for
 * Timer J. Giving each its own clock timer would cost one timer object and one closure per
 * transaction. Instead, every timer of one duration goes into a FIFO: entries are appended in
 * deadline order, so the queue is sorted for free and a single clock timer (armed for the head)
 * serves all of them. Cancelling is lazy: the target bumps its `expirySeq`, and stale entries
 * are skipped when they reach the head.
 */
import type { Clock, TimerHandle } from './clock.js';

export interface Expirable {
  /**
   * Incremented by the owner to cancel its pending long timer. An owner that schedules once in
   * its life and ignores onExpiry() once it has moved on may keep it constant.
   */
  readonly expirySeq: number;
  onExpiry(): void;
}

const COMPACT_AT = 4096;

class FixedDelayQueue {
  private deadlines: number[] = [];
  private targets: Expirable[] = [];
  private seqs: number[] = [];
  private head = 0;
  private handle: TimerHandle | null = null;
  private readonly fire = (): void => this.expire();

  constructor(
    private readonly clock: Clock,
    private readonly delay: number,
    private readonly resolution: number,
  ) {}

  get size(): number {
    return this.targets.length - this.head;
  }

  add(target: Expirable): void {
    this.deadlines.push(this.clock.now() + this.delay);
    this.targets.push(target);
    this.seqs.push(target.expirySeq);
    if (this.handle === null) this.handle = this.clock.setTimer(this.delay, this.fire);
  }

  clear(): void {
    if (this.handle !== null) this.clock.clearTimer(this.handle);
    this.handle = null;
    this.deadlines = [];
    this.targets = [];
    this.seqs = [];
    this.head = 0;
  }

  private expire(): void {
    this.handle = null;
    const now = this.clock.now();
    let firstError: unknown = undefined;
    let failed = false;
    while (this.head < this.targets.length && this.deadlines[this.head]! <= now) {
      const i = this.head++;
      const target = this.targets[i]!;
      const live = target.expirySeq === this.seqs[i];
      (this.targets as (Expirable | undefined)[])[i] = undefined;
      if (!live) continue;
      try {
        target.onExpiry();
      } catch (err) {
        if (!failed) firstError = err;
        failed = true;
      }
    }
    this.compact();
    if (this.head < this.targets.length && this.handle === null) {
      // Coalesce: under load, wake at most once per `resolution` ms rather than once per entry.
      const wait = Math.max(this.deadlines[this.head]! - now, this.resolution);
      this.handle = this.clock.setTimer(wait, this.fire);
    }
    if (failed) throw firstError;
  }

  private compact(): void {
    if (this.head === this.targets.length) {
      this.deadlines.length = 0;
      this.targets.length = 0;
      this.seqs.length = 0;
      this.head = 0;
    } else if (this.head >= COMPACT_AT && this.head * 2 >= this.targets.length) {
      this.deadlines.splice(0, this.head);
      this.targets.splice(0, this.head);
      this.seqs.splice(0, this.head);
      this.head = 0;
    }
  }
}

/** One FIFO per distinct delay (64*T1 serves B, F, H, J, L and M at once). */
export class ExpiryScheduler {
  private readonly queues = new Map<number, FixedDelayQueue>();
  /** The queue used last: nearly every schedule() call of a registrar is for Timer J. */
  private lastDelay = -1;
  private lastQueue: FixedDelayQueue | null = null;

  /**
   * @param resolution once a queue has fired, it waits at least this long before firing again;
   *   a timer may thus run late by up to `resolution` ms (RFC 3261 timers are lower bounds).
   */
  constructor(
    private readonly clock: Clock,
    private readonly resolution = 100,
  ) {}

  /** Calls `target.onExpiry()` after `delay` ms unless `target.expirySeq` changes first. */
  schedule(target: Expirable, delay: number): void {
    let q = delay === this.lastDelay ? this.lastQueue : this.queues.get(delay);
    if (q === undefined || q === null) {
      q = new FixedDelayQueue(this.clock, delay, this.resolution);
      this.queues.set(delay, q);
    }
    this.lastDelay = delay;
    this.lastQueue = q;
    q.add(target);
  }

  /** Entries still queued (including cancelled ones not yet skipped). */
  get size(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.size;
    return n;
  }

  close(): void {
    for (const q of this.queues.values()) q.clear();
    this.queues.clear();
    this.lastDelay = -1;
    this.lastQueue = null;
  }
}
