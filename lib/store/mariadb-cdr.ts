/**
 * The `cdr` table of the MariaDB store, on a small pool of its own: the store's pool and its
 * in-memory mirror never see call records (they are written here and read only by
 * `cdr query --store`). A batch is one bulk INSERT in one transaction.
 */
import type { Pool, PoolConnection } from 'mariadb';
import { connectMariaDb, createMariaDbPool } from './mariadb-connect.js';
import { schemaVersion } from './mariadb-migrations.js';
import { describeMariaDb, type MariaDbSettings } from './mariadb-settings.js';
import { describeDbError, isRowError } from './mariadb-writes.js';
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
import { StoreOpenError } from './store.js';
import type { CdrRecord } from '../cdr/record.js';

const INSERT = `INSERT INTO cdr (${CDR_INSERT_COLUMNS}) VALUES (${CDR_INSERT_PLACEHOLDERS}) ON DUPLICATE KEY UPDATE id = id`;

/**
 * Connects (once, to say clearly why not) and checks that the table is there; then works through
 * a pool of `poolSize` connections that reconnects by itself. Throws StoreOpenError or
 * CdrTableMissingError.
 */
export async function openMariaDbCdrTable(settings: MariaDbSettings, opts: { connectTimeoutMs?: number; poolSize?: number } = {}): Promise<CdrTable> {
  const where = describeMariaDb(settings);
  const connectTimeoutMs = opts.connectTimeoutMs ?? 1000;
  const conn = await connectMariaDb(settings, connectTimeoutMs);
  try {
    const version = await schemaVersion(conn);
    const tables = (await conn.query("SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'cdr'")) as Array<{ n: number | bigint }>;
    if (Number(tables[0]?.n ?? 0) === 0) throw new CdrTableMissingError(where, version);
  } catch (err) {
    if (err instanceof CdrTableMissingError) throw err;
    throw new StoreOpenError(where, `${where}: ${describeDbError(err)}`, { cause: err });
  } finally {
    await conn.end().catch(() => undefined);
  }
  const pool = createMariaDbPool({ ...settings, poolSize: opts.poolSize ?? 1 }, connectTimeoutMs);
  // The pool emits 'error' for each connection it fails to make; the writer reports the outage once.
  (pool as unknown as { on(event: 'error', fn: (err: unknown) => void): void }).on('error', () => undefined);
  return new MariaDbCdrTable(pool, where);
}

class MariaDbCdrTable implements CdrTable {
  constructor(
    private readonly pool: Pool,
    readonly where: string,
  ) {}

  async insert(batch: readonly QueuedCdr[]): Promise<CdrInsertResult> {
    const result: CdrInsertResult = { written: 0, refused: [] };
    const rows: Array<{ rec: CdrRecord; values: unknown[] }> = [];
    for (const q of batch) {
      const values = cdrRowValues(q);
      if (typeof values === 'string') result.refused.push({ rec: q.rec, error: values });
      else rows.push({ rec: q.rec, values });
    }
    if (rows.length === 0) return result;
    const conn = await this.pool.getConnection();
    try {
      try {
        await inTransaction(conn, () => (rows.length === 1 ? conn.execute(INSERT, rows[0]!.values) : conn.batch(INSERT, rows.map((r) => r.values))));
        result.written += rows.length;
      } catch (err) {
        if (!isRowError(err)) throw err;
        // One value the table cannot hold: each row alone, the refused ones reported.
        for (const row of rows) {
          try {
            await conn.execute(INSERT, row.values);
            result.written++;
          } catch (rowErr) {
            if (!isRowError(rowErr)) throw rowErr;
            result.refused.push({ rec: row.rec, error: describeDbError(rowErr) });
          }
        }
      }
    } finally {
      await conn.release().catch(() => undefined);
    }
    return result;
  }

  async *pages(filter: CdrTableFilter, pageSize = CDR_PAGE_SIZE): AsyncGenerator<CdrRecord[]> {
    let after = 0;
    for (;;) {
      const { sql, params } = cdrPageQuery(filter, after, pageSize);
      const rows = (await this.pool.query(sql, params)) as Array<Record<string, unknown>>;
      if (rows.length === 0) return;
      after = Number(rows[rows.length - 1]!.id);
      yield rows.map(cdrRecordOf);
      if (rows.length < pageSize) return;
    }
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }
}

async function inTransaction(conn: PoolConnection, work: () => Promise<unknown>): Promise<void> {
  await conn.beginTransaction();
  try {
    await work();
    await conn.commit();
  } catch (err) {
    await conn.rollback().catch(() => undefined);
    throw err;
  }
}
