// Byte-level pre-filter for `--caller` / `--callee` queries on CSV files: drops lines whose
// caller/callee field cannot equal the wanted value before they are decoded or split, which is
// most of the work of a selective query. It only ever drops a line when that is certain: any line
// with a quote, any line of a multi-line record, any line without enough fields, headers, and
// every line after a header in another column order are passed on for the full checks.
import { CSV_HEADER } from './csv.js';
import { CDR_COLUMNS } from './record.js';
import type { CdrFilter } from './filter.js';

export interface FieldCheck {
  index: number;
  value: Buffer;
}

/** The checks this filter allows, or undefined if it has none (no exact --caller/--callee). */
export function fieldChecks(f: CdrFilter): FieldCheck[] | undefined {
  const checks: FieldCheck[] = [];
  const add = (column: 'caller' | 'callee', value: string | undefined) => {
    if (value !== undefined && !/[",\r\n]/.test(value)) checks.push({ index: CDR_COLUMNS.indexOf(column), value: Buffer.from(value, 'utf8') });
  };
  add('caller', f.caller);
  add('callee', f.callee);
  return checks.length > 0 ? checks : undefined;
}

const NL = 0x0a, CR = 0x0d, COMMA = 0x2c, QUOTE = 0x22;
const HEADER = Buffer.from(CSV_HEADER);
// Well below the decoder's own limits for an open quote (64 lines, 1 MiB).
const GIVE_UP_LINES = 32;
const GIVE_UP_BYTES = 1 << 18;

export interface PrefilterSink {
  /** Complete lines (each ending with a newline, except possibly at the very end). */
  text(chunk: string): void;
  /** `n` lines were dropped here (keeps line numbers right). */
  skip(n: number): void;
}

export class LinePrefilter {
  private carry: Buffer = Buffer.alloc(0);
  private insideQuotes = false;
  private quotedLines = 0;
  private quotedBytes = 0;
  private canonical = true;
  /** Set for good once a quote stays open long enough for the decoder to give it up and re-read
   * the lines after it, which this filter cannot mirror. */
  private disabled = false;

  constructor(
    private readonly checks: FieldCheck[],
    private readonly sink: PrefilterSink,
  ) {}

  /** `chunk` may be reused by the caller afterwards: whatever is kept is copied. */
  push(chunk: Buffer): void {
    const data = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    let pos = 0;
    let runStart = 0;
    let skipped = 0;
    for (let nl = data.indexOf(NL, pos); nl >= 0; nl = data.indexOf(NL, pos)) {
      if (this.keep(data, pos, nl)) {
        if (skipped > 0) {
          this.sink.skip(skipped);
          skipped = 0;
        }
      } else {
        if (pos > runStart) this.sink.text(data.toString('utf8', runStart, pos));
        skipped++;
        runStart = nl + 1;
      }
      pos = nl + 1;
    }
    if (pos > runStart) this.sink.text(data.toString('utf8', runStart, pos));
    if (skipped > 0) this.sink.skip(skipped);
    this.carry = Buffer.from(data.subarray(pos)); // a copy: `chunk` may be overwritten
  }

  end(): void {
    if (this.carry.length > 0) this.sink.text(this.carry.toString('utf8'));
    this.carry = Buffer.alloc(0);
  }

  private keep(data: Buffer, start: number, end: number): boolean {
    let quotes = 0;
    const firstQuote = data.indexOf(QUOTE, start);
    for (let i = firstQuote; i >= 0 && i < end; i = data.indexOf(QUOTE, i + 1)) quotes++;
    if (this.insideQuotes || quotes % 2 === 1) {
      // Part of a record spanning lines: always passed on.
      if (quotes % 2 === 1) this.insideQuotes = !this.insideQuotes;
      if (this.insideQuotes) {
        this.quotedLines++;
        this.quotedBytes += end - start;
        if (this.quotedLines >= GIVE_UP_LINES || this.quotedBytes >= GIVE_UP_BYTES) this.disabled = true;
      } else {
        this.quotedLines = 0;
        this.quotedBytes = 0;
      }
      return true;
    }
    if (this.disabled) return true;
    if (!hasDigit(data, start, end)) {
      // Every record has digits (timestamps); a line without any is a header (or junk).
      let lineEnd = end;
      if (lineEnd > start && data[lineEnd - 1] === CR) lineEnd--;
      let from = start;
      if (data[from] === 0xef && data[from + 1] === 0xbb && data[from + 2] === 0xbf) from += 3; // BOM
      this.canonical = data.subarray(from, lineEnd).equals(HEADER);
      return true;
    }
    if (!this.canonical) return true;
    // Commas before the first quote are separators for certain; past it, nothing is certain.
    const limit = quotes > 0 ? firstQuote : end;
    for (const check of this.checks) if (!fieldMayEqual(data, start, end, limit, check)) return false;
    return true;
  }
}

function hasDigit(data: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = data[i]!;
    if (c >= 0x30 && c <= 0x39) return true;
  }
  return false;
}

/** False only if the field certainly differs from the value; `limit` = first quote, or `end`. */
function fieldMayEqual(data: Buffer, start: number, end: number, limit: number, check: FieldCheck): boolean {
  let at = start;
  for (let i = 0; i < check.index; i++) {
    const comma = data.indexOf(COMMA, at);
    if (comma < 0 || comma >= limit) return true; // a quote first, or too few fields: undecided
    at = comma + 1;
  }
  const value = check.value;
  const after = at + value.length;
  if (after > limit) {
    if (limit < end) return true; // runs into a quoted part
    return false; // the line ends first: the field is shorter than the value
  }
  for (let i = 0; i < value.length; i++) if (data[at + i] !== value[i]) return false;
  if (after === limit) return true; // equal up to the line end, or up to a quote (undecided)
  return data[after] === COMMA || (data[after] === CR && after === end - 1);
}
