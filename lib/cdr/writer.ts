// Appends finished records to the daily files `<dir>/YYYYMMDD.csv` (and/or `.cdr`), named after
// the server's local date at write time. Each record is one write() on a file opened for append,
// so a killed process loses no finished record and leaves at most one partial last record.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { CSV_HEADER, formatCsvRecord } from './csv.js';
import { encodeFileHeader, encodeRecord } from './binary.js';
import type { CdrRecord } from './record.js';

export type CdrFileFormat = 'csv' | 'cdr' | 'both';

export interface CdrWriterOptions {
  dir: string;
  format: CdrFileFormat;
  /** Clock, injectable for tests (midnight rotation). */
  now?: () => Date;
  /** fdatasync after every record: survives power loss, not just a crash. Default false. */
  sync?: boolean;
  /** Called with write errors (disk full...) instead of throwing them; the record is dropped. */
  onError?: (err: Error) => void;
}

/** `YYYYMMDD` of the local date of `d`. */
export function dailyFileStem(d: Date): string {
  return `${d.getFullYear()}${String(d.getMonth() + 1).padStart(2, '0')}${String(d.getDate()).padStart(2, '0')}`;
}

const EMPTY = Buffer.alloc(0);

/** One open daily file of one format. */
class DailyFile {
  private fd: number | null = null;
  private stem = '';

  constructor(
    private readonly dir: string,
    private readonly ext: '.csv' | '.cdr',
    private readonly sync: boolean,
  ) {}

  append(stem: string, rec: CdrRecord, createdAt: Date): void {
    const prefix = this.fd === null || stem !== this.stem ? this.open(stem, createdAt) : EMPTY;
    const body = this.ext === '.csv' ? Buffer.from(formatCsvRecord(rec), 'utf8') : encodeRecord(rec);
    writeFully(this.fd!, prefix.length > 0 ? Buffer.concat([prefix, body]) : body);
    if (this.sync) fs.fdatasyncSync(this.fd!);
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  /** Opens the day's file; returns what must precede the first record (header or newline). */
  private open(stem: string, createdAt: Date): Buffer {
    this.close();
    fs.mkdirSync(this.dir, { recursive: true });
    const file = path.join(this.dir, stem + this.ext);
    const header = this.ext === '.cdr' ? encodeFileHeader(createdAt.getTime()) : Buffer.from(CSV_HEADER + '\n');
    if (!fs.existsSync(file)) createWithContent(file, header);
    // 'a+': appends like 'a' (O_APPEND), and lets us read the existing last byte.
    const fd = fs.openSync(file, 'a+');
    this.fd = fd;
    this.stem = stem;
    const size = fs.fstatSync(fd).size;
    if (size === 0) return header; // emptied by hand, or made where hard links are not supported
    if (this.ext === '.cdr') return EMPTY;
    // A crash mid-record left a line without its newline: keep it apart from the next record.
    const last = Buffer.alloc(1);
    fs.readSync(fd, last, 0, 1, size - 1);
    return last[0] === 0x0a ? EMPTY : Buffer.from('\n');
  }
}

/**
 * Makes `file` appear already holding `content`, or leaves it alone if it exists: several server
 * processes (sip.workers) may open the day's file at the same moment, and only one may write its
 * header. The content is written to a private temporary file that is then hard-linked to the name,
 * which either succeeds whole or fails with EEXIST.
 */
function createWithContent(file: string, content: Buffer): void {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    fs.writeFileSync(tmp, content, { flag: 'wx' });
    fs.linkSync(tmp, file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
    // A filesystem without hard links (FAT): the empty file is created and open() adds the header.
    fs.closeSync(fs.openSync(file, 'a'));
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

function writeFully(fd: number, data: Buffer): void {
  let off = 0;
  // writeSync on a regular file writes everything in one call; the loop covers the exotic cases.
  for (let tries = 0; off < data.length && tries < 1000; tries++) off += fs.writeSync(fd, data, off);
  if (off < data.length) throw new Error('short write to CDR file');
}

export class CdrWriter {
  /**
   * `written`: records appended to every file of the format; `errors`: appends that failed, the
   * record missing from that file (with format `both`, a record that reached only one of its two
   * files counts one error and is not counted as written). Read by the metrics.
   */
  readonly counts = { written: 0, errors: 0 };
  private readonly files: DailyFile[];
  private readonly now: () => Date;

  constructor(private readonly opts: CdrWriterOptions) {
    this.now = opts.now ?? (() => new Date());
    const sync = opts.sync ?? false;
    this.files = [];
    if (opts.format !== 'cdr') this.files.push(new DailyFile(opts.dir, '.csv', sync));
    if (opts.format !== 'csv') this.files.push(new DailyFile(opts.dir, '.cdr', sync));
  }

  write(rec: CdrRecord): void {
    const now = this.now();
    const stem = dailyFileStem(now);
    let failed = false;
    for (const file of this.files) {
      try {
        file.append(stem, rec, now);
      } catch (err) {
        failed = true;
        this.counts.errors++;
        file.close(); // reopened (and the tail re-checked) on the next write
        if (!this.opts.onError) throw err;
        this.opts.onError(err as Error);
      }
    }
    if (!failed) this.counts.written++;
  }

  close(): void {
    for (const file of this.files) file.close();
  }
}
