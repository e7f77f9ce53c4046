// `cdr stats` on two cores: the second half of a large plain `.csv` file is read by a worker thread
// (stats-worker.ts) while this thread reads the first half, and the worker's aggregates are merged
// in. The results are taken only when that is certainly what reading the file in one go gives:
//   - the split is at the start of a line, and the reader of the first half, having read every
//     line before it, is at a record boundary (no quoted record open, nothing pending, standard
//     column order: CsvCdrDecoder.atRecordBoundary()), so the worker, starting there with a fresh
//     decoder, reads those bytes exactly as this one would;
//   - the sums merged are exact (whole numbers, see Tally.canMerge), the groups keep the order
//     they were first met in, and the worker's bad-line reports come after this thread's, their
//     line numbers offset by the lines before the split.
// Otherwise (or if the worker fails, or reports too many bad lines) this thread reads the second
// half itself, continuing where it stopped: the same results, only slower.
import fs from 'node:fs';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { CdrFilter } from './filter.js';
import type { Problem, ProblemSink } from './problems.js';
import type { CsvSplit } from './source.js';
import type { StatsAggregator, StatsGroup, StatsPart } from './stats.js';

export interface ParallelOptions {
  /** Files smaller than this are read in one thread (default 32 MiB). */
  minBytes?: number;
  /** A worker reporting more bad lines than this gives up (its reports are held in memory). */
  maxProblems?: number;
  /** Told what became of each split: `merged`, or why this thread read the second part itself. */
  onSplit?: (file: string, outcome: string) => void;
}

/** What the worker is given (workerData). */
export interface StatsWorkerJob {
  file: string;
  from: number;
  filter: CdrFilter;
  by: StatsGroup | undefined;
  /** The --caller/--callee checks, values as UTF-8 text. */
  checks: { index: number; value: string }[] | undefined;
  maxProblems: number;
}

/** What the worker answers. */
export type StatsWorkerReply = { ok: true; part: StatsPart; problems: Problem[] } | { ok: false; reason: string };

const MIN_BYTES = 32 << 20;
const MAX_PROBLEMS = 10_000;
const WINDOW = 1 << 16;
/** Where in a file the worker's part starts: this thread reads a little more, as the worker needs
 * some time to start (loading its modules). */
export const SPLIT_SHARE = 0.56;

interface SplitOptions {
  filter: CdrFilter;
  by?: StatsGroup | undefined;
  onProblem: ProblemSink;
  alwaysCsvParse?: boolean | undefined;
  fieldChecks?: { index: number; value: Buffer }[] | undefined;
}

export function statsSplit(opts: SplitOptions, agg: StatsAggregator, parallel: ParallelOptions): CsvSplit | undefined {
  if (opts.alwaysCsvParse) return undefined;
  if (os.availableParallelism() < 2) return undefined;
  const checks = opts.fieldChecks?.map((c) => ({ index: c.index, value: c.value.toString('utf8') }));
  if (opts.fieldChecks?.some((c, i) => !Buffer.from(checks![i]!.value, 'utf8').equals(c.value))) return undefined;
  const minBytes = parallel.minBytes ?? MIN_BYTES;
  const maxProblems = parallel.maxProblems ?? MAX_PROBLEMS;
  return (file, fd, size) => {
    if (size < minBytes) return undefined;
    const at = lineStartAfter(fd, Math.floor(size * SPLIT_SHARE), size);
    if (at === undefined) return undefined;
    const job: StatsWorkerJob = { file, from: at, filter: opts.filter, by: opts.by, checks, maxProblems };
    let worker: Worker;
    try {
      worker = new Worker(new URL('./stats-worker.js', import.meta.url), { workerData: job, execArgv: workerExecArgv() });
    } catch {
      return undefined;
    }
    const reply = new Promise<StatsWorkerReply>((resolve) => {
      worker.once('message', resolve);
      worker.once('error', (err) => resolve({ ok: false, reason: String(err) }));
      worker.once('exit', () => resolve({ ok: false, reason: 'exited' }));
    });
    return {
      at,
      async finish(lines) {
        const r = await reply;
        void worker.terminate();
        if (!r.ok || !agg.canMerge(r.part)) {
          parallel.onSplit?.(file, r.ok ? 'sums not exact' : r.reason);
          return false;
        }
        for (const p of r.problems) opts.onProblem(p.line === undefined ? p : { ...p, line: p.line + lines });
        agg.merge(r.part);
        parallel.onSplit?.(file, 'merged');
        return true;
      },
      cancel(reason) {
        void worker.terminate();
        parallel.onSplit?.(file, reason);
      },
    };
  };
}

/** The process's Node options, less those a worker refuses (`--input-type`, for `node -e`). */
function workerExecArgv(): string[] {
  const args: string[] = [];
  for (let i = 0; i < process.execArgv.length; i++) {
    const a = process.execArgv[i]!;
    if (a === '--input-type') i++;
    else if (!a.startsWith('--input-type=')) args.push(a);
  }
  return args;
}

/** The offset just after the first newline at or after `pos`, if within reach and before the end. */
function lineStartAfter(fd: number, pos: number, size: number): number | undefined {
  const buf = Buffer.allocUnsafe(WINDOW);
  const n = fs.readSync(fd, buf, 0, WINDOW, pos);
  const nl = buf.subarray(0, n).indexOf(10);
  if (nl < 0) return undefined;
  const at = pos + nl + 1;
  return at > 0 && at < size ? at : undefined;
}
