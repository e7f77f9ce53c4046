// The binary .cdr format (specified in docs/CDR.md): a file header naming the columns, then
// length-prefixed, CRC-32-checked records holding one UTF-8 string per column. The decoder takes
// the file in chunks, skips damaged records (resynchronising on the next record whose checksum
// matches) and stops cleanly at a truncated tail.
import { crc32 } from './crc32.js';
import { CDR_COLUMNS, type CdrColumn, type CdrRecord } from './record.js';
import { rowFromRecord, type CdrRow } from './row.js';
import type { ProblemSink } from './problems.js';
import type { LineView } from './view.js';

export const CDR_MAGIC = Buffer.from('MSSCDR', 'latin1');
export const CDR_VERSION = 1;
/** Records longer than this are taken as a damaged length field. */
export const MAX_RECORD_BYTES = 1 << 20;
const RECORD_PREFIX = 8; // u32 length + u32 CRC-32
const FIXED_HEADER = 18; // magic 6, version 1, flags 1, created-at 8, column count 2

export function encodeFileHeader(createdAtMs: number, columns: readonly string[] = CDR_COLUMNS): Buffer {
  const names = columns.map((c) => Buffer.from(c, 'utf8'));
  const size = FIXED_HEADER + names.reduce((n, b) => n + 1 + b.length, 0) + 4;
  const buf = Buffer.alloc(size);
  CDR_MAGIC.copy(buf, 0);
  buf.writeUInt8(CDR_VERSION, 6);
  buf.writeUInt8(0, 7);
  buf.writeBigUInt64LE(BigInt(Math.max(0, Math.floor(createdAtMs))), 8);
  buf.writeUInt16LE(names.length, 16);
  let at = FIXED_HEADER;
  for (const name of names) {
    buf.writeUInt8(name.length, at);
    name.copy(buf, at + 1);
    at += 1 + name.length;
  }
  buf.writeUInt32LE(crc32(buf, 0, at), at);
  return buf;
}

export function encodeRecord(rec: CdrRecord): Buffer {
  const values = CDR_COLUMNS.map((c) => rec[c] ?? '');
  const lengths = values.map((v) => Buffer.byteLength(v, 'utf8'));
  const payload = lengths.reduce((n, len) => n + varintSize(len) + len, 0);
  const buf = Buffer.allocUnsafe(RECORD_PREFIX + payload);
  let at = RECORD_PREFIX;
  values.forEach((v, i) => {
    at = writeVarint(buf, at, lengths[i]!);
    at += buf.write(v, at, 'utf8');
  });
  buf.writeUInt32LE(payload, 0);
  buf.writeUInt32LE(crc32(buf, RECORD_PREFIX, at), 4);
  return buf;
}

/** An upper bound of the bytes encodeRecordInto() writes for `rec`. */
export function maxRecordSize(rec: CdrRecord): number {
  let n = RECORD_PREFIX;
  for (const c of CDR_COLUMNS) n += 5 + 3 * (rec[c] ?? '').length;
  return n;
}

/** encodeRecord(rec) written at out[at] (room for maxRecordSize(rec) bytes); returns its end. */
export function encodeRecordInto(out: Buffer, at: number, rec: CdrRecord): number {
  const start = at;
  at += RECORD_PREFIX;
  for (const c of CDR_COLUMNS) {
    const v = rec[c] ?? '';
    const len = Buffer.byteLength(v, 'utf8');
    at = writeVarint(out, at, len);
    if (len > 0) at += out.write(v, at, 'utf8');
  }
  out.writeUInt32LE(at - start - RECORD_PREFIX, start);
  out.writeUInt32LE(crc32(out, start + RECORD_PREFIX, at), start + 4);
  return at;
}

/** An upper bound of the bytes encodeLineInto() writes for `line`. */
export function maxLineRecordSize(line: LineView): number {
  return RECORD_PREFIX + (line.end - line.starts[0]!) + 5 * CDR_COLUMNS.length;
}

