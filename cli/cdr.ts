// `minisipserver cdr query|stats|convert`: read, summarise and convert call detail records.
// The work lives in lib/cdr/; this file maps command-line arguments onto it.
//
// Start-up time is a large share of a short run, so this file loads little up front: yargs only
// when an argument list needs it (the common simple ones are read by quickArgs(), with the same
// result), and the modules doing the work of a subcommand only once it runs.
import path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { parseCallTag, ALL_CALL_TAGS, callTagName } from '../lib/cdr/record.js';
import { parseTimeArg, statusMatcher, type CdrFilter } from '../lib/cdr/filter.js';
import { formatProblem, type Problem } from '../lib/cdr/problems.js';
import { Progress } from '../lib/cdr/progress.js';
import type { SortSpec } from '../lib/cdr/query.js';
import type { StatsGroup, StatsFormat } from '../lib/cdr/stats.js';
import type { RowFormat } from '../lib/cdr/output.js';
import type { FieldCheck } from '../lib/cdr/prefilter.js';
import type { RowSource } from '../lib/cdr/source.js';
import type { CdrTable } from '../lib/store/cdr-rows.js';
import { parseArgs } from './yargs-parse.js';

// Kept in step with lib/cdr/stats.ts (a test checks): importing it here would load the reader.
const STATS_GROUPS = ['cause', 'tag', 'caller', 'callee', 'hour', 'day'] as const satisfies readonly StatsGroup[];

export interface CdrIo {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  /** Whether `out` is a terminal: the default query format is then `table` instead of `csv`. */
  isTTY?: boolean;
}

type Subcommand = 'query' | 'stats' | 'convert';
type Args = Record<string, unknown>;
type Runner = (cmd: Subcommand, args: Args) => void | Promise<void>;

const EXIT_CODES = `Exit codes: 0 ok; 1 bad input with --strict, or an unreadable file or store; 2 usage error.`;
const TAG_LIST = ALL_CALL_TAGS.map((t) => `${t}=${callTagName(t)}`).join(', ');

function filterOptions(y: Argv): Argv {
  return y
    .option('data-dir', { type: 'string', default: './data', describe: 'data directory; PATH defaults to <data-dir>/cdr' })
    .option('from', { type: 'string', describe: 'start time >= T (2026-11-26, 2026-11-26T10:00, optional offset; local time otherwise)' })
    .option('to', { type: 'string', describe: 'start time < T (a bare date includes that whole day)' })
    .option('caller', { type: 'string', describe: 'caller number is exactly N' })
    .option('callee', { type: 'string', describe: 'callee number is exactly N' })
    .option('number', { type: 'string', describe: 'caller, callee or dialled number matches GLOB (* and ?)' })
    .option('cause', { type: 'number', describe: 'Q.850 cause in the FCI field' })
    .option('tag', { type: 'string', describe: `callTag name or number: ${TAG_LIST}` })
    .option('status', { type: 'string', describe: 'final SIP status: 486, or a class such as 4xx' })
    .option('min-duration', { type: 'number', describe: 'duration (start to end) >= S seconds' })
    .option('answered', { type: 'boolean', describe: 'answered calls only' })
    .option('failed', { type: 'boolean', describe: 'unanswered calls only' })
    .conflicts('answered', 'failed')
    .option('store', { type: 'string', describe: 'read the records from the cdr table of the store that this configuration file names (store.kind; written with cdr.format including db) instead of files' })
    .option('strict', { type: 'boolean', default: false, describe: 'bad input records make the exit code 1 (and every line is checked, even ones --caller/--callee rule out)' })
    .positional('paths', { type: 'string', array: true, describe: 'CDR files (.csv, .csv.gz, .cdr) or directories' });
}

