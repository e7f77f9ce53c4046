/**
 * `minisipserver ext <add|edit|list|remove|passwd|import>`: manage extensions in the data directory.
 * Thin: parsing and printing here, the logic in lib/pbx/extensions.ts.
 * Exit codes: 0 done, 1 failure (unknown or existing extension, unreadable file, bad import
 * lines, unusable database), 2 usage error.
 */
import yargs from 'yargs';
import type { Argv, CommandModule } from 'yargs';
import type { ExtIO, ExtRequest } from './ext-run.js';

export type { ExtIO };

const DEFAULT_DATA_DIR = './data';
const DEFAULT_REALM = 'minisipserver';
const EXIT_OK = 0;
const EXIT_USAGE = 2;

interface CommonArgs {
  'data-dir'?: string;
  config?: string;
  realm?: string;
}

const ALLOW_DESCRIPTION = 'restricted call classes it may dial, comma-separated or repeated';

/** `--allow a,b --allow c` -> ['a', 'b', 'c']; `--allow ""` -> [] (no classes). */
function splitClasses(value: string | string[]): string[] {
  return [value]
    .flat()
    .flatMap((v) => String(v).split(','))
    .map((c) => c.trim())
    .filter((c) => c !== '');
}

/** Declares the subcommands on `y`; each handler hands its parsed request to `onRequest`. */
function defineExtCommands(y: Argv, onRequest: (r: ExtRequest) => void | Promise<void>): Argv {
  const common = (a: CommonArgs) => ({
    ...(a['data-dir'] !== undefined ? { dataDir: a['data-dir'] } : {}),
    ...(a.config !== undefined ? { config: a.config } : {}),
    ...(a.realm !== undefined ? { realm: a.realm } : {}),
  });
  return y
    .option('data-dir', { type: 'string', describe: `directory holding minisipserver.db (default: data.dir of --config, else ${DEFAULT_DATA_DIR})` })
    .option('config', { type: 'string', describe: 'configuration file: its store (store.kind sqlite or mariadb), data.dir and sip.realm' })
    .option('realm', { type: 'string', describe: `digest realm (default: the realm stored by serve, else "${DEFAULT_REALM}")` })
    .command(
      'add <number>',
      'add an extension (a password is generated and shown once if --password is not given)',
      (b) =>
        b
          .positional('number', { type: 'string', demandOption: true })
          .option('password', { type: 'string', describe: 'the password' })
          .option('name', { type: 'string', describe: 'display name' })
          .option('allow', { type: 'string', describe: ALLOW_DESCRIPTION, coerce: splitClasses }),
      (a) =>
        onRequest({ action: 'add', number: String(a.number), password: a.password, name: a.name, allow: a.allow, ...common(a) }),
    )
    .command(
      'edit <number>',
      'change the display name or the allowed classes (--allow replaces them; --allow "" removes them all)',
      (b) =>
        b
          .positional('number', { type: 'string', demandOption: true })
          .option('name', { type: 'string', describe: 'display name' })
          .option('allow', { type: 'string', describe: ALLOW_DESCRIPTION, coerce: splitClasses })
          .check((a) => {
            if (a.name === undefined && a.allow === undefined) throw new Error('ext edit needs --name or --allow (or both)');
            return true;
          }),
      (a) => onRequest({ action: 'edit', number: String(a.number), name: a.name, allow: a.allow, ...common(a) }),
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
    .demandCommand(1, 'Name an ext command: add, edit, list, remove, passwd, import')
    .strict() as unknown as Argv;
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
  // The SQLite addon loads only when an ext command really runs (not for --help, not for serve).
  const { executeExt } = await import('./ext-run.js');
  return await executeExt(request, io);
}

const consoleIO: ExtIO = {
  out: (s) => process.stdout.write(s + '\n'),
  err: (s) => process.stderr.write(s + '\n'),
};

export const extCommand: CommandModule = {
  command: 'ext',
  describe: 'manage extensions: add, edit, list, remove, passwd, import',
  builder: (y) =>
    defineExtCommands(y, async (r) => {
      const { executeExt } = await import('./ext-run.js');
      process.exitCode = await executeExt(r, consoleIO);
    }),
  handler: () => {},
};
