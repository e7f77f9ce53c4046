/** WAV files for tests: 8 kHz mono PCM 16-bit unless told otherwise. */

/** A canonical 44-byte WAV header followed by `data` (PCM, `channels` x 16-bit). */
export function pcmWav(data: Buffer, opts: { sampleRate?: number; channels?: number } = {}): Buffer {
  const rate = opts.sampleRate ?? 8000;
  const channels = opts.channels ?? 1;
  const h = Buffer.alloc(44);
  h.write('RIFF', 0, 'latin1');
  h.writeUInt32LE(36 + data.length, 4);
  h.write('WAVEfmt ', 8, 'latin1');
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(channels, 22);
  h.writeUInt32LE(rate, 24);
  h.writeUInt32LE(rate * 2 * channels, 28);
  h.writeUInt16LE(2 * channels, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36, 'latin1');
  h.writeUInt32LE(data.length, 40);
  return Buffer.concat([h, data]);
}

/** `ms` of a sine tone at `hz` (or of silence when `hz` is 0), as a WAV file. */
export function toneWav(ms: number, hz = 600, opts: { sampleRate?: number } = {}): Buffer {
  const rate = opts.sampleRate ?? 8000;
  const samples = Math.round((ms * rate) / 1000);
  const data = Buffer.alloc(samples * 2);
  if (hz > 0) for (let i = 0; i < samples; i++) data.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * hz * i) / rate)), i * 2);
  return pcmWav(data, { sampleRate: rate });
}
