/**
 * Opens the `cdr` table of the store the configuration names (store.kind): the SQLite file of
 * data.dir or the MariaDB database, each on a connection of its own. The MariaDB connector is
 * loaded only for the latter.
 */
import type { Config } from '../config/schema.js';
import type { CdrTable } from './cdr-rows.js';
import { mariaDbSettings } from './mariadb-settings.js';
import { openSqliteCdrTable } from './sqlite-cdr.js';

/**
 * `readOnly`: for reading records (a SQLite file must exist and is opened read-only). Throws
 * StoreOpenError (cannot reach or open the database) or CdrTableMissingError (older schema).
 */
export async function openCdrTable(config: Config, opts: { readOnly?: boolean } = {}): Promise<CdrTable> {
  if (config.store.kind !== 'mariadb') return openSqliteCdrTable(config.data.dir, opts);
  const { openMariaDbCdrTable } = await import('./mariadb-cdr.js');
  return openMariaDbCdrTable(mariaDbSettings(config));
}
