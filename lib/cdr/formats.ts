// What cdr.format asks for: the daily files (csv, cdr, both) and/or a copy of every record in
// the store's cdr table (db), or nothing (off).
import type { CdrFileFormat } from './writer.js';

export const CDR_FORMAT_VALUES = ['csv', 'cdr', 'both', 'db', 'off'] as const;

export interface CdrOutputs {
  /** The daily files; null: none (off). */
  files: CdrFileFormat | null;
  /** Also each record into the store's cdr table. */
  db: boolean;
}

/** Why the list cannot be used (a sentence for the configuration error), or null. */
export function cdrFormatProblem(formats: readonly string[]): string | null {
  for (const f of formats) {
    if (!(CDR_FORMAT_VALUES as readonly string[]).includes(f)) return `"${f}" is not a CDR format; use csv, cdr, both, db (with a file format) or off`;
  }
  if (formats.length === 0) return 'name at least one format (csv, cdr, both, db) or off';
  if (new Set(formats).size !== formats.length) return 'a format is named twice';
  if (formats.includes('off') && formats.length > 1) return 'off writes no record: it cannot be combined with other formats';
  if (formats.includes('both') && (formats.includes('csv') || formats.includes('cdr'))) return 'both already means csv and cdr';
  if (formats.includes('db') && formats.length === 1) {
    return 'db needs a file format beside it, such as [csv, db]: the files are the complete record (the database copy is bounded while the database is away)';
  }
  return null;
}

/** The outputs of a checked cdr.format (a single text value is taken as a one-entry list). */
export function cdrOutputs(format: readonly string[] | string): CdrOutputs {
  const list = typeof format === 'string' ? [format] : format;
  const csv = list.includes('csv') || list.includes('both');
  const cdr = list.includes('cdr') || list.includes('both');
  return { files: csv && cdr ? 'both' : csv ? 'csv' : cdr ? 'cdr' : null, db: list.includes('db') };
}
