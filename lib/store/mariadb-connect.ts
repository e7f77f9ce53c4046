/**
 * Connections to the MariaDB store's database: one for db migrate, db status and the store's
 * open (its failure names the cause), and the pool the store works with.
 */
import * as mariadb from 'mariadb';
import { describeDbError } from './mariadb-writes.js';
import { describeMariaDb, readPassword, type MariaDbSettings } from './mariadb-settings.js';
import { StoreOpenError } from './store.js';

function poolConfig(s: MariaDbSettings, password: string, connectTimeout: number): mariadb.PoolConfig {
  return {
    ...(s.socketPath !== '' ? { socketPath: s.socketPath } : { host: s.host, port: s.port }),
    user: s.user,
    password,
    database: s.database,
    connectionLimit: s.poolSize,
    connectTimeout,
    acquireTimeout: connectTimeout + 500,
    // Numbers are epoch ms and counters, far below 2^53.
    bigIntAsNumber: true,
    insertIdAsNumber: true,
    decimalAsNumber: true,
    // Error messages must never carry values (HA1s).
    logParam: false,
    // UPDATE's affectedRows counts the rows matched (an unchanged row still exists).
    foundRows: true,
  };
}

/** One connection; a failure is a StoreOpenError naming the cause (refused, access denied, no such database). */
export async function connectMariaDb(settings: MariaDbSettings, connectTimeoutMs = 1000): Promise<mariadb.Connection> {
  const where = describeMariaDb(settings);
  let password: string;
  try {
    password = readPassword(settings);
  } catch (err) {
    throw new StoreOpenError(where, (err as Error).message, { cause: err });
  }
  try {
    return await mariadb.createConnection(poolConfig(settings, password, connectTimeoutMs));
  } catch (err) {
    throw new StoreOpenError(
      where,
      `${where}: cannot connect (${describeDbError(err)}); check that MariaDB runs and listens there, that the user exists with the password of store.mariadb.passwordFile, and that the database exists and the user may use it (docs/STORE.md)`,
      { cause: err },
    );
  }
}

/** The store's pool (the password file is read again: the pool keeps what it was given). */
export function createMariaDbPool(settings: MariaDbSettings, connectTimeoutMs: number): mariadb.Pool {
  return mariadb.createPool(poolConfig(settings, readPassword(settings), connectTimeoutMs));
}
