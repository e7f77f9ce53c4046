// CSV form of CDR records. Writing and parsing of anything that needs quoting goes through
// csv-stringify / csv-parse. Lines without a double quote cannot contain a quoted comma or newline
// (RFC 4180), so those are split on commas directly: exact, and several times faster on the
// common case (see scripts/bench/cdr.sh).
import { parse as parseCsvSync } from 'csv-parse/sync';
import { stringify as stringifyCsvSync } from 'csv-stringify/sync';
import { CDR_COLUMNS, type CdrColumn, type CdrRecord } from './record.js';
import { rowFromRecord, type CdrRow } from './row.js';
import type { ProblemSink } from './problems.js';
import type { FieldCheck } from './prefilter.js';
import { BytesTable, LineView, MAX_STARTS, RecordView, TimestampReader, type RowView } from './view.js';

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
  // The usual record needs no quoting: joined directly, it is that line exactly when it holds
  // no quote, CR or LF and no more commas than the separators.
  let line = rec[CDR_COLUMNS[0]!];
  for (let i = 1; i < CDR_COLUMNS.length; i++) line += ',' + rec[CDR_COLUMNS[i]!];
  if (plainCsvLine(line, CDR_COLUMNS.length - 1)) return line + '\n';
  return formatCsvLine(CDR_COLUMNS.map((c) => rec[c]));
}

function plainCsvLine(line: string, separators: number): boolean {
  let commas = 0;
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (c === 44) commas++;
    else if (c === 34 || c === 10 || c === 13) return false;
  }
  return commas === separators;
}

// A quoted field may span lines; a record still open after this many lines is treated as a stray
// quote, reported, and the lines after its first are read again on their own.
const MAX_RECORD_LINES = 64;
const MAX_RECORD_CHARS = 1 << 20;

interface CsvDecoderOptions {
  file: string;
  /** Receives each good record as a row... */
  onRow?: (row: CdrRow) => void;
  /** ...or, if set, as a view valid only during the call (no row object built: see view.ts). */
  onView?: ((view: RowView) => void) | undefined;
  onProblem: ProblemSink;
  /** Disable the no-quote fast path (benchmarks and tests compare both). */
  alwaysCsvParse?: boolean;
  /** pushBytes() only: exact --caller/--callee tests; lines whose field certainly differs are
   * dropped before any other check (see prefilter.ts for the rules). */
  fieldChecks?: FieldCheck[] | undefined;
  /** The bytes continue a file at a record boundary (no byte order mark to look for). */
  continuation?: boolean;
}

const NF = CDR_COLUMNS.length;
const START_TIME = Buffer.from('start_time');
const RECORD_ID = Buffer.from('record_id');
const START_COL = CDR_COLUMNS.indexOf('start_time');
const ANSWER_COL = CDR_COLUMNS.indexOf('answer_time');
const END_COL = CDR_COLUMNS.indexOf('end_time');
const TIME_COLS = [START_COL, ANSWER_COL, END_COL];
/** Length of a timestamp as written (`2026-11-26T09:15:02.123+01:00`). */
const TS_LENGTH = 29;

