/**
 * Time source for the transaction layer. Injected so that the RFC 3261 §17 timers can be driven
 * by a fake clock in tests and by the event loop in production.
 */

/** Opaque handle returned by {@link Clock.setTimer}. */
export type TimerHandle = object;

export interface Clock {
  /** Milliseconds on a monotonic scale (only differences are meaningful). */
  now(): number;
  setTimer(ms: number, fn: () => void): TimerHandle;
  clearTimer(h: TimerHandle): void;
}

/** The event-loop clock. Timers are unref'd: a pending retransmission never keeps the process alive. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer(ms: number, fn: () => void): TimerHandle {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimer(h: TimerHandle): void {
    clearTimeout(h as NodeJS.Timeout);
  },
};

interface FakeTimer {
  due: number;
  seq: number;
  fn: (() => void) | null;
}

/**
 * Deterministic clock for tests. Time moves only through {@link FakeClock.advance}, which fires
 * due timers in (due time, creation order), including timers that fired timers schedule.
 */
export class FakeClock implements Clock {
  private current: number;
  private seq = 0;
  private timers: FakeTimer[] = [];

  constructor(start = 0) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    const t: FakeTimer = { due: this.current + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.push(t);
    return t;
  }

  clearTimer(h: TimerHandle): void {
    const t = h as FakeTimer;
    t.fn = null;
    const i = this.timers.indexOf(t);
    if (i >= 0) this.timers.splice(i, 1);
  }

  /** Number of timers scheduled and not yet fired or cleared. */
  get pending(): number {
    return this.timers.length;
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way, at its due time. */
  advance(ms: number): void {
    const target = this.current + ms;
    for (let fired = 0; fired < 10_000_000; fired++) {
      const next = this.earliest(target);
      if (next === null) break;
      this.timers.splice(this.timers.indexOf(next), 1);
      this.current = next.due;
      const fn = next.fn;
      next.fn = null;
      fn?.();
    }
    this.current = target;
  }

  private earliest(limit: number): FakeTimer | null {
    let best: FakeTimer | null = null;
    for (const t of this.timers) {
      if (t.due > limit) continue;
      if (best === null || t.due < best.due || (t.due === best.due && t.seq < best.seq)) best = t;
    }
    return best;
  }
}
