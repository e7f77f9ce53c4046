/**
 * A private MariaDB server for a test file: `mariadb-install-db` into a temp folder, then
 * `mariadbd` on a Unix socket in it (no TCP port: nothing to race for), with a user whose
 * password is in a file. stop() and start() again for outage tests; destroy() at the end.
 * Needs Debian's mariadb-server package (.ci/run installs it); without it the tests that need a
 * server are skipped, naming why (mariaDbSkipReason).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as mariadb from 'mariadb';
import type { Config } from '../../lib/config/schema.js';
import type { MariaDbSettings } from '../../lib/store/mariadb-settings.js';

function findBinary(name: string): string | null {
  for (const dir of ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin']) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  return null;
}

const MARIADBD = findBinary('mariadbd');
const INSTALL_DB = findBinary('mariadb-install-db');

/** Why MariaDB tests cannot run here, or false when they can. */
export const mariaDbSkipReason: string | false =
  MARIADBD === null || INSTALL_DB === null ? 'mariadbd or mariadb-install-db not installed (apt-get install mariadb-server; .ci/run does)' : false;

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const START_LIMIT_MS = 60_000;
const STOP_LIMIT_MS = 30_000;
const USER = 'mss';

export interface MariaDbServer {
  readonly dir: string;
  readonly socketPath: string;
  readonly passwordFile: string;
  /** A new empty database the test user may use (each test its own). */
  createDatabase(): Promise<string>;
  /** Store settings for `database` (pollMs short for tests unless given). */
  settings(database: string, pollMs?: number): MariaDbSettings;
  /** Points config.store at `database`. */
  configure(config: Config, database: string, pollMs?: number): void;
  /** Runs statements as root (test set-up and checks). */
  query<T = unknown>(sql: string, params?: unknown[]): Promise<T>;
  /** Stops mariadbd (SIGTERM, then waits for it to exit). */
  stop(): Promise<void>;
  /** Starts it again on the same data. */
  start(): Promise<void>;
  /** Stops it and removes its folder. */
  destroy(): Promise<void>;
}

async function waitFor(what: string, limitMs: number, check: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + limitMs;
  for (let i = 0; Date.now() < deadline && i < limitMs / 20; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${limitMs} ms waiting for ${what}`);
}

export async function startMariaDb(): Promise<MariaDbServer> {
  if (MARIADBD === null || INSTALL_DB === null) throw new Error(String(mariaDbSkipReason));
  const dir = mkdtempSync(join(tmpdir(), 'mss-mariadb-'));
  const dataDir = join(dir, 'data');
  const socketPath = join(dir, 'mysqld.sock');
  const passwordFile = join(dir, 'password');
  const password = `pw-${process.pid}-${Date.now()}`;
  writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  const asUser = isRoot ? ['--user=root'] : [];
  const install = spawnSync(
    INSTALL_DB,
    ['--no-defaults', `--datadir=${dataDir}`, '--auth-root-authentication-method=normal', '--skip-test-db', ...asUser],
    { encoding: 'utf8', timeout: START_LIMIT_MS },
  );
  if (install.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`mariadb-install-db failed (${install.status ?? install.signal}): ${install.stderr || install.stdout}`);
  }
  const args = [
    '--no-defaults',
    `--datadir=${dataDir}`,
    `--socket=${socketPath}`,
    '--skip-networking',
    `--pid-file=${join(dir, 'mariadbd.pid')}`,
    `--log-error=${join(dir, 'error.log')}`,
    '--innodb-buffer-pool-size=32M',
    '--innodb-log-file-size=16M',
    '--skip-log-bin',
    ...asUser,
  ];
  let child: ChildProcess | null = null;
  let exited = true;
  const killOnExit = () => child?.kill('SIGKILL');
  process.on('exit', killOnExit);

  const rootConnect = () => mariadb.createConnection({ socketPath, user: 'root', connectTimeout: 1000, bigIntAsNumber: true });

  const start = async () => {
    child = spawn(MARIADBD, args, { stdio: 'ignore' });
    exited = false;
    child.once('exit', () => {
      exited = true;
    });
    await waitFor('mariadbd to accept connections', START_LIMIT_MS, async () => {
      if (exited) {
        let log = '';
        try {
          log = readFileSync(join(dir, 'error.log'), 'utf8').slice(-2000);
        } catch {
          // no log
        }
        throw new Error(`mariadbd exited while starting:\n${log}`);
      }
      try {
        const c = await rootConnect();
        await c.end();
        return true;
      } catch {
        return false;
      }
    });
  };
  const stop = async () => {
    if (!child || exited) return;
    child.kill('SIGTERM');
    await waitFor('mariadbd to stop', STOP_LIMIT_MS, () => exited).catch(async (err) => {
      child?.kill('SIGKILL');
      await waitFor('mariadbd to be killed', 5000, () => exited);
      throw err;
    });
  };
  const query = async <T>(sql: string, params: unknown[] = []): Promise<T> => {
    const c = await rootConnect();
    try {
      return (await c.query(sql, params)) as T;
    } finally {
      await c.end();
    }
  };

  try {
    await start();
    await query(`CREATE USER '${USER}'@'localhost' IDENTIFIED BY ?`, [password]);
  } catch (err) {
    await stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  let databases = 0;
  const settings = (database: string, pollMs = 50): MariaDbSettings => ({
    host: '127.0.0.1',
    port: 3306,
    socketPath,
    user: USER,
    passwordFile,
    database,
    poolSize: 2,
    pollMs,
  });
  return {
    dir,
    socketPath,
    passwordFile,
    async createDatabase() {
      const name = `mss_${++databases}`;
      await query(`CREATE DATABASE ${name}`);
      await query(`GRANT ALL PRIVILEGES ON ${name}.* TO '${USER}'@'localhost'`);
      return name;
    },
    settings,
    configure(config, database, pollMs) {
      config.store.kind = 'mariadb';
      Object.assign(config.store.mariadb, settings(database, pollMs));
    },
    query,
    stop,
    start,
    async destroy() {
      await stop().catch(() => undefined);
      process.off('exit', killOnExit);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