// csv-parse results of quoted parts (a pure function of the text): caller names and the like
// repeat from record to record, and csv-parse's cost per call is high.
const parsedCache = new Map<string, string[]>();
const PARSED_CACHE_MAX = 4096;

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
  private readonly view = new LineView();
  /** csv-parse's values of the quoted parts met first (see quotedLine()). */
  private readonly quotedFew = new BytesTable<string[]>(32, 256);
  private readonly recordView = new RecordView();
  private readonly tsStart = new TimestampReader();
  private readonly tsAnswer = new TimestampReader();
  private readonly tsEnd = new TimestampReader();

  constructor(private readonly opts: CsvDecoderOptions) {
    if (opts.continuation) this.started = true;
  }

  /** Physical lines read so far. */
  get lines(): number {
    return this.lineNo;
  }

  /**
   * Whether, after the lines pushed so far, a fresh decoder made with `continuation` would read
   * what follows exactly as this one: no record open, nothing queued or held back, the standard
   * column order (a byte range after this point can then be read by another decoder).
   */
  atRecordBoundary(): boolean {
    return this.started && this.rest === '' && this.pending.length === 0 && this.queue.length === 0 &&
      this.columnMap === null && this.fieldCount === CDR_COLUMNS.length && !this.opts.alwaysCsvParse;
  }

  /**
   * Decodes the complete lines of the UTF-8 bytes buf[start, end) and returns where the
   * unfinished last line begins (the caller passes those bytes again, followed by more, or as
   * text to push() before end()). `buf` may be reused once this returns. Plain lines (no quote,
   * canonical column order) are checked and handed on from the bytes; any other line goes
   * through the text path (push()), with the same results.
   */
  pushBytes(buf: Buffer, start: number, end: number): number {
    let pos = start;
    if (!this.started) {
      if (end - pos < 3 && buf.indexOf(0x0a, pos) < 0) return pos; // not enough to rule out a BOM
      this.started = true;
      if (buf[pos] === 0xef && buf[pos + 1] === 0xbb && buf[pos + 2] === 0xbf) pos += 3;
    }
    this.view.buf = buf;
    this.hintBuf = null;
    const starts = this.view.starts;
    let nextQuote = -2; // next `"` in buf at or after pos (-1: none)
    let noSkip = -1; // a line (its start) to scan in full
    const checks = this.opts.fieldChecks;
    while (pos < end) {
      if (checks && this.pending.length === 0 && this.columnMap === null && !this.opts.alwaysCsvParse) {
        // Quick rejection for --caller/--callee: find only the fields tested, natively.
        const nl = buf.indexOf(0x0a, pos);
        if (nl < 0 || nl >= end) break;
        if (nextQuote !== -1 && nextQuote < pos) nextQuote = buf.indexOf(0x22, pos);
        const e = nl > pos && buf[nl - 1] === 13 ? nl - 1 : nl;
        let limit = e;
        if (nextQuote >= 0 && nextQuote < nl) {
          // Commas before the first quote are separators for certain, unless the line opens a
          // record spanning lines (odd quotes): then nothing is decided here.
          let quotes = 0;
          for (let q = nextQuote; q >= 0 && q < nl; q = buf.indexOf(0x22, q + 1)) quotes++;
          limit = quotes % 2 === 0 ? nextQuote : -1;
        }
        if (limit >= 0) {
          if (!quickMayMatch(buf, pos, e, limit, checks) && hasDigit(buf, pos, e) && !this.mayBeHeader(buf, pos, e)) {
            this.lineNo++;
            pos = nl + 1;
            continue;
          }
        }
      }
      // Timestamps may be stepped over (see scanLine()) only on a line that will be read as plain.
      const skip = noSkip !== pos && checks === undefined && this.pending.length === 0 && this.columnMap === null &&
        this.queue.length === 0 && !this.opts.alwaysCsvParse;
      const nl = scanLine(buf, pos, end, starts, skip);
      if (nl >= end) break;
      const commas = scanCommas;
      const quote = scanQuote;
      const lastQuote = scanLastQuote;
      const quotes = scanQuotes;
      const skipped = scanSkipped;
      const e = nl > pos && buf[nl - 1] === 13 ? nl - 1 : nl;
      if (skipped !== 0 && (quote >= 0 || this.mayBeHeader(buf, pos, e))) {
        noSkip = pos; // scan this line again in full
        continue;
      }
      if (this.pending.length > 0 || quote >= 0 || this.columnMap !== null || this.opts.alwaysCsvParse) {
        if (quote >= 0 && this.mayDropQuoted(buf, pos, e, quote) && !this.mayBeHeader(buf, pos, e)) this.lineNo++;
        else if (quote >= 0 && this.quotedLine(buf, pos, e, quote, lastQuote, quotes, commas)) {
          // read from the bytes and csv-parse's cached values
        } else this.physicalLine(buf.toString('utf8', pos, nl), true);
      } else {
        this.lineNo++;
        if (e > pos) {
          if (this.mayBeHeader(buf, pos, e)) {
            const f = buf.toString('utf8', pos, e).split(',');
            if (f[0] === 'record_id' || f.indexOf('start_time') >= 0) {
              this.flushQueue(); // records queued before the header keep the column order they had
              this.setHeader(f);
              pos = nl + 1;
              continue;
            }
          }
          if (this.opts.fieldChecks && !this.mayMatch(buf, pos, e, e, commas)) {
            // dropped unchecked
          } else if (this.queue.length > 0) {
            this.queue.push({ line: this.lineNo, terminated: true, bytes: [pos, e] });
          } else if (!this.plainRecord(buf, pos, e, commas, this.lineNo, skipped)) {
            this.lineNo--;
            noSkip = pos; // a field stepped over was not a timestamp as written: scan again in full
            continue;
          }
        }
      }
      pos = nl + 1;
    }
    this.flushQueue();
    return pos;
  }

  // Where the next `_`, `start_time` and `record_id` are in the buffer, at or after the line being
  // read (-1: none; -2: not looked for yet). Valid for one pushBytes() call: `buf` is reused.
  private nextUnderscore = -2;
  private nextStartTime = -2;
  private nextRecordId = -2;
  private hintBuf: Buffer | null = null;

  /**
   * Whether buf[s, e) holds `start_time` or `record_id` anywhere: only such a line can be a header
   * (which changes how the lines after it are read: it is never dropped unchecked). Both names
   * have a `_`, which most lines lack: a native one-byte search rules those out.
   */
  private mayBeHeader(buf: Buffer, s: number, e: number): boolean {
    if (this.hintBuf !== buf) {
      this.hintBuf = buf;
      this.nextUnderscore = this.nextStartTime = this.nextRecordId = -2;
    }
    if (this.nextUnderscore !== -1 && this.nextUnderscore < s) this.nextUnderscore = buf.indexOf(0x5f, s);
    if (this.nextUnderscore < 0 || this.nextUnderscore >= e) return false;
    if (this.nextStartTime !== -1 && this.nextStartTime < s) this.nextStartTime = buf.indexOf(START_TIME, s);
    if (this.nextStartTime >= 0 && this.nextStartTime < e) return true;
    if (this.nextRecordId !== -1 && this.nextRecordId < s) this.nextRecordId = buf.indexOf(RECORD_ID, s);
    return this.nextRecordId >= 0 && this.nextRecordId < e;
  }

  /**
   * A one-line record with quotes whose quoted part csv-parse has read before (parsedCache): the
   * same cut as splitAroundQuotes(), the fields outside the quoted part read from the bytes. False
   * (nothing done) whenever the text path must decide: a cache miss, records waiting in the queue,
   * a possible header, a wrong field count, or a timestamp inside the quoted part.
   */
  private quotedLine(buf: Buffer, s: number, e: number, quote: number, last: number, quotes: number, commas: number): boolean {
    if (this.pending.length > 0 || this.columnMap !== null || this.opts.alwaysCsvParse || this.queue.length > 0) return false;
    if (quotes % 2 === 1 || commas >= MAX_STARTS) return false; // a record spanning lines; too many commas
    // scanLine() put the start after every comma, quoted or not, in view.starts: the commas before
    // the first quote and after the last one are separators.
    const starts = this.view.starts;
    let midFrom = 0; // the field holding the first quote
    while (midFrom < commas && starts[midFrom + 1]! <= quote) midFrom++;
    const ms = starts[midFrom]!;
    let after = midFrom + 1; // the first comma after the last quote is number `after`
    while (after <= commas && starts[after]! <= last) after++;
    const me = after <= commas ? starts[after]! - 1 : e;
    if (this.mayBeHeader(buf, s, e)) return false;
    let mid = this.quotedFew.get(buf, ms, me);
    if (mid === undefined) {
      mid = parsedCache.get(buf.toString('utf8', ms, me));
      if (mid === undefined) return false;
      this.quotedFew.add(buf, ms, me, mid);
    }
    const midTo = midFrom + mid.length;
    if (midTo > after) return false;
    const total = me < e ? midTo + commas - after + 1 : midTo;
    if (total !== this.fieldCount) return false;
    for (const c of TIME_COLS) if (c >= midFrom && c < midTo) return false;
    // The fields after the quoted part move to their places (never to the right: csv-parse gives
    // at most one field more than the commas of the part).
    for (let k = 0; midTo + k < total; k++) starts[midTo + k] = starts[after + k]!;
    this.lineNo++;
    const v = this.view;
    v.mid = mid;
    v.midFrom = midFrom;
    v.midTo = midTo;
    try {
      this.plainRecord(buf, s, e, NF - 1, this.lineNo);
    } finally {
      v.mid = null;
    }
    return true;
  }


  /** A quoted line that --caller/--callee rule out by the plain fields before its first quote. */
  private mayDropQuoted(buf: Buffer, s: number, e: number, quote: number): boolean {
    if (!this.opts.fieldChecks || this.pending.length > 0 || this.columnMap !== null || this.opts.alwaysCsvParse) return false;
    let quotes = 0;
    for (let i = quote; i < e; i++) if (buf[i] === 34) quotes++;
    if (quotes % 2 === 1) return false; // a record spanning lines
    let commas = 0;
    for (let i = s; i < quote; i++) if (buf[i] === 44 && ++commas < NF) this.view.starts[commas] = i + 1;
    this.view.starts[0] = s;
    return !this.mayMatch(buf, s, e, quote, commas);
  }

  /**
   * False only when a --caller/--callee field certainly differs (and the line has a digit: lines
   * without any are headers or junk, always checked). Fields must lie before `limit` (the first
   * quote, or `e`); `commas` counts the separators before it; view.starts holds the field starts.
   */
  private mayMatch(buf: Buffer, s: number, e: number, limit: number, commas: number): boolean {
    for (const check of this.opts.fieldChecks!) {
      if (commas < check.index) continue; // undecided
      const at = this.view.starts[check.index]!;
      const value = check.value;
      const after = at + value.length;
      if (after > limit) {
        if (limit < e) continue;
        if (hasDigit(buf, s, e)) return false;
        continue;
      }
      let i = 0;
      while (i < value.length && buf[at + i] === value[i]) i++;
      if (i === value.length && (after === limit || buf[after] === 44)) continue;
      if (hasDigit(buf, s, e)) return false;
    }
    return true;
  }

  /**
   * A plain line, canonical column order: field count, timestamps, then on to the caller. With
   * `skipped` (fields scanLine() stepped over), returns false, having done nothing, unless each of
   * those fields is a timestamp in the written form (so it holds no comma, quote or newline, and
   * the scan was exact): the caller then scans the line again in full.
   */
  private plainRecord(buf: Buffer, s: number, e: number, commas: number, line: number, skipped = 0): boolean {
    if (commas + 1 !== this.fieldCount) {
      if (skipped !== 0) return false;
      this.problem(line, `expected ${this.fieldCount} fields, got ${commas + 1}`);
      return true;
    }
    const v = this.view;
    const starts = v.starts;
    const startMs = this.tsStart.read(buf, starts[START_COL]!, starts[START_COL + 1]! - 1);
    if (skipped !== 0 && (skipped & (1 << START_COL)) !== 0 && (startMs === null || !this.tsStart.written)) return false;
    let endMs: number | null = null;
    let answerMs: number | null = null;
    const hasAnswer = starts[ANSWER_COL + 1]! - 1 > starts[ANSWER_COL]!;
    if (skipped !== 0) {
      // Every field stepped over is checked before anything is reported.
      endMs = this.tsEnd.read(buf, starts[END_COL]!, starts[END_COL + 1]! - 1);
      if ((skipped & (1 << END_COL)) !== 0 && (endMs === null || !this.tsEnd.written)) return false;
      if (hasAnswer) {
        answerMs = this.tsAnswer.read(buf, starts[ANSWER_COL]!, starts[ANSWER_COL + 1]! - 1);
        if ((skipped & (1 << ANSWER_COL)) !== 0 && (answerMs === null || !this.tsAnswer.written)) return false;
      }
    }
    if (startMs === null) {
      this.badTime(line, 'start_time', buf, starts[START_COL]!, starts[START_COL + 1]! - 1);
      return true;
    }
    if (skipped === 0) endMs = this.tsEnd.read(buf, starts[END_COL]!, starts[END_COL + 1]! - 1);
    if (endMs === null) {
      this.badTime(line, 'end_time', buf, starts[END_COL]!, starts[END_COL + 1]! - 1);
      return true;
    }
    if (hasAnswer) {
      if (skipped === 0) answerMs = this.tsAnswer.read(buf, starts[ANSWER_COL]!, starts[ANSWER_COL + 1]! - 1);
      if (answerMs === null) {
        this.badTime(line, 'answer_time', buf, starts[ANSWER_COL]!, starts[ANSWER_COL + 1]! - 1);
        return true;
      }
    }
    v.buf = buf;
    v.end = e;
    v.startMs = startMs;
    v.endMs = endMs;
    v.answerMs = answerMs;
    v.hour = this.tsStart.hour;
    if (this.opts.onView) this.opts.onView(v);
    else this.opts.onRow?.(v.toRow());
    return true;
  }

  private badTime(line: number, name: string, buf: Buffer, s: number, e: number): void {
    this.problem(line, `bad ${name} ${JSON.stringify(buf.toString('utf8', s, e))}`);
  }

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
    const known = this.opts.alwaysCsvParse ? undefined : parsedCache.get(q.quoted!);
    // Parsed before, and nothing waiting ahead of it: no need to queue it.
    if (known !== undefined && this.queue.length === 0) this.fields([...q.before!, ...known, ...q.after!], line, terminated, undefined);
    else {
      this.queue.push(q);
      // A quoted record may be a header (a field exactly `start_time`, or `record_id` first: both
      // need those letters in a row in the text). It must take effect before the next line is
      // read, as pushBytes() picks the byte path and drops --caller lines by the column order.
      if (text.includes('start_time') || text.includes('record_id')) this.flushQueue();
    }
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
    const useCache = !this.opts.alwaysCsvParse;
    if (useCache) {
      for (const q of quoted) q.parsed = parsedCache.get(q.quoted!);
    }
    const toParse = useCache ? quoted.filter((q) => q.parsed === undefined) : quoted;
    let parsed: string[][] | null = null;
    if (toParse.length > 0) {
      try {
        parsed = parseCsvSync(toParse.map((q) => q.quoted).join('\n'), CSV_PARSE_OPTIONS) as string[][];
        if (parsed.length !== toParse.length) parsed = null;
      } catch {
        parsed = null;
      }
    }
    if (parsed) {
      toParse.forEach((q, i) => {
        q.parsed = parsed[i]!;
        if (useCache) {
          if (parsedCache.size >= PARSED_CACHE_MAX) parsedCache.clear();
          // The key is copied: a slice would keep its whole line in memory.
          parsedCache.set(Buffer.from(q.quoted!, 'utf8').toString('utf8'), q.parsed);
        }
      });
    }
    for (const q of queue) {
      if (q.bytes !== undefined) {
        const [s, e] = q.bytes;
        this.plainRecord(this.view.buf, s, e, scanFields(this.view.buf, s, e, this.view.starts), q.line);
        continue;
      }
      if (q.quoted === undefined) {
        this.fields(q.fields!, q.line, q.terminated, q.plain);
        continue;
      }
      const middle = q.parsed ?? this.parseAlone(q);
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
    if (this.opts.onView) {
      this.recordView.row = row;
      this.opts.onView(this.recordView);
    } else {
      this.opts.onRow?.(row);
    }
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
  /** ...or a plain line still in the buffer given to pushBytes(): [start, end). */
  bytes?: [number, number];
  /** csv-parse's fields for `quoted`, once known. */
  parsed?: string[] | undefined;
}