/**
 * The record of a CSV line read from its bytes (valid UTF-8, canonical column order; the values
 * of a quoted part as csv-parse gave them) written at out[at] from
 * its bytes, the same bytes as encodeRecord() of its fields; returns its end.
 */
export function encodeLineInto(out: Buffer, at: number, line: LineView): number {
  const start = at;
  at += RECORD_PREFIX;
  const buf = line.buf;
  for (let i = 0; i < CDR_COLUMNS.length; i++) {
    if (line.mid !== null && i >= line.midFrom && i < line.midTo) {
      const v = line.mid[i - line.midFrom]!;
      const len = Buffer.byteLength(v, 'utf8');
      at = writeVarint(out, at, len);
      if (len > 0) at += out.write(v, at, 'utf8');
      continue;
    }
    const s = line.starts[i]!, e = line.fieldEnd(i);
    at = writeVarint(out, at, e - s);
    at += buf.copy(out, at, s, e);
  }
  out.writeUInt32LE(at - start - RECORD_PREFIX, start);
  out.writeUInt32LE(crc32(out, start + RECORD_PREFIX, at), start + 4);
  return at;
}

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n >>>= 7;
    size++;
  }
  return size;
}

function writeVarint(buf: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  buf[at++] = n;
  return at;
}

export interface BinaryFileHeader {
  version: number;
  flags: number;
  createdAtMs: number;
  columns: string[];
  size: number;
}

/** The header at the start of `buf`; 'short' if more bytes are needed; a string if invalid. */
export function decodeFileHeader(buf: Buffer): BinaryFileHeader | 'short' | string {
  if (buf.length < FIXED_HEADER) return buf.subarray(0, 6).equals(CDR_MAGIC.subarray(0, Math.min(6, buf.length))) ? 'short' : 'not a .cdr file (bad magic)';
  if (!buf.subarray(0, 6).equals(CDR_MAGIC)) return 'not a .cdr file (bad magic)';
  const version = buf.readUInt8(6);
  if (version !== CDR_VERSION) return `unsupported .cdr version ${version}`;
  const count = buf.readUInt16LE(16);
  const columns: string[] = [];
  let at = FIXED_HEADER;
  for (let i = 0; i < count; i++) {
    if (at >= buf.length) return 'short';
    const len = buf.readUInt8(at);
    if (at + 1 + len > buf.length) return 'short';
    columns.push(buf.toString('utf8', at + 1, at + 1 + len));
    at += 1 + len;
  }
  if (at + 4 > buf.length) return 'short';
  if (buf.readUInt32LE(at) !== crc32(buf, 0, at)) return 'file header checksum mismatch';
  return {
    version,
    flags: buf.readUInt8(7),
    createdAtMs: Number(buf.readBigUInt64LE(8)),
    columns,
    size: at + 4,
  };
}

interface BinaryDecoderOptions {
  file: string;
  onRow: (row: CdrRow) => void;
  onProblem: ProblemSink;
}

export class BinaryCdrDecoder {
  private buf: Buffer = Buffer.alloc(0);
  /** File offset of buf[0]. */
  private base = 0;
  private header: BinaryFileHeader | null = null;
  private columnMap: number[] = [];
  /** File offset where a damaged stretch began, while looking for the next good record. */
  private damagedFrom: number | null = null;
  private stopped = false;

  constructor(private readonly opts: BinaryDecoderOptions) {}

  push(chunk: Buffer): void {
    if (this.stopped) return;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    this.consume(false);
  }

  end(): void {
    if (this.stopped) return;
    this.consume(true);
    if (this.stopped) return;
    if (this.header === null) {
      this.problem(0, 'truncated file header');
    } else if (this.damagedFrom !== null) {
      this.problem(this.damagedFrom, `damaged data up to the end of the file, ${this.base + this.buf.length - this.damagedFrom} bytes skipped`);
    } else if (this.buf.length > 0) {
      this.problem(this.base, `truncated record at the end of the file (${this.buf.length} bytes), ignored`);
    }
    this.buf = Buffer.alloc(0);
  }

