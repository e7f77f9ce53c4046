/**
 * One clock for every stream the server sends itself (prompts, tones, comfort silence): packet n
 * of a stream is due at its start + n x 20 ms on the monotonic clock (performance.now), so a long
 * prompt never drifts however late single wake-ups are.
 *
 * - One timer for all streams, set to the earliest due slot and unref'd: a pacer never keeps the
 *   process alive (the endpoints' sockets do, while they are open).
 * - A new stream starts on one of `phases` start offsets of the 20 ms interval (5 ms apart by
 *   default), the least loaded one: 400 streams started at once make four wake-ups of 100 packets
 *   every 20 ms rather than one of 400, and each stream keeps its offset for its whole life.
 * - A late wake-up (a busy or paused event loop) sends the slots it missed at once, up to
 *   `maxBurst` per stream; older ones are skipped (onSlot is told how many, so that the RTP
 *   timestamp still follows the clock) and the stream carries on from the current slot.
 */
import { performance } from 'node:perf_hooks';

export interface PacedStream {
  /**
   * The stream's next slot is due: send its packet now. `skipped`: slots dropped just before this
   * one because the loop was too late to catch up with them. Must not throw.
   */
  onSlot(skipped: number): void;
}

/** Where the pacer reads the time and sets its timer (a fake one in tests). */
export interface PacerClock {
  /** Milliseconds on a monotonic scale. */
  now(): number;
  /** A one-shot timer that does not keep the process alive. */
  setTimer(ms: number, fn: () => void): object;
  clearTimer(handle: object): void;
}

