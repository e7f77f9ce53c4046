/**
 * G.711 mu-law (PCMU) and A-law (PCMA), bit-exact to ITU-T G.711 as its reference implementation
 * in ITU-T G.191 (STL g711.c) computes it, on 16-bit linear samples: mu-law uses the 14 most
 * significant bits, A-law the 13 most significant; negative samples take the one's complement, so
 * -1 is "negative zero" (mu-law 0x7F, A-law 0x55) and the law is symmetric.
 *
 * Decoding is a 256-entry table; encoding a 64K table indexed by the 16-bit sample, both built
 * once from the reference rules (encodeUlawSample / encodeAlawSample), which the tests check
 * against known values.
 */

export type G711Codec = 'pcmu' | 'pcma';

/** RFC 3551 §6: the static payload types. */
export const STATIC_PAYLOAD_TYPE: Readonly<Record<G711Codec, number>> = { pcmu: 0, pcma: 8 };

/** The code of a zero sample: what a silent 20 ms packet is filled with. */
export const SILENCE_BYTE: Readonly<Record<G711Codec, number>> = { pcmu: 0xff, pcma: 0xd5 };

export const SAMPLE_RATE = 8000;

/** G.711 mu-law code of one linear sample (-32768..32767), per G.191 ulaw_compress. */
export function encodeUlawSample(sample: number): number {
  let magnitude = (sample < 0 ? ~sample : sample) >> 2; // 14-bit, one's complement for negatives
  magnitude += 33; // the bias, so that every segment starts at a power of two
  if (magnitude > 0x1fff) magnitude = 0x1fff;
  let segment = 1;
  for (let i = magnitude >> 6; i !== 0; i >>= 1) segment++;
  const code = ((8 - segment) << 4) | (15 - ((magnitude >> segment) & 0x0f));
  return sample >= 0 ? code | 0x80 : code;
}

/** Linear value (14 bits left-justified in 16) of a mu-law code, per G.191 ulaw_expand. */
export function decodeUlawSample(code: number): number {
  const inverted = ~code & 0xff;
  const exponent = (inverted >> 4) & 0x07;
  const step = 4 << (exponent + 1);
  const magnitude = (0x80 << exponent) + step * (inverted & 0x0f) + step / 2 - 4 * 33;
  return code < 0x80 ? -magnitude | 0 : magnitude; // | 0: 0x7F decodes to 0, not -0
}

/** G.711 A-law code of one linear sample (-32768..32767), per G.191 alaw_compress. */
export function encodeAlawSample(sample: number): number {
  let ix = (sample < 0 ? ~sample : sample) >> 4; // 12-bit magnitude, one's complement for negatives
  if (ix > 15) {
    let exponent = 1;
    while (ix > 16 + 15) {
      ix >>= 1;
      exponent++;
    }
    ix = ix - 16 + (exponent << 4);
  }
  if (sample >= 0) ix |= 0x80;
  return ix ^ 0x55; // even bits inverted (G.711 Table 1a, note)
}

/** Linear value (13 bits left-justified in 16) of an A-law code, per G.191 alaw_expand. */
export function decodeAlawSample(code: number): number {
  const ix = (code ^ 0x55) & 0x7f;
  const exponent = ix >> 4;
  let mantissa = ix & 0x0f;
  if (exponent > 0) mantissa += 16;
  mantissa = (mantissa << 4) + 8;
  if (exponent > 1) mantissa <<= exponent - 1;
  return code > 127 ? mantissa : -mantissa;
}

function decodeTable(decode: (code: number) => number): Int16Array {
  const t = new Int16Array(256);
  for (let c = 0; c < 256; c++) t[c] = decode(c);
  return t;
}

/** Indexed by the sample's 16 bits as unsigned (sample & 0xffff). */
function encodeTable(encode: (sample: number) => number): Uint8Array {
  const t = new Uint8Array(65536);
  for (let s = -32768; s < 32768; s++) t[s & 0xffff] = encode(s);
  return t;
}

const DECODE: Readonly<Record<G711Codec, Int16Array>> = { pcmu: decodeTable(decodeUlawSample), pcma: decodeTable(decodeAlawSample) };
const ENCODE: Readonly<Record<G711Codec, Uint8Array>> = { pcmu: encodeTable(encodeUlawSample), pcma: encodeTable(encodeAlawSample) };

/** Linear samples of G.711 bytes; `out` (at least as long as `codes`) is filled and returned when given. */
export function decodeG711(codec: G711Codec, codes: Uint8Array, out?: Int16Array): Int16Array {
  const table = DECODE[codec];
  const samples = out ?? new Int16Array(codes.length);
  if (samples.length < codes.length) throw new RangeError('decodeG711: output shorter than input');
  for (let i = 0; i < codes.length; i++) samples[i] = table[codes[i]!]!;
  return samples;
}

/** G.711 bytes of linear samples. */
export function encodeG711(codec: G711Codec, samples: Int16Array): Uint8Array {
  const table = ENCODE[codec];
  const codes = new Uint8Array(samples.length);
  for (let i = 0; i < samples.length; i++) codes[i] = table[samples[i]! & 0xffff]!;
  return codes;
}

/** Samples of little-endian 16-bit PCM bytes (a trailing odd byte is ignored); any alignment. */
export function pcm16leToInt16(bytes: Uint8Array): Int16Array {
  const n = bytes.length >> 1;
  const samples = new Int16Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset, n * 2);
  for (let i = 0; i < n; i++) samples[i] = view.getInt16(2 * i, true);
  return samples;
}

/** Little-endian 16-bit PCM bytes of samples. */
export function int16ToPcm16le(samples: Int16Array): Uint8Array {
  const bytes = new Uint8Array(samples.length * 2);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < samples.length; i++) view.setInt16(2 * i, samples[i]!, true);
  return bytes;
}

/**
 * Audio as a WAV reader hands it over (a structural type: anything with these fields fits):
 * 8 kHz mono, 16-bit linear PCM little-endian or G.711 bytes.
 */
export interface PromptAudio {
  encoding: 'pcm16' | 'pcmu' | 'pcma';
  data: Uint8Array;
  /** Checked when present: must be 8000. */
  sampleRate?: number;
  /** Checked when present: must be 1. */
  channels?: number;
}

/**
 * The prompt as G.711 bytes in `codec`, ready for MediaEndpoint.play(). Returns `audio.data`
 * itself when it is in that codec already; otherwise converts (through linear PCM between the two
 * laws), which costs a pass over the data: callers cache the result per prompt and codec.
 * Throws RangeError for audio other than 8 kHz mono.
 */
export function promptToCodec(audio: PromptAudio, codec: G711Codec): Uint8Array {
  if (audio.sampleRate !== undefined && audio.sampleRate !== SAMPLE_RATE) {
    throw new RangeError(`prompt audio must be sampled at ${SAMPLE_RATE} Hz, not ${audio.sampleRate} Hz`);
  }
  if (audio.channels !== undefined && audio.channels !== 1) throw new RangeError(`prompt audio must be mono, not ${audio.channels} channels`);
  switch (audio.encoding) {
    case 'pcm16':
      return encodeG711(codec, pcm16leToInt16(audio.data));
    case 'pcmu':
    case 'pcma':
      return audio.encoding === codec ? audio.data : encodeG711(codec, decodeG711(audio.encoding, audio.data));
    default:
      throw new RangeError(`prompt audio encoding ${String((audio as { encoding: unknown }).encoding)} is not pcm16, pcmu or pcma`);
  }
}