// scanLine()'s other results.
let scanCommas = 0;
let scanQuote = -1;
let scanLastQuote = -1;
let scanQuotes = 0;
/** Bit k set: field k (a timestamp column) was stepped over unread, see scanLine(). */
let scanSkipped = 0;

/**
 * Reads buf[pos, end) up to the first newline and returns its index (end if none): `starts` gets
 * the start after each comma (the first MAX_STARTS - 1 commas, quoted ones too), scanCommas the
 * comma count, scanQuote and scanLastQuote the first and last `"` (-1: none), scanQuotes their
 * count. A small function of its own: V8 optimises this hot loop better than inside pushBytes().
 *
 * With `skip`, a timestamp field (start_time, answer_time, end_time) followed by a comma 29 bytes
 * on, the length of the written form, is stepped over unread (scanSkipped says which): the
 * timestamp reader reads those bytes anyway. The results are those of a full scan only if the
 * fields stepped over hold no comma, quote or newline: the caller must make sure (see
 * plainRecord()) or scan again without `skip`.
 */
function scanLine(buf: Buffer, pos: number, end: number, starts: Int32Array, skip: boolean): number {
  let commas = 0;
  let quote = -1;
  let lastQuote = -1;
  let quotes = 0;
  let skipped = 0;
  starts[0] = pos;
  let i = pos;
  for (; i < end; i++) {
    const c = buf[i]!;
    if (c <= 44) {
      if (c === 44) {
        if (++commas < MAX_STARTS) starts[commas] = i + 1;
        if (skip && commas >= START_COL && commas <= END_COL && i + TS_LENGTH + 1 < end && buf[i + TS_LENGTH + 1] === 44 && buf[i + 1] !== 44) {
          skipped |= 1 << commas;
          i += TS_LENGTH; // the loop's i++ then reaches the comma after the field
        }
      } else if (c === 10) break;
      else if (c === 34) {
        if (quote < 0) quote = i;
        lastQuote = i;
        quotes++;
      }
    }
  }
  scanCommas = commas;
  scanQuote = quote;
  scanLastQuote = lastQuote;
  scanQuotes = quotes;
  scanSkipped = skipped;
  return i;
}

