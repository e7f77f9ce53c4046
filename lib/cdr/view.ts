// A read-only view of one record for `query` and `stats`, without building a row object per
// record: for plain CSV lines (no quote, standard column order) it reads the fields straight from
// the read buffer by byte offsets, and only the fields a filter or an aggregation asks for are
// decoded. Views are reused from record to record: use one only during the callback that got it
// (toRow() makes a lasting copy).
import { CDR_COLUMNS, parseFciCached, parseTimestamp, toEpoch, type CdrRecord, type Fci } from './record.js';
import type { CdrRow } from './row.js';

export const COL = Object.fromEntries(CDR_COLUMNS.map((c, i) => [c, i])) as Record<(typeof CDR_COLUMNS)[number], number>;

export interface RowView {
  readonly startMs: number;
  /** null when the call was not answered. */
  readonly answerMs: number | null;
  readonly endMs: number;
  /** The text of column `col` (an index into CDR_COLUMNS). */
  text(col: number): string;
  /** Whether column `col` is exactly `value` (`bytes` = its UTF-8). */
  fieldIs(col: number, value: string, bytes: Buffer): boolean;
  /** The first 13 characters of start_time (`2026-11-26T09`). */
  startHour(): string;
  fci(): Fci;
  /** Number(billable). */
  billable(): number;
  /** A row that outlives the callback. */
  toRow(): CdrRow;
}

/** A view of a row already built (quoted lines, other column orders, binary files). */
export class RecordView implements RowView {
  row!: CdrRow;
  get startMs(): number { return this.row.startMs; }
  get answerMs(): number | null { return this.row.answerMs; }
  get endMs(): number { return this.row.endMs; }
  text(col: number): string { return this.row.rec[CDR_COLUMNS[col]!]; }
  fieldIs(col: number, value: string): boolean { return this.row.rec[CDR_COLUMNS[col]!] === value; }
  startHour(): string { return this.row.rec.start_time.slice(0, 13); }
  fci(): Fci { return parseFciCached(this.row.rec.fci); }
  billable(): number { return Number(this.row.rec.billable); }
  toRow(): CdrRow { return this.row; }
}

const FCI_KEYS_MAX = 4096;
export const MAX_STARTS = 64;

/**
 * A plain CSV line (no quote, canonical column order, 22 fields) in a byte buffer. `starts[i]` is
 * where field i begins; field i ends one byte before field i+1 begins, the last at `end`.
 */
export class LineView implements RowView {
  buf: Buffer = Buffer.alloc(0);
  /** Longer than the columns: the byte reader first notes the start after every comma of a line
   * (up to MAX_STARTS - 1 of them), quoted ones included. */
  readonly starts = new Int32Array(MAX_STARTS);
  end = 0;
  startMs = 0;
  answerMs: number | null = null;
  endMs = 0;
  hour = '';
  /**
   * For a line with quotes: csv-parse's values of the fields [midFrom, midTo) around them (the
   * other fields are still read from the bytes, the timestamps never among them); null otherwise.
   */
  mid: readonly string[] | null = null;
  midFrom = 0;
  midTo = 0;
  private readonly fciByBytes = new Map<string, Fci>();
  private readonly fciFew = new BytesTable<Fci>(16, 64);

  private inMid(col: number): boolean {
    return this.mid !== null && col >= this.midFrom && col < this.midTo;
  }

  /** Field i is buf[fieldStart(i), fieldEnd(i)). */
  fieldEnd(col: number): number {
    return col === CDR_COLUMNS.length - 1 ? this.end : this.starts[col + 1]! - 1;
  }

  text(col: number): string {
    if (this.inMid(col)) return this.mid![col - this.midFrom]!;
    return this.buf.toString('utf8', this.starts[col]!, this.fieldEnd(col));
  }

  fieldIs(col: number, value: string, bytes: Buffer): boolean {
    if (this.inMid(col)) return this.mid![col - this.midFrom] === value;
    const s = this.starts[col]!, e = this.fieldEnd(col);
    if (e - s === bytes.length) {
      let i = 0;
      while (i < bytes.length && this.buf[s + i] === bytes[i]) i++;
      if (i === bytes.length) return true;
    }
    // Different bytes are different text, unless a replacement character stands for bad UTF-8.
    return value.includes('\uFFFD') ? this.text(col) === value : false;
  }

