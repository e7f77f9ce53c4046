/**
 * Forward-only schema migrations of the MariaDB store: the same logical schema and version
 * numbers as the SQLite store's (migrations.ts), so that `db status` means the same on both.
 * Migration N brings the schema from version N-1 to N; append new steps, never edit a released one.
 *
 * MariaDB's own additions, for servers that share the database (mariadb.ts):
 * - every table has `chg`, the number of the write transaction that last wrote the row, taken
 *   from the one row of store_clock (each write transaction increments it and holds its row
 *   lock until commit, so transactions commit in chg order: a reader that saw the clock at S
 *   has every row with chg <= S);
 * - store_tombstones keeps what was deleted (table, key, chg) for a while, so that a poll reads
 *   deletes as well; `purged` in store_clock says up to which chg tombstones were dropped;
 * - bans have no seq column: each process numbers the rows it learns of itself.
 * Tables are InnoDB in utf8mb4 with a binary collation (keys compare exactly, as in SQLite);
 * VARCHAR lengths bound what a peer can make the server store. Epoch ms are BIGINT.
 * DDL commits by itself in MariaDB: a step that fails half-way is reported with its number.
 */
import type { Connection } from 'mariadb';

const TABLE = 'ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin';

/** Each step is a list of statements, run in order. */
const MIGRATIONS: readonly (readonly string[])[] = [
  // 1: extensions, bindings, meta; the change clock and tombstones
  [
    `CREATE TABLE store_clock (
       id     TINYINT NOT NULL PRIMARY KEY,
       seq    BIGINT NOT NULL,
       purged BIGINT NOT NULL
     ) ${TABLE}`,
    'INSERT INTO store_clock (id, seq, purged) VALUES (1, 0, 0)',
    `CREATE TABLE store_tombstones (
       id  BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
       chg BIGINT NOT NULL,
       tbl VARCHAR(16) NOT NULL,
       k1  VARCHAR(200) NOT NULL,
       k2  VARCHAR(500) NOT NULL DEFAULT '',
       at  BIGINT NOT NULL,
       KEY store_tombstones_chg (chg),
       KEY store_tombstones_at (at)
     ) ${TABLE}`,
    `CREATE TABLE meta (
       \`key\` VARCHAR(128) NOT NULL PRIMARY KEY,
       value   TEXT NOT NULL,
       chg     BIGINT NOT NULL DEFAULT 0,
       KEY meta_chg (chg)
     ) ${TABLE}`,
    `CREATE TABLE extensions (
       number       VARCHAR(64) NOT NULL PRIMARY KEY,
       display_name VARCHAR(255) NOT NULL DEFAULT '',
       realm        VARCHAR(255) NOT NULL,
       ha1_md5      VARCHAR(64) NOT NULL,
       ha1_sha256   VARCHAR(128) NOT NULL,
       created_at   BIGINT NOT NULL,
       chg          BIGINT NOT NULL DEFAULT 0,
       KEY extensions_chg (chg)
     ) ${TABLE}`,
    `CREATE TABLE bindings (
       aor            VARCHAR(200) NOT NULL,
       contact        VARCHAR(500) NOT NULL,
       contact_header VARCHAR(2000) NOT NULL,
       expires_at     BIGINT NOT NULL,
       call_id        VARCHAR(255) NOT NULL,
       cseq           BIGINT NOT NULL,
       q              DOUBLE NULL,
       instance_id    VARCHAR(255) NULL,
       reg_id         INT NULL,
       transport      VARCHAR(8) NOT NULL,
       source_address VARCHAR(64) NOT NULL,
       source_port    INT NOT NULL,
       local_address  VARCHAR(64) NULL,
       local_port     INT NULL,
       user_agent     VARCHAR(255) NULL,
       updated_at     BIGINT NOT NULL,
       chg            BIGINT NOT NULL DEFAULT 0,
       PRIMARY KEY (aor, contact),
       KEY bindings_expires_at (expires_at),
       KEY bindings_chg (chg)
     ) ${TABLE}`,
  ],
  // 2: the restricted call classes each extension is granted, comma-separated (16 of 32 characters at most)
  ["ALTER TABLE extensions ADD COLUMN allow VARCHAR(600) NOT NULL DEFAULT ''"],
  // 3: banned source addresses (lib/security), one row per address; a removed ban stays a while
  // as a row with removed = 1
  [
    `CREATE TABLE bans (
       address    VARCHAR(64) NOT NULL PRIMARY KEY,
       expires_at BIGINT NOT NULL,
       reason     VARCHAR(255) NOT NULL,
       offences   INT NOT NULL,
       created_at BIGINT NOT NULL,
       manual     TINYINT NOT NULL DEFAULT 0,
       removed    TINYINT NOT NULL DEFAULT 0,
       chg        BIGINT NOT NULL DEFAULT 0,
       KEY bans_expires_at (expires_at),
       KEY bans_chg (chg)
     ) ${TABLE}`,
  ],
  // 4: RFC 3327 Path of a binding registered through a proxy: the Path header values in order,
  // one per line; NULL without Path
  ['ALTER TABLE bindings ADD COLUMN path VARCHAR(4000) NULL'],
  // 5: call records (cdr.format with db), written by every server, read by `cdr query --store`.
  // No chg column: the servers never read them back (the store's memory holds no CDR). id comes
  // from AUTO_INCREMENT, which concurrent servers cannot collide on (Galera spreads it with
  // auto_increment_increment/offset); uid, made by the writer, keeps a retried batch from being
  // stored twice. Free text is TEXT (a SIP message is at most 64 KiB): stored exactly, the
  // indexes take prefixes.
  [
    `CREATE TABLE cdr (
       id             BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
       uid            CHAR(32) NOT NULL,
       record_id      VARCHAR(32) NOT NULL,
       record_type    VARCHAR(8) NOT NULL,
       party_kind     VARCHAR(16) NOT NULL,
       call_id        TEXT NOT NULL,
       caller         TEXT NOT NULL,
       caller_name    TEXT NOT NULL,
       callee         TEXT NOT NULL,
       dialled        TEXT NOT NULL,
       route          TEXT NOT NULL,
       start_time     VARCHAR(40) NOT NULL,
       start_ms       BIGINT NOT NULL,
       answer_time    VARCHAR(40) NULL,
       end_time       VARCHAR(40) NOT NULL,
       duration       DECIMAL(15,3) NOT NULL,
       billable       BIGINT NOT NULL,
       status         SMALLINT NOT NULL,
       fci            TEXT NOT NULL,
       caller_address TEXT NOT NULL,
       callee_address TEXT NOT NULL,
       media          TEXT NOT NULL,
       codec          TEXT NOT NULL,
       user_agent     TEXT NOT NULL,
       node           VARCHAR(255) NOT NULL,
       UNIQUE KEY cdr_uid (uid),
       KEY cdr_start_ms (start_ms),
       KEY cdr_caller (caller(64)),
       KEY cdr_callee (callee(64)),
       KEY cdr_node (node, start_ms)
     ) ${TABLE}`,
  ],
];