/** Fills `starts` with the field starts of buf[s, e) (first NF fields); returns the comma count. */
function scanFields(buf: Buffer, s: number, e: number, starts: Int32Array): number {
  let commas = 0;
  starts[0] = s;
  for (let i = s; i < e; i++) if (buf[i] === 44 && ++commas < NF) starts[commas] = i + 1;
  return commas;
}

/** False when a checked field, before `limit` (the first quote, or `e`), certainly differs. */
function quickMayMatch(buf: Buffer, s: number, e: number, limit: number, checks: FieldCheck[]): boolean {
  for (const check of checks) {
    let at = s;
    let k = 0;
    for (; k < check.index; k++) {
      const comma = buf.indexOf(0x2c, at);
      if (comma < 0 || comma >= limit) break;
      at = comma + 1;
    }
    if (k < check.index) continue; // a quote first, or too few fields: undecided
    const value = check.value;
    const after = at + value.length;
    if (after > limit) {
      if (limit < e) continue; // runs into a quoted part
      return false; // the line ends first: the field is shorter than the value
    }
    let i = 0;
    while (i < value.length && buf[at + i] === value[i]) i++;
    if (i < value.length) return false;
    if (after < limit && buf[after] !== 0x2c) return false;
  }
  return true;
}

function hasDigit(buf: Buffer, s: number, e: number): boolean {
  for (let i = s; i < e; i++) {
    const c = buf[i]!;
    if (c >= 0x30 && c <= 0x39) return true;
  }
  return false;
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
