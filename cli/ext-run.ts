/**
 * What `minisipserver ext` does once its arguments are parsed (cli/ext.ts parses them). Kept in
 * its own module so that the SQLite addon is loaded only when an ext command really runs.
 */
import { Extensions, ExtensionsError, type ExtensionSummary } from '../lib/pbx/extensions.js';
import { ExtensionExistsError, StoreBusyError, StoreOpenError, type Store } from '../lib/store/store.js';
import { finishStore, openCommandStore } from './store-open.js';

export interface ExtIO {
  out(s: string): void;
  err(s: string): void;
}

export type ExtAction =
  | { action: 'add'; number: string; password?: string; name?: string; allow?: string[] }
  | { action: 'edit'; number: string; name?: string; allow?: string[] }
  | { action: 'list'; json: boolean }
  | { action: 'remove'; number: string }
  | { action: 'passwd'; number: string; password?: string }
  | { action: 'import'; file: string; replace: boolean };

/** dataDir: --data-dir when given; config: --config (its store.kind and data.dir). */
export type ExtRequest = ExtAction & { dataDir?: string; config?: string; realm?: string };

const DEFAULT_REALM = 'minisipserver';
const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

/** Runs one parsed request against the store; returns the exit code once the change is saved. */
export async function executeExt(req: ExtRequest, io: ExtIO): Promise<number> {
  const opened = await openCommandStore({ ...(req.config !== undefined ? { config: req.config } : {}), ...(req.dataDir !== undefined ? { dataDir: req.dataDir } : {}) }, io.err);
  if (opened === null) return EXIT_FAILURE;
  const { store, config } = opened;
  const code = runOn(req, store, config.sip.realm, io);
  // A shared database takes the change after the command made it: a refusal is the command's failure.
  const failure = await finishStore(store);
  if (failure === null) return code;
  io.err(`ext ${req.action}: the change was not saved: ${failure}`);
  return EXIT_FAILURE;
}

function runOn(req: ExtRequest, store: Store, configRealm: string, io: ExtIO): number {
  try {
    const realm = req.realm ?? (req.config !== undefined ? configRealm : undefined) ?? store.getMeta('realm') ?? DEFAULT_REALM;
    return perform(req, new Extensions(store, realm), io);
  } catch (err) {
    if (err instanceof ExtensionsError) {
      io.err(err.message);
      return err.kind === 'invalid' ? EXIT_USAGE : EXIT_FAILURE;
    }
    if (err instanceof ExtensionExistsError || err instanceof StoreOpenError || err instanceof StoreBusyError) {
      io.err(err.message);
      return EXIT_FAILURE;
    }
    io.err(`ext ${req.action} failed: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT_FAILURE;
  }
}

/** Tab-separated number, display name, allowed classes; empty trailing columns left off. */
function listLine(e: ExtensionSummary): string {
  return [e.number, e.displayName, e.allow.join(',')].join('\t').replace(/\t+$/, '');
}

function describeExtension(e: ExtensionSummary): string {
  const name = e.displayName === '' ? 'no display name' : `display name "${e.displayName}"`;
  const allow = e.allow.length === 0 ? 'no restricted classes allowed' : `allowed classes ${e.allow.join(', ')}`;
  return `${name}, ${allow}`;
}

function perform(req: ExtRequest, extensions: Extensions, io: ExtIO): number {
  switch (req.action) {
    case 'add': {
      const opts: { password?: string; displayName?: string; allow?: string[] } = {};
      if (req.password !== undefined) opts.password = req.password;
      if (req.name !== undefined) opts.displayName = req.name;
      if (req.allow !== undefined) opts.allow = req.allow;
      const { number, password } = extensions.add(req.number, opts);
      io.out(`added extension ${number}`);
      if (req.password === undefined) io.out(`password: ${password}  (shown only now: write it down)`);
      return EXIT_OK;
    }
    case 'edit': {
      const changes: { displayName?: string; allow?: string[] } = {};
      if (req.name !== undefined) changes.displayName = req.name;
      if (req.allow !== undefined) changes.allow = req.allow;
      const e = extensions.edit(req.number, changes);
      io.out(`changed extension ${e.number}: ${describeExtension(e)}`);
      return EXIT_OK;
    }
    case 'list': {
      const all = extensions.list();
      if (req.json) io.out(JSON.stringify(all));
      else for (const e of all) io.out(listLine(e));
      return EXIT_OK;
    }
    case 'remove': {
      if (extensions.remove(req.number)) {
        io.out(`removed extension ${req.number}`);
        return EXIT_OK;
      }
      io.err(`no extension ${req.number}`);
      return EXIT_FAILURE;
    }
    case 'passwd': {
      const password = extensions.setPassword(req.number, req.password);
      io.out(`password of extension ${req.number} changed`);
      if (req.password === undefined) io.out(`password: ${password}  (shown only now: write it down)`);
      return EXIT_OK;
    }
    case 'import': {
      const result = extensions.importFile(req.file, { replace: req.replace });
      for (const e of result.errors) io.err(`${req.file}:${e.line}: ${e.message}`);
      io.out(
        `${req.file}: ${result.added} added, ${result.replaced} replaced, ${result.skipped} skipped (already present), ` +
          `${result.errors.length} bad lines`,
      );
      return result.errors.length === 0 ? EXIT_OK : EXIT_FAILURE;
    }
  }
}

