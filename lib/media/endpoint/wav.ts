/**
 * Reads the header of a WAV prompt and checks that the server can play it as is: 8000 Hz mono,
 * either 16-bit linear PCM or 8-bit G.711 (A-law / mu-law). Everything else is reported with what
 * the file is and how to convert it, never thrown. The sample bytes are a view into the input.
 */

export interface WavAudio {
  encoding: 'pcm16' | 'pcmu' | 'pcma';
  sampleRate: number;
  channels: number;
  /** The sample bytes of the data chunk (a view of the input, whole samples only). */
  data: Uint8Array;
  durationMs: number;
}

export const PLAYABLE_WAV = '8000 Hz mono PCM 16-bit or G.711 WAV';
const CONVERT_HINT = `the server plays ${PLAYABLE_WAV}; convert with: sox IN.wav -r 8000 -c 1 -b 16 OUT.wav`;
const SAMPLE_RATE = 8000;

const FORMAT_PCM = 1;
const FORMAT_ALAW = 6;
const FORMAT_MULAW = 7;
const FORMAT_EXTENSIBLE = 0xfffe;

/** Names of the formats a WAV file commonly holds, for the messages. */
const FORMAT_NAMES: Record<number, string> = {
  1: 'PCM',
  2: 'Microsoft ADPCM',
  3: 'IEEE float',
  6: 'G.711 A-law',
  7: 'G.711 mu-law',
  0x11: 'IMA ADPCM',
  0x31: 'GSM 6.10',
  0x55: 'MP3',
};

/** Bytes 2..15 of the sub-format GUID of WAVE_FORMAT_EXTENSIBLE (KSDATAFORMAT_SUBTYPE_*). */
const EXTENSIBLE_GUID_TAIL = [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71];

interface FmtChunk {
  format: number;
  channels: number;
  sampleRate: number;
  blockAlign: number;
  bitsPerSample: number;
}

interface Chunks {
  fmt?: FmtChunk;
  data?: Uint8Array;
}

export function parseWav(bytes: Uint8Array): WavAudio | { problem: string } {
  const header = checkRiffHeader(bytes);
  if (header !== undefined) return { problem: header };
  const chunks = readChunks(bytes);
  if ('problem' in chunks) return chunks;
  const { fmt, data } = chunks;
  if (!fmt) return { problem: 'not a usable WAV file: it has no fmt chunk' };
  if (!data) return { problem: 'not a usable WAV file: it has no data chunk' };
  return checkPlayable(fmt, data);
}

function checkRiffHeader(bytes: Uint8Array): string | undefined {
  if (bytes.length < 12) return `not a WAV file: only ${bytes.length} bytes, too short for a RIFF header`;
  const riff = fourCC(bytes, 0);
  if (riff === 'RIFX') return 'big-endian WAV (RIFX) is not supported; ' + CONVERT_HINT;
  if (riff === 'RF64') return 'RF64 WAV is not supported; ' + CONVERT_HINT;
  if (riff !== 'RIFF') return 'not a WAV file: it does not start with "RIFF"';
  if (fourCC(bytes, 8) !== 'WAVE') return 'not a WAV file: a RIFF file, but not of type "WAVE"';
  return undefined;
}

function readChunks(bytes: Uint8Array): Chunks | { problem: string } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // The RIFF size is not trusted (streaming writers leave it 0 or too large): the chunks are walked
  // to the end of the file, and the data chunk's own size tells a truncated file.
  const end = bytes.length;
  const chunks: Chunks = {};
  let offset = 12;
  while (offset + 8 <= end) {
    const id = fourCC(bytes, offset);
    const size = view.getUint32(offset + 4, true);
    const body = offset + 8;
    if (id !== 'data' && body + size > bytes.length) {
      if (chunks.fmt && chunks.data) break; // junk after the audio does not matter
      return { problem: `truncated WAV file: the ${JSON.stringify(id)} chunk is cut off` };
    }
    if (id === 'fmt ' && !chunks.fmt) {
      const fmt = readFmt(view, body, size);
      if ('problem' in fmt) return fmt;
      chunks.fmt = fmt;
    } else if (id === 'data' && !chunks.data) {
      const present = bytes.length - body;
      if (size > present) return { problem: `truncated WAV file: the data chunk declares ${size} bytes but only ${present} are present` };
      chunks.data = bytes.subarray(body, body + size);
    }
    // Chunks are word-aligned: an odd size is followed by a pad byte.
    offset = body + size + (size & 1);
  }
  if (offset < end && !(chunks.fmt && chunks.data)) {
    return { problem: 'truncated WAV file: a chunk header is cut off' };
  }
  return chunks;
}

