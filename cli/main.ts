import { packageVersion } from '../lib/version.js';

const args = process.argv.slice(2);

if (args[0] === 'cdr') {
  // `cdr` parses its own words (and takes yargs only for anything unusual): a query over call
  // records should not wait for the rest of the CLI to load.
  const { runCdr } = await import('./cdr.js');
  process.exitCode = await runCdr(args.slice(1), { out: process.stdout, err: process.stderr, isTTY: Boolean(process.stderr.isTTY) });
} else if (args.length === 1 && args[0] === '--version') {
  process.stdout.write(`${packageVersion()}\n`);
} else {
  const [{ default: yargs }, { serveCommand }, { extCommand }, { cdrCommand }, { ivrCommand }, { callbackCommand }, { statusCommand }, { banCommand }, { tlsCommand }, { dbCommand }] = await Promise.all([
    import('yargs'),
    import('./serve.js'),
    import('./ext.js'),
    import('./cdr.js'),
    import('./ivr.js'),
    import('./callback.js'),
    import('./status.js'), // ink loads only when the live screen starts (cli/status/live.tsx)
    import('./ban.js'),
    import('./tls.js'),
    import('./db.js'),
  ]);
  await yargs(args)
    .scriptName('minisipserver')
    .usage('$0 <command> [options]')
    .command(serveCommand)
    .command(extCommand)
    .command(cdrCommand)
    .command(ivrCommand)
    .command(callbackCommand)
    .command(statusCommand)
    .command(banCommand)
    .command(tlsCommand)
    .command(dbCommand)
    .demandCommand(1, 'Name a command: serve, ext, cdr, ivr, callback, status, ban, tls, db (see --help)')
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
}
