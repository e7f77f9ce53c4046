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
