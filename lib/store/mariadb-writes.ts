/**
 * The writes the MariaDB store queues, and how a batch of them becomes one transaction: runs of
 * binding, ban and meta writes as bulk statements (the connector's batch(): one prepared
 * statement, many rows), extension changes one statement each. Every row written takes the
 * transaction's change number (chg, see mariadb-migrations.ts); every delete leaves a tombstone.
 */
import type { Connection } from 'mariadb';
import { bindingParams, extensionParams } from './rows.js';
import { ExtensionExistsError, type BanRecord, type BindingRecord, type ExtensionRecord } from './store.js';

export type WriteOp =
  /** onConflict: what a row of the same number already in the database (written elsewhere) means. */
  | { kind: 'ext.insert'; rec: ExtensionRecord; onConflict: 'error' | 'skip' | 'replace' }
  | { kind: 'ext.update'; rec: ExtensionRecord }
  | { kind: 'ext.delete'; number: string }
  | { kind: 'binding.upsert'; rec: BindingRecord }
  | { kind: 'binding.delete'; aor: string; contact: string }
  | { kind: 'ban.upsert'; rec: Omit<BanRecord, 'seq'> }
  | { kind: 'meta.set'; key: string; value: string }
  | { kind: 'bans.purge'; before: number };

/** What a batch left to do: refused writes (told to flush() callers) and rows to read again. */
export interface BatchOutcome {
  errors: Error[];
  /** Extension numbers whose row in the database may differ from this process's memory. */
  reread: Set<string>;
}

/** MariaDB errors about one row's values (a key taken, a value too long): the row is refused, the rest written. */
const ROW_ERRNOS = new Set([1048, 1062, 1264, 1265, 1292, 1366, 1406, 1452, 4025]);

export function isRowError(err: unknown): boolean {
  const e = err as { errno?: number; fatal?: boolean };
  return e?.fatal !== true && typeof e?.errno === 'number' && ROW_ERRNOS.has(e.errno);
}

/**
 * The server's own words when there are some (a connector message also holds the SQL), and
 * what caused it (the pool's timeout names the failed connection attempt as its cause).
 */
export function describeDbError(err: unknown, depth = 0): string {
  const e = err as { text?: string; code?: string; message?: string; cause?: unknown };
  const own = typeof e?.text === 'string' && e.text !== '' ? (e.code ? `${e.text} (${e.code})` : e.text) : (e?.message ?? String(err));
  const line = own.replace(/\s*\n\s*/g, ' ');
  return e?.cause !== undefined && e.cause !== err && depth < 3 ? `${line}: ${describeDbError(e.cause, depth + 1)}` : line;
}

const BINDING_COLUMNS = [
  'aor', 'contact', 'contact_header', 'expires_at', 'call_id', 'cseq', 'q', 'instance_id', 'reg_id', 'transport',
  'source_address', 'source_port', 'local_address', 'local_port', 'user_agent', 'path', 'updated_at',
] as const;

const UPSERT_BINDING = `INSERT INTO bindings (${BINDING_COLUMNS.join(', ')}, chg) VALUES (${BINDING_COLUMNS.map(() => '?').join(', ')}, ?)
  ON DUPLICATE KEY UPDATE ${[...BINDING_COLUMNS.slice(2), 'chg'].map((c) => `${c} = VALUES(${c})`).join(', ')}`;
const DELETE_BINDING = 'DELETE FROM bindings WHERE aor = ? AND contact = ?';
const TOMBSTONE = 'INSERT INTO store_tombstones (chg, tbl, k1, k2, at) VALUES (?, ?, ?, ?, ?)';
const EXTENSION_COLUMNS = ['number', 'display_name', 'realm', 'ha1_md5', 'ha1_sha256', 'created_at', 'allow'] as const;
const INSERT_EXTENSION = `INSERT INTO extensions (${EXTENSION_COLUMNS.join(', ')}, chg) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`;
// 'replace' import: an existing row keeps its created_at and allow (an import file carries no grants).
const REPLACE_EXTENSION = `${INSERT_EXTENSION} ON DUPLICATE KEY UPDATE display_name = VALUES(display_name), realm = VALUES(realm),
  ha1_md5 = VALUES(ha1_md5), ha1_sha256 = VALUES(ha1_sha256), chg = VALUES(chg)`;
const UPDATE_EXTENSION = `UPDATE extensions SET display_name = ?, realm = ?, ha1_md5 = ?, ha1_sha256 = ?, created_at = ?, allow = ?, chg = ?
  WHERE number = ?`;
const UPSERT_BAN = `INSERT INTO bans (address, expires_at, reason, offences, created_at, manual, removed, chg) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
  ON DUPLICATE KEY UPDATE expires_at = VALUES(expires_at), reason = VALUES(reason), offences = VALUES(offences),
  created_at = VALUES(created_at), manual = VALUES(manual), removed = VALUES(removed), chg = VALUES(chg)`;
const UPSERT_META = 'INSERT INTO meta (`key`, value, chg) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE value = VALUES(value), chg = VALUES(chg)';

function bindingValues(b: BindingRecord, chg: number): unknown[] {
  const row = bindingParams(b);
  return [...BINDING_COLUMNS.map((c) => row[c]), chg];
}

function extensionValues(rec: ExtensionRecord, chg: number): unknown[] {
  const row = extensionParams(rec);
  return [...EXTENSION_COLUMNS.map((c) => row[c]), chg];
}

