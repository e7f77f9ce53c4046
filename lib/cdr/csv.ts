// CSV form of CDR records. Writing and parsing of anything that needs quoting goes through
// csv-stringify / csv-parse. Lines without a double quote cannot contain a quoted comma or newline
// (RFC 4180), so those are split on commas directly: exact, and several times faster on the
// common case (see scripts/bench/cdr.sh).
import { parse as parseCsvSync } from 'csv-parse/sync';
import { stringify as stringifyCsvSync } from 'csv-stringify/sync';
import { CDR_COLUMNS, type CdrColumn, type CdrRecord } from './record.js';
import { rowFromRecord, type CdrRow } from './row.js';
import type { ProblemSink } from './problems.js';

export const CSV_HEADER = CDR_COLUMNS.join(',');

const NEEDS_QUOTING = /[",\r\n]/;

/** One CSV line for `values`, newline included. */
export function formatCsvLine(values: readonly string[]): string {
  for (const v of values) {
    if (NEEDS_QUOTING.test(v)) return stringifyCsvSync([values as string[]], { record_delimiter: '\n' });
  }
  return values.join(',') + '\n';
}

export function formatCsvRecord(rec: CdrRecord): string {
  return formatCsvLine(CDR_COLUMNS.map((c) => rec[c]));
}

// A quoted field may span lines; a record still open after this many lines is treated as a stray
// quote, reported, and the lines after its first are read again on their own.
const MAX_RECORD_LINES = 64;
const MAX_RECORD_CHARS = 1 << 20;

interface CsvDecoderOptions {
  file: string;
  onRow: (row: CdrRow) => void;
  onProblem: ProblemSink;
  /** Disable the no-quote fast path (benchmarks and tests compare both). */
  alwaysCsvParse?: boolean;
}

/**
 * Turns CSV text, pushed in chunks of any size, into validated rows. Header lines (a field
 * `start_time`) may appear anywhere and set the column order of the lines after them. The last line
 * of the input, when it has no newline, is what a crash while appending leaves: it is kept if it
 * is a complete valid record and dropped silently otherwise.
 */
export class CsvCdrDecoder {
  private rest = '';
  private lineNo = 0;
  private started = false;
  /** Physical lines (raw, `\r` kept) of a quoted record still open, and where it started. */
  private pending: string[] = [];
  private pendingChars = 0;
  private pendingLine = 0;
  /** For each CDR column, its index in the file's header (-1 if absent); null = canonical order. */
  private columnMap: number[] | null = null;
  private fieldCount: number = CDR_COLUMNS.length;
  /** Records of the current chunk waiting for the quoted ones among them to be parsed. */
  private queue: QueuedRecord[] = [];

  constructor(private readonly opts: CsvDecoderOptions) {}

  push(text: string): void {
    if (!this.started) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    const data = this.rest === '' ? text : this.rest + text;
    let start = 0;
    for (;;) {
      const nl = data.indexOf('\n', start);
      if (nl < 0) break;
      this.physicalLine(data.slice(start, nl), true);
      start = nl + 1;
    }
    this.rest = data.slice(start);
    this.flushQueue();
  }

  /** `n` whole lines were dropped before reaching the decoder (LinePrefilter): count them. */
  skipLines(n: number): void {
    this.lineNo += n;
  }

  end(): void {
    if (this.rest !== '') {
      const last = this.rest;
      this.rest = '';
      this.physicalLine(last, false);
    }
    if (this.pending.length > 0) this.abandonPending(false);
    this.flushQueue();
  }

  private physicalLine(raw: string, terminated: boolean): void {
    this.lineNo++;
    if (this.pending.length > 0) {
      this.pending.push(raw);
      this.pendingChars += raw.length;
      if (countQuotes(this.pending.join('\n')) % 2 === 0) {
        const lines = this.pending;
        this.pending = [];
        this.parseQuoted(lines.join('\n'), this.pendingLine, terminated);
      } else if (this.pending.length >= MAX_RECORD_LINES || this.pendingChars > MAX_RECORD_CHARS) {
        this.abandonPending(true);
      }
      return;
    }
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line === '') return;
    if (!this.opts.alwaysCsvParse && line.indexOf('"') < 0) {
      if (this.queue.length === 0) this.fields(line.split(','), this.lineNo, terminated, line);
      else this.queue.push({ fields: line.split(','), line: this.lineNo, terminated, plain: line });
    } else if (countQuotes(raw) % 2 === 0) {
      this.parseQuoted(raw, this.lineNo, terminated);
    } else {
      this.pending = [raw];
      this.pendingChars = raw.length;
      this.pendingLine = this.lineNo;
    }
  }

  /** An open quote never closed: report its first line, then read the other lines again. */
  private abandonPending(moreInputFollows: boolean): void {
    this.flushQueue(); // keeps the reports in line order
    const others = this.pending.slice(1);
    const firstLine = this.pendingLine;
    this.pending = [];
    // A single unterminated line at the very end is the partial record a crash leaves: silent.
    if (moreInputFollows || others.length > 0) {
      this.opts.onProblem({ file: this.opts.file, line: firstLine, message: 'unterminated quoted field' });
    }
    this.lineNo = firstLine;
    others.forEach((raw, i) => this.physicalLine(raw, moreInputFollows || i < others.length - 1));
  }

  private parseQuoted(text: string, line: number, terminated: boolean): void {
    if (text.endsWith('\r')) text = text.slice(0, -1);
    const q: QueuedRecord = this.opts.alwaysCsvParse ? { before: [], quoted: text, after: [], line, terminated } : splitAroundQuotes(text, line, terminated);
    this.queue.push(q);
  }

  /**
   * Parses the quoted parts of the queued records with one csv-parse call (its per-call cost
   * dwarfs its per-record cost), then hands every queued record on in order. Should the batch
   * fail, each part is parsed alone so that only the bad record is lost.
   */
  private flushQueue(): void {
    if (this.queue.length === 0) return;
    const queue = this.queue;
    this.queue = [];
    const quoted = queue.filter((q) => q.quoted !== undefined);
    let parsed: string[][] | null = null;
    try {
      parsed = parseCsvSync(quoted.map((q) => q.quoted).join('\n'), CSV_PARSE_OPTIONS) as string[][];
      if (parsed.length !== quoted.length) parsed = null;
    } catch {
      parsed = null;
    }
    let next = 0;
    for (const q of queue) {
      if (q.quoted === undefined) {
        this.fields(q.fields!, q.line, q.terminated, q.plain);
        continue;
      }
      const middle = parsed ? parsed[next++]! : this.parseAlone(q);
      if (middle) this.fields([...q.before!, ...middle, ...q.after!], q.line, q.terminated, undefined);
    }
  }

  private parseAlone(q: QueuedRecord): string[] | null {
    try {
      const records = parseCsvSync(q.quoted!, CSV_PARSE_OPTIONS) as string[][];
      if (records.length === 1) return records[0]!;
      if (q.terminated) this.problem(q.line, 'CSV syntax: not exactly one record');
    } catch (err) {
      if (q.terminated) this.problem(q.line, `CSV syntax: ${(err as Error).message.replace(/^Invalid/, 'invalid')}`);
    }
    return null;
  }

  private fields(f: string[], line: number, terminated: boolean, plainLine: string | undefined): void {
    // A header names start_time; no record can hold that text where a timestamp belongs.
    if (f[0] === 'record_id' || f.indexOf('start_time') >= 0) {
      this.setHeader(f);
      return;
    }
    if (f.length !== this.fieldCount) {
      if (terminated) this.problem(line, `expected ${this.fieldCount} fields, got ${f.length}`);
      return;
    }
    const rec = this.columnMap === null ? canonicalRecord(f) : mappedRecord(f, this.columnMap);
    const row = rowFromRecord(rec, this.columnMap === null ? plainLine : undefined);
    if (typeof row === 'string') {
      if (terminated) this.problem(line, row);
      return;
    }
    this.opts.onRow(row);
  }

  private setHeader(names: string[]): void {
    this.fieldCount = names.length;
    const canonical = names.length === CDR_COLUMNS.length && names.every((n, i) => n === CDR_COLUMNS[i]);
    this.columnMap = canonical ? null : CDR_COLUMNS.map((c) => names.indexOf(c));
  }

  private problem(line: number, message: string): void {
    this.opts.onProblem({ file: this.opts.file, line, message });
  }
}