export const LATEST_MARIADB_SCHEMA_VERSION = MIGRATIONS.length;

/** Held while migrating, so that servers starting together do not race (GET_LOCK is per server, any connection). */
export const MIGRATION_LOCK = 'minisipserver_migrate';
const LOCK_WAIT_SECONDS = 30;

/** The schema version of the database; 0 for an empty one. */
export async function schemaVersion(conn: Connection): Promise<number> {
  const tables = (await conn.query("SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'schema_version'")) as Array<{ n: number | bigint }>;
  if (Number(tables[0]?.n ?? 0) === 0) return 0;
  const rows = (await conn.query('SELECT version FROM schema_version')) as Array<{ version: number }>;
  return Number(rows[0]?.version ?? 0);
}

/**
 * Brings the database to `target` (default: the latest version) under the migration lock;
 * returns the version found and the version left. Throws if the database was written by a newer
 * minisipserver. `where` names the database in messages.
 */
export async function migrateMariaDb(conn: Connection, where: string, target = LATEST_MARIADB_SCHEMA_VERSION): Promise<{ from: number; to: number }> {
  const lock = (await conn.query('SELECT GET_LOCK(?, ?) AS got', [MIGRATION_LOCK, LOCK_WAIT_SECONDS])) as Array<{ got: number | null }>;
  if (Number(lock[0]?.got) !== 1) {
    throw new Error(`${where}: another server held the schema migration lock for ${LOCK_WAIT_SECONDS} s; try again when it has finished starting`);
  }
  try {
    await conn.query(`CREATE TABLE IF NOT EXISTS schema_version (version INT NOT NULL) ${TABLE}`);
    const rows = (await conn.query('SELECT version FROM schema_version')) as Array<{ version: number }>;
    const from = rows.length === 0 ? 0 : Number(rows[0]!.version);
    if (from > LATEST_MARIADB_SCHEMA_VERSION) {
      throw new Error(
        `${where}: schema version ${from} is newer than this minisipserver understands (${LATEST_MARIADB_SCHEMA_VERSION}); ` +
          'run a newer minisipserver on every server that shares this database, or restore a backup made by this version',
      );
    }
    if (rows.length === 0) await conn.query('INSERT INTO schema_version (version) VALUES (0)');
    let version = from;
    while (version < target) {
      const next = version + 1;
      try {
        for (const sql of MIGRATIONS[version]!) await conn.query(sql);
      } catch (err) {
        throw new Error(`${where}: schema migration ${next} failed (${(err as Error).message}); the database is at version ${version} or part-way to ${next}: restore a backup, or fix what the message names and run \`minisipserver db migrate\``, { cause: err });
      }
      await conn.query('UPDATE schema_version SET version = ?', [next]);
      version = next;
    }
    return { from, to: version };
  } finally {
    await conn.query('SELECT RELEASE_LOCK(?)', [MIGRATION_LOCK]).catch(() => undefined);
  }
}
