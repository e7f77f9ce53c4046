// `cdr convert IN OUT`: .csv / .csv.gz / .cdr in, .csv / .cdr out, direction from the names.
// The output is written to a temporary file and renamed into place, so a failed or rejected
// conversion never leaves a half-written OUT.
import fs from 'node:fs';
import { cdrFileKind, readCdrFile, type ReadOptions } from './source.js';
import { CSV_HEADER, formatCsvRecord } from './csv.js';
import { isUtf8 } from 'node:buffer';
import { encodeFileHeader, encodeLineInto, encodeRecordInto, maxLineRecordSize, maxRecordSize } from './binary.js';
import { LineView, type RowView } from './view.js';

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

// Records are encoded into one output buffer, written out whenever it fills: no row object, string
// or Buffer per record for plain CSV lines (see view.ts), so memory stays flat.
const OUT_SIZE = 1 << 20;

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
    let out = Buffer.allocUnsafe(OUT_SIZE);
    let at = 0;
    const flush = () => {
      for (let off = 0; off < at; ) off += fs.writeSync(fd, out, off, at - off);
      at = 0;
    };
    /** Room for `n` more bytes at out[at]. */
    const room = (n: number) => {
      if (at + n <= out.length) return;
      flush();
      if (n > out.length) out = Buffer.allocUnsafe(n);
    };
    const putString = (text: string) => {
      room(Buffer.byteLength(text, 'utf8'));
      at += out.write(text, at, 'utf8');
    };
    if (outKind === 'csv') putString(CSV_HEADER + '\n');
    else {
      const header = encodeFileHeader((opts.now ?? Date.now)());
      room(header.length);
      at += header.copy(out, at);
    }
    const onView = (v: RowView) => {
      rows++;
      // Plain lines are copied byte for byte, when valid UTF-8 (otherwise the text, with its
      // replacement characters, is what the row-based writer always wrote).
      const line = v instanceof LineView && isUtf8(v.buf.subarray(v.starts[0]!, v.end)) ? v : null;
      if (outKind === 'csv') {
        if (line && line.mid === null) {
          const s = line.starts[0]!;
          room(line.end - s + 1);
          at += line.buf.copy(out, at, s, line.end);
          out[at++] = 0x0a;
        } else {
          const row = v.toRow();
          putString(row.csvLine !== undefined ? row.csvLine + '\n' : formatCsvRecord(row.rec));
        }
      } else if (line) {
        room(maxLineRecordSize(line));
        at = encodeLineInto(out, at, line);
      } else {
        const rec = v.toRow().rec;
        room(maxRecordSize(rec));
        at = encodeRecordInto(out, at, rec);
      }
    };
    let reported = 0;
    for await (const _ of readCdrFile(input, { ...opts, onView })) {
      opts.onRowsRead?.(rows - reported);
      reported = rows;
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
