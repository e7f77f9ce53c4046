/**
 * Where the MariaDB store is (store.url or store.mariadb.*) and how to log in, as the
 * configuration gives it. No password is ever taken from the configuration itself.
 */
import { readFileSync } from 'node:fs';
import type { Config } from '../config/schema.js';

export interface MariaDbSettings {
  host: string;
  port: number;
  /** Used instead of host and port when not empty. */
  socketPath: string;
  user: string;
  /** Empty: no password. */
  passwordFile: string;
  database: string;
  poolSize: number;
  pollMs: number;
}

export interface StoreUrlParts {
  user: string;
  host: string;
  port?: number;
  socketPath?: string;
  database: string;
}

const NAME = /^[A-Za-z0-9_$-]{1,64}$/;

/**
 * mariadb://user@host[:port]/database, or mariadb://user@localhost/database?socket=/path.
 * Returns the parts, or what is wrong (a password in it is refused).
 */
export function parseStoreUrl(text: string): StoreUrlParts | string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'store.url is not a URL: write mariadb://user@host:port/database';
  }
  if (url.protocol !== 'mariadb:' && url.protocol !== 'mysql:') return `store.url must start with mariadb:// (got ${url.protocol}//)`;
  if (url.password !== '') {
    return 'store.url must not hold a password (a configuration file is read by many): remove it from the URL and put it in a file named by store.mariadb.passwordFile, readable by the server\'s user only';
  }
  const user = decodeURIComponent(url.username);
  if (user === '') return 'store.url names no user: write mariadb://user@host:port/database';
  if (url.hostname === '') return 'store.url names no host: write mariadb://user@host:port/database';
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!NAME.test(database)) return `store.url: the database name "${database}" must be 1-64 letters, digits, _ $ or -`;
  const parts: StoreUrlParts = { user, host: url.hostname.replace(/^\[|\]$/g, ''), database };
  if (url.port !== '') parts.port = Number(url.port);
  for (const [key, value] of url.searchParams) {
    if (key === 'socket' && value.startsWith('/')) parts.socketPath = value;
    else return `store.url: unknown parameter "${key}" (only socket=/path/to/mysqld.sock is understood)`;
  }
  return parts;
}

/** The settings of store.kind mariadb, store.url folded in (the loader has checked it). */
export function mariaDbSettings(config: Config): MariaDbSettings {
  const m = config.store.mariadb;
  const s: MariaDbSettings = { ...m };
  if (config.store.url !== '') {
    const parts = parseStoreUrl(config.store.url);
    if (typeof parts === 'string') throw new Error(parts);
    s.user = parts.user;
    s.host = parts.host;
    s.database = parts.database;
    if (parts.port !== undefined) s.port = parts.port;
    s.socketPath = parts.socketPath ?? '';
  }
  return s;
}

/** user@host:port/database or user@socket/database, for messages (never a password). */
export function describeMariaDb(s: MariaDbSettings): string {
  return `mariadb ${s.user}@${s.socketPath !== '' ? s.socketPath : `${s.host}:${s.port}`}/${s.database}`;
}

/** The password: the first line of passwordFile; '' without one. Throws a message naming the file. */
export function readPassword(s: MariaDbSettings): string {
  if (s.passwordFile === '') return '';
  let text: string;
  try {
    text = readFileSync(s.passwordFile, 'utf8');
  } catch (err) {
    throw new Error(`store.mariadb.passwordFile ${s.passwordFile}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)}); check the path and that the server's user may read it`);
  }
  return text.split(/\r?\n/)[0] ?? '';
}

/** Problems of the store section the key table cannot see; null when there are none. */
export function storeConfigProblem(config: Config): { key: string; problem: string } | null {
  const s = config.store;
  if (s.url !== '') {
    const parts = parseStoreUrl(s.url);
    if (typeof parts === 'string') return { key: 'url', problem: parts };
    if (s.kind !== 'mariadb') return { key: 'url', problem: 'store.url is set but store.kind is not mariadb: set store.kind: mariadb, or remove store.url' };
  }
  if (s.kind === 'mariadb') {
    const m = s.mariadb;
    if (s.url === '' && !NAME.test(m.database)) return { key: 'mariadb', problem: `store.mariadb.database "${m.database}" must be 1-64 letters, digits, _ $ or -` };
    if (m.user === '' && s.url === '') return { key: 'mariadb', problem: 'store.mariadb.user is empty: name the MariaDB user' };
    if (m.socketPath !== '' && !m.socketPath.startsWith('/')) return { key: 'mariadb', problem: 'store.mariadb.socketPath must be an absolute path, such as /run/mysqld/mysqld.sock' };
  }
  return null;
}
