/**
 * The `cdr` table of the SQLite store, on a connection of its own to <data dir>/minisipserver.db
 * (WAL: it writes beside the store's connection and readers). It never waits long for a lock:
 * a busy database is "not now", and the writer retries.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { embeddedAddon } from '../platform/native-addon.js';
import {
  CDR_INSERT_COLUMNS,
  CDR_INSERT_PLACEHOLDERS,
  CDR_PAGE_SIZE,
  CdrTableMissingError,
  cdrPageQuery,
  cdrRecordOf,
  cdrRowValues,
  type CdrInsertResult,
  type CdrTable,
  type CdrTableFilter,
  type QueuedCdr,
} from './cdr-rows.js';
import { DATABASE_FILE_NAME } from './sqlite.js';
import { StoreOpenError } from './store.js';
import type { CdrRecord } from '../cdr/record.js';

/** How long a write waits for another connection's lock before it is retried later (the call path never waits). */
const WRITE_BUSY_MS = 50;

/** Errors about one row's values: that row is refused, the others written. */
const ROW_CODES = new Set(['SQLITE_CONSTRAINT_NOTNULL', 'SQLITE_MISMATCH', 'SQLITE_TOOBIG', 'SQLITE_CONSTRAINT_CHECK']);

/**
 * Opens the table of the store in `dataDir`. `readOnly`: for `cdr query --store` (the file must
 * exist; nothing is created or migrated). Throws StoreOpenError, or CdrTableMissingError for an
 * older schema.
 */
export function openSqliteCdrTable(dataDir: string, opts: { readOnly?: boolean } = {}): CdrTable {
  const file = join(dataDir, DATABASE_FILE_NAME);
  if (opts.readOnly && !existsSync(file)) {
    throw new StoreOpenError(file, `${file}: no database there; check data.dir of the configuration (the server creates the file at its first start)`);
  }
  let db: Database.Database;
  try {
    const nativeBinding = embeddedAddon<object>('better_sqlite3');
    const options = { readonly: opts.readOnly === true, fileMustExist: true, ...(nativeBinding ? { nativeBinding } : {}) };
    // better-sqlite3 takes a loaded addon object as nativeBinding; its type declarations only know a path.
    db = new Database(file, options as unknown as Database.Options);
    db.pragma(`busy_timeout = ${opts.readOnly ? 5000 : WRITE_BUSY_MS}`);
  } catch (err) {
    throw new StoreOpenError(file, `${file}: cannot open the database (${(err as Error).message})`, { cause: err });
  }
  try {
    const version = schemaVersion(db);
    const table = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cdr'").get();
    if (table === undefined) throw new CdrTableMissingError(file, version);
  } catch (err) {
    db.close();
    if (err instanceof CdrTableMissingError) throw err;
    throw new StoreOpenError(file, `${file}: not a usable minisipserver database (${(err as Error).message})`, { cause: err });
  }
  return new SqliteCdrTable(db, file);
}

function schemaVersion(db: Database.Database): number {
  const has = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").get();
  if (has === undefined) return 0;
  return (db.prepare('SELECT version FROM schema_version').get() as { version: number } | undefined)?.version ?? 0;
}

function isRowError(err: unknown): boolean {
  return ROW_CODES.has((err as { code?: string }).code ?? '');
}

class SqliteCdrTable implements CdrTable {
  private insertStmt: Database.Statement | undefined;

  constructor(
    private readonly db: Database.Database,
    readonly where: string,
  ) {}

  async insert(batch: readonly QueuedCdr[]): Promise<CdrInsertResult> {
    const result: CdrInsertResult = { written: 0, refused: [] };
    const rows: unknown[][] = [];
    for (const q of batch) {
      const values = cdrRowValues(q);
      if (typeof values === 'string') result.refused.push({ rec: q.rec, error: values });
      else rows.push(values);
    }
    this.insertStmt ??= this.db.prepare(`INSERT INTO cdr (${CDR_INSERT_COLUMNS}) VALUES (${CDR_INSERT_PLACEHOLDERS}) ON CONFLICT (uid) DO NOTHING`);
    const stmt = this.insertStmt;
    try {
      this.db.transaction(() => {
        for (const values of rows) stmt.run(...values);
      })();
      result.written += rows.length;
    } catch (err) {
      if (!isRowError(err)) throw err;
      // One value the table cannot hold: each row alone, the refused ones reported.
      for (const values of rows) {
        try {
          stmt.run(...values);
          result.written++;
        } catch (rowErr) {
          if (!isRowError(rowErr)) throw rowErr;
          const rec = batch.find((q) => q.uid === values[0])!.rec;
          result.refused.push({ rec, error: (rowErr as Error).message });
        }
      }
    }
    return result;
  }

  async *pages(filter: CdrTableFilter, pageSize = CDR_PAGE_SIZE): AsyncGenerator<CdrRecord[]> {
    let after = 0;
    for (;;) {
      const { sql, params } = cdrPageQuery(filter, after, pageSize);
      const rows = this.db.prepare(sql).all(...params) as Array<Record<string, unknown>>;
      if (rows.length === 0) return;
      after = Number(rows[rows.length - 1]!.id);
      yield rows.map(cdrRecordOf);
      if (rows.length < pageSize) return;
    }
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