  startHour(): string {
    return this.hour;
  }

  fci(): Fci {
    if (this.inMid(COL.fci)) return parseFciCached(this.text(COL.fci));
    const s = this.starts[COL.fci]!, e = this.fieldEnd(COL.fci);
    const few = this.fciFew.get(this.buf, s, e);
    if (few !== undefined) return few;
    const key = this.buf.toString('latin1', s, e); // one char per byte: distinct bytes, distinct keys
    let fci = this.fciByBytes.get(key);
    if (fci === undefined) {
      fci = parseFciCached(this.buf.toString('utf8', s, e));
      if (this.fciByBytes.size >= FCI_KEYS_MAX) this.fciByBytes.clear();
      this.fciByBytes.set(key, fci);
    }
    this.fciFew.add(this.buf, s, e, fci);
    return fci;
  }

  billable(): number {
    if (this.inMid(COL.billable)) return Number(this.text(COL.billable));
    const s = this.starts[COL.billable]!, e = this.fieldEnd(COL.billable);
    if (e > s && e - s <= 15) {
      let v = 0;
      let i = s;
      for (; i < e; i++) {
        const c = this.buf[i]! - 48;
        if (c < 0 || c > 9) break;
        v = v * 10 + c;
      }
      if (i === e) return v;
    }
    return Number(this.text(COL.billable));
  }

  line(): string {
    return this.buf.toString('utf8', this.starts[0]!, this.end);
  }

  toRow(): CdrRow {
    if (this.mid !== null) {
      const rec = {} as CdrRecord;
      CDR_COLUMNS.forEach((c, i) => {
        rec[c] = this.text(i);
      });
      return { rec, startMs: this.startMs, answerMs: this.answerMs, endMs: this.endMs };
    }
    const line = this.line();
    const f = line.split(',');
    const rec: CdrRecord = {
      record_id: f[0]!, record_type: f[1]!, party_kind: f[2]!, call_id: f[3]!, caller: f[4]!,
      caller_name: f[5]!, callee: f[6]!, dialled: f[7]!, route: f[8]!, start_time: f[9]!,
      answer_time: f[10]!, end_time: f[11]!, duration: f[12]!, billable: f[13]!, status: f[14]!,
      fci: f[15]!, caller_address: f[16]!, callee_address: f[17]!, media: f[18]!, codec: f[19]!,
      user_agent: f[20]!, node: f[21]!,
    };
    return { rec, startMs: this.startMs, answerMs: this.answerMs, endMs: this.endMs, csvLine: line };
  }
}

/**
 * parseTimestamp() of the UTF-8 text buf[s, e), reading the written shape
 * `2026-11-26T09:15:02.123+01:00` from the bytes, with the start of the last hour remembered
 * (records come in time order). Anything else goes to parseTimestamp() itself.
 */
export class TimestampReader {
  private readonly prefix = Buffer.alloc(13);
  private readonly offset = Buffer.alloc(6);
  private epoch = NaN;
  /** Whether prefix/offset/epoch hold a valid hour. */
  private known = false;
  /** `YYYY-MM-DDTHH` of the last timestamp read by bytes (valid after a non-null result). */
  hour = '';
  /** After a non-null result: whether the text had the written form, every byte checked (so it
   * holds no comma, quote or newline). */
  written = false;

