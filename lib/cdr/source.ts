// Finds CDR files under the given paths and reads them, in time order, as one stream of row
// batches (one batch per chunk read, so memory stays flat whatever the file size).
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { StringDecoder } from 'node:string_decoder';
import { CsvCdrDecoder } from './csv.js';
import { BinaryCdrDecoder } from './binary.js';
import { LinePrefilter, type FieldCheck } from './prefilter.js';
import type { CdrRow } from './row.js';
import type { ProblemSink } from './problems.js';

export type CdrFileKind = 'csv' | 'csv.gz' | 'cdr';

export function cdrFileKind(file: string): CdrFileKind | undefined {
  const lower = file.toLowerCase();
  if (lower.endsWith('.csv.gz')) return 'csv.gz';
  if (lower.endsWith('.csv')) return 'csv';
  if (lower.endsWith('.cdr')) return 'cdr';
  return undefined;
}

function stemOf(file: string): string {
  return path.basename(file).replace(/\.(csv\.gz|csv|cdr)$/i, '');
}

export class UnreadableFileError extends Error {}

/**
 * The CDR files named by `paths` (files, or directories searched one level deep), sorted by file
 * name so daily files come in date order. In a directory, a day present both as .csv and as
 * .csv.gz/.cdr (format `both`, or a compression in progress) is read once, preferring .csv.
 */
export function listCdrFiles(paths: readonly string[]): string[] {
  const files: string[] = [];
  for (const p of paths) {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(p);
    } catch (err) {
      throw new UnreadableFileError(`${p}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!stat.isDirectory()) {
      files.push(p);
      continue;
    }
    const byStem = new Map<string, string>();
    const rank: Record<CdrFileKind, number> = { csv: 0, 'csv.gz': 1, cdr: 2 };
    for (const name of fs.readdirSync(p).sort()) {
      const kind = cdrFileKind(name);
      if (!kind) continue;
      const full = path.join(p, name);
      if (!fs.statSync(full).isFile()) continue;
      const prev = byStem.get(stemOf(name));
      if (prev === undefined || rank[kind] < rank[cdrFileKind(prev)!]) byStem.set(stemOf(name), full);
    }
    files.push(...byStem.values());
  }
  return files
    .map((f, i) => ({ f, i }))
    .sort((a, b) => (stemOf(a.f) < stemOf(b.f) ? -1 : stemOf(a.f) > stemOf(b.f) ? 1 : a.i - b.i))
    .map((x) => x.f);
}

export interface ReadOptions {
  onProblem: ProblemSink;
  /** Told when a file starts (progress display). */
  onFile?: (file: string) => void;
  alwaysCsvParse?: boolean;
  /** Exact --caller/--callee tests that let CSV lines which cannot match be dropped unchecked. */
  fieldChecks?: FieldCheck[] | undefined;
}

// Small enough that a batch of rows dies young (flat memory), large enough to amortise the reads.
const CHUNK = 1 << 16;
// Text is decoded in pieces this small so the strings stay in V8's young generation (a string
// over ~128 KB goes to large-object space, freed only by full collections: RSS grew).
const DECODE_PIECE = 1 << 14;

/** Rows of one file, a batch per chunk. Throws UnreadableFileError if it cannot be opened. */
export async function* readCdrFile(file: string, opts: ReadOptions): AsyncGenerator<CdrRow[]> {
  const kind = cdrFileKind(file) ?? 'csv';
  let fd: fs.promises.FileHandle;
  try {
    fd = await fs.promises.open(file, 'r');
  } catch (err) {
    throw new UnreadableFileError(`${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  opts.onFile?.(file);
  let batch: CdrRow[] = [];
  const onRow = (row: CdrRow) => batch.push(row);
  const decoder =
    kind === 'cdr'
      ? new BinaryCdrDecoder({ file, onRow, onProblem: opts.onProblem })
      : new CsvCdrDecoder({ file, onRow, onProblem: opts.onProblem, alwaysCsvParse: opts.alwaysCsvParse ?? false });
  const utf8 = new StringDecoder('utf8');
  const prefilter = decoder instanceof CsvCdrDecoder && opts.fieldChecks
    ? new LinePrefilter(opts.fieldChecks, { text: (t) => decoder.push(t), skip: (n) => decoder.skipLines(n) })
    : null;
  const input = kind === 'csv.gz' ? gunzipped(fd) : fileChunks(fd, kind === 'csv');
  try {
    try {
      for await (const chunk of input) {
        if (decoder instanceof BinaryCdrDecoder) decoder.push(chunk);
        else if (prefilter) prefilter.push(chunk);
        else for (let at = 0; at < chunk.length; at += DECODE_PIECE) decoder.push(utf8.write(chunk.subarray(at, at + DECODE_PIECE)));
        if (batch.length > 0) {
          const out = batch;
          batch = [];
          yield out;
        }
      }
    } catch (err) {
      // A damaged .gz or a failing disk: keep what was read, report where reading stopped.
      opts.onProblem({ file, message: `read error: ${(err as Error).message}` });
    }
    if (prefilter) prefilter.end();
    else if (!(decoder instanceof BinaryCdrDecoder)) decoder.push(utf8.end());
    decoder.end();
    if (batch.length > 0) yield batch;
  } finally {
    await input.return(undefined);
    await fd.close().catch(() => undefined);
  }
}

/**
 * The file's bytes chunk by chunk. With `reuse`, one buffer serves every read (the CSV decoder
 * copies what it needs into strings): a fresh buffer per read lives outside the JS heap and piles
 * up between collections, which showed as 60+ MB of extra RSS on a 1M-row file.
 */
async function* fileChunks(fd: fs.promises.FileHandle, reuse: boolean): AsyncGenerator<Buffer, void, undefined> {
  let buf = Buffer.allocUnsafe(CHUNK);
  for (;;) {
    if (!reuse) buf = Buffer.allocUnsafe(CHUNK);
    const { bytesRead } = await fd.read(buf, 0, CHUNK, null);
    if (bytesRead === 0) return;
    yield buf.subarray(0, bytesRead);
  }
}

async function* gunzipped(fd: fs.promises.FileHandle): AsyncGenerator<Buffer, void, undefined> {
  const raw = fd.createReadStream({ highWaterMark: CHUNK, autoClose: false });
  const gunzip = zlib.createGunzip({ chunkSize: CHUNK });
  raw.on('error', (err) => gunzip.destroy(err));
  try {
    for await (const chunk of raw.pipe(gunzip)) yield chunk as Buffer;
  } finally {
    gunzip.destroy();
    raw.destroy();
  }
}

/** All rows of all files, in order. */
export async function* readCdrFiles(files: readonly string[], opts: ReadOptions): AsyncGenerator<CdrRow[]> {
  for (const file of files) yield* readCdrFile(file, opts);
}
