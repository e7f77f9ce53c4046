/**
 * What `minisipserver db status` and `db import-sqlite` read without opening a store for use:
 * a SQLite file read-only (never created, never migrated), or a MariaDB database's version and
 * counts.
 */
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Connection } from 'mariadb';
import { embeddedAddon } from '../platform/native-addon.js';
import { toExtension, type ExtensionRow } from './rows.js';
import type { ExtensionRecord } from './store.js';

export interface StoreCounts {
  extensions: number;
  /** Live bindings, and the extensions (addresses-of-record) they belong to. */
  bindings: number;
  registered: number;
  /** Bans in force. */
  bans: number;
}

function openReadOnly(file: string): Database.Database {
  if (!existsSync(file)) throw new Error(`${file}: no such file`);
  const nativeBinding = embeddedAddon<object>('better_sqlite3');
  const options = { readonly: true, fileMustExist: true, ...(nativeBinding ? { nativeBinding } : {}) } as unknown as Database.Options;
  try {
    const db = new Database(file, options);
    db.prepare('SELECT count(*) FROM sqlite_master').get();
    return db;
  } catch (err) {
    throw new Error(`${file}: not a readable SQLite database (${(err as Error).message})`, { cause: err });
  }
}

function sqliteVersion(db: Database.Database, file: string): number {
  const table = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").get();
  if (table === undefined) throw new Error(`${file}: not a minisipserver database (no schema_version table)`);
  return (db.prepare('SELECT version FROM schema_version').get() as { version: number } | undefined)?.version ?? 0;
}

/** Schema version and counts of a SQLite store file. */
export function inspectSqliteFile(file: string, now: number): { version: number; counts: StoreCounts } {
  const db = openReadOnly(file);
  try {
    const version = sqliteVersion(db, file);
    const count = (sql: string, ...params: unknown[]) => (version >= 1 ? ((db.prepare(sql).get(...params) as { n: number }).n ?? 0) : 0);
    return {
      version,
      counts: {
        extensions: count('SELECT count(*) AS n FROM extensions'),
        bindings: count('SELECT count(*) AS n FROM bindings WHERE expires_at > ?', now),
        registered: count('SELECT count(DISTINCT aor) AS n FROM bindings WHERE expires_at > ?', now),
        bans: version >= 3 ? count('SELECT count(*) AS n FROM bans WHERE expires_at > ? AND removed = 0', now) : 0,
      },
    };
  } finally {
    db.close();
  }
}

/** The extensions of a SQLite store file (HA1s as stored; no password is ever in it). */
export function readSqliteExtensions(file: string): ExtensionRecord[] {
  const db = openReadOnly(file);
  try {
    const version = sqliteVersion(db, file);
    if (version < 1) return [];
    const rows = db.prepare('SELECT * FROM extensions ORDER BY number').all() as Array<Omit<ExtensionRow, 'allow'> & { allow?: string }>;
    return rows.map((r) => toExtension({ ...r, allow: r.allow ?? '' }));
  } finally {
    db.close();
  }
}

/** Counts of a MariaDB store at the latest schema version. */
export async function mariaDbCounts(conn: Connection, now: number): Promise<StoreCounts> {
  const count = async (sql: string, params: unknown[] = []) => Number(((await conn.query(sql, params)) as Array<{ n: number | bigint }>)[0]?.n ?? 0);
  return {
    extensions: await count('SELECT COUNT(*) AS n FROM extensions'),
    bindings: await count('SELECT COUNT(*) AS n FROM bindings WHERE expires_at > ?', [now]),
    registered: await count('SELECT COUNT(DISTINCT aor) AS n FROM bindings WHERE expires_at > ?', [now]),
    bans: await count('SELECT COUNT(*) AS n FROM bans WHERE expires_at > ? AND removed = 0', [now]),
  };
}
