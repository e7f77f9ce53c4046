/**
 * In-band DTMF detection on 8 kHz linear samples (decoded G.711), for phones that send their keys
 * as audio. The Goertzel algorithm measures the power at the eight DTMF frequencies over blocks of
 * 102 samples (12.75 ms; the block of Asterisk and spandsp: short enough for 40 ms tones, long
 * enough to tell 697 Hz from 770 Hz), and a block holds a key only when:
 *
 * - the strongest row and column frequencies are each at least `minLevelDbm0`;
 * - their twist (level difference) is within `normalTwistDb` (row stronger) or `reverseTwistDb`
 *   (column stronger);
 * - each is `peakRatioDb` above every other frequency of its group;
 * - together they carry at least `minToneShare` of the block's energy: this is what rejects
 *   speech, music and noise, which spread their energy over many frequencies.
 *
 * Debounce: a key is reported once it has held for 3 consecutive blocks (38 ms of whole blocks;
 * the tone itself lasts longer, as its edges fall inside blocks), and again only after 3
 * consecutive blocks without it (a gap of about 40 ms): a short dropout inside one long tone does
 * not make it count twice. Samples may come in pieces of any length (20 ms packets); the state is
 * kept across them.
 */
import { SAMPLE_RATE } from './g711.js';
import { dbm0ToAmplitude } from './tones.js';

const ROWS = [697, 770, 852, 941] as const;
const COLUMNS = [1209, 1336, 1477, 1633] as const;
const KEYS = ['123A', '456B', '789C', '*0#D'] as const;

export const DTMF_BLOCK_SAMPLES = 102;
const BLOCKS_TO_REPORT = 3;
const BLOCKS_OF_GAP = 3;

export interface DtmfDetectorOptions {
  /** Weakest level accepted for each of the two frequencies, dBm0; default -30. */
  minLevelDbm0?: number;
  /** Row louder than column, at most, dB; default 8. */
  normalTwistDb?: number;
  /** Column louder than row, at most, dB; default 6. */
  reverseTwistDb?: number;
  /** The row (column) frequency above each other row (column) frequency, at least, dB; default 6. */
  peakRatioDb?: number;
  /** Share of the block energy in the two frequencies, at least (0..1); default 0.8. */
  minToneShare?: number;
}

/**
 * Goertzel power of `samples` at `frequency` (any frequency, not only DFT bins), scaled so that a
 * sine of amplitude A over N samples gives about (A N / 2)^2.
 */
export function goertzelPower(samples: ArrayLike<number>, frequency: number, sampleRate = SAMPLE_RATE): number {
  const coeff = 2 * Math.cos((2 * Math.PI * frequency) / sampleRate);
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < samples.length; i++) {
    const s0 = samples[i]! + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return s1 * s1 + s2 * s2 - coeff * s1 * s2;
}

const fromDb = (db: number): number => 10 ** (db / 10);

export class DtmfDetector {
  private readonly coeffs = Float64Array.from([...ROWS, ...COLUMNS], (f) => 2 * Math.cos((2 * Math.PI * f) / SAMPLE_RATE));
  /** Goertzel state per frequency: s1 at [k], s2 at [8 + k]. */
  private readonly state = new Float64Array(16);
  private readonly power = new Float64Array(8);
  private energy = 0;
  private filled = 0;

  private readonly minPower: number;
  private readonly normalTwist: number;
  private readonly reverseTwist: number;
  private readonly peakRatio: number;
  private readonly minToneShare: number;

  /** The key of the latest blocks and how many blocks in a row held it. */
  private candidate: string | null = null;
  private candidateBlocks = 0;
  /** The key reported last, until BLOCKS_OF_GAP blocks have passed without it. */
  private reported: string | null = null;
  private blocksWithout = 0;

  constructor(
    private readonly onKey: (key: string) => void,
    opts: DtmfDetectorOptions = {},
  ) {
    const minAmplitude = dbm0ToAmplitude(opts.minLevelDbm0 ?? -30);
    this.minPower = ((minAmplitude * DTMF_BLOCK_SAMPLES) / 2) ** 2;
    this.normalTwist = fromDb(opts.normalTwistDb ?? 8);
    this.reverseTwist = fromDb(opts.reverseTwistDb ?? 6);
    this.peakRatio = fromDb(opts.peakRatioDb ?? 6);
    this.minToneShare = opts.minToneShare ?? 0.8;
  }

  /** Feeds samples in order; onKey is called (synchronously) for each key detected. */
  push(samples: Int16Array): void {
    const c = this.coeffs;
    const st = this.state;
    for (let i = 0; i < samples.length; i++) {
      const x = samples[i]!;
      this.energy += x * x;
      for (let k = 0; k < 8; k++) {
        const s0 = x + c[k]! * st[k]! - st[8 + k]!;
        st[8 + k] = st[k]!;
        st[k] = s0;
      }
      if (++this.filled === DTMF_BLOCK_SAMPLES) this.endBlock();
    }
  }

  /** Forgets everything heard so far (e.g. after a gap in the stream). */
  reset(): void {
    this.state.fill(0);
    this.energy = 0;
    this.filled = 0;
    this.candidate = null;
    this.candidateBlocks = 0;
    this.reported = null;
    this.blocksWithout = 0;
  }

  private endBlock(): void {
    const st = this.state;
    for (let k = 0; k < 8; k++) {
      const s1 = st[k]!;
      const s2 = st[8 + k]!;
      this.power[k] = s1 * s1 + s2 * s2 - this.coeffs[k]! * s1 * s2;
    }
    const key = this.blockKey();
    st.fill(0);
    this.energy = 0;
    this.filled = 0;
    this.debounce(key);
  }

  private blockKey(): string | null {
    const p = this.power;
    const row = strongest(p, 0);
    const col = strongest(p, 4);
    const rowPower = p[row]!;
    const colPower = p[col]!;
    if (rowPower < this.minPower || colPower < this.minPower) return null;
    if (rowPower > colPower * this.normalTwist || colPower > rowPower * this.reverseTwist) return null;
    for (let k = 0; k < 4; k++) {
      if (k !== row && p[k]! * this.peakRatio > rowPower) return null;
      if (k + 4 !== col && p[k + 4]! * this.peakRatio > colPower) return null;
    }
    // A sine of energy E over N samples has Goertzel power E N / 2 at its frequency.
    if (rowPower + colPower < this.minToneShare * this.energy * (DTMF_BLOCK_SAMPLES / 2)) return null;
    return KEYS[row]![col - 4]!;
  }

  private debounce(key: string | null): void {
    if (this.reported !== null) {
      if (key === this.reported) this.blocksWithout = 0;
      else if (++this.blocksWithout >= BLOCKS_OF_GAP) this.reported = null;
      if (this.reported !== null) return;
      this.candidate = null;
      this.candidateBlocks = 0;
      if (key === null) return;
    }
    if (key !== null && key === this.candidate) this.candidateBlocks++;
    else [this.candidate, this.candidateBlocks] = [key, key === null ? 0 : 1];
    if (this.candidate !== null && this.candidateBlocks >= BLOCKS_TO_REPORT) {
      this.reported = this.candidate;
      this.blocksWithout = 0;
      this.onKey(this.candidate);
    }
  }
}

/** Index (from `from`) of the largest of the four powers at p[from..from+3]. */
function strongest(p: Float64Array, from: number): number {
  let best = from;
  for (let k = from + 1; k < from + 4; k++) if (p[k]! > p[best]!) best = k;
  return best;
}