  read(buf: Buffer, s: number, e: number): number | null {
    // Most timestamps share the hour (and offset) of the previous one: check the rest only.
    if (e - s === 29 && this.known && buf[s + 13] === 58 && buf[s + 16] === 58 && buf[s + 19] === 46 && this.sameHour(buf, s)) {
      const m1 = buf[s + 14]! - 48, m2 = buf[s + 15]! - 48, s1 = buf[s + 17]! - 48, s2 = buf[s + 18]! - 48;
      const f1 = buf[s + 20]! - 48, f2 = buf[s + 21]! - 48, f3 = buf[s + 22]! - 48;
      if (m1 >= 0 && m1 <= 5 && m2 >= 0 && m2 <= 9 && s1 >= 0 && s1 <= 5 && s2 >= 0 && s2 <= 9 &&
          f1 >= 0 && f1 <= 9 && f2 >= 0 && f2 <= 9 && f3 >= 0 && f3 <= 9) {
        this.written = true;
        return this.epoch + (m1 * 10 + m2) * 60_000 + (s1 * 10 + s2) * 1000 + f1 * 100 + f2 * 10 + f3;
      }
      return null;
    }
    if (e - s !== 29 || buf[s + 4] !== 45 || buf[s + 7] !== 45 || buf[s + 10] !== 84 || buf[s + 13] !== 58 ||
        buf[s + 16] !== 58 || buf[s + 19] !== 46 || buf[s + 26] !== 58 || (buf[s + 23] !== 43 && buf[s + 23] !== 45)) {
      const t = parseTimestamp(buf.toString('utf8', s, e));
      this.written = false;
      if (t !== null) {
        this.hour = buf.toString('utf8', s, e).slice(0, 13);
        this.known = false; // `hour` no longer matches prefix: the next read sets both again
      }
      return t;
    }
    if (!this.known || !this.sameHour(buf, s)) {
      const oh = digits(buf, s + 24, 2), om = digits(buf, s + 27, 2);
      if (!(oh <= 23 && om <= 59)) return null;
      const offsetMin = (oh * 60 + om) * (buf[s + 23] === 45 ? -1 : 1);
      const t = toEpoch(digits(buf, s, 4), digits(buf, s + 5, 2), digits(buf, s + 8, 2), digits(buf, s + 11, 2), 0, 0, 0, offsetMin);
      if (t === null || Number.isNaN(t)) return null;
      buf.copy(this.prefix, 0, s, s + 13);
      buf.copy(this.offset, 0, s + 23, s + 29);
      this.epoch = t;
      this.known = true;
      this.hour = buf.toString('latin1', s, s + 13);
    }
    const minute = digits(buf, s + 14, 2), second = digits(buf, s + 17, 2), ms = digits(buf, s + 20, 3);
    if (!(minute <= 59 && second <= 59 && ms >= 0)) return null;
    this.written = true;
    return this.epoch + minute * 60_000 + second * 1000 + ms;
  }

  private sameHour(buf: Buffer, s: number): boolean {
    const p = this.prefix, o = this.offset;
    for (let i = 12; i >= 0; i--) if (buf[s + i] !== p[i]) return false;
    for (let i = 0; i < 6; i++) if (buf[s + 23 + i] !== o[i]) return false;
    return true;
  }
}

function digits(buf: Buffer, at: number, len: number): number {
  let v = 0;
  for (let i = at; i < at + len; i++) {
    const c = buf[i]! - 48;
    if (c < 0 || c > 9) return NaN;
    v = v * 10 + c;
  }
  return v;
}

/**
 * Values of a pure function of a byte string, for the first few distinct short strings met (the
 * FCI values, quoted names...): found by comparing bytes, without building a string for a key.
 */
export class BytesTable<T> {
  private readonly keys: Buffer[] = [];
  private readonly values: T[] = [];

  constructor(private readonly max: number, private readonly maxLength: number) {}

  get(buf: Buffer, s: number, e: number): T | undefined {
    const len = e - s;
    const keys = this.keys;
    for (let k = 0; k < keys.length; k++) {
      const key = keys[k]!;
      if (key.length !== len) continue;
      let i = len - 1;
      while (i >= 0 && key[i] === buf[s + i]) i--;
      if (i < 0) return this.values[k];
    }
    return undefined;
  }

  add(buf: Buffer, s: number, e: number, value: T): void {
    if (this.keys.length < this.max && e - s <= this.maxLength) {
      this.keys.push(Buffer.from(buf.subarray(s, e))); // a copy: `buf` is reused
      this.values.push(value);
    }
  }
}
