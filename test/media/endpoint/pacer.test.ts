import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { Pacer } from '../../../lib/media/endpoint/pacer.js';
import { keepAlive, waitFor } from '../../helpers/keep-alive.js';
import { runUntilExit } from '../../helpers/child-exit.js';

/** A stream that records when its slots came and how many were skipped. */
class Recorder {
  readonly times: number[] = [];
  readonly skips: number[] = [];
  onSlot(skipped: number): void {
    this.times.push(performance.now());
    this.skips.push(skipped);
  }
  /** Slots accounted for: delivered plus skipped. */
  get slots(): number {
    return this.times.length + this.skips.reduce((a, b) => a + b, 0);
  }
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

test('a stream gets a slot every 20 ms, and over 3 s the count follows the clock (no drift)', async () => {
  const pacer = new Pacer();
  const rec = new Recorder();
  const added = performance.now();
  const slot = pacer.add(rec);
  try {
    await waitFor(() => rec.slots >= 150, 'a stream to get 150 slots', 10_000);
    const now = performance.now();
    // Slot n is due at start + 20 n, with start within one interval after add(): never more
    // slots than the clock allows; fewer only by the wake-ups that the load has delayed.
    const allowed = Math.floor((now - added) / 20) + 1;
    assert.ok(rec.slots <= allowed, `${rec.slots} slots after ${(now - added).toFixed(1)} ms: more than the clock allows (${allowed})`);
    assert.ok(rec.slots >= allowed - 3, `${rec.slots} slots after ${(now - added).toFixed(1)} ms: fell behind the clock (${allowed})`);
    const intervals = rec.times.slice(1).map((t, i) => t - rec.times[i]!);
    assert.ok(Math.abs(median(intervals) - 20) <= 1.5, `median interval ${median(intervals).toFixed(2)} ms`);
  } finally {
    slot.remove();
  }
});

test('a late wake-up sends the missed slots at once up to maxBurst, skips the older ones, then keeps the clock', async () => {
  const pacer = new Pacer({ maxBurst: 4 });
  const rec = new Recorder();
  const added = performance.now();
  const slot = pacer.add(rec);
  try {
    await waitFor(() => rec.times.length >= 2, 'the first slots');
    const before = rec.times.length;
    const stallUntil = performance.now() + 200; // the event loop is busy: 10 slots go by
    while (performance.now() < stallUntil);
    await waitFor(() => rec.times.length >= before + 6, 'slots after the stall');
    const burst = rec.times.slice(before, before + 4);
    assert.ok(burst[3]! - burst[0]! < 3, `the 4 catch-up slots came together (${burst.map((t) => t.toFixed(1)).join(', ')})`);
    assert.ok(rec.skips[before]! >= 4, `older slots skipped, and reported with the first of the burst (${rec.skips[before]})`);
    assert.deepEqual(rec.skips.slice(before + 1), new Array<number>(rec.skips.length - before - 1).fill(0), 'nothing skipped after the burst');
    const allowed = Math.floor((performance.now() - added) / 20) + 1;
    assert.ok(rec.slots <= allowed && rec.slots >= allowed - 3, `${rec.slots} slots accounted for, the clock says ${allowed}`);
  } finally {
    slot.remove();
  }
});

test('400 streams share one timer: spread over 4 phases, about 200 wake-ups a second', async () => {
  const pacer = new Pacer();
  const recs = Array.from({ length: 400 }, () => new Recorder());
  const slots = recs.map((r) => pacer.add(r));
  try {
    assert.deepEqual(pacer.load(), [100, 100, 100, 100]);
    await waitFor(() => recs.every((r) => r.times.length >= 2), 'every stream to get 2 slots');
    const start = { t: performance.now(), wakeups: pacer.stats().wakeups };
    await waitFor(() => performance.now() - start.t >= 1000, 'a second');
    const wakeupsPerSecond = ((pacer.stats().wakeups - start.wakeups) * 1000) / (performance.now() - start.t);
    assert.ok(wakeupsPerSecond <= 400, `${wakeupsPerSecond.toFixed(0)} wake-ups a second`);
    assert.ok(recs.every((r) => r.slots >= 50), 'every stream kept its rate');
  } finally {
    for (const s of slots) s.remove();
  }
  assert.equal(pacer.streamCount, 0);
  const wakeups = pacer.stats().wakeups;
  await keepAlive(new Promise((r) => setTimeout(r, 100)), 'a pause');
  assert.equal(pacer.stats().wakeups, wakeups, 'no wake-ups without streams');
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
