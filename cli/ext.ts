/**
 * `minisipserver ext <add|list|remove|passwd|import>`: manage extensions in the data directory.
 * Thin: parsing and printing here, the logic in lib/pbx/extensions.ts.
 * Exit codes: 0 done, 1 failure (unknown or existing extension, unreadable file, bad import
 * lines, unusable database), 2 usage error.
 */
import yargs from 'yargs';
import type { Argv, CommandModule } from 'yargs';
import { Extensions, ExtensionsError } from '../lib/pbx/extensions.js';
import { openSqliteStore } from '../lib/store/sqlite.js';
import { ExtensionExistsError, StoreOpenError, type Store } from '../lib/store/store.js';

export interface ExtIO {
  out(s: string): void;
  err(s: string): void;
}

type ExtAction =
  | { action: 'add'; number: string; password?: string; name?: string }
  | { action: 'list'; json: boolean }
  | { action: 'remove'; number: string }
  | { action: 'passwd'; number: string; password?: string }
  | { action: 'import'; file: string; replace: boolean };

type ExtRequest = ExtAction & { dataDir: string; realm?: string };

const DEFAULT_DATA_DIR = './data';
const DEFAULT_REALM = 'minisipserver';
const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

interface CommonArgs {
  'data-dir': string;
  realm?: string;
}

/** Declares the subcommands on `y`; each handler hands its parsed request to `onRequest`. */
function defineExtCommands(y: Argv, onRequest: (r: ExtRequest) => void): Argv {
  const common = (a: CommonArgs) => ({ dataDir: a['data-dir'], ...(a.realm !== undefined ? { realm: a.realm } : {}) });
  return y
    .option('data-dir', { type: 'string', default: DEFAULT_DATA_DIR, describe: 'directory holding minisipserver.db' })
    .option('realm', { type: 'string', describe: `digest realm (default: the realm stored by serve, else "${DEFAULT_REALM}")` })
    .command(
      'add <number>',
      'add an extension (a password is generated and shown once if --password is not given)',
      (b) =>
        b
          .positional('number', { type: 'string', demandOption: true })
          .option('password', { type: 'string', describe: 'the password' })
          .option('name', { type: 'string', describe: 'display name' }),
      (a) => onRequest({ action: 'add', number: String(a.number), password: a.password, name: a.name, ...common(a) }),
    )
    .command(
      'list',
      'list the extensions',
      (b) => b.option('json', { type: 'boolean', default: false, describe: 'print JSON' }),
      (a) => onRequest({ action: 'list', json: a.json, ...common(a) }),
    )
    .command(
      'remove <number>',
      'remove an extension and its registrations',
      (b) => b.positional('number', { type: 'string', demandOption: true }),
      (a) => onRequest({ action: 'remove', number: String(a.number), ...common(a) }),
    )
    .command(
      'passwd <number>',
      'set a new password (generated and shown once if --password is not given)',
      (b) => b.positional('number', { type: 'string', demandOption: true }).option('password', { type: 'string' }),
      (a) => onRequest({ action: 'passwd', number: String(a.number), password: a.password, ...common(a) }),
    )
    .command(
      'import <file>',
      'import "number:password[:Display Name]" lines; existing extensions are kept unless --replace',
      (b) =>
        b
          .positional('file', { type: 'string', demandOption: true })
          .option('replace', { type: 'boolean', default: false, describe: 'overwrite existing extensions' }),
      (a) => onRequest({ action: 'import', file: String(a.file), replace: a.replace, ...common(a) }),
    )
    .demandCommand(1, 'Name an ext command: add, list, remove, passwd, import')
    .strict() as unknown as Argv;
}

/** Runs one parsed request against the store; returns the exit code. */
export function executeExt(req: ExtRequest, io: ExtIO): number {
  let store: Store;
  try {
    store = openSqliteStore(req.dataDir);
  } catch (err) {
    io.err(err instanceof Error ? err.message : String(err));
    return EXIT_FAILURE;
  }
  try {
    const realm = req.realm ?? store.getMeta('realm') ?? DEFAULT_REALM;
    return perform(req, new Extensions(store, realm), io);
  } catch (err) {
    if (err instanceof ExtensionsError) {
      io.err(err.message);
      return err.kind === 'invalid' ? EXIT_USAGE : EXIT_FAILURE;
    }
    if (err instanceof ExtensionExistsError || err instanceof StoreOpenError) {
      io.err(err.message);
      return EXIT_FAILURE;
    }
    io.err(`ext ${req.action} failed: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT_FAILURE;
  } finally {
    store.close();
  }
}

function perform(req: ExtRequest, extensions: Extensions, io: ExtIO): number {
  switch (req.action) {
    case 'add': {
      const opts: { password?: string; displayName?: string } = {};
      if (req.password !== undefined) opts.password = req.password;
      if (req.name !== undefined) opts.displayName = req.name;
      const { number, password } = extensions.add(req.number, opts);
      io.out(`added extension ${number}`);
      if (req.password === undefined) io.out(`password: ${password}  (shown only now: write it down)`);
      return EXIT_OK;
    }
    case 'list': {
      const all = extensions.list();
      if (req.json) io.out(JSON.stringify(all));
      else for (const e of all) io.out(e.displayName === '' ? e.number : `${e.number}\t${e.displayName}`);
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

/** Runs `ext` with the words after "ext" (e.g. ['add', '100', '--password', 'x']); returns the exit code. */
export async function runExt(argv: string[], io: ExtIO): Promise<number> {
  let request: ExtRequest | undefined;
  let parseError: string | undefined;
  let output = '';
  const parser = defineExtCommands(yargs(), (r) => {
    request = r;
  })
    .scriptName('minisipserver ext')
    .version(false)
    .help()
    .exitProcess(false);
  try {
    await parser.parseAsync(argv, {}, (err: Error | undefined, _args: unknown, out: string) => {
      if (err) parseError = err.message;
      output = out;
    });
  } catch (err) {
    parseError = err instanceof Error ? err.message : String(err);
  }
  if (parseError !== undefined) {
    io.err(`minisipserver ext: ${parseError}\nRun "minisipserver ext --help" for usage.`);
    return EXIT_USAGE;
  }
  if (request === undefined) {
    if (output !== '') io.out(output); // --help
    return EXIT_OK;
  }
  return executeExt(request, io);
}

const consoleIO: ExtIO = {
  out: (s) => process.stdout.write(s + '\n'),
  err: (s) => process.stderr.write(s + '\n'),
};

export const extCommand: CommandModule = {
  command: 'ext',
  describe: 'manage extensions: add, list, remove, passwd, import',
  builder: (y) =>
    defineExtCommands(y, (r) => {
      process.exitCode = executeExt(r, consoleIO);
    }),
  handler: () => {},
};
