/**
 * Opens the store the configuration names (store.kind): the embedded SQLite file in data.dir,
 * or the MariaDB database of store.url / store.mariadb.*. The MariaDB connector is loaded only
 * for the latter.
 */
import type { Config } from '../config/schema.js';
import type { StoreLogger } from './mariadb.js';
import { describeMariaDb, mariaDbSettings } from './mariadb-settings.js';
import { DATABASE_FILE_NAME, openSqliteStore } from './sqlite.js';
import type { Store } from './store.js';
import { join } from 'node:path';

/** Opens (creating and migrating when needed) the configured store. Throws StoreOpenError saying what to check. */
export async function openStore(config: Config, logger: StoreLogger): Promise<Store> {
  if (config.store.kind !== 'mariadb') return openSqliteStore(config.data.dir);
  const { openMariaDbStore } = await import('./mariadb.js');
  return openMariaDbStore({ settings: mariaDbSettings(config), logger });
}

/** Where the configured store is, for messages: the SQLite file, or the MariaDB user@server/database. */
export function describeStore(config: Config): string {
  return config.store.kind === 'mariadb' ? describeMariaDb(mariaDbSettings(config)) : join(config.data.dir, DATABASE_FILE_NAME);
}
