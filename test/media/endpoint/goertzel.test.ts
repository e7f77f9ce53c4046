import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeG711, encodeG711 } from '../../../lib/media/endpoint/g711.js';
import { DtmfDetector, goertzelPower } from '../../../lib/media/endpoint/goertzel.js';
import { dbm0ToAmplitude, dtmfSamples, msToSamples, RINGBACK, RINGBACK_NA, sineSamples } from '../../../lib/media/endpoint/tones.js';
import { mulberry32 } from '../../helpers/prng.js';

const KEYS = '0123456789*#ABCD';

/** The keys the detector reports for `samples`, sent through G.711 in 20 ms packets as a phone would. */
function detect(samples: Int16Array, codec: 'pcmu' | 'pcma' = 'pcmu'): string {
  const keys: string[] = [];
  const detector = new DtmfDetector((k) => keys.push(k));
  const heard = decodeG711(codec, encodeG711(codec, samples));
  for (let at = 0; at < heard.length; at += 160) detector.push(heard.subarray(at, at + 160));
  return keys.join('');
}

function concat(parts: Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const silence = (ms: number) => new Int16Array(msToSamples(ms));

/** Gaussian-ish white noise (sum of 12 uniforms) at `dbm0` (RMS as a sine of that level). */
function noise(ms: number, dbm0: number, seed: number): Int16Array {
  const random = mulberry32(seed);
  const rms = dbm0ToAmplitude(dbm0) / Math.SQRT2;
  return Int16Array.from({ length: msToSamples(ms) }, () => {
    let g = -6;
    for (let k = 0; k < 12; k++) g += random();
    return Math.max(-32768, Math.min(32767, Math.round(g * rms)));
  });
}

function mix(a: Int16Array, b: Int16Array): Int16Array {
  return Int16Array.from(a, (v, i) => Math.max(-32768, Math.min(32767, v + (b[i] ?? 0))));
}

/**
 * Voiced speech, roughly: a glottal pulse train (harmonics of a gliding pitch, falling 6 dB per
 * octave) shaped by the two formants of common vowels, with noise bursts for consonants between.
 */
function speechLike(seconds: number, seed: number): Int16Array {
  const random = mulberry32(seed);
  const vowels: Array<[number, number]> = [[730, 1090], [270, 2290], [300, 870], [530, 1840], [570, 840], [660, 1720], [490, 1350], [640, 1190], [850, 1400]];
  const parts: Int16Array[] = [];
  let total = 0;
  while (total < seconds * 8000) {
    const [f1, f2] = vowels[Math.floor(random() * vowels.length)]!;
    const n = msToSamples(80 + random() * 220);
    const f0a = 90 + random() * 150;
    const f0b = f0a * (0.8 + random() * 0.4);
    const v = new Int16Array(n);
    let phase = 0;
    for (let i = 0; i < n; i++) {
      const f0 = f0a + ((f0b - f0a) * i) / n;
      phase += (2 * Math.PI * f0) / 8000;
      let x = 0;
      for (let h = 1; h * f0 < 3600; h++) {
        const f = h * f0;
        const gain = 1 / (1 + ((f - f1) / 90) ** 2) + 0.7 / (1 + ((f - f2) / 110) ** 2);
        x += (gain * Math.sin(h * phase)) / h;
      }
      v[i] = Math.round(x * 14000);
    }
    parts.push(v, noise(20 + random() * 60, -30, Math.floor(random() * 1e9)));
    total += v.length + parts[parts.length - 1]!.length;
  }
  return concat(parts);
}

test('goertzelPower: a sine at the frequency gives about (A N / 2)^2, far frequencies little', () => {
  const n = 102;
  const tone = sineSamples([770], 10000, n);
  const expected = ((10000 * n) / 2) ** 2;
  assert.ok(Math.abs(goertzelPower(tone, 770) / expected - 1) < 0.05);
  assert.ok(goertzelPower(tone, 1336) < expected / 100);
});

test('every key is detected once, for tones of 50 ms and more, in both laws', () => {
  for (const codec of ['pcmu', 'pcma'] as const) {
    for (const [on, off] of [[50, 50], [70, 70], [100, 60], [300, 100]] as const) {
      const signal = concat([...KEYS].flatMap((k) => [dtmfSamples(k, { durationMs: on }), silence(off)]));
      assert.equal(detect(signal, codec), KEYS, `${codec} ${on} ms on, ${off} ms off`);
    }
  }
});

test('weak, twisted and noisy tones are detected', () => {
  const sequence = (opts: { levelDbm0: number; twistDb: number }) =>
    concat([...KEYS].flatMap((k) => [dtmfSamples(k, { durationMs: 80, ...opts }), silence(80)]));
  assert.equal(detect(sequence({ levelDbm0: -25, twistDb: 0 })), KEYS, '-25 dBm0');
  assert.equal(detect(sequence({ levelDbm0: -12, twistDb: 4 })), KEYS, 'high group 4 dB louder');
  assert.equal(detect(sequence({ levelDbm0: -10, twistDb: -6 })), KEYS, 'low group 6 dB louder');
  const clean = sequence({ levelDbm0: -15, twistDb: 0 });
  assert.equal(detect(mix(clean, noise(clean.length / 8, -33, 1))), KEYS, 'about 15 dB signal to noise');
});

test('a key held long counts once, also across a short dropout; pressed again after a 60 ms gap it counts again', () => {
  const five = (ms: number) => dtmfSamples('5', { durationMs: ms });
  assert.equal(detect(five(2000)), '5');
  assert.equal(detect(concat([five(200), silence(15), five(200)])), '5', 'a 15 ms dropout');
  assert.equal(detect(concat([five(100), silence(60), five(100)])), '55');
});

test('tones shorter than 30 ms are not keys', () => {
  assert.equal(detect(concat([...KEYS].flatMap((k) => [dtmfSamples(k, { durationMs: 25 }), silence(60)]))), '');
});

test('no key in silence, white noise, a 1 kHz tone, ringback tones, single DTMF frequencies', () => {
  assert.equal(detect(silence(5000)), '', 'silence');
  assert.equal(detect(noise(10_000, -10, 2)), '', 'loud white noise');
  assert.equal(detect(noise(10_000, -35, 3)), '', 'quiet white noise');
  assert.equal(detect(sineSamples([1000], dbm0ToAmplitude(-10), 80_000)), '', '1 kHz');
  assert.equal(detect(sineSamples(RINGBACK.frequencies, dbm0ToAmplitude(0), 80_000)), '', '425 Hz');
  assert.equal(detect(sineSamples(RINGBACK_NA.frequencies, dbm0ToAmplitude(0), 80_000)), '', '440 + 480 Hz');
  for (const f of [697, 770, 852, 941, 1209, 1336, 1477, 1633]) {
    assert.equal(detect(sineSamples([f], dbm0ToAmplitude(-10), 16_000)), '', `${f} Hz alone`);
  }
});

test('no key in a minute of speech-like sound', () => {
  assert.equal(detect(speechLike(60, 11)), '');
});

test('state is kept across pieces of any length', () => {
  const signal = concat([...KEYS].flatMap((k) => [dtmfSamples(k, { durationMs: 60 }), silence(60)]));
  const keys: string[] = [];
  const detector = new DtmfDetector((k) => keys.push(k));
  const random = mulberry32(5);
  for (let at = 0; at < signal.length; ) {
    const n = 1 + Math.floor(random() * 300);
    detector.push(signal.subarray(at, at + n));
    at += n;
  }
  assert.equal(keys.join(''), KEYS);
});
