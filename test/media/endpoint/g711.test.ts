import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeAlawSample,
  decodeG711,
  decodeUlawSample,
  encodeAlawSample,
  encodeG711,
  encodeUlawSample,
  int16ToPcm16le,
  pcm16leToInt16,
  promptToCodec,
  SILENCE_BYTE,
} from '../../../lib/media/endpoint/g711.js';

/** The classic Sun Microsystems g711.c rules (an independent implementation): for checking. */
function sunLinearToUlaw(pcm: number): number {
  const segEnd = [0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff];
  let v = pcm >> 2;
  let mask = 0xff;
  if (v < 0) {
    v = -v;
    mask = 0x7f;
  }
  if (v > 8159) v = 8159;
  v += 33;
  const seg = segEnd.findIndex((e) => v <= e);
  if (seg < 0) return 0x7f ^ mask;
  return ((seg << 4) | ((v >> (seg + 1)) & 0x0f)) ^ mask;
}
function sunLinearToAlaw(pcm: number): number {
  const segEnd = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff];
  let v = pcm >> 3;
  let mask = 0xd5;
  if (v < 0) {
    v = -v - 1;
    mask = 0x55;
  }
  const seg = segEnd.findIndex((e) => v <= e);
  if (seg < 0) return 0x7f ^ mask;
  return ((seg << 4) | ((seg < 2 ? v >> 1 : v >> seg) & 0x0f)) ^ mask;
}
function sunUlawToLinear(u: number): number {
  u = ~u & 0xff;
  let t = ((u & 0x0f) << 3) + 0x84;
  t <<= (u & 0x70) >> 4;
  return u & 0x80 ? 0x84 - t : t - 0x84;
}
function sunAlawToLinear(a: number): number {
  a ^= 0x55;
  let t = (a & 0x0f) << 4;
  const seg = (a & 0x70) >> 4;
  if (seg === 0) t += 8;
  else if (seg === 1) t += 0x108;
  else t = (t + 0x108) << (seg - 1);
  return a & 0x80 ? t : -t;
}

test('mu-law: known values of G.711 / G.191', () => {
  assert.equal(encodeUlawSample(0), 0xff);
  assert.equal(encodeUlawSample(-1), 0x7f, 'one\'s complement: -1 is negative zero');
  assert.equal(encodeUlawSample(32767), 0x80);
  assert.equal(encodeUlawSample(-32768), 0x00);
  assert.equal(encodeUlawSample(4), 0xfe);
  assert.equal(encodeUlawSample(1000), 0xce);
  assert.equal(encodeUlawSample(-1000), 0x4e);
  assert.equal(decodeUlawSample(0xff), 0);
  assert.equal(decodeUlawSample(0x7f), 0);
  assert.equal(decodeUlawSample(0x80), 32124);
  assert.equal(decodeUlawSample(0x00), -32124);
  assert.equal(decodeUlawSample(0xce), 988);
  assert.equal(decodeUlawSample(0xfe), 8);
});

test('A-law: known values of G.711 / G.191', () => {
  assert.equal(encodeAlawSample(0), 0xd5);
  assert.equal(encodeAlawSample(-1), 0x55);
  assert.equal(encodeAlawSample(32767), 0xaa);
  assert.equal(encodeAlawSample(-32768), 0x2a);
  assert.equal(encodeAlawSample(1000), 0xfa);
  assert.equal(decodeAlawSample(0xd5), 8);
  assert.equal(decodeAlawSample(0x55), -8);
  assert.equal(decodeAlawSample(0xaa), 32256);
  assert.equal(decodeAlawSample(0x2a), -32256);
  assert.equal(decodeAlawSample(0xfa), 1008);
});

test('decoding agrees with an independent implementation for all 256 codes', () => {
  for (let c = 0; c < 256; c++) {
    assert.equal(decodeUlawSample(c), sunUlawToLinear(c), `mu-law ${c}`);
    assert.equal(decodeAlawSample(c), sunAlawToLinear(c), `A-law ${c}`);
  }
});

