/**
 * Tones as 8 kHz samples or G.711 payload: the ringback tone the endpoint plays while a call is
 * being put through, and DTMF key tones (what a phone sends in-band; used to test the detector).
 *
 * Levels are in dBm0 per frequency. ITU-T G.711 puts the theoretical load capacity (the
 * full-scale sine) at +3.14 dBm0 for A-law and +3.17 dBm0 for mu-law; 3.14 is used for both, so a
 * sine of L dBm0 has the peak amplitude 32767 x 10^((L - 3.14) / 20) in 16-bit samples.
 */
import { encodeG711, SAMPLE_RATE, SILENCE_BYTE, type G711Codec } from './g711.js';

const FULL_SCALE_DBM0 = 3.14;

export interface ToneSpec {
  /** One or two frequencies in Hz, summed. */
  frequencies: readonly number[];
  /** Level of each frequency, dBm0. */
  levelDbm0: number;
  /** Cadence: tone for onMs, then silence for offMs, repeated; offMs 0 = continuous. */
  onMs: number;
  offMs: number;
}

/**
 * The ringback tone played by default: 425 Hz, 1 s on, 4 s off, -13 dBm0, the ringing tone of
 * ITU-T E.180 (Supplement 2 lists it for most of Europe and many other countries; ETSI TR 101 041).
 */
export const RINGBACK: Readonly<ToneSpec> = Object.freeze({ frequencies: Object.freeze([425]), levelDbm0: -13, onMs: 1000, offMs: 4000 });

/** The North American one (ANSI T1.401 precise tone plan): 440 + 480 Hz, 2 s on, 4 s off, -19 dBm0 each. */
export const RINGBACK_NA: Readonly<ToneSpec> = Object.freeze({ frequencies: Object.freeze([440, 480]), levelDbm0: -19, onMs: 2000, offMs: 4000 });

/** DTMF keys and their [low group (row), high group (column)] frequencies (ITU-T Q.23). */
export const DTMF_FREQUENCIES: Readonly<Record<string, readonly [number, number]>> = Object.freeze({
  '1': [697, 1209], '2': [697, 1336], '3': [697, 1477], A: [697, 1633],
  '4': [770, 1209], '5': [770, 1336], '6': [770, 1477], B: [770, 1633],
  '7': [852, 1209], '8': [852, 1336], '9': [852, 1477], C: [852, 1633],
  '*': [941, 1209], '0': [941, 1336], '#': [941, 1477], D: [941, 1633],
});

/** Peak amplitude in 16-bit samples of a sine at `dbm0`. */
export function dbm0ToAmplitude(dbm0: number): number {
  return 32767 * 10 ** ((dbm0 - FULL_SCALE_DBM0) / 20);
}

export function msToSamples(ms: number): number {
  return Math.round((ms * SAMPLE_RATE) / 1000);
}

/**
 * `count` samples of the sum of sines at `frequencies`, each of `amplitudes[i]` (or one amplitude
 * for all), starting at sample `start` of the tone (so that a long tone can be made in pieces).
 */
export function sineSamples(frequencies: readonly number[], amplitudes: number | readonly number[], count: number, start = 0): Int16Array {
  const out = new Int16Array(count);
  const amps = frequencies.map((_, k) => (typeof amplitudes === 'number' ? amplitudes : amplitudes[k]!));
  const omegas = frequencies.map((f) => (2 * Math.PI * f) / SAMPLE_RATE);
  for (let i = 0; i < count; i++) {
    let v = 0;
    for (let k = 0; k < omegas.length; k++) v += amps[k]! * Math.sin(omegas[k]! * (start + i));
    out[i] = Math.max(-32768, Math.min(32767, Math.round(v)));
  }
  return out;
}

/** One cadence period of `spec` (tone, then silence) as G.711 bytes. */
export function toneCycle(spec: ToneSpec, codec: G711Codec): Uint8Array {
  const on = msToSamples(spec.onMs);
  const off = msToSamples(spec.offMs);
  const out = new Uint8Array(on + off).fill(SILENCE_BYTE[codec]);
  out.set(encodeG711(codec, sineSamples(spec.frequencies, dbm0ToAmplitude(spec.levelDbm0), on)));
  return out;
}

const cycles = new WeakMap<ToneSpec, Partial<Record<G711Codec, Uint8Array>>>();

/** toneCycle(), made once per spec object and codec (a 5 s cycle is 40 KB). */
export function cachedToneCycle(spec: ToneSpec, codec: G711Codec): Uint8Array {
  let byCodec = cycles.get(spec);
  if (!byCodec) cycles.set(spec, (byCodec = {}));
  return (byCodec[codec] ??= toneCycle(spec, codec));
}

export interface DtmfToneOptions {
  durationMs: number;
  /** Level of the low-group frequency, dBm0; default -10. */
  levelDbm0?: number;
  /** High group minus low group, dB (phones send the high group ~2 dB louder); default 0. */
  twistDb?: number;
}

/** 8 kHz samples of the DTMF tone of `key` (0-9, *, #, A-D). Throws RangeError for other keys. */
export function dtmfSamples(key: string, opts: DtmfToneOptions): Int16Array {
  const pair = DTMF_FREQUENCIES[key];
  if (!pair) throw new RangeError(`not a DTMF key: ${JSON.stringify(key)}`);
  const low = opts.levelDbm0 ?? -10;
  const high = low + (opts.twistDb ?? 0);
  return sineSamples(pair, [dbm0ToAmplitude(low), dbm0ToAmplitude(high)], msToSamples(opts.durationMs));
}

/** dtmfSamples() as G.711 bytes. */
export function dtmfPayload(key: string, codec: G711Codec, opts: DtmfToneOptions): Uint8Array {
  return encodeG711(codec, dtmfSamples(key, opts));
}

/** `ms` of G.711 silence. */
export function silencePayload(codec: G711Codec, ms: number): Uint8Array {
  return new Uint8Array(msToSamples(ms)).fill(SILENCE_BYTE[codec]);
}
