/**
 * The `cdr` table of the store (migration 5, both dialects): how a CDR record becomes a row and
 * back, exactly (the text of every field is what the CSV file holds), and the interface both
 * back ends give the CDR writer and `cdr query --store`.
 */
import { CDR_COLUMNS, parseTimestamp, type CdrRecord } from '../cdr/record.js';

/** Columns written, in this order (`id` is the database's). */
export const CDR_TABLE_COLUMNS = ['uid', ...CDR_COLUMNS.slice(0, CDR_COLUMNS.indexOf('start_time') + 1), 'start_ms', ...CDR_COLUMNS.slice(CDR_COLUMNS.indexOf('start_time') + 1)] as const;

/** A finished record waiting for the database; uid is unique per record (a retry writes it once). */
export interface QueuedCdr {
  uid: string;
  rec: CdrRecord;
}

/** What the database can narrow by index before the rows are filtered like file rows. */
export interface CdrTableFilter {
  /** Epoch ms, inclusive, of the start. */
  from?: number;
  /** Epoch ms, exclusive. */
  to?: number;
  caller?: string;
  callee?: string;
}

export interface CdrInsertResult {
  written: number;
  /** Records the database refused (a value it cannot hold), with the first reason. */
  refused: Array<{ rec: CdrRecord; error: string }>;
}

export interface CdrTable {
  /** The database, for messages: the SQLite file or user@server/database. */
  readonly where: string;
  /**
   * Writes the records in one transaction (one by one when the database refuses one of them;
   * those are returned). A record already stored (same uid) is skipped. Throws when the
   * database cannot be written now (unreachable, locked): nothing is to be taken as written.
   */
  insert(batch: readonly QueuedCdr[]): Promise<CdrInsertResult>;
  /** The records matching `filter` in insertion order, `pageSize` at a time (never the whole table). */
  pages(filter: CdrTableFilter, pageSize?: number): AsyncGenerator<CdrRecord[]>;
  close(): Promise<void>;
}

/** The table is not there: the database's schema predates it. */
export class CdrTableMissingError extends Error {
  constructor(readonly where: string, version: number) {
    super(
      `${where}: the store's schema is at version ${version}, which has no cdr table (it comes with version 5). ` +
        'Start the server of this version once, or run `minisipserver db migrate --config FILE`; records are written there only with cdr.format including db',
    );
    this.name = 'CdrTableMissingError';
  }
}

export const CDR_PAGE_SIZE = 1000;

/** The values of CDR_TABLE_COLUMNS for a record; a string says why the record cannot be a row. */
export function cdrRowValues(q: QueuedCdr): unknown[] | string {
  const r = q.rec;
  const startMs = parseTimestamp(r.start_time);
  if (startMs === null) return `bad start_time ${JSON.stringify(r.start_time)}`;
  const duration = Number(r.duration);
  if (r.duration === '' || !Number.isFinite(duration) || duration.toFixed(3) !== r.duration) return `duration ${JSON.stringify(r.duration)} is not seconds with 3 decimals`;
  if (!/^\d{1,15}$/.test(r.billable)) return `billable ${JSON.stringify(r.billable)} is not whole seconds`;
  if (!/^\d{1,4}$/.test(r.status) || String(Number(r.status)) !== r.status) return `status ${JSON.stringify(r.status)} is not a SIP status`;
  const values: unknown[] = [];
  for (const c of CDR_TABLE_COLUMNS) {
    switch (c) {
      case 'uid': values.push(q.uid); break;
      case 'start_ms': values.push(startMs); break;
      case 'answer_time': values.push(r.answer_time === '' ? null : r.answer_time); break;
      case 'duration': values.push(duration); break;
      case 'billable': values.push(Number(r.billable)); break;
      case 'status': values.push(Number(r.status)); break;
      default: values.push(r[c]);
    }
  }
  return values;
}

/** A row read back (CDR columns only) as the record the CSV file holds. */
export function cdrRecordOf(row: Record<string, unknown>): CdrRecord {
  const rec = {} as CdrRecord;
  for (const c of CDR_COLUMNS) {
    const v = row[c];
    if (c === 'duration') rec[c] = Number(v).toFixed(3);
    else rec[c] = v === null || v === undefined ? '' : String(v);
  }
  return rec;
}

/** The SELECT of one page: rows after `afterId` matching `filter`, in id order. */
export function cdrPageQuery(filter: CdrTableFilter, afterId: number, pageSize: number): { sql: string; params: unknown[] } {
  const where = ['id > ?'];
  const params: unknown[] = [afterId];
  if (filter.from !== undefined) {
    where.push('start_ms >= ?');
    params.push(filter.from);
  }
  if (filter.to !== undefined) {
    where.push('start_ms < ?');
    params.push(filter.to);
  }
  if (filter.caller !== undefined) {
    where.push('caller = ?');
    params.push(filter.caller);
  }
  if (filter.callee !== undefined) {
    where.push('callee = ?');
    params.push(filter.callee);
  }
  params.push(pageSize);
  return { sql: `SELECT id, ${CDR_COLUMNS.join(', ')} FROM cdr WHERE ${where.join(' AND ')} ORDER BY id LIMIT ?`, params };
}

export const CDR_INSERT_COLUMNS = CDR_TABLE_COLUMNS.join(', ');
export const CDR_INSERT_PLACEHOLDERS = CDR_TABLE_COLUMNS.map(() => '?').join(', ');