/** LIKE pattern matching `text` literally. */
function likeLiteral(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** Ops of one kind in a row go as one bulk statement. */
const BULK_KINDS = new Set<WriteOp['kind']>(['binding.upsert', 'binding.delete', 'ban.upsert', 'meta.set']);

function runsOf(ops: readonly WriteOp[]): WriteOp[][] {
  const runs: WriteOp[][] = [];
  for (const op of ops) {
    const last = runs[runs.length - 1];
    if (last && BULK_KINDS.has(op.kind) && last[0]!.kind === op.kind) last.push(op);
    else runs.push([op]);
  }
  return runs;
}

export interface WriteContext {
  /** Told of a row refused by the database (logged by the store). */
  refused(op: WriteOp, err: unknown): void;
  /** Told that another server's extension row won over this process's insert. */
  conflict(op: Extract<WriteOp, { kind: 'ext.insert' }>): void;
}

/**
 * Writes `ops` in order in one transaction; returns its change number and the outcome. With
 * `oneByOne` every op is its own statement and a row the database refuses is dropped (reported)
 * instead of failing the transaction: used again after a bulk statement failed on a row.
 * Connection failures are thrown (the caller keeps the ops and retries).
 */
export async function writeBatch(conn: Connection, ops: readonly WriteOp[], now: number, oneByOne: boolean, ctx: WriteContext): Promise<{ chg: number; outcome: BatchOutcome }> {
  const outcome: BatchOutcome = { errors: [], reread: new Set() };
  await conn.beginTransaction();
  try {
    // Holds the clock row's lock until commit: transactions commit in chg order.
    const clock = (await conn.query('UPDATE store_clock SET seq = LAST_INSERT_ID(seq + 1) WHERE id = 1')) as { insertId: number | bigint };
    const chg = Number(clock.insertId);
    if (!(chg > 0)) throw new Error('store_clock has no row: the schema is damaged (run `minisipserver db status`)');
    for (const run of oneByOne ? ops.map((op) => [op]) : runsOf(ops)) {
      try {
        await writeRun(conn, run, chg, now, outcome, ctx);
      } catch (err) {
        if (!oneByOne || !isRowError(err)) throw err;
        // The statement alone was rolled back; the transaction goes on.
        ctx.refused(run[0]!, err);
        outcome.errors.push(new Error(describeDbError(err), { cause: err }));
      }
    }
    await conn.commit();
    return { chg, outcome };
  } catch (err) {
    await conn.rollback().catch(() => undefined);
    throw err;
  }
}

async function writeRun(conn: Connection, run: WriteOp[], chg: number, now: number, outcome: BatchOutcome, ctx: WriteContext): Promise<void> {
  const first = run[0]!;
  switch (first.kind) {
    case 'binding.upsert':
      await bulk(conn, UPSERT_BINDING, run.map((op) => bindingValues((op as typeof first).rec, chg)));
      return;
    case 'binding.delete': {
      const keys = run.map((op) => op as typeof first);
      await bulk(conn, DELETE_BINDING, keys.map((k) => [k.aor, k.contact]));
      await bulk(conn, TOMBSTONE, keys.map((k) => [chg, 'bindings', k.aor, k.contact, now]));
      return;
    }
    case 'ban.upsert':
      await bulk(
        conn,
        UPSERT_BAN,
        run.map((op) => {
          const b = (op as typeof first).rec;
          return [b.address, b.expiresAt, b.reason, b.offences, b.createdAt, b.manual ? 1 : 0, b.removed ? 1 : 0, chg];
        }),
      );
      return;
    case 'meta.set':
      await bulk(conn, UPSERT_META, run.map((op) => [(op as typeof first).key, (op as typeof first).value, chg]));
      return;
    case 'bans.purge':
      await conn.execute('DELETE FROM bans WHERE expires_at < ?', [first.before]);
      return;
    case 'ext.insert': {
      try {
        await conn.execute(first.onConflict === 'replace' ? REPLACE_EXTENSION : INSERT_EXTENSION, extensionValues(first.rec, chg));
      } catch (err) {
        if ((err as { errno?: number }).errno !== 1062) throw err;
        // Another server added the same number first: the database's row wins.
        outcome.reread.add(first.rec.number);
        ctx.conflict(first);
        if (first.onConflict === 'error') outcome.errors.push(new ExtensionExistsError(first.rec.number));
      }
      return;
    }
    case 'ext.update': {
      const v = extensionParams(first.rec);
      const r = (await conn.execute(UPDATE_EXTENSION, [v.display_name, v.realm, v.ha1_md5, v.ha1_sha256, v.created_at, v.allow, chg, v.number])) as { affectedRows: number };
      // Removed meanwhile by another server: this process's memory learns it by reading again.
      if (r.affectedRows === 0) outcome.reread.add(first.rec.number);
      return;
    }
    case 'ext.delete': {
      const user = likeLiteral(first.number);
      const match = [first.number, `sip:${user}@%`, `sips:${user}@%`];
      await conn.execute(
        "INSERT INTO store_tombstones (chg, tbl, k1, k2, at) SELECT ?, 'bindings', aor, contact, ? FROM bindings WHERE aor = ? OR aor LIKE ? OR aor LIKE ?",
        [chg, now, ...match],
      );
      await conn.execute('DELETE FROM bindings WHERE aor = ? OR aor LIKE ? OR aor LIKE ?', match);
      await conn.execute('DELETE FROM extensions WHERE number = ?', [first.number]);
      await conn.execute(TOMBSTONE, [chg, 'extensions', first.number, '', now]);
      return;
    }
  }
}

async function bulk(conn: Connection, sql: string, rows: unknown[][]): Promise<void> {
  if (rows.length === 1) await conn.execute(sql, rows[0]);
  else await conn.batch(sql, rows);
}
