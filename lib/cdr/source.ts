// Finds CDR files under the given paths and reads them, in time order, as one stream of row
// batches (one batch per chunk read, so memory stays flat whatever the file size).
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { CsvByteFeed } from './byte-feed.js';
import { CsvCdrDecoder } from './csv.js';
import { BinaryCdrDecoder } from './binary.js';
import type { FieldCheck } from './prefilter.js';
import type { CdrRow } from './row.js';
import { RecordView, type RowView } from './view.js';
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
  /**
   * Receive each record as a view (see view.ts), during the read: no row objects are built and
   * the batches yielded are empty (they mark the end of each chunk, a point to await output).
   */
  onView?: ((view: RowView) => void) | undefined;
  /**
   * Plain `.csv` files only: may hand the end of a file to another reader (see CsvSplit).
   */
  split?: CsvSplit | undefined;
  /** Plain `.csv` files only: read from this byte offset, the start of a line at a record
   * boundary (the rest of a file split by CsvSplit), with line numbers counted from there. */
  from?: number | undefined;
}

/** A plan to let another reader take the bytes of a `.csv` file from `at` (just after a newline). */
export interface CsvSplitPlan {
  at: number;
  /**
   * Called when this reader has read every line before `at`, stopped at a record boundary (see
   * CsvCdrDecoder.atRecordBoundary), after `lines` lines: true if the other reader's results
   * were taken (this reader then stops), false if this reader must read the rest itself.
   */
  finish(lines: number): Promise<boolean>;
  /** The split is given up (this reader reads the rest, if any): stop the other reader. */
  cancel(reason: string): void;
}

/** Decides, per plain `.csv` file (fd open for reading, `size` bytes), whether to split it. */
export type CsvSplit = (file: string, fd: number, size: number) => CsvSplitPlan | undefined;

// Small enough that a batch of rows dies young (flat memory), large enough to amortise the reads.
const CHUNK = 1 << 16;
// CSV is decoded from one reused buffer of this size (grown only for longer lines).
const CSV_CHUNK = 1 << 18;

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
  const onView = opts.onView;
  const view = new RecordView();
  const onRow = onView
    ? (row: CdrRow) => {
        view.row = row;
        onView(view);
      }
    : (row: CdrRow) => batch.push(row);
  try {
    if (kind === 'cdr') {
      const decoder = new BinaryCdrDecoder({ file, onRow, onProblem: opts.onProblem });
      try {
        for await (const chunk of fileChunks(fd)) {
          decoder.push(chunk);
          if (batch.length > 0 || onView) {
            const out = batch;
            batch = [];
            yield out;
          }
        }
      } catch (err) {
        opts.onProblem({ file, message: `read error: ${(err as Error).message}` });
      }
      decoder.end();
    } else {
      const decoder = new CsvCdrDecoder({
        file, onRow, onView, onProblem: opts.onProblem, alwaysCsvParse: opts.alwaysCsvParse ?? false, fieldChecks: opts.fieldChecks,
        continuation: kind === 'csv' && (opts.from ?? 0) > 0,
      });
      const feed = new CsvByteFeed(decoder, CSV_CHUNK);
      try {
        if (kind === 'csv.gz') {
          for await (const chunk of gunzipped(fd)) {
            feed.append(chunk);
            if (batch.length > 0 || onView) {
              const out = batch;
              batch = [];
              yield out;
            }
          }
        } else {
          let pos = opts.from ?? 0; // file offset of the next read
          let plan = opts.split ? opts.split(file, fd.fd, (await fd.stat()).size) : undefined;
          try {
            for (;;) {
              if (plan && pos === plan.at) {
                const p = plan;
                plan = undefined;
                if (feed.pending === 0 && decoder.atRecordBoundary()) {
                  if (await p.finish(decoder.lines)) break;
                } else {
                  p.cancel('not at a record boundary');
                }
              }
              // A synchronous read: the thread-pool round trip of an async one cost more than the
              // read itself. Output still drains between chunks (the yield below).
              const want = plan ? Math.min(feed.room, plan.at - pos) : feed.room;
              const bytesRead = fs.readSync(fd.fd, feed.buffer, feed.offset, want, pos);
              if (bytesRead === 0) break;
              pos += bytesRead;
              feed.took(bytesRead);
              if (batch.length > 0 || onView) {
                const out = batch;
                batch = [];
                yield out;
              }
            }
          } finally {
            plan?.cancel('the read stopped before the split');
          }
        }
      } catch (err) {
        // A damaged .gz or a failing disk: keep what was read, report where reading stopped.
        opts.onProblem({ file, message: `read error: ${(err as Error).message}` });
      }
      feed.flush();
      decoder.end();
    }
    if (batch.length > 0 || onView) yield batch;
  } finally {
    await fd.close().catch(() => undefined);
  }
}

/** The file's bytes chunk by chunk, a fresh buffer each (the binary decoder keeps slices). */
async function* fileChunks(fd: fs.promises.FileHandle): AsyncGenerator<Buffer, void, undefined> {
  for (;;) {
    const buf = Buffer.allocUnsafe(CHUNK);
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

/**
 * Where `cdr query` and `cdr stats` read rows from: the files (readCdrFiles), or the store's cdr
 * table (db-source.ts). Same contract: batches of rows, or views to onView and empty batches.
 */
export type RowSource = (opts: ReadOptions) => AsyncGenerator<CdrRow[]>;

/** All rows of all files, in order. */
export async function* readCdrFiles(files: readonly string[], opts: ReadOptions): AsyncGenerator<CdrRow[]> {
  for (const file of files) yield* readCdrFile(file, opts);
}
