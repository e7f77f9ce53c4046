import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { Pacer, type PacerClock } from '../../../lib/media/endpoint/pacer.js';
import { waitFor } from '../../helpers/keep-alive.js';
import { runUntilExit } from '../../helpers/child-exit.js';

/**
 * A clock the test moves: advance() fires timers at their due time, as an idle event loop would;
 * stall() moves time on without firing anything, as a busy loop does, so that the next advance()
 * fires what became due late, at the late time.
 */
class TestClock implements PacerClock {
  private current = 1000;
  private timers: Array<{ due: number; fn: () => void }> = [];

  now(): number {
    return this.current;
  }
  setTimer(ms: number, fn: () => void): object {
    const t = { due: this.current + ms, fn };
    this.timers.push(t);
    return t;
  }
  clearTimer(handle: object): void {
    this.timers = this.timers.filter((t) => t !== handle);
  }
  get pending(): number {
    return this.timers.length;
  }
  advance(ms: number): void {
    const target = this.current + ms;
    for (let fired = 0; fired < 1_000_000; fired++) {
      const due = this.timers.filter((t) => t.due <= target).sort((x, y) => x.due - y.due)[0];
      if (due === undefined) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.current = Math.max(this.current, due.due);
      due.fn();
    }
    this.current = target;
  }
  stall(ms: number): void {
    this.current += ms;
  }
}

/** A stream that records when its slots came (on the pacer's clock) and how many were skipped. */
class Recorder {
  readonly times: number[] = [];
  readonly skips: number[] = [];
  constructor(private readonly clock: { now(): number } = performance) {}
  onSlot(skipped: number): void {
    this.times.push(this.clock.now());
    this.skips.push(skipped);
  }
  /** Slots accounted for: delivered plus skipped. */
  get slots(): number {
    return this.times.length + this.skips.reduce((a, b) => a + b, 0);
  }
}

test('a stream gets a slot every 20 ms, and over 3 s the count follows the clock (no drift)', () => {
  const clock = new TestClock();
  const pacer = new Pacer({ clock });
  const rec = new Recorder(clock);
  const added = clock.now();
  const slot = pacer.add(rec);
  // Wake-ups at odd moments (the loop's own timers are whole milliseconds) change nothing.
  for (let i = 0; i < 1000; i++) clock.advance(3);
  slot.remove();
  // Slot n is due at start + 20 n, the start within one interval after add().
  assert.equal(rec.slots, 151, 'one slot every 20 ms over 3 s, the first at once');
  assert.ok(rec.times.every((t, i) => t === added + 20 * i), `slots on the clock: ${rec.times.slice(0, 5).join(', ')}...`);
  assert.ok(rec.skips.every((n) => n === 0));
  assert.equal(clock.pending, 0, 'no timer left once the last stream is gone');
});

test('a late wake-up sends the missed slots at once up to maxBurst, skips the older ones, then keeps the clock', () => {
  const clock = new TestClock();
  const pacer = new Pacer({ maxBurst: 4, clock });
  const rec = new Recorder(clock);
  const added = clock.now();
  const slot = pacer.add(rec);
  clock.advance(20); // slots 0 and 1
  assert.equal(rec.times.length, 2);
  clock.stall(200); // the event loop is busy: 10 slots go by
  clock.advance(0);
  // Due now: slots 2..11 (10); the 4 latest come at once, the 6 older ones are skipped.
  assert.deepEqual(rec.times.slice(2), [added + 220, added + 220, added + 220, added + 220], 'the 4 catch-up slots came together');
  assert.deepEqual(rec.skips.slice(2), [6, 0, 0, 0], 'older slots skipped, and reported with the first of the burst');
  clock.advance(100);
  slot.remove();
  assert.deepEqual(rec.times.slice(6), [added + 240, added + 260, added + 280, added + 300, added + 320], 'back on the clock');
  assert.deepEqual(rec.skips.slice(6), [0, 0, 0, 0, 0], 'nothing skipped after the burst');
  assert.equal(rec.slots, 17, 'every slot of 320 ms accounted for (delivered or skipped)');
  assert.equal(pacer.stats().lateWakeups, 1);
});

test('400 streams share one timer: spread over 4 phases, 200 wake-ups a second', () => {
  const clock = new TestClock();
  const pacer = new Pacer({ clock });
  const recs = Array.from({ length: 400 }, () => new Recorder(clock));
  const slots = recs.map((r) => pacer.add(r));
  assert.deepEqual(pacer.load(), [100, 100, 100, 100]);
  clock.advance(100);
  const wakeups = pacer.stats().wakeups;
  clock.advance(1000);
  assert.equal(pacer.stats().wakeups - wakeups, 200, 'four phases, 50 times a second');
  assert.ok(recs.every((r) => r.times.length >= 55 && r.times.length <= 56), 'every stream kept its rate');
  for (const s of slots) s.remove();
  assert.equal(pacer.streamCount, 0);
  const after = pacer.stats().wakeups;
  clock.advance(100);
  assert.equal(pacer.stats().wakeups, after, 'no wake-ups without streams');
  assert.equal(clock.pending, 0);
});

test('remove() stops a stream at once, also from inside its own slot; a throwing stream alone is dropped', async () => {
  const pacer = new Pacer();
  const kept = new Recorder();
  const keptSlot = pacer.add(kept);
  let selfCalls = 0;
  const selfSlot = pacer.add({ onSlot: () => (selfCalls++, selfSlot.remove()) });
  let throwCalls = 0;
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  pacer.add({
    onSlot: () => {
      throwCalls++;
      throw new Error('boom');
    },
  });
  try {
    await waitFor(() => kept.times.length >= 10 && warnings.length > 0, 'ten slots of the kept stream and the warning');
    assert.equal(selfCalls, 1);
    assert.equal(throwCalls, 1);
    assert.match(warnings[0]!, /boom/);
    assert.equal(pacer.streamCount, 1);
  } finally {
    process.off('warning', onWarning);
    keptSlot.remove();
  }
});

test('the pacer never keeps the process alive (its timer is unref\'d)', async () => {
  const pacerUrl = new URL('../../../lib/media/endpoint/pacer.js', import.meta.url).href;
  const script = `import { Pacer } from ${JSON.stringify(pacerUrl)};
    const pacer = new Pacer();
    for (let i = 0; i < 10; i++) pacer.add({ onSlot() {} });
    console.log('streams', pacer.streamCount);`;
  const { code, signal, out } = await runUntilExit(script);
  assert.equal(signal, null, 'the child had to be killed: something kept it alive');
  assert.equal(code, 0);
  assert.equal(out.trim(), 'streams 10');
});
