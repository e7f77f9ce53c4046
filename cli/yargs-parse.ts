import type { Argv } from 'yargs';

/**
 * Runs a yargs parser that does not exit the process: the usage failure (unknown flag, missing
 * argument), if any, and the text yargs wrote (help, version, or the failure with its usage).
 */
export async function parseArgs(parser: Argv, argv: string[]): Promise<{ failure: Error | null; text: string }> {
  return new Promise((resolve) => {
    void parser.parse(argv, {}, (err: Error | undefined, _parsed: unknown, output: string) => {
      resolve({ failure: err ?? null, text: output });
    });
  });
}

export interface SubcommandIo {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

/**
 * Parses `argv` for a command with subcommands (`minisipserver <name> ...`) without exiting the
 * process. Returns the exit code when the parse itself ends the run (2 for a usage error, 0 for
 * --help), or null when a subcommand was chosen (`define` received it).
 */
export async function parseSubcommand(
  define: (y: Argv) => Argv,
  opts: { name: string; demand: string; epilog: string },
  argv: string[],
  io: SubcommandIo,
  chosen: () => boolean,
): Promise<number | null> {
  const { default: yargs } = await import('yargs');
  const parser = define(yargs())
    .scriptName(`minisipserver ${opts.name}`)
    .usage('$0 <command> [options]')
    .demandCommand(1, opts.demand)
    .parserConfiguration({ 'camel-case-expansion': false })
    .strict()
    .version(false)
    .help()
    .epilog(opts.epilog)
    .exitProcess(false);
  const { failure, text } = await parseArgs(parser, argv);
  if (failure) {
    io.err.write(text ? `${text}\n` : `minisipserver ${opts.name}: ${failure.message}\n`);
    return 2;
  }
  if (!chosen()) {
    if (text) io.out.write(`${text}\n`); // --help
    return 0;
  }
  return null;
}
