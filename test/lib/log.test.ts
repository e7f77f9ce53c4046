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

test('a node name goes into every JSON line, never into the readable terminal form', () => {
  const lines: string[] = [];
  const json = new Logger({ format: 'json', node: 'pbx-2', write: (l) => lines.push(l), now: () => 0 });
  json.info('server.started', { port: 5060 });
  json.peer('warn', 'sip.bad_message', { from: '192.0.2.1' });
  assert.deepEqual(lines.map((l) => JSON.parse(l).node), ['pbx-2', 'pbx-2']);
  assert.deepEqual(Object.keys(JSON.parse(lines[0]!)), ['time', 'level', 'node', 'event', 'port']);
  const text: string[] = [];
  new Logger({ format: 'text', node: 'pbx-2', write: (l) => text.push(l), now: () => 0 }).info('server.started', { port: 5060 });
  assert.equal(text[0], '00:00:00.000 INFO  server.started port=5060');
  const none: string[] = [];
  new Logger({ format: 'json', node: '', write: (l) => none.push(l), now: () => 0 }).info('x.y');
  assert.equal('node' in JSON.parse(none[0]!), false, 'an empty name adds nothing');
});
