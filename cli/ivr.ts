// `minisipserver ivr validate FILE|DIR...`: checks IVR-XML files and their prompts, printing one
// line per finding. The checks live in lib/services/ivr/xml.ts, loaded only when a check runs (the
// XML parser is not needed by the other commands).
import fs from 'node:fs';
import path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import type { Finding } from '../lib/services/ivr/model.js';
import { parseSubcommand } from './yargs-parse.js';

export interface IvrIo {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

export interface ValidateRequest {
  paths: string[];
  /** Prompts folder; default: `prompts` beside each file. */
  prompts?: string;
  language: string;
  json: boolean;
}

/** The `--json` output: every finding (not capped), then the counts. */
export interface ValidateReport {
  findings: Finding[];
  summary: { files: number; filesWithErrors: number; errors: number; warnings: number };
}

const EXIT_OK = 0;
const EXIT_ERRORS = 1;
const EXIT_USAGE = 2;
const EXIT_CODES = 'Exit codes: 0 no errors (warnings allowed); 1 a file has errors; 2 usage error.';
/** Text output shows at most this many findings per file, then how many more there are. */
export const MAX_PRINTED_FINDINGS = 200;

class UsageError extends Error {}

/** Registers `validate` on `y`; `run` receives the parsed request. */
export function defineIvrSubcommands(y: Argv, run: (request: ValidateRequest) => void | Promise<void>): Argv {
  return y.command(
    'validate <paths..>',
    'check IVR-XML files (a directory: every *.xml in it) and the prompts they play',
    (v) =>
      v
        .positional('paths', { type: 'string', array: true, describe: 'IVR-XML files or directories' })
        .option('prompts', { type: 'string', describe: 'prompts folder (default: "prompts" beside each file)' })
        .option('language', { type: 'string', default: 'en', describe: 'language sub-folder of the prompts folder tried first' })
        .option('json', { type: 'boolean', default: false, describe: 'print {findings, summary} as JSON on stdout' })
        .epilog(EXIT_CODES),
    (args) =>
      run({
        paths: (args.paths as string[] | undefined) ?? [],
        ...(args.prompts !== undefined ? { prompts: String(args.prompts) } : {}),
        language: String(args.language),
        json: args.json === true,
      }),
  );
}

/** Runs `minisipserver ivr <argv...>` in-process; resolves to the exit code. */
export async function runIvr(argv: string[], io: IvrIo): Promise<number> {
  let request: ValidateRequest | undefined;
  const define = (y: Argv) =>
    defineIvrSubcommands(y, (r) => {
      request = r;
    });
  const code = await parseSubcommand(define, { name: 'ivr', demand: 'name an ivr command: validate', epilog: EXIT_CODES }, argv, io, () => request !== undefined);
  if (code !== null || !request) return code ?? EXIT_USAGE;
  return executeValidate(request, io);
}

/** Checks the files of `request`, prints the findings and returns the exit code. */
export async function executeValidate(request: ValidateRequest, io: IvrIo): Promise<number> {
  let files: string[];
  try {
    checkOptions(request);
    files = expandPaths(request.paths);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err.write(`minisipserver ivr validate: ${err.message}\n`);
    return EXIT_USAGE;
  }
  const { loadIvrFile } = await import('../lib/services/ivr/xml.js');
  const results = files.map((file) => {
    const promptsDir = request.prompts ?? path.join(path.dirname(file), 'prompts');
    return { file, findings: loadIvrFile(file, { promptsDir, language: request.language }).findings };
  });
  const report = summarize(results.map((r) => r.findings), files.length);
  if (request.json) io.out.write(`${JSON.stringify(report, null, 2)}\n`);
  else for (const r of results) printFindings(r.file, r.findings, io.out);
  io.err.write(`${summaryLine(report.summary)}\n`);
  return report.summary.filesWithErrors > 0 ? EXIT_ERRORS : EXIT_OK;
}

function checkOptions(request: ValidateRequest): void {
  if (request.paths.length === 0) throw new UsageError('name at least one file or directory');
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]*$/.test(request.language)) {
    throw new UsageError(`--language: "${request.language}" is not a language folder name (letters, digits, - and _)`);
  }
  if (request.prompts !== undefined && !isDirectory(request.prompts)) {
    throw new UsageError(`--prompts: ${request.prompts} is not a directory`);
  }
}

/** The files to check: each file as given, each directory's *.xml files sorted by name. */
function expandPaths(paths: string[]): string[] {
  const files: string[] = [];
  for (const p of paths) {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(p);
    } catch {
      throw new UsageError(`${p}: no such file or directory`);
    }
    if (!stat.isDirectory()) {
      files.push(p);
      continue;
    }
    const xml = fs
      .readdirSync(p, { withFileTypes: true })
      .filter((e) => !e.isDirectory() && e.name.toLowerCase().endsWith('.xml'))
      .map((e) => e.name)
      .sort();
    if (xml.length === 0) throw new UsageError(`${p}: no *.xml files in this directory`);
    files.push(...xml.map((name) => path.join(p, name)));
  }
  return files;
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function summarize(perFile: Finding[][], files: number): ValidateReport {
  const findings = perFile.flat();
  const errors = findings.filter((f) => f.severity === 'error').length;
  const filesWithErrors = perFile.filter((list) => list.some((f) => f.severity === 'error')).length;
  return { findings, summary: { files, filesWithErrors, errors, warnings: findings.length - errors } };
}

function printFindings(file: string, findings: Finding[], out: NodeJS.WritableStream): void {
  const shown = findings.slice(0, MAX_PRINTED_FINDINGS);
  const lines = shown.map((f) => `${f.file}:${f.line}:${f.col}: ${f.severity}: ${f.message}\n`);
  if (findings.length > shown.length) lines.push(`${file}: ${findings.length - shown.length} more findings not shown\n`);
  if (lines.length > 0) out.write(lines.join(''));
}

/** E.g. "3 files checked: 1 with errors, 2 warnings". */
export function summaryLine(s: ValidateReport['summary']): string {
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  return `${plural(s.files, 'file')} checked: ${s.filesWithErrors} with errors, ${plural(s.warnings, 'warning')}`;
}

/** The `ivr` command for the root parser in cli/main.ts (run it with parseAsync). */
export const ivrCommand: CommandModule = {
  command: 'ivr',
  describe: 'check IVR-XML files: ivr validate FILE|DIR...',
  builder: (y) =>
    defineIvrSubcommands(y, async (request) => {
      process.exitCode = await executeValidate(request, { out: process.stdout, err: process.stderr });
    })
      .demandCommand(1, 'name an ivr command: validate')
      .epilog(EXIT_CODES),
  handler: () => undefined,
};
