import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eventCodeToKey, parseDtmfInfo, TelephoneEventReceiver, type TelephoneEventPacket } from '../../../lib/media/endpoint/dtmf.js';

/** One RFC 4733 §2.3 event block. */
function block(code: number, duration: number, end = false, volume = 10): number[] {
  return [code, (end ? 0x80 : 0) | volume, duration >>> 8, duration & 0xff];
}

function packet(timestamp: number, blocks: number[][], marker = false, ssrc = 0x1234): TelephoneEventPacket {
  return { ssrc, timestamp, marker, payload: Uint8Array.from(blocks.flat()) };
}

/** What a phone sends for one press: start (marker), updates every 20 ms, three end packets. */
function press(code: number, timestamp: number, ms = 100): TelephoneEventPacket[] {
  const out = [packet(timestamp, [block(code, 160)], true)];
  for (let d = 320; d < ms * 8; d += 160) out.push(packet(timestamp, [block(code, d)]));
  for (let i = 0; i < 3; i++) out.push(packet(timestamp, [block(code, ms * 8, true)]));
  return out;
}

function keysOf(receiver: TelephoneEventReceiver, packets: TelephoneEventPacket[]): string {
  return packets.flatMap((p) => [...receiver.receive(p)]).join('');
}

test('event codes 0-15 are the keys 0-9 * # A-D, others none', () => {
  assert.equal([...Array(16).keys()].map((c) => eventCodeToKey(c)).join(''), '0123456789*#ABCD');
  assert.equal(eventCodeToKey(16), null);
  assert.equal(eventCodeToKey(255), null);
});

test('a press counts once: start, updates and the three end packets', () => {
  const r = new TelephoneEventReceiver();
  assert.equal(keysOf(r, press(5, 1000)), '5');
});

test('every key once, in order; the same key pressed again (new timestamp) counts again', () => {
  const r = new TelephoneEventReceiver();
  const codes = [1, 2, 3, 10, 11, 12, 15, 0, 0, 0];
  const packets = codes.flatMap((c, i) => press(c, 8000 + i * 2000));
  assert.equal(keysOf(r, packets), '123*#AD000');
});

test('a lost start packet: the first update counts; late duplicates of older events do not', () => {
  const r = new TelephoneEventReceiver();
  const first = press(7, 5000);
  const second = press(8, 7000);
  assert.equal(keysOf(r, first.slice(1)), '7');
  assert.equal(keysOf(r, second), '8');
  assert.equal(keysOf(r, [first[first.length - 1]!, first[0]!]), '', 'reordered end and start of the first press');
});

test('timestamps wrap around 2^32 without confusion', () => {
  const r = new TelephoneEventReceiver();
  assert.equal(keysOf(r, [...press(1, 0xffffff00), ...press(2, 0x00000400)]), '12');
});

test('event codes other than DTMF keys are ignored, short payloads too', () => {
  const r = new TelephoneEventReceiver();
  assert.equal(keysOf(r, press(16, 100)), '', 'flash');
  assert.equal(keysOf(r, press(70, 2000)), '');
  assert.deepEqual([...r.receive({ ssrc: 1, timestamp: 9, marker: true, payload: Uint8Array.from([5, 0, 0]) })], []);
});

test('a new SSRC starts afresh', () => {
  const r = new TelephoneEventReceiver();
  assert.equal(keysOf(r, press(4, 1000)), '4');
  assert.equal(keysOf(r, press(4, 1000).map((p) => ({ ...p, ssrc: 0x9999 }))), '4');
});

test('RFC 4733 §2.5.1.3: the segments of a long event are one press', () => {
  const r = new TelephoneEventReceiver();
  const start = 50_000;
  const segment1 = [packet(start, [block(9, 160)], true), packet(start, [block(9, 0xffff)])];
  const segment2 = [packet(start + 0xffff, [block(9, 160)]), packet(start + 0xffff, [block(9, 800, true)])];
  assert.equal(keysOf(r, [...segment1, ...segment2]), '9');
});

test('RFC 4733 §2.5.1.5: consecutive events packed in one packet each count once', () => {
  const r = new TelephoneEventReceiver();
  // 1 (800 units) then 2, which starts where 1 ended; later packets repeat the ending of 2.
  assert.equal(keysOf(r, [packet(1000, [block(1, 800, true), block(2, 160)], true)]), '12');
  assert.equal(keysOf(r, [packet(1800, [block(2, 480, true)])]), '');
});

test('SIP INFO bodies: application/dtmf-relay and application/dtmf', () => {
  assert.equal(parseDtmfInfo('application/dtmf-relay', 'Signal=5\r\nDuration=160\r\n'), '5');
  assert.equal(parseDtmfInfo('Application/DTMF-Relay; charset=utf-8', 'signal= #\nduration=250'), '#');
  assert.equal(parseDtmfInfo('application/dtmf-relay', 'Signal=*\r\nDuration=160'), '*');
  assert.equal(parseDtmfInfo('application/dtmf-relay', 'Signal=11\r\nDuration=160'), '#', 'event code');
  assert.equal(parseDtmfInfo('application/dtmf-relay', 'Signal=a\r\n'), 'A');
  assert.equal(parseDtmfInfo('application/dtmf', '5'), '5');
  assert.equal(parseDtmfInfo('application/dtmf', ' 10\r\n'), '*');
  assert.equal(parseDtmfInfo('application/dtmf-relay', 'Duration=160'), null, 'no Signal line');
  assert.equal(parseDtmfInfo('application/dtmf-relay', 'Signal=16\r\n'), null, 'not a key');
  assert.equal(parseDtmfInfo('application/dtmf-relay', 'Signal=55\r\n'), null);
  assert.equal(parseDtmfInfo('application/dtmf', ''), null);
  assert.equal(parseDtmfInfo('application/sdp', 'Signal=5'), null, 'other content types');
});
