import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock, systemClock } from '../../../lib/sip/transaction/clock.js';
import { ExpiryScheduler, type Expirable } from '../../../lib/sip/transaction/expiry-queue.js';
import { keepAlive } from '../../helpers/keep-alive.js';

test('FakeClock fires due timers in time order, at their due time, including timers scheduled by fired timers', () => {
  const clock = new FakeClock();
  const log: string[] = [];
  clock.setTimer(300, () => log.push(`c@${clock.now()}`));
  clock.setTimer(100, () => {
    log.push(`a@${clock.now()}`);
    clock.setTimer(50, () => log.push(`nested@${clock.now()}`));
  });
  clock.setTimer(100, () => log.push(`b@${clock.now()}`));
  clock.advance(299);
  assert.deepEqual(log, ['a@100', 'b@100', 'nested@150']);
  assert.equal(clock.now(), 299);
  clock.advance(1);
  assert.deepEqual(log.at(-1), 'c@300');
  assert.equal(clock.pending, 0);
});

test('FakeClock.clearTimer cancels a pending timer', () => {
  const clock = new FakeClock();
  let fired = 0;
  const h = clock.setTimer(10, () => fired++);
  clock.clearTimer(h);
  clock.advance(100);
  assert.equal(fired, 0);
  assert.equal(clock.pending, 0);
});

test('systemClock runs a timer on the event loop and can cancel one', async () => {
  const cancelled = systemClock.setTimer(1, () => assert.fail('cancelled timer fired'));
  systemClock.clearTimer(cancelled);
  const start = systemClock.now();
  // systemClock's timers are unref'd: alone they would let the event loop end before they fire.
  await keepAlive(new Promise<void>((resolve) => systemClock.setTimer(5, resolve)), 'a 5 ms systemClock timer');
  assert.ok(systemClock.now() - start >= 4);
});

function target(log: number[], clock: FakeClock): Expirable & { expirySeq: number } {
  const t = { expirySeq: 0, onExpiry: () => void log.push(clock.now()) };
  return t;
}

test('ExpiryScheduler fires each entry after its delay; a bumped expirySeq cancels it', () => {
  const clock = new FakeClock();
  const sched = new ExpiryScheduler(clock, 0);
  const log: number[] = [];
  const a = target(log, clock);
  const b = target(log, clock);
  const c = target(log, clock);
  sched.schedule(a, 1000);
  clock.advance(10);
  sched.schedule(b, 1000);
  sched.schedule(c, 50);
  b.expirySeq++;
  clock.advance(2000);
  assert.deepEqual(log, [60, 1000]);
  assert.equal(sched.size, 0);
});

test('ExpiryScheduler coalesces wake-ups to its resolution after a firing', () => {
  const clock = new FakeClock();
  const sched = new ExpiryScheduler(clock, 100);
  const log: number[] = [];
  sched.schedule(target(log, clock), 1000);
  clock.advance(10);
  sched.schedule(target(log, clock), 1000);
  clock.advance(2000);
  assert.deepEqual(log, [1000, 1100], 'second one is at most 100 ms late, never early');
});

test('ExpiryScheduler keeps going when one target throws, then reports the error', () => {
  const clock = new FakeClock();
  const sched = new ExpiryScheduler(clock, 0);
  const log: number[] = [];
  sched.schedule({ expirySeq: 0, onExpiry: () => { throw new Error('boom'); } }, 10);
  sched.schedule(target(log, clock), 10);
  assert.throws(() => clock.advance(10), /boom/);
  assert.deepEqual(log, [10]);
  sched.schedule(target(log, clock), 10);
  clock.advance(10);
  assert.deepEqual(log, [10, 20], 'the queue still works');
});

test('ExpiryScheduler.close() clears its clock timers', () => {
  const clock = new FakeClock();
  const sched = new ExpiryScheduler(clock);
  const log: number[] = [];
  sched.schedule(target(log, clock), 10);
  sched.schedule(target(log, clock), 20);
  sched.close();
  assert.equal(clock.pending, 0);
  clock.advance(100);
  assert.deepEqual(log, []);
});