test('encoding: the same as the Sun rules for samples >= 0 (and A-law below), symmetric (one\'s complement) below', () => {
  for (let s = 0; s < 32768; s++) {
    assert.equal(encodeUlawSample(s), sunLinearToUlaw(s), `mu-law ${s}`);
    assert.equal(encodeAlawSample(s), sunLinearToAlaw(s), `A-law ${s}`);
    assert.equal(encodeAlawSample(~s), sunLinearToAlaw(~s), `A-law ${~s}`);
    assert.equal(encodeUlawSample(~s), encodeUlawSample(s) & 0x7f, `mu-law ${~s}`);
    assert.equal(encodeAlawSample(~s), (encodeAlawSample(s) ^ 0x55) & 0x7f ^ 0x55, `A-law ${~s}`);
  }
});

test('round trips: every code decodes to a value that encodes back to it', () => {
  for (let c = 0; c < 256; c++) {
    const ulaw = encodeUlawSample(decodeUlawSample(c));
    assert.equal(ulaw, c === 0x7f ? 0xff : c, `mu-law ${c} (negative zero decodes to 0 = positive zero)`);
    assert.equal(encodeAlawSample(decodeAlawSample(c)), c, `A-law ${c}`);
  }
});

test('quantization: monotonic, and the error stays within half a step of the segment', () => {
  for (const [name, enc, dec] of [
    ['mu-law', encodeUlawSample, decodeUlawSample],
    ['A-law', encodeAlawSample, decodeAlawSample],
  ] as const) {
    let previous = -Infinity;
    for (let s = -32000; s <= 32000; s++) {
      const y = dec(enc(s));
      assert.ok(y >= previous, `${name}: not monotonic at ${s}`);
      previous = y;
      // Steps double per segment: at most 1/16 of the magnitude (plus the finest step near zero).
      assert.ok(Math.abs(y - s) <= Math.abs(s) / 32 + 16, `${name}: ${s} -> ${y}`);
    }
  }
});

test('buffer codecs use the tables, and PCM16 little-endian converts both ways at any alignment', () => {
  const samples = Int16Array.from([0, -1, 1000, -1000, 32767, -32768]);
  assert.deepEqual([...encodeG711('pcmu', samples)], [0xff, 0x7f, 0xce, 0x4e, 0x80, 0x00]);
  assert.deepEqual([...decodeG711('pcma', encodeG711('pcma', samples))], [8, -8, 1008, -1008, 32256, -32256]);
  const bytes = int16ToPcm16le(samples);
  assert.deepEqual([...bytes.subarray(0, 4)], [0x00, 0x00, 0xff, 0xff]);
  assert.deepEqual([...bytes.subarray(4, 6)], [0xe8, 0x03], 'little-endian 1000');
  const odd = new Uint8Array(bytes.length + 1);
  odd.set(bytes, 1);
  assert.deepEqual([...pcm16leToInt16(odd.subarray(1))], [...samples], 'unaligned view');
  assert.equal(pcm16leToInt16(Uint8Array.from([1, 0, 7])).length, 1, 'a trailing odd byte is ignored');
});

test('promptToCodec: the same codec is returned as is, others are converted, non-8 kHz mono refused', () => {
  const ulaw = encodeG711('pcmu', Int16Array.from([0, 1000, -1000]));
  assert.equal(promptToCodec({ encoding: 'pcmu', data: ulaw }, 'pcmu'), ulaw);
  assert.deepEqual([...promptToCodec({ encoding: 'pcmu', data: ulaw }, 'pcma')], [0xd5, encodeAlawSample(988), encodeAlawSample(-988)]);
  const pcm = int16ToPcm16le(Int16Array.from([0, 1000]));
  assert.deepEqual([...promptToCodec({ encoding: 'pcm16', data: pcm, sampleRate: 8000, channels: 1 }, 'pcma')], [0xd5, 0xfa]);
  assert.throws(() => promptToCodec({ encoding: 'pcm16', data: pcm, sampleRate: 16000 }, 'pcmu'), RangeError);
  assert.throws(() => promptToCodec({ encoding: 'pcm16', data: pcm, channels: 2 }, 'pcmu'), RangeError);
  assert.equal(SILENCE_BYTE.pcmu, encodeUlawSample(0));
  assert.equal(SILENCE_BYTE.pcma, encodeAlawSample(0));
});
