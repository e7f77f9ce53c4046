// `minisipserver db migrate|status|import-sqlite`: the store the configuration names
// (store.kind sqlite or mariadb, docs/STORE.md): bring its schema to this version, show where it
// is and what it holds, copy extensions from a SQLite store into MariaDB.
import { join } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import type { Config } from '../lib/config/schema.js';
import type { StoreCounts } from '../lib/store/inspect.js';
import { commandConfig, finishStore, type StoreChoice } from './store-open.js';
import { parseSubcommand } from './yargs-parse.js';

export interface DbIo {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

export type DbRequest = StoreChoice &
  ({ action: 'migrate' } | { action: 'status'; json: boolean } | { action: 'import-sqlite'; file: string; replace: boolean });

/** What `db status --json` prints. */
export interface DbStatus {
  kind: 'sqlite' | 'mariadb';
  where: string;
  reachable: boolean;
  /** Why not (reachable false), or what to do (a schema to migrate). */
  problem?: string;
  schemaVersion?: number;
  latestVersion: number;
  counts?: StoreCounts;
}

const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;
const EXIT_CODES =
  'Exit codes: 0 done (status: the store can be used); 1 the store cannot be reached or used, or an import was refused; 2 usage error.';

export function defineDbSubcommands(y: Argv, run: (request: DbRequest) => void | Promise<void>): Argv {
  const choice = (a: Record<string, unknown>): StoreChoice => ({
    ...(a['config'] !== undefined ? { config: String(a['config']) } : {}),
    ...(a['data-dir'] !== undefined ? { dataDir: String(a['data-dir']) } : {}),
  });
  return y
    .option('config', { type: 'string', describe: 'configuration file: its store (store.kind sqlite or mariadb, store.mariadb.*) and data.dir' })
    .option('data-dir', { type: 'string', describe: 'data folder of a SQLite store (default: data.dir of --config, else ./data)' })
    .command(
      'migrate',
      'bring the store\'s schema to this version (the server also does it at start, under the same lock)',
      (v) => v,
      (a) => run({ action: 'migrate', ...choice(a) }),
    )
    .command(
      'status',
      'where the store is, whether it can be reached, its schema version against this version\'s, and what it holds',
      (v) => v.option('json', { type: 'boolean', default: false, describe: 'print JSON' }),
      (a) => run({ action: 'status', json: a['json'] === true, ...choice(a) }),
    )
    .command(
      'import-sqlite <file>',
      'copy the extensions of a SQLite store file (their password hashes, never a password) into the configured MariaDB store',
      (v) =>
        v
          .positional('file', { type: 'string', demandOption: true, describe: 'a minisipserver.db file (read only)' })
          .option('replace', { type: 'boolean', default: false, describe: 'overwrite extensions that exist already (their allowed classes are kept)' }),
      (a) => run({ action: 'import-sqlite', file: String(a['file']), replace: a['replace'] === true, ...choice(a) }),
    );
}

/** Runs `minisipserver db <argv...>` in-process; resolves to the exit code. */
export async function runDb(argv: string[], io: DbIo): Promise<number> {
  let request: DbRequest | undefined;
  const define = (y: Argv) =>
    defineDbSubcommands(y, (r) => {
      request = r;
    });
  const code = await parseSubcommand(define, { name: 'db', demand: 'name a db command: migrate, status, import-sqlite', epilog: EXIT_CODES }, argv, io, () => request !== undefined);
  if (code !== null || !request) return code ?? EXIT_USAGE;
  return executeDb(request, io);
}

export async function executeDb(req: DbRequest, io: DbIo): Promise<number> {
  const fail = (code: number, text: string): number => {
    io.err.write(`minisipserver db ${req.action}: ${text}\n`);
    return code;
  };
  let config: Config;
  try {
    config = await commandConfig(req);
  } catch (err) {
    return fail(EXIT_USAGE, (err as Error).message);
  }
  try {
    switch (req.action) {
      case 'migrate':
        return await migrate(config, io);
      case 'status':
        return await status(config, req.json, io);
      case 'import-sqlite':
        return await importSqlite(config, req.file, req.replace, io, fail);
    }
  } catch (err) {
    return fail(EXIT_FAILURE, (err as Error).message);
  }
}

async function migrate(config: Config, io: DbIo): Promise<number> {
  if (config.store.kind === 'mariadb') {
    const [{ connectMariaDb }, { migrateMariaDb }, { mariaDbSettings, describeMariaDb }] = await Promise.all([
      import('../lib/store/mariadb-connect.js'),
      import('../lib/store/mariadb-migrations.js'),
      import('../lib/store/mariadb-settings.js'),
    ]);
    const settings = mariaDbSettings(config);
    const conn = await connectMariaDb(settings);
    try {
      const { from, to } = await migrateMariaDb(conn, describeMariaDb(settings));
      io.out.write(`${describeMariaDb(settings)}: ${from === to ? `schema at version ${to}, the latest: nothing to do` : `schema migrated from version ${from} to ${to}`}\n`);
    } finally {
      await conn.end().catch(() => undefined);
    }
    return EXIT_OK;
  }
  const [{ openSqliteStore, DATABASE_FILE_NAME }, { inspectSqliteFile }] = await Promise.all([import('../lib/store/sqlite.js'), import('../lib/store/inspect.js')]);
  const file = join(config.data.dir, DATABASE_FILE_NAME);
  let from = 0;
  try {
    from = inspectSqliteFile(file, Date.now()).version;
  } catch {
    // no file yet: created from version 0
  }
  openSqliteStore(config.data.dir).close();
  const to = inspectSqliteFile(file, Date.now()).version;
  io.out.write(`${file}: ${from === to ? `schema at version ${to}, the latest: nothing to do` : `schema migrated from version ${from} to ${to}`}\n`);
  return EXIT_OK;
}

async function status(config: Config, json: boolean, io: DbIo): Promise<number> {
  const s = await readStatus(config);
  if (json) {
    io.out.write(`${JSON.stringify(s)}\n`);
  } else {
    io.out.write(`store      ${s.kind}, ${s.where}\n`);
    io.out.write(`reachable  ${s.reachable ? 'yes' : `no: ${s.problem ?? ''}`}\n`);
    if (s.schemaVersion !== undefined) {
      const note = s.schemaVersion === s.latestVersion ? 'the latest' : s.problem ?? '';
      io.out.write(`schema     version ${s.schemaVersion} of ${s.latestVersion} (${note})\n`);
    }
    if (s.counts) {
      const c = s.counts;
      io.out.write(`holds      ${c.extensions} extensions, ${c.bindings} live registrations of ${c.registered} extensions, ${c.bans} bans in force\n`);
    }
  }
  return s.reachable && (s.schemaVersion ?? 0) <= s.latestVersion ? EXIT_OK : EXIT_FAILURE;
}

async function readStatus(config: Config): Promise<DbStatus> {
  const now = Date.now();
  if (config.store.kind === 'mariadb') {
    const [{ connectMariaDb }, { schemaVersion, LATEST_MARIADB_SCHEMA_VERSION }, { mariaDbSettings, describeMariaDb }, { mariaDbCounts }] = await Promise.all([
      import('../lib/store/mariadb-connect.js'),
      import('../lib/store/mariadb-migrations.js'),
      import('../lib/store/mariadb-settings.js'),
      import('../lib/store/inspect.js'),
    ]);
    const settings = mariaDbSettings(config);
    const base = { kind: 'mariadb' as const, where: describeMariaDb(settings), latestVersion: LATEST_MARIADB_SCHEMA_VERSION };
    let conn;
    try {
      conn = await connectMariaDb(settings);
    } catch (err) {
      return { ...base, reachable: false, problem: (err as Error).message };
    }
    try {
      const version = await schemaVersion(conn);
      const out: DbStatus = { ...base, reachable: true, schemaVersion: version };
      if (version === LATEST_MARIADB_SCHEMA_VERSION) out.counts = await mariaDbCounts(conn, now);
      else out.problem = versionProblem(version, LATEST_MARIADB_SCHEMA_VERSION);
      return out;
    } finally {
      await conn.end().catch(() => undefined);
    }
  }
  const [{ DATABASE_FILE_NAME }, { LATEST_SCHEMA_VERSION }, { inspectSqliteFile }] = await Promise.all([
    import('../lib/store/sqlite.js'),
    import('../lib/store/migrations.js'),
    import('../lib/store/inspect.js'),
  ]);
  const file = join(config.data.dir, DATABASE_FILE_NAME);
  const base = { kind: 'sqlite' as const, where: file, latestVersion: LATEST_SCHEMA_VERSION };
  try {
    const { version, counts } = inspectSqliteFile(file, now);
    const out: DbStatus = { ...base, reachable: true, schemaVersion: version, counts };
    if (version !== LATEST_SCHEMA_VERSION) out.problem = versionProblem(version, LATEST_SCHEMA_VERSION);
    return out;
  } catch (err) {
    return { ...base, reachable: false, problem: `${(err as Error).message} (the server creates it at its first start)` };
  }
}

function versionProblem(version: number, latest: number): string {
  return version < latest
    ? 'older: `minisipserver db migrate` (or the next start of the server) brings it up to date'
    : 'newer than this minisipserver understands: run the newer version';
}

async function importSqlite(config: Config, file: string, replace: boolean, io: DbIo, fail: (code: number, text: string) => number): Promise<number> {
  if (config.store.kind !== 'mariadb') {
    return fail(EXIT_USAGE, 'the configured store is SQLite: name a configuration with store.kind: mariadb (--config FILE) to import into');
  }
  const { readSqliteExtensions } = await import('../lib/store/inspect.js');
  const records = readSqliteExtensions(file);
  // The realm is part of every HA1: under another realm these passwords would never match.
  const foreign = records.filter((r) => r.realm !== config.sip.realm);
  if (foreign.length > 0) {
    const realms = [...new Set(foreign.map((r) => r.realm))].slice(0, 5).map((r) => `"${r}"`).join(', ');
    return fail(
      EXIT_FAILURE,
      `${file}: ${foreign.length} of ${records.length} extensions were hashed for realm ${realms}, but sip.realm is "${config.sip.realm}": ` +
        'their passwords would not work. Set sip.realm in the configuration to the realm they were made with; nothing was imported',
    );
  }
  const { openStore, describeStore } = await import('../lib/store/open-store.js');
  const { Logger } = await import('../lib/log.js');
  const store = await openStore(config, new Logger({ level: 'warn', format: 'text', write: (l) => io.err.write(`${l}\n`) }));
  let counts;
  try {
    counts = store.importExtensions(records, replace ? 'replace' : 'skip-existing');
  } catch (err) {
    await store.close();
    throw err;
  }
  const failure = await finishStore(store);
  if (failure !== null) return fail(EXIT_FAILURE, `the extensions were not saved: ${failure}`);
  io.out.write(`${file} -> ${describeStore(config)}: ${counts.added} added, ${counts.replaced} replaced, ${counts.skipped} skipped (already present)\n`);
  return EXIT_OK;
}

export const dbCommand: CommandModule = {
  command: 'db',
  describe: 'the store: db migrate|status|import-sqlite',
  builder: (y) =>
    defineDbSubcommands(y, async (request) => {
      process.exitCode = await executeDb(request, { out: process.stdout, err: process.stderr });
    })
      .demandCommand(1, 'name a db command: migrate, status, import-sqlite')
      .epilog(EXIT_CODES),
  handler: () => undefined,
};
