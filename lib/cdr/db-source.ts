// `cdr query|stats --store`: rows from the store's cdr table instead of files, page by page (see
// CdrTable.pages), handed on exactly as the file readers do (views to onView, or row batches).
// The filters that an index serves (time, caller, callee) also narrow the SELECT; every filter is
// still applied to each row by the caller, as for files.
import type { CdrTable, CdrTableFilter } from '../store/cdr-rows.js';
import type { CdrFilter } from './filter.js';
import { rowFromRecord, type CdrRow } from './row.js';
import type { ReadOptions, RowSource } from './source.js';
import { RecordView } from './view.js';

export function tableFilter(f: CdrFilter): CdrTableFilter {
  const t: CdrTableFilter = {};
  if (f.from !== undefined) t.from = f.from;
  if (f.to !== undefined) t.to = f.to;
  if (f.caller !== undefined) t.caller = f.caller;
  if (f.callee !== undefined) t.callee = f.callee;
  return t;
}

/** The records of `table` that may match `filter`, as a RowSource. */
export function cdrTableSource(table: CdrTable, filter: CdrFilter): RowSource {
  return async function* read(opts: ReadOptions): AsyncGenerator<CdrRow[]> {
    const view = new RecordView();
    opts.onFile?.(table.where);
    for await (const page of table.pages(tableFilter(filter))) {
      const batch: CdrRow[] = [];
      for (const rec of page) {
        const row = rowFromRecord(rec);
        if (typeof row === 'string') {
          opts.onProblem({ file: table.where, message: `record ${rec.record_id}: ${row}` });
          continue;
        }
        if (opts.onView) {
          view.row = row;
          opts.onView(view);
        } else {
          batch.push(row);
        }
      }
      yield batch;
    }
  };
}
