/**
 * The store of a command-line command: the one `--config FILE` names (store.kind, data.dir),
 * else the SQLite file of `--data-dir` (default ./data). Loads the store modules only when a
 * command really runs.
 */
import type { Config } from '../lib/config/schema.js';
import type { Store } from '../lib/store/store.js';

export interface StoreChoice {
  /** The configuration file (--config); absent: built-in defaults. */
  config?: string;
  /** --data-dir given on the command line: wins over the configuration's data.dir. */
  dataDir?: string;
}

/** The configuration a command works with; throws ConfigError with file:line for a bad file. */
export async function commandConfig(choice: StoreChoice): Promise<Config> {
  const { loadConfigFile } = await import('../lib/config/load.js');
  const { defaultConfig } = await import('../lib/config/schema.js');
  const config = choice.config !== undefined ? loadConfigFile(choice.config) : defaultConfig();
  if (choice.dataDir !== undefined) config.data.dir = choice.dataDir;
  return config;
}

/**
 * Opens the store; on failure writes the reason to `err` and returns null. What the store
 * logs (a database that goes away) is written to `err` as text lines.
 */
export async function openCommandStore(choice: StoreChoice, err: (line: string) => void): Promise<{ store: Store; config: Config } | null> {
  let config: Config;
  try {
    config = await commandConfig(choice);
  } catch (e) {
    err(e instanceof Error ? e.message : String(e));
    return null;
  }
  const { Logger } = await import('../lib/log.js');
  const { openStore } = await import('../lib/store/open-store.js');
  try {
    const store = await openStore(config, new Logger({ level: 'warn', format: 'text', write: err }));
    return { store, config };
  } catch (e) {
    err(e instanceof Error ? e.message : String(e));
    return null;
  }
}

/** Waits for the store to have every change, then closes it; the reason of a failure, or null. */
export async function finishStore(store: Store): Promise<string | null> {
  let failure: string | null = null;
  try {
    await store.flush();
  } catch (e) {
    failure = e instanceof Error ? e.message : String(e);
  }
  await store.close();
  return failure;
}