interface QueuedRecord {
  line: number;
  terminated: boolean;
  /** A record with quotes: the fields before its first quoted field, the text from that field to
   * the last one (for csv-parse), the fields after... */
  before?: string[];
  quoted?: string;
  after?: string[];
  /** ...or a record without quotes, split on commas already. */
  fields?: string[];
  plain?: string;
}

/**
 * Cuts a record at the comma before its first `"` and the comma after its last one. The outer
 * parts hold no quote, so (RFC 4180) they are plain fields split exactly on commas; every quote,
 * and so every quoted comma or newline, stays in the middle part, which goes to csv-parse.
 */
function splitAroundQuotes(text: string, line: number, terminated: boolean): QueuedRecord {
  const start = text.lastIndexOf(',', text.indexOf('"')) + 1;
  let end = text.indexOf(',', text.lastIndexOf('"'));
  if (end < 0) end = text.length;
  return {
    line,
    terminated,
    before: start > 0 ? text.slice(0, start - 1).split(',') : [],
    quoted: text.slice(start, end),
    after: end < text.length ? text.slice(end + 1).split(',') : [],
  };
}

const CSV_PARSE_OPTIONS = { relax_column_count: true, record_delimiter: '\n' } as const;

function countQuotes(s: string): number {
  let n = 0;
  for (let i = s.indexOf('"'); i >= 0; i = s.indexOf('"', i + 1)) n++;
  return n;
}

function canonicalRecord(f: string[]): CdrRecord {
  // Written out so every record shares one object shape (faster than building it in a loop).
  return {
    record_id: f[0]!, record_type: f[1]!, party_kind: f[2]!, call_id: f[3]!, caller: f[4]!,
    caller_name: f[5]!, callee: f[6]!, dialled: f[7]!, route: f[8]!, start_time: f[9]!,
    answer_time: f[10]!, end_time: f[11]!, duration: f[12]!, billable: f[13]!, status: f[14]!,
    fci: f[15]!, caller_address: f[16]!, callee_address: f[17]!, media: f[18]!, codec: f[19]!,
    user_agent: f[20]!, node: f[21]!,
  };
}

function mappedRecord(f: string[], map: number[]): CdrRecord {
  const rec = {} as CdrRecord;
  CDR_COLUMNS.forEach((c: CdrColumn, i) => {
    const at = map[i]!;
    rec[c] = at >= 0 ? f[at]! : '';
  });
  return rec;
}