/** Registers query, stats and convert on `y`; `run` receives the chosen command. */
export function defineCdrSubcommands(y: Argv, run: Runner): Argv {
  return y
    .command(
      'query [paths..]',
      'list call records matching the filters',
      (q) =>
        filterOptions(q)
          .option('sort', { type: 'string', describe: 'sort by a column, FIELD or FIELD:desc. Holds the matching rows in memory (only the best N with --limit); without --sort output streams' })
          .option('limit', { type: 'number', describe: 'print at most N rows' })
          .option('format', { choices: ['table', 'csv', 'json', 'ndjson'] as const, describe: 'output format (default: table on a terminal, csv otherwise)' })
          .epilog(EXIT_CODES),
      (args) => run('query', args),
    )
    .command(
      'stats [paths..]',
      'calls, answered, failed, ASR, ACD, billable minutes, busiest hour',
      (s) =>
        filterOptions(s)
          .option('by', { choices: STATS_GROUPS, describe: 'one line per group' })
          .option('format', { choices: ['table', 'csv', 'json'] as const, default: 'table', describe: 'output format' })
          .epilog(EXIT_CODES),
      (args) => run('stats', args),
    )
    .command(
      'convert <in> <out>',
      'convert between .csv (.csv.gz) and binary .cdr files; the direction follows the extensions',
      (c) =>
        c
          .positional('in', { type: 'string', describe: 'input: .csv, .csv.gz or .cdr' })
          .positional('out', { type: 'string', describe: 'output: .csv or .cdr' })
          .option('force', { type: 'boolean', default: false, describe: 'overwrite an existing output file' })
          .option('strict', { type: 'boolean', default: false, describe: 'bad input records: exit 1 and write no output' })
          .epilog(EXIT_CODES),
      (args) => run('convert', args),
    );
}

class UsageError extends Error {}

/** A dashed option's value, whether or not the root parser also adds camelCase aliases. */
function option(args: Args, dashed: string): unknown {
  return args[dashed] ?? args[dashed.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())];
}

function buildFilter(args: Args): CdrFilter {
  const f: CdrFilter = {};
  for (const bound of ['from', 'to'] as const) {
    if (args[bound] === undefined) continue;
    const t = parseTimeArg(String(args[bound]), bound);
    if (t === null) throw new UsageError(`--${bound}: not a date/time: ${String(args[bound])}`);
    f[bound] = t;
  }
  if (args.caller !== undefined) f.caller = String(args.caller);
  if (args.callee !== undefined) f.callee = String(args.callee);
  if (args.number !== undefined) f.number = String(args.number);
  if (args.cause !== undefined) {
    if (!Number.isInteger(args.cause)) throw new UsageError('--cause: expected a whole number');
    f.cause = args.cause as number;
  }
  if (args.tag !== undefined) {
    const tag = parseCallTag(String(args.tag));
    if (tag === undefined) throw new UsageError(`--tag: unknown call tag ${String(args.tag)} (${TAG_LIST})`);
    f.tag = tag;
  }
  if (args.status !== undefined) {
    if (!statusMatcher(String(args.status))) throw new UsageError('--status: expected a code (486) or a class (4xx)');
    f.status = String(args.status);
  }
  const minDuration = option(args, 'min-duration');
  if (minDuration !== undefined) {
    if (!Number.isFinite(minDuration)) throw new UsageError('--min-duration: expected a number of seconds');
    f.minDuration = minDuration as number;
  }
  if (args.answered) f.answered = true;
  if (args.failed) f.failed = true;
  return f;
}

function inputPaths(args: Args): string[] {
  const paths = (args.paths as string[] | undefined) ?? [];
  return paths.length > 0 ? paths : [path.join(String(option(args, 'data-dir') ?? './data'), 'cdr')];
}

const MAX_PRINTED_PROBLEMS = 1000;

