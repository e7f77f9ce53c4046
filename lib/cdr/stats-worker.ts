// Worker thread of `cdr stats` (see stats-split.ts): aggregates a plain `.csv` file from a byte
// offset to its end and posts the aggregates and the bad-line reports (line numbers counted from
// that offset).
import { parentPort, workerData } from 'node:worker_threads';
import { readCdrFile } from './source.js';
import { StatsAggregator } from './stats.js';
import type { Problem } from './problems.js';
import type { StatsWorkerJob, StatsWorkerReply } from './stats-split.js';

const job = workerData as StatsWorkerJob;

async function run(): Promise<StatsWorkerReply> {
  const agg = new StatsAggregator(job.filter, job.by);
  const problems: Problem[] = [];
  let tooMany = false;
  const onProblem = (p: Problem) => {
    if (problems.length < job.maxProblems) problems.push(p);
    else tooMany = true;
  };
  const fieldChecks = job.checks?.map((c) => ({ index: c.index, value: Buffer.from(c.value, 'utf8') }));
  for await (const _ of readCdrFile(job.file, { onProblem, onView: agg.onView, fieldChecks, from: job.from })) {
    if (tooMany) return { ok: false, reason: 'too many bad lines' };
  }
  if (tooMany) return { ok: false, reason: 'too many bad lines' };
  return { ok: true, part: agg.part(), problems };
}

run().then(
  (reply) => parentPort!.postMessage(reply),
  (err: unknown) => parentPort!.postMessage({ ok: false, reason: String(err) } satisfies StatsWorkerReply),
);
