// A record as read back from a file, with its timestamps parsed once for filtering and stats.
import { parseTimestamp, type CdrRecord } from './record.js';

export interface CdrRow {
  rec: CdrRecord;
  startMs: number;
  /** null when the call was not answered. */
  answerMs: number | null;
  endMs: number;
  /** The exact CSV line (no newline) when it can be copied to CSV output unchanged. */
  csvLine?: string;
}

/** A row, or the reason the record is unusable. */
export function rowFromRecord(rec: CdrRecord, csvLine?: string): CdrRow | string {
  const startMs = parseTimestamp(rec.start_time);
  if (startMs === null) return `bad start_time ${JSON.stringify(rec.start_time)}`;
  const endMs = parseTimestamp(rec.end_time);
  if (endMs === null) return `bad end_time ${JSON.stringify(rec.end_time)}`;
  let answerMs: number | null = null;
  if (rec.answer_time !== '') {
    answerMs = parseTimestamp(rec.answer_time);
    if (answerMs === null) return `bad answer_time ${JSON.stringify(rec.answer_time)}`;
  }
  const row: CdrRow = { rec, startMs, answerMs, endMs };
  if (csvLine !== undefined) row.csvLine = csvLine;
  return row;
}