/** Runs one subcommand and returns its exit code. */
export async function executeCdr(cmd: Subcommand, args: Args, io: CdrIo): Promise<number> {
  let problems = 0;
  const onProblem = (p: Problem) => {
    problems++;
    if (problems <= MAX_PRINTED_PROBLEMS) io.err.write(formatProblem(p) + '\n');
  };
  const progress = new Progress(io.err, (io.err as { isTTY?: boolean }).isTTY === true);
  const read = {
    onProblem,
    onFile: (f: string) => progress.setFile(f),
    onRowsRead: (n: number) => progress.addRows(n),
  };
  const strict = args.strict === true;
  const { UnreadableFileError } = await import('../lib/cdr/source.js');
  const { ConvertRefusedError } = await import('../lib/cdr/convert.js');
  let table: CdrTable | undefined;
  let source: RowSource | undefined;
  try {
    if (cmd === 'convert') {
      const { convertFile } = await import('../lib/cdr/convert.js');
      const { rows, written } = await convertFile(String(args.in), String(args.out), {
        ...read,
        force: args.force === true,
        keepOutput: () => !(strict && problems > 0),
      });
      progress.done();
      if (!written) io.err.write(`${String(args.out)}: not written (bad input with --strict)\n`);
      else io.err.write(`${rows} records written to ${String(args.out)}\n`);
    } else {
      const filter = buildFilter(args);
      const storeConfig = option(args, 'store');
      let files: string[] = [];
      let prefilter: FieldCheck[] | undefined;
      if (storeConfig !== undefined) {
        if (((args.paths as string[] | undefined) ?? []).length > 0) throw new UsageError('--store reads the records from the database: name no files or folders with it');
        table = await openStoreTable(String(storeConfig));
        source = (await import('../lib/cdr/db-source.js')).cdrTableSource(table, filter);
      } else {
        const { listCdrFiles } = await import('../lib/cdr/source.js');
        const { fieldChecks } = await import('../lib/cdr/prefilter.js');
        files = listCdrFiles(inputPaths(args));
        // Without --strict, lines that cannot match --caller/--callee are skipped unchecked (fast);
        // --strict checks every line.
        prefilter = strict ? undefined : fieldChecks(filter);
      }
      if (cmd === 'query') {
        const { parseSortSpec, runQuery } = await import('../lib/cdr/query.js');
        let sort: SortSpec | undefined;
        if (args.sort !== undefined) {
          const spec = parseSortSpec(String(args.sort));
          if (!spec) throw new UsageError(`--sort: expected a column name, optionally with :asc or :desc`);
          sort = spec;
        }
        if (args.limit !== undefined && !(Number.isInteger(args.limit) && (args.limit as number) >= 0)) {
          throw new UsageError('--limit: expected a whole number >= 0');
        }
        const format = (args.format as RowFormat | undefined) ?? (io.isTTY ? 'table' : 'csv');
        await runQuery({ ...read, fieldChecks: prefilter, files, source, filter, ...(sort ? { sort } : {}), ...(args.limit !== undefined ? { limit: args.limit as number } : {}), format }, io.out);
      } else {
        const { computeStats, printStats } = await import('../lib/cdr/stats.js');
        const by = args.by as StatsGroup | undefined;
        const format = (args.format as StatsFormat | undefined) ?? 'table';
        const result = await computeStats({ ...read, fieldChecks: prefilter, files, source, filter, ...(by ? { by } : {}), format, parallel: strict || source ? undefined : {} });
        progress.done();
        await printStats(result, { ...(by ? { by } : {}), format }, io.out);
      }
    }
  } catch (err) {
    progress.done();
    if (err instanceof UsageError || err instanceof ConvertRefusedError) {
      io.err.write(`minisipserver cdr ${cmd}: ${err.message}\n`);
      return err instanceof ConvertRefusedError ? err.exitCode : 2;
    }
    if (err instanceof UnreadableFileError) {
      io.err.write(`minisipserver cdr ${cmd}: cannot read ${err.message}\n`);
      return 1;
    }
    if (err instanceof StoreReadError || table !== undefined) {
      // A configuration or database that cannot be used, or a database lost during the read.
      io.err.write(`minisipserver cdr ${cmd}: ${err instanceof StoreReadError ? err.message : `cannot read ${table!.where}: ${(err as Error).message}`}\n`);
      return 1;
    }
    throw err;
  } finally {
    await table?.close();
  }
  progress.done();
  if (problems > MAX_PRINTED_PROBLEMS) io.err.write(`... ${problems - MAX_PRINTED_PROBLEMS} more problems not shown\n`);
  if (problems > 0) io.err.write(`${problems} bad input record(s) skipped\n`);
  return strict && problems > 0 ? 1 : 0;
}

class StoreReadError extends Error {}

/** The cdr table of the store a configuration file names, read-only; StoreReadError says why not. */
async function openStoreTable(configFile: string): Promise<CdrTable> {
  const { loadConfigFile } = await import('../lib/config/load.js');
  const { openCdrTable } = await import('../lib/store/open-cdr-table.js');
  try {
    return await openCdrTable(loadConfigFile(configFile), { readOnly: true });
  } catch (err) {
    throw new StoreReadError((err as Error).message, { cause: err });
  }
}

