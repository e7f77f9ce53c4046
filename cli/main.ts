import { readFileSync } from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { serveCommand } from './serve.js';
import { extCommand } from './ext.js';
import { cdrCommand } from './cdr.js';

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    return pkg.version;
  } catch {
    return 'unknown';
  }
}

await yargs(hideBin(process.argv))
  .scriptName('minisipserver')
  .usage('$0 <command> [options]')
  .command(serveCommand)
  .command(extCommand)
  .command(cdrCommand)
  .demandCommand(1, 'Name a command: serve, ext, cdr (see --help)')
  .parserConfiguration({ 'camel-case-expansion': false })
  .strict()
  .version(packageVersion())
  .help()
  .alias('h', 'help')
  .wrap(Math.min(110, process.stdout.columns || 100))
  .fail((msg, err) => {
    // Validation failures (unknown flags, bad values, .check()) are usage errors: exit 2.
    // Anything else is a fault in a command and is not dressed up as a usage error.
    if (err && err.name !== 'YError' && !msg) throw err;
    process.stderr.write(`minisipserver: ${msg}\nRun with --help for usage.\n`);
    process.exit(2);
  })
  .parseAsync();
