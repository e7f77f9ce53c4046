#!/usr/bin/env node
// Runs `minisipserver cdr ...` from a compiled tree (CDR_BUILD, default build/) without needing
// cli/main.js: node scripts/bench/cdr-run.mjs query FILE --caller 101 --format csv
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const build = path.resolve(process.env.CDR_BUILD ?? 'build');
const { runCdr } = await import(pathToFileURL(path.join(build, 'cli/cdr.js')).href);
process.exitCode = await runCdr(process.argv.slice(2), { out: process.stdout, err: process.stderr, isTTY: process.stdout.isTTY === true });