function readFmt(view: DataView, at: number, size: number): FmtChunk | { problem: string } {
  if (size < 16) return { problem: `corrupt WAV file: the fmt chunk is ${size} bytes, expected at least 16` };
  let format = view.getUint16(at, true);
  if (format === FORMAT_EXTENSIBLE) {
    if (size < 40) return { problem: `corrupt WAV file: WAVE_FORMAT_EXTENSIBLE fmt chunk of ${size} bytes, expected 40` };
    const subFormat = extensibleSubFormat(view, at + 24);
    if (subFormat === undefined) return { problem: 'WAV with an unknown WAVE_FORMAT_EXTENSIBLE sub-format; ' + CONVERT_HINT };
    format = subFormat;
  }
  return {
    format,
    channels: view.getUint16(at + 2, true),
    sampleRate: view.getUint32(at + 4, true),
    blockAlign: view.getUint16(at + 12, true),
    bitsPerSample: view.getUint16(at + 14, true),
  };
}

/** The format code a WAVE_FORMAT_EXTENSIBLE GUID stands for, if it is one of the standard ones. */
function extensibleSubFormat(view: DataView, at: number): number | undefined {
  for (let i = 0; i < EXTENSIBLE_GUID_TAIL.length; i++) {
    if (view.getUint8(at + 2 + i) !== EXTENSIBLE_GUID_TAIL[i]) return undefined;
  }
  return view.getUint16(at, true);
}

function checkPlayable(fmt: FmtChunk, data: Uint8Array): WavAudio | { problem: string } {
  const encoding = playableEncoding(fmt);
  if (encoding === undefined) return { problem: `${describe(fmt)}: ${CONVERT_HINT}` };
  const bytesPerSample = encoding === 'pcm16' ? 2 : 1;
  if (fmt.blockAlign !== bytesPerSample) {
    return { problem: `corrupt WAV file: block align ${fmt.blockAlign} does not fit ${describe(fmt)}` };
  }
  const samples = Math.floor(data.length / bytesPerSample);
  if (samples === 0) return { problem: 'the WAV file holds no audio (its data chunk is empty)' };
  return {
    encoding,
    sampleRate: fmt.sampleRate,
    channels: fmt.channels,
    data: data.subarray(0, samples * bytesPerSample),
    durationMs: Math.round((samples * 1000) / SAMPLE_RATE),
  };
}

function playableEncoding(fmt: FmtChunk): WavAudio['encoding'] | undefined {
  if (fmt.sampleRate !== SAMPLE_RATE || fmt.channels !== 1) return undefined;
  if (fmt.format === FORMAT_PCM && fmt.bitsPerSample === 16) return 'pcm16';
  if (fmt.format === FORMAT_MULAW && fmt.bitsPerSample === 8) return 'pcmu';
  if (fmt.format === FORMAT_ALAW && fmt.bitsPerSample === 8) return 'pcma';
  return undefined;
}

/** E.g. "44100 Hz stereo PCM 16-bit" or "8000 Hz mono MP3". */
function describe(fmt: FmtChunk): string {
  const channels = fmt.channels === 1 ? 'mono' : fmt.channels === 2 ? 'stereo' : `${fmt.channels}-channel`;
  const name = FORMAT_NAMES[fmt.format] ?? `format 0x${fmt.format.toString(16).padStart(4, '0')}`;
  const bits = fmt.bitsPerSample > 0 ? ` ${fmt.bitsPerSample}-bit` : '';
  return `${fmt.sampleRate} Hz ${channels} ${name}${bits}`;
}

function fourCC(bytes: Uint8Array, at: number): string {
  return String.fromCharCode(bytes[at]!, bytes[at + 1]!, bytes[at + 2]!, bytes[at + 3]!);
}
