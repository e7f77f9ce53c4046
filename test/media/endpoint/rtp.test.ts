import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeRtp, encodeRtp, RTP_HEADER_BYTES, writeRtpHeader } from '../../../lib/media/endpoint/rtp.js';
import { mulberry32 } from '../../helpers/prng.js';

const base = { marker: true, payloadType: 8, sequenceNumber: 0xfffe, timestamp: 0xfffffff0, ssrc: 0x80000001 };

test('the fixed header is laid out as RFC 3550 §5.1 says', () => {
  const bytes = encodeRtp({ ...base, payload: Uint8Array.from([1, 2, 3]) });
  assert.deepEqual(
    [...bytes],
    [0x80, 0x88, 0xff, 0xfe, 0xff, 0xff, 0xff, 0xf0, 0x80, 0x00, 0x00, 0x01, 1, 2, 3],
  );
  const fixed = new Uint8Array(RTP_HEADER_BYTES);
  writeRtpHeader(fixed, { ...base, marker: false, payloadType: 0 });
  assert.deepEqual([...fixed.subarray(0, 2)], [0x80, 0x00]);
  assert.deepEqual([...fixed.subarray(2)], [...bytes.subarray(2, RTP_HEADER_BYTES)]);
});

test('round trip with CSRCs, header extension and padding', () => {
  const payload = Uint8Array.from({ length: 160 }, (_, i) => i);
  const extension = { profile: 0xbede, data: Uint8Array.from([0x10, 0xaa, 0, 0, 1, 2, 3, 4]) };
  const bytes = encodeRtp({ ...base, csrcs: [1, 0xffffffff], extension, paddingBytes: 4, payload });
  assert.equal(bytes.length, 12 + 8 + 4 + 8 + 160 + 4);
  assert.equal(bytes[0], 0x80 | 0x20 | 0x10 | 2);
  const p = decodeRtp(bytes);
  assert.ok(p);
  assert.equal(p.marker, true);
  assert.equal(p.payloadType, 8);
  assert.equal(p.sequenceNumber, 0xfffe);
  assert.equal(p.timestamp, 0xfffffff0);
  assert.equal(p.ssrc, 0x80000001);
  assert.deepEqual(p.csrcs, [1, 0xffffffff]);
  assert.equal(p.extension?.profile, 0xbede);
  assert.deepEqual([...p.extension!.data], [...extension.data]);
  assert.equal(p.paddingBytes, 4);
  assert.deepEqual([...p.payload], [...payload]);
});

test('an empty payload and the plain header decode', () => {
  const p = decodeRtp(encodeRtp({ ...base, marker: false, payload: new Uint8Array(0) }));
  assert.ok(p);
  assert.equal(p.marker, false);
  assert.equal(p.payload.length, 0);
  assert.equal(p.extension, null);
  assert.deepEqual(p.csrcs, []);
});

test('malformed packets decode to null', () => {
  const good = encodeRtp({ ...base, csrcs: [7], extension: { profile: 1, data: new Uint8Array(4) }, payload: new Uint8Array(10) });
  const withByte0 = (b0: number, bytes = good) => Uint8Array.from(bytes, (v, i) => (i === 0 ? b0 : v));
  assert.equal(decodeRtp(new Uint8Array(0)), null, 'empty');
  assert.equal(decodeRtp(good.subarray(0, 11)), null, 'shorter than the fixed header');
  assert.equal(decodeRtp(withByte0(0x40 | 0x11)), null, 'version 1');
  assert.equal(decodeRtp(withByte0(0xc0 | 0x11)), null, 'version 3');
  assert.equal(decodeRtp(withByte0(0x80 | 0x1f)), null, '15 CSRCs announced, not there');
  const extTooLong = good.slice();
  extTooLong[12 + 4 + 3] = 200; // extension length in words
  assert.equal(decodeRtp(extTooLong), null, 'extension past the end');
  assert.equal(decodeRtp(good.subarray(0, 12 + 4 + 2)), null, 'extension header cut');
  const padZero = withByte0(good[0]! | 0x20);
  padZero[padZero.length - 1] = 0;
  assert.equal(decodeRtp(padZero), null, 'padding count 0');
  const padTooMuch = withByte0(good[0]! | 0x20);
  padTooMuch[padTooMuch.length - 1] = 11;
  assert.equal(decodeRtp(padTooMuch), null, 'padding longer than the payload');
  padTooMuch[padTooMuch.length - 1] = 10;
  assert.equal(decodeRtp(padTooMuch)?.payload.length, 0, 'padding as long as the payload');
});

test('random bytes never throw, and what decodes is consistent with its length', () => {
  const random = mulberry32(4733);
  const int = (max: number) => Math.floor(random() * (max + 1));
  for (let i = 0; i < 20000; i++) {
    const bytes = Uint8Array.from({ length: int(64) }, () => int(255));
    if (i % 2 === 0 && bytes.length > 0) bytes[0] = 0x80 | (bytes[0]! & 0x3f); // version 2 half of the time
    const p = decodeRtp(bytes);
    if (!p) continue;
    const header = RTP_HEADER_BYTES + 4 * p.csrcs.length + (p.extension ? 4 + p.extension.data.length : 0);
    assert.equal(header + p.payload.length + p.paddingBytes, bytes.length);
  }
});

test('encodeRtp refuses fields out of range', () => {
  const payload = new Uint8Array(1);
  assert.throws(() => encodeRtp({ ...base, payloadType: 128, payload }), RangeError);
  assert.throws(() => encodeRtp({ ...base, sequenceNumber: 65536, payload }), RangeError);
  assert.throws(() => encodeRtp({ ...base, timestamp: -1, payload }), RangeError);
  assert.throws(() => encodeRtp({ ...base, ssrc: 2 ** 32, payload }), RangeError);
  assert.throws(() => encodeRtp({ ...base, csrcs: new Array<number>(16).fill(1), payload }), RangeError);
  assert.throws(() => encodeRtp({ ...base, extension: { profile: 1, data: new Uint8Array(3) }, payload }), RangeError);
  assert.throws(() => encodeRtp({ ...base, paddingBytes: 256, payload }), RangeError);
});
