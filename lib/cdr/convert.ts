// `cdr convert IN OUT`: .csv / .csv.gz / .cdr in, .csv / .cdr out, direction from the names.
// The output is written to a temporary file and renamed into place, so a failed or rejected
// conversion never leaves a half-written OUT.
import fs from 'node:fs';
import { cdrFileKind, readCdrFile, type ReadOptions } from './source.js';
import { CSV_HEADER, formatCsvRecord } from './csv.js';
import { encodeFileHeader, encodeRecord } from './binary.js';

/** A refused conversion: exitCode 2 for names that are not CDR files, 1 for an existing OUT. */
export class ConvertRefusedError extends Error {
  constructor(message: string, readonly exitCode: 1 | 2) {
    super(message);
  }
}

export interface ConvertOptions extends ReadOptions {
  force?: boolean;
  /** Decide, once reading is done, whether to keep the output (false: discard it). */
  keepOutput?: () => boolean;
  now?: () => number;
  onRowsRead?: (n: number) => void;
}

const FLUSH_AT = 1 << 20;

export async function convertFile(input: string, output: string, opts: ConvertOptions): Promise<{ rows: number; written: boolean }> {
  const inKind = cdrFileKind(input);
  if (!inKind) throw new ConvertRefusedError(`${input}: input must end in .csv, .csv.gz or .cdr`, 2);
  const outKind = cdrFileKind(output);
  if (outKind !== 'csv' && outKind !== 'cdr') throw new ConvertRefusedError(`${output}: output must end in .csv or .cdr`, 2);
  if (!opts.force && fs.existsSync(output)) throw new ConvertRefusedError(`${output} exists (use --force to overwrite)`, 1);

  const tmp = `${output}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  let open = true;
  let rows = 0;
  let written = false;
  try {
    const parts: Buffer[] = [];
    let size = 0;
    const put = (b: Buffer) => {
      parts.push(b);
      size += b.length;
      if (size >= FLUSH_AT) flush();
    };
    const flush = () => {
      const data = Buffer.concat(parts);
      parts.length = 0;
      size = 0;
      for (let off = 0; off < data.length; ) off += fs.writeSync(fd, data, off);
    };
    put(outKind === 'csv' ? Buffer.from(CSV_HEADER + '\n') : encodeFileHeader((opts.now ?? Date.now)()));
    for await (const batch of readCdrFile(input, opts)) {
      opts.onRowsRead?.(batch.length);
      for (const row of batch) {
        put(outKind === 'csv' ? Buffer.from(row.csvLine !== undefined ? row.csvLine + '\n' : formatCsvRecord(row.rec)) : encodeRecord(row.rec));
        rows++;
      }
    }
    flush();
    fs.closeSync(fd);
    open = false;
    if (opts.keepOutput?.() ?? true) {
      fs.renameSync(tmp, output);
      written = true;
    }
  } finally {
    if (open) fs.closeSync(fd);
    if (!written) fs.rmSync(tmp, { force: true });
  }
  return { rows, written };
}
