/**
 * Forward-only schema migrations for the SQLite store. Migration N (1-based) brings the schema
 * from version N-1 to N; append new steps, never edit a released one.
 */
import type Database from 'better-sqlite3';

const MIGRATIONS: readonly string[] = [
  // 1: extensions, bindings, meta
  `CREATE TABLE meta (
     key   TEXT PRIMARY KEY,
     value TEXT NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE extensions (
     number       TEXT PRIMARY KEY,
     display_name TEXT NOT NULL DEFAULT '',
     realm        TEXT NOT NULL,
     ha1_md5      TEXT NOT NULL,
     ha1_sha256   TEXT NOT NULL,
     created_at   INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE bindings (
     aor            TEXT NOT NULL,
     contact        TEXT NOT NULL,
     contact_header TEXT NOT NULL,
     expires_at     INTEGER NOT NULL,
     call_id        TEXT NOT NULL,
     cseq           INTEGER NOT NULL,
     q              REAL,
     instance_id    TEXT,
     reg_id         INTEGER,
     transport      TEXT NOT NULL,
     source_address TEXT NOT NULL,
     source_port    INTEGER NOT NULL,
     local_address  TEXT,
     local_port     INTEGER,
     user_agent     TEXT,
     updated_at     INTEGER NOT NULL,
     PRIMARY KEY (aor, contact)
   );
   CREATE INDEX bindings_expires_at ON bindings (expires_at);`,
  // 2: the restricted call classes each extension is granted, comma-separated
  `ALTER TABLE extensions ADD COLUMN allow TEXT NOT NULL DEFAULT ''`,
  // 3: banned source addresses (lib/security). One row per address, replaced on every change so
  // that it takes a new seq (AUTOINCREMENT never hands one out twice): server processes read
  // what changed since the last seq they saw. A removed ban stays a while as a row with removed = 1.
  `CREATE TABLE bans (
     seq        INTEGER PRIMARY KEY AUTOINCREMENT,
     address    TEXT NOT NULL UNIQUE,
     expires_at INTEGER NOT NULL,
     reason     TEXT NOT NULL,
     offences   INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     manual     INTEGER NOT NULL DEFAULT 0,
     removed    INTEGER NOT NULL DEFAULT 0
   );
   CREATE INDEX bans_expires_at ON bans (expires_at);`,
  // 4: RFC 3327 Path of a binding registered through a proxy: the Path header values in order,
  // one per line (a URI in a Path value never holds a line break); NULL without Path.
  `ALTER TABLE bindings ADD COLUMN path TEXT`,
  // 5: call records (cdr.format with db), one row per record as the CSV has it, typed. id is the
  // order of insertion (the order `cdr query --store` reads); uid is made by the writer for each
  // record, so that a batch retried after an unclear failure is not stored twice. Timestamps keep
  // their text (with the UTC offset of the server that wrote them); start_ms is the start for
  // filtering. answer_time is NULL for a call not answered.
  `CREATE TABLE cdr (
     id             INTEGER PRIMARY KEY AUTOINCREMENT,
     uid            TEXT NOT NULL UNIQUE,
     record_id      TEXT NOT NULL,
     record_type    TEXT NOT NULL,
     party_kind     TEXT NOT NULL,
     call_id        TEXT NOT NULL,
     caller         TEXT NOT NULL,
     caller_name    TEXT NOT NULL,
     callee         TEXT NOT NULL,
     dialled        TEXT NOT NULL,
     route          TEXT NOT NULL,
     start_time     TEXT NOT NULL,
     start_ms       INTEGER NOT NULL,
     answer_time    TEXT,
     end_time       TEXT NOT NULL,
     duration       REAL NOT NULL,
     billable       INTEGER NOT NULL,
     status         INTEGER NOT NULL,
     fci            TEXT NOT NULL,
     caller_address TEXT NOT NULL,
     callee_address TEXT NOT NULL,
     media          TEXT NOT NULL,
     codec          TEXT NOT NULL,
     user_agent     TEXT NOT NULL,
     node           TEXT NOT NULL
   );
   CREATE INDEX cdr_start_ms ON cdr (start_ms);
   CREATE INDEX cdr_caller ON cdr (caller);
   CREATE INDEX cdr_callee ON cdr (callee);
   CREATE INDEX cdr_node ON cdr (node, start_ms);`,
];

export const LATEST_SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Brings the database to `target` (default LATEST_SCHEMA_VERSION; tests stop earlier), each step in its own transaction. Throws if the
 * file was written by a newer minisipserver (its schema is unknown to us).
 */
export function migrate(db: Database.Database, file: string, target = LATEST_SCHEMA_VERSION): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
  const row = db.prepare('SELECT version FROM schema_version').get() as { version: number } | undefined;
  let version = row?.version ?? 0;
  if (version > LATEST_SCHEMA_VERSION) {
    throw new Error(
      `${file}: schema version ${version} is newer than this minisipserver understands (${LATEST_SCHEMA_VERSION}); ` +
        'run a newer minisipserver or restore a backup made by this version',
    );
  }
  if (row === undefined) db.prepare('INSERT INTO schema_version (version) VALUES (0)').run();
  const setVersion = db.prepare('UPDATE schema_version SET version = ?');
  while (version < target) {
    const sql = MIGRATIONS[version]!;
    const next = version + 1;
    db.transaction(() => {
      db.exec(sql);
      setVersion.run(next);
    })();
    version = next;
  }
}
