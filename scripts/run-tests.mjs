#!/usr/bin/env node
// Runs every compiled test file (build/test/**/*.test.js) on node's test runner, which prints
// the summary line. Arguments narrow the run: `npm test -- registrar` runs files whose path
// contains "registrar".
//
// A cancelled test (the event loop ran dry while it still awaited something, or it timed out)
// fails the run, and is named with its file at the end.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = walk('build/test', []).sort().filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const work = mkdtempSync(join(tmpdir(), 'mss-run-tests-'));
const cancelledFile = join(work, 'cancelled.ndjson');
const r = spawnSync(
  process.execPath,
  [
    '--test',
    '--test-concurrency=2',
    // What node prints by default: TAP, or spec on a terminal (stdout is passed on as it is).
    `--test-reporter=${process.stdout.isTTY ? 'spec' : 'tap'}`,
    '--test-reporter-destination=stdout',
    `--test-reporter=${new URL('./cancelled-reporter.mjs', import.meta.url).href}`,
    `--test-reporter-destination=${cancelledFile}`,
    ...files,
  ],
  { stdio: 'inherit' },
);
let cancelled = [];
try {
  cancelled = readFileSync(cancelledFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
} catch {
  // no file: the runner did not get as far as reporting
}
rmSync(work, { recursive: true, force: true });
if (cancelled.length > 0) {
  console.error(`\n${cancelled.length} test(s) cancelled:`);
  for (const c of cancelled) console.error(`  ${c.file ? relative(process.cwd(), c.file) : '?'}: ${c.test} (${c.reason})`);
}
process.exit(cancelled.length > 0 ? 1 : (r.status ?? 1));
