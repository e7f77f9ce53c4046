#!/usr/bin/env node
// Parser baselines for the benchmark: how long reading FILE takes with csv-parse alone
// (`csv-parse`), and with our reader forced through csv-parse for every line (`reader-slow`)
// or with its no-quote fast path (`reader-fast`). Prints the number of records.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse } from 'csv-parse';

const [mode, file] = process.argv.slice(2);
const build = path.resolve(process.env.CDR_BUILD ?? 'build');
let n = 0;
if (mode === 'csv-parse') {
  const parser = fs.createReadStream(file).pipe(parse({ relax_column_count: true }));
  for await (const rec of parser) if (rec[4] === '101') n++;
} else {
  const { readCdrFile } = await import(pathToFileURL(path.join(build, 'lib/cdr/source.js')).href);
  for await (const batch of readCdrFile(file, { onProblem: () => {}, alwaysCsvParse: mode === 'reader-slow' })) {
    for (const row of batch) if (row.rec.caller === '101') n++;
  }
}
console.log(n);
