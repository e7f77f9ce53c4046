import { ConfigError } from '../lib/config/load.js';
import { configChanges } from '../lib/config/diff.js';
import { WHOLE_SECTIONS, type Config } from '../lib/config/schema.js';
import type { Logger } from '../lib/log.js';

export interface Reconfigurable {
  readonly config: Config;
  applyConfig(next: Config): { applied: string[]; needsRestart: string[] };
  /** Reads again the files the configuration names (the TLS certificate), changed or not. */
  reloadFiles?(): void;
}

/**
 * SIGHUP: reads the configuration again and hands it to the running server. A file that does not
 * load is refused with its file:line:col and the running configuration stays as it was. Then the
 * files it names are read again: a renewed certificate keeps its file names.
 */
export function reloadConfig(file: string | undefined, load: () => Config, server: Reconfigurable, logger: Logger): void {
  if (file === undefined) {
    logger.warn('config.reload_skipped', { reason: 'started without --config: there is no file to read again' });
    return;
  }
  applyConfigFile(file, load, server, logger);
  server.reloadFiles?.();
}

function applyConfigFile(file: string, load: () => Config, server: Reconfigurable, logger: Logger): void {
  let next: Config;
  try {
    next = load();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    logger.error('config.refused', { file: err.file, line: err.line, column: err.column, problem: err.problem, kept: 'the running configuration' });
    return;
  }
  const changes = configChanges(server.config, next);
  if (changes.length === 0) {
    logger.info('config.unchanged', { file });
    return;
  }
  const { applied, needsRestart } = server.applyConfig(next);
  // Whole sections (trunks hold passwords) are named, not shown.
  const changed = changes.map((c) => (isWholeSection(c.key) ? { key: c.key } : { key: c.key, from: c.from, to: c.to }));
  logger.info('config.reloaded', { file, changed, applied, needsRestart });
  if (needsRestart.length > 0) {
    logger.warn('config.restart_needed', { keys: needsRestart, hint: 'these keys keep their old values until the service restarts' });
  }
}

function isWholeSection(key: string): boolean {
  return (WHOLE_SECTIONS as readonly string[]).includes(key);
}