const EVENT_LOOP_CLOCK: PacerClock = {
  now: () => performance.now(),
  setTimer(ms, fn) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimer(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

export interface PacerOptions {
  /** Slot interval, ms; default 20. */
  intervalMs?: number;
  /** Start offsets spread over the interval; default 4. */
  phases?: number;
  /** Slots of one stream sent in one wake-up at most (catching up), default 4. */
  maxBurst?: number;
  /** Default: performance.now() and unref'd setTimeout. */
  clock?: PacerClock;
}

export interface PacerStats {
  streams: number;
  wakeups: number;
  /** Slots delivered (onSlot calls). */
  slots: number;
  /** Slots skipped because a wake-up was later than maxBurst slots. */
  skipped: number;
  /** Wake-ups LATE_WAKEUP_MS or more after their time (a busy or stalled event loop). */
  lateWakeups: number;
}

/** A stream's place on the pacer; remove() takes it off (idempotent). */
export interface PacerSlot {
  remove(): void;
}

/** A slot due this close to now is sent at once rather than after another timer turn (timers have 1 ms resolution). */
const EARLY_MS = 1;
export const LATE_WAKEUP_MS = 5;

class Entry implements PacerSlot {
  removed = false;
  constructor(
    private readonly pacer: Pacer,
    readonly stream: PacedStream,
    readonly phase: number,
    public due: number,
  ) {}
  remove(): void {
    if (this.removed) return;
    this.removed = true;
    this.pacer.removed(this);
  }
}

export class Pacer {
  readonly intervalMs: number;
  /** Slots of one stream delivered in one wake-up at most. */
  readonly maxBurst: number;
  private readonly phases: number;
  private readonly clock: PacerClock;
  private readonly epoch: number;
  private readonly phaseLoad: number[];
  private entries: Entry[] = [];
  private live = 0;
  private timer: object | null = null;
  private timerDue = Infinity;
  private wakeups = 0;
  private slots = 0;
  private skipped = 0;
  private lateWakeups = 0;

  constructor(opts: PacerOptions = {}) {
    this.intervalMs = opts.intervalMs ?? 20;
    this.phases = opts.phases ?? 4;
    this.maxBurst = opts.maxBurst ?? 4;
    this.clock = opts.clock ?? EVENT_LOOP_CLOCK;
    this.epoch = this.clock.now();
    if (!(this.intervalMs > 0)) throw new RangeError('pacer: intervalMs must be > 0');
    if (!(Number.isInteger(this.phases) && this.phases >= 1)) throw new RangeError('pacer: phases must be an integer >= 1');
    if (!(Number.isInteger(this.maxBurst) && this.maxBurst >= 1)) throw new RangeError('pacer: maxBurst must be an integer >= 1');
    this.phaseLoad = new Array<number>(this.phases).fill(0);
  }

  /** Starts pacing `stream`: its first slot is due within one interval (on the least loaded phase). */
  add(stream: PacedStream): PacerSlot {
    const now = this.clock.now();
    const phaseMs = this.intervalMs / this.phases;
    const least = Math.min(...this.phaseLoad);
    let phase = 0;
    let due = Infinity;
    for (let p = 0; p < this.phases; p++) {
      if (this.phaseLoad[p] !== least) continue;
      const offset = this.epoch + p * phaseMs;
      const t = offset + Math.ceil((now - offset) / this.intervalMs) * this.intervalMs;
      if (t < due) [phase, due] = [p, t];
    }
    const entry = new Entry(this, stream, phase, due);
    this.phaseLoad[phase]!++;
    this.entries.push(entry);
    this.live++;
    this.arm(due);
    return entry;
  }

  get streamCount(): number {
    return this.live;
  }

  /** Streams per start phase. */
  load(): readonly number[] {
    return [...this.phaseLoad];
  }

  stats(): PacerStats {
    return { streams: this.live, wakeups: this.wakeups, slots: this.slots, skipped: this.skipped, lateWakeups: this.lateWakeups };
  }

  /** @internal Entry.remove() */
  removed(entry: Entry): void {
    this.phaseLoad[entry.phase]!--;
    this.live--;
    // The entry itself leaves the list at the next wake-up, which walks the list anyway.
    if (this.live === 0) {
      this.entries = this.entries.filter((e) => !e.removed);
      this.disarm();
    }
  }

  private arm(due: number): void {
    if (this.timer && this.timerDue <= due) return;
    this.disarm();
    this.timerDue = due;
    // Rounded down: Node fires a timer on its loop clock, whole milliseconds behind the real one,
    // so this wakes up at most about 1 ms early (caught by EARLY_MS, or re-armed) rather than up
    // to 2 ms late.
    this.timer = this.clock.setTimer(Math.max(0, Math.floor(due - this.clock.now())), this.wake);
  }

  private disarm(): void {
    if (this.timer) this.clock.clearTimer(this.timer);
    this.timer = null;
    this.timerDue = Infinity;
  }

  private readonly wake = (): void => {
    const now = this.clock.now();
    if (now - this.timerDue >= LATE_WAKEUP_MS) this.lateWakeups++;
    this.timer = null;
    this.timerDue = Infinity;
    this.wakeups++;
    const horizon = now + EARLY_MS;
    const interval = this.intervalMs;
    const list = this.entries;
    const count = list.length;
    let next = Infinity;
    let anyRemoved = false;
    for (let i = 0; i < count; i++) {
      const e = list[i]!;
      if (!e.removed && e.due <= horizon) this.deliver(e, Math.floor((horizon - e.due) / interval) + 1);
      if (e.removed) anyRemoved = true;
      else if (e.due < next) next = e.due;
    }
    if (anyRemoved) this.entries = this.entries.filter((e) => !e.removed);
    // Streams added by a callback armed the timer for themselves already.
    if (this.live > 0 && next < Infinity) this.arm(next);
  };

  private deliver(e: Entry, dueSlots: number): void {
    let skipped = 0;
    if (dueSlots > this.maxBurst) {
      skipped = dueSlots - this.maxBurst;
      e.due += skipped * this.intervalMs;
      this.skipped += skipped;
      dueSlots = this.maxBurst;
    }
    for (let n = 0; n < dueSlots && !e.removed; n++) {
      e.due += this.intervalMs;
      this.slots++;
      try {
        e.stream.onSlot(n === 0 ? skipped : 0);
      } catch (err) {
        // A stream must not throw; if one does, it alone stops, the others keep their clock.
        e.remove();
        process.emitWarning(`pacer: a stream threw and was removed: ${(err as Error)?.stack ?? String(err)}`);
      }
    }
  }
}

let shared: Pacer | null = null;

/** The process-wide pacer every endpoint uses unless given its own. */
export function sharedPacer(): Pacer {
  return (shared ??= new Pacer());
}