const QUICK_STRINGS = new Set(['store', 'data-dir', 'from', 'to', 'caller', 'callee', 'number', 'tag', 'status']);
const QUICK_FLAGS = new Set(['answered', 'failed', 'strict']);
const QUERY_FORMATS = ['table', 'csv', 'json', 'ndjson'];
const STATS_FORMATS = ['table', 'csv', 'json'];

/**
 * The arguments yargs would give the handler of `query`/`stats`, for a plain argument list: the
 * subcommand, then paths and `--name value` / `--flag` options of those commands, each given once.
 * undefined for anything else (help, numbers, `--name=value`, `--no-x`, `--`, unknown or repeated
 * options, bad choices, a flag followed by true/false, --answered with --failed...): yargs decides.
 */
export function quickArgs(argv: readonly string[]): { cmd: Subcommand; args: Args } | undefined {
  const cmd = argv[0];
  if (cmd !== 'query' && cmd !== 'stats') return undefined;
  const given: Args = {};
  const paths: string[] = [];
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('-')) {
      paths.push(a);
      continue;
    }
    if (!a.startsWith('--')) return undefined;
    const name = a.slice(2);
    if (Object.prototype.hasOwnProperty.call(given, name)) return undefined;
    if (QUICK_FLAGS.has(name)) {
      const next = argv[i + 1];
      if (next === 'true' || next === 'false') return undefined;
      given[name] = true;
      continue;
    }
    const value = argv[i + 1];
    if (value === undefined || value.startsWith('-')) return undefined;
    if (QUICK_STRINGS.has(name)) {
      // ok
    } else if (name === 'format') {
      if (!(cmd === 'query' ? QUERY_FORMATS : STATS_FORMATS).includes(value)) return undefined;
    } else if (name === 'by' && cmd === 'stats') {
      if (!(STATS_GROUPS as readonly string[]).includes(value)) return undefined;
    } else if (name === 'sort' && cmd === 'query') {
      // ok
    } else {
      return undefined;
    }
    given[name] = value;
    i++;
  }
  if (given.answered && given.failed) return undefined;
  const args: Args = { _: [cmd], ...given, 'data-dir': given['data-dir'] ?? './data', strict: given.strict ?? false, paths };
  if (cmd === 'stats' && given.format === undefined) args.format = 'table';
  return { cmd, args };
}

/** Runs `minisipserver cdr <argv...>` in-process; resolves to the exit code. */
export async function runCdr(argv: string[], io: CdrIo): Promise<number> {
  const quick = quickArgs(argv);
  if (quick) return executeCdr(quick.cmd, quick.args, io);
  const { default: yargs } = await import('yargs');
  let chosen: { cmd: Subcommand; args: Args } | undefined;
  const parser = defineCdrSubcommands(yargs(), (cmd, args) => {
    chosen = { cmd, args };
  })
    .scriptName('minisipserver cdr')
    .usage('$0 <command> [options]')
    .demandCommand(1, 'name a command: query, stats or convert')
    .strict()
    .version(false)
    .help()
    .wrap(Math.min(110, (io.out as { columns?: number }).columns ?? 100))
    .epilog(EXIT_CODES)
    .exitProcess(false);

  const { failure, text } = await parseArgs(parser, argv);
  if (failure) {
    io.err.write(text ? text + '\n' : `${failure.message}\n`);
    return 2;
  }
  if (!chosen) {
    if (text) io.out.write(text + '\n'); // --help
    return 0;
  }
  return executeCdr(chosen.cmd, chosen.args, io);
}

/** The `cdr` command for the root parser in cli/main.ts (run it with parseAsync). */
export const cdrCommand: CommandModule = {
  command: 'cdr',
  describe: 'query, summarise and convert call detail records (replaces miniCDR)',
  builder: (y) =>
    defineCdrSubcommands(y, async (cmd, args) => {
      process.exitCode = await executeCdr(cmd, args, { out: process.stdout, err: process.stderr, isTTY: process.stdout.isTTY === true });
    })
      .demandCommand(1, 'name a command: query, stats or convert')
      .epilog(EXIT_CODES),
  handler: () => undefined,
};