  private consume(final: boolean): void {
    if (this.header === null && !this.readHeader()) return;
    let pos = 0;
    const buf = this.buf;
    while (pos + RECORD_PREFIX <= buf.length) {
      const len = buf.readUInt32LE(pos);
      const plausible = len <= MAX_RECORD_BYTES;
      if (plausible && pos + RECORD_PREFIX + len > buf.length) {
        if (!final) break; // wait for the rest of this record
        if (this.damagedFrom === null && !this.goodRecordAfter(pos)) break; // a truncated tail
      } else if (plausible && buf.readUInt32LE(pos + 4) === crc32(buf, pos + RECORD_PREFIX, pos + RECORD_PREFIX + len)) {
        this.endDamage(this.base + pos);
        this.record(buf, pos + RECORD_PREFIX, pos + RECORD_PREFIX + len);
        pos += RECORD_PREFIX + len;
        continue;
      }
      if (this.damagedFrom === null) this.damagedFrom = this.base + pos;
      pos++;
    }
    this.buf = buf.subarray(pos);
    this.base += pos;
  }

  /** Whether a record with a valid checksum starts somewhere after `pos` (only used at the end). */
  private goodRecordAfter(pos: number): boolean {
    const buf = this.buf;
    for (let p = pos + 1; p + RECORD_PREFIX <= buf.length; p++) {
      const len = buf.readUInt32LE(p);
      if (len <= MAX_RECORD_BYTES && p + RECORD_PREFIX + len <= buf.length &&
          buf.readUInt32LE(p + 4) === crc32(buf, p + RECORD_PREFIX, p + RECORD_PREFIX + len)) return true;
    }
    return false;
  }

  private endDamage(at: number): void {
    if (this.damagedFrom === null) return;
    this.problem(this.damagedFrom, `bad record (checksum mismatch or damaged length), ${at - this.damagedFrom} bytes skipped`);
    this.damagedFrom = null;
  }

  private readHeader(): boolean {
    const header = decodeFileHeader(this.buf);
    if (header === 'short') return false;
    if (typeof header === 'string') {
      this.problem(0, header);
      this.stopped = true;
      return false;
    }
    this.header = header;
    this.columnMap = CDR_COLUMNS.map((c) => header.columns.indexOf(c));
    this.buf = this.buf.subarray(header.size);
    this.base = header.size;
    return true;
  }

  private record(buf: Buffer, start: number, end: number): void {
    const count = this.header!.columns.length;
    const values: string[] = new Array(count);
    let at = start;
    for (let i = 0; i < count; i++) {
      let len = 0;
      let shift = 0;
      for (;;) {
        if (at >= end || shift > 28) return this.problem(this.base + start - RECORD_PREFIX, 'malformed record fields');
        const b = buf[at++]!;
        len |= (b & 0x7f) << shift;
        if (b < 0x80) break;
        shift += 7;
      }
      if (at + len > end) return this.problem(this.base + start - RECORD_PREFIX, 'malformed record fields');
      values[i] = buf.toString('utf8', at, at + len);
      at += len;
    }
    if (at !== end) return this.problem(this.base + start - RECORD_PREFIX, 'malformed record fields');
    const rec = {} as CdrRecord;
    CDR_COLUMNS.forEach((c: CdrColumn, i) => {
      const idx = this.columnMap[i]!;
      rec[c] = idx >= 0 ? values[idx]! : '';
    });
    const row = rowFromRecord(rec);
    if (typeof row === 'string') return this.problem(this.base + start - RECORD_PREFIX, row);
    this.opts.onRow(row);
  }

  private problem(offset: number, message: string): void {
    this.opts.onProblem({ file: this.opts.file, offset, message });
  }
}
