// `cdr query`: stream rows from files through the filter to the printer. Without --sort nothing is
// buffered; with --sort and --limit only the best 2×limit rows are held; --sort alone holds
// every matching row.
import { CDR_COLUMNS, type CdrColumn } from './record.js';
import { compileViewFilter, type CdrFilter } from './filter.js';
import { readCdrFiles, type ReadOptions, type RowSource } from './source.js';
import { BufferedOutput, RowPrinter, type RowFormat } from './output.js';
import type { CdrRow } from './row.js';
import type { RowView } from './view.js';

export interface SortSpec {
  field: CdrColumn;
  desc: boolean;
}

/** `duration`, `duration:desc`, `start_time:asc`; null if the field is not a column. */
export function parseSortSpec(s: string): SortSpec | null {
  const [field, dir = 'asc', ...rest] = s.split(':');
  if (rest.length > 0 || (dir !== 'asc' && dir !== 'desc')) return null;
  if (!(CDR_COLUMNS as readonly string[]).includes(field!)) return null;
  return { field: field as CdrColumn, desc: dir === 'desc' };
}

const NUMERIC_COLUMNS = new Set<CdrColumn>(['duration', 'billable', 'status']);

type Keyed = { key: number | string; seq: number; row: CdrRow };

function sortKey(field: CdrColumn): (row: CdrRow) => number | string {
  if (field === 'start_time') return (r) => r.startMs;
  if (field === 'end_time') return (r) => r.endMs;
  if (field === 'answer_time') return (r) => r.answerMs ?? -Infinity;
  if (NUMERIC_COLUMNS.has(field)) return (r) => { const n = Number(r.rec[field]); return Number.isNaN(n) ? -Infinity : n; };
  return (r) => r.rec[field];
}

function comparator(desc: boolean): (a: Keyed, b: Keyed) => number {
  const sign = desc ? -1 : 1;
  return (a, b) => (a.key < b.key ? -sign : a.key > b.key ? sign : a.seq - b.seq);
}

export interface QueryOptions extends ReadOptions {
  files: readonly string[];
  /** Read rows from here instead of `files` (the store's cdr table). */
  source?: RowSource | undefined;
  filter: CdrFilter;
  sort?: SortSpec;
  limit?: number;
  format: RowFormat;
  /** Told how many rows were read after each batch (progress display). */
  onRowsRead?: (n: number) => void;
}

export interface QueryResult {
  scanned: number;
  matched: number;
}

export async function runQuery(opts: QueryOptions, out: NodeJS.WritableStream): Promise<QueryResult> {
  const matches = compileViewFilter(opts.filter);
  const output = new BufferedOutput(out);
  const printer = new RowPrinter(output, opts.format);
  const limit = opts.limit ?? Infinity;
  const result: QueryResult = { scanned: 0, matched: 0 };
  const read = opts.source ?? ((o: ReadOptions) => readCdrFiles(opts.files, o));
  await printer.begin();
  // Records arrive as views during each chunk's decoding; only matching ones become rows, which
  // are printed (with backpressure) between chunks.
  let viewed = 0;

  if (!opts.sort) {
    let found: CdrRow[] = [];
    let wanted = limit;
    const onView = (v: RowView) => {
      viewed++;
      if (wanted > 0 && matches(v)) {
        wanted--;
        found.push(v.toRow());
      }
    };
    for await (const _ of read({ ...opts, onView })) {
      result.scanned += viewed;
      opts.onRowsRead?.(viewed);
      viewed = 0;
      const rows = found;
      found = [];
      for (const row of rows) {
        if (output.closed) break;
        result.matched++;
        await printer.row(row);
      }
      if (wanted <= 0 || output.closed) break;
    }
  } else {
    const key = sortKey(opts.sort.field);
    const compare = comparator(opts.sort.desc);
    let kept: Keyed[] = [];
    let seq = 0;
    const onView = (v: RowView) => {
      viewed++;
      if (!matches(v)) return;
      const row = v.toRow();
      kept.push({ key: key(row), seq: seq++, row });
      if (kept.length >= 2 * limit + 1024) kept = kept.sort(compare).slice(0, limit);
    };
    for await (const _ of read({ ...opts, onView })) {
      result.scanned += viewed;
      opts.onRowsRead?.(viewed);
      viewed = 0;
    }
    kept.sort(compare);
    for (const k of kept.slice(0, limit)) {
      if (output.closed) break;
      result.matched++;
      await printer.row(k.row);
    }
  }
  await printer.end();
  return result;
}
