import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Logger } from '../../lib/log.js';

test('JSON format writes one parseable object a line with time, level and event', () => {
  const lines: string[] = [];
  const log = new Logger({ format: 'json', write: (l) => lines.push(l), now: () => Date.UTC(2026, 10, 26, 8, 0, 0) });
  log.info('server.started', { port: 5060 });
  assert.equal(lines.length, 1);
  assert.deepEqual(JSON.parse(lines[0]!), { time: '2026-11-26T08:00:00.000Z', level: 'info', event: 'server.started', port: 5060 });
});

test('text format is readable and quotes values with spaces', () => {
  const lines: string[] = [];
  const log = new Logger({ format: 'text', write: (l) => lines.push(l), now: () => 0 });
  log.warn('x.y', { hint: 'do this now', n: 3 });
  assert.equal(lines[0], '00:00:00.000 WARN  x.y hint="do this now" n=3');
});

test('levels below the minimum are not written', () => {
  const lines: string[] = [];
  const log = new Logger({ level: 'warn', format: 'json', write: (l) => lines.push(l) });
  log.info('a');
  log.debug('b');
  log.error('c');
  assert.equal(lines.length, 1);
  assert.equal(JSON.parse(lines[0]!).event, 'c');
});

test('peer events are limited per second and the held-back count is reported', () => {
  const lines: string[] = [];
  let t = 1000;
  const log = new Logger({ format: 'json', write: (l) => lines.push(l), now: () => t, peerEventsPerSecond: 3 });
  for (let i = 0; i < 100; i++) log.peer('warn', 'sip.bad_message', { i });
  assert.equal(lines.length, 3);
  t += 1000;
  log.peer('warn', 'sip.bad_message', { i: 100 });
  assert.equal(lines.length, 5);
  assert.deepEqual(
    { event: JSON.parse(lines[3]!).event, count: JSON.parse(lines[3]!).count },
    { event: 'log.suppressed', count: 97 },
  );
});
