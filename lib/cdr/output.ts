// Buffered writing to an output stream that respects backpressure and stops quietly when the
// reader goes away (`cdr query | head`).
import { CDR_COLUMNS, callTagName, parseFciCached, type CdrRecord } from './record.js';
import { CSV_HEADER, formatCsvRecord } from './csv.js';
import type { CdrRow } from './row.js';

const FLUSH_AT = 1 << 16;

export class BufferedOutput {
  private parts: string[] = [];
  private size = 0;
  /** True once the stream failed or closed (e.g. EPIPE): callers stop producing. */
  closed = false;

  constructor(private readonly out: NodeJS.WritableStream) {
    out.on('error', () => {
      this.closed = true;
    });
  }

  async write(text: string): Promise<void> {
    this.parts.push(text);
    this.size += text.length;
    if (this.size >= FLUSH_AT) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.parts.length === 0 || this.closed) return;
    const data = this.parts.join('');
    this.parts = [];
    this.size = 0;
    if (!this.out.write(data)) await waitForDrain(this.out);
  }
}

function waitForDrain(out: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      out.off('drain', done);
      out.off('error', done);
      out.off('close', done);
      resolve();
    };
    out.on('drain', done);
    out.on('error', done);
    out.on('close', done);
  });
}

export type RowFormat = 'table' | 'csv' | 'json' | 'ndjson';

interface TableColumn {
  title: string;
  width: number;
  right?: boolean;
  value: (rec: CdrRecord) => string;
}

const TABLE_COLUMNS: TableColumn[] = [
  { title: 'start', width: 19, value: (r) => r.start_time.slice(0, 19).replace('T', ' ') },
  { title: 'caller', width: 14, value: (r) => r.caller },
  { title: 'callee', width: 14, value: (r) => r.callee },
  { title: 'route', width: 16, value: (r) => r.route },
  { title: 'duration', width: 9, right: true, value: (r) => r.duration },
  { title: 'bill', width: 6, right: true, value: (r) => r.billable },
  { title: 'status', width: 6, right: true, value: (r) => r.status },
  { title: 'tag', width: 16, value: (r) => { const t = parseFciCached(r.fci).callTag; return t === undefined ? '' : callTagName(t) ?? String(t); } },
  { title: 'cause', width: 5, right: true, value: (r) => String(parseFciCached(r.fci).cause ?? '') },
];

function cell(text: string, width: number, right = false): string {
  const flat = text.replace(/[\r\n\t]/g, ' ');
  const cut = flat.length > width ? flat.slice(0, width - 1) + '…' : flat;
  return right ? cut.padStart(width) : cut.padEnd(width);
}

/** Writes rows in one of the output formats, a row at a time (fixed-width table: no buffering). */
export class RowPrinter {
  private count = 0;

  constructor(
    private readonly out: BufferedOutput,
    private readonly format: RowFormat,
  ) {}

  async begin(): Promise<void> {
    if (this.format === 'csv') await this.out.write(CSV_HEADER + '\n');
    else if (this.format === 'json') await this.out.write('[');
    else if (this.format === 'table') {
      await this.out.write(TABLE_COLUMNS.map((c) => cell(c.title, c.width, c.right)).join('  ').trimEnd() + '\n');
    }
  }

  async row(row: CdrRow): Promise<void> {
    const first = this.count++ === 0;
    switch (this.format) {
      case 'csv':
        return this.out.write(row.csvLine !== undefined ? row.csvLine + '\n' : formatCsvRecord(row.rec));
      case 'ndjson':
        return this.out.write(JSON.stringify(orderedRecord(row.rec)) + '\n');
      case 'json':
        return this.out.write((first ? '\n' : ',\n') + JSON.stringify(orderedRecord(row.rec)));
      case 'table':
        return this.out.write(TABLE_COLUMNS.map((c) => cell(c.value(row.rec), c.width, c.right)).join('  ').trimEnd() + '\n');
    }
  }

  async end(): Promise<void> {
    if (this.format === 'json') await this.out.write(this.count === 0 ? ']\n' : '\n]\n');
    await this.out.flush();
  }
}

function orderedRecord(rec: CdrRecord): CdrRecord {
  const o = {} as CdrRecord;
  for (const c of CDR_COLUMNS) o[c] = rec[c];
  return o;
}
