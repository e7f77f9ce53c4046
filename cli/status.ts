/**
 * `minisipserver status`: the live state of a running server through its admin API.
 * Interactive on a terminal (an ink app, loaded only here: cli/status/live.tsx); `--once` prints
 * a plain table snapshot and `--json` the snapshot as JSON, which is also what happens when
 * stdout is not a terminal. Exit codes: 0 done, 1 the server answered with an error,
 * 2 usage error, server not running or not reachable, token refused.
 */
import type { Argv, CommandModule } from 'yargs';
import { AdminClient, AdminError, locateServer } from '../lib/admin/client.js';
import { formatOnce } from './status/format.js';
import { LiveStore, paneRows } from './status/state.js';

const DEFAULT_DATA_DIR = './data';
const EXIT_OK = 0;
const EXIT_FAIL = 1;
const EXIT_USAGE = 2;
const EXIT_CODES = 'Exit codes: 0 done, 1 the server answered with an error, 2 usage error, server not running or unreachable, or token refused.';

export interface StatusOptions {
  dataDir: string;
  url?: string | undefined;
  tokenFile?: string | undefined;
  once: boolean;
  json: boolean;
}

export interface StatusIo {
  out: NodeJS.WriteStream | NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  /** Interactive when stdout is a terminal (and neither --once nor --json). */
  isTTY: boolean;
  clock?: () => number;
}

function exitCodeOf(err: unknown): number {
  if (err instanceof AdminError) return err.kind === 'http' ? EXIT_FAIL : EXIT_USAGE;
  throw err;
}

/** Runs `status`; resolves to the exit code. */
export async function executeStatus(opts: StatusOptions, io: StatusIo): Promise<number> {
  const fail = (err: unknown) => {
    const code = exitCodeOf(err);
    io.err.write(`minisipserver status: ${(err as Error).message}\n`);
    return code;
  };
  let client: AdminClient;
  try {
    const where = locateServer({ dataDir: opts.dataDir, url: opts.url, tokenFile: opts.tokenFile });
    client = new AdminClient(where.url, where.token);
  } catch (err) {
    return fail(err);
  }
  if (opts.json || opts.once || !io.isTTY) {
    let snap;
    try {
      snap = await client.snapshot();
    } catch (err) {
      return fail(err);
    }
    if (opts.json) {
      io.out.write(`${JSON.stringify(snap, null, 2)}\n`);
      return EXIT_OK;
    }
    const now = (io.clock ?? Date.now)();
    const store = new LiveStore(() => now);
    store.load(snap);
    io.out.write(
      formatOnce(snap, now, {
        extensions: paneRows(store, 'extensions', 0, '', now),
        calls: paneRows(store, 'calls', 1, '', now), // the longest first
        callbacks: paneRows(store, 'callbacks', 0, '', now),
        ivr: paneRows(store, 'ivr', 0, '', now),
      }),
    );
    return EXIT_OK;
  }
  const { runLive } = await import('./status/live.js');
  // Found through the data directory: a server restarted on another port is found again.
  const locate = opts.url === undefined ? () => locateServer({ dataDir: opts.dataDir, tokenFile: opts.tokenFile }) : undefined;
  return runLive(client, { out: io.out as NodeJS.WriteStream, err: io.err, ...(locate ? { locate } : {}) });
}

function defineStatus(y: Argv): Argv {
  return y
    .option('data-dir', { type: 'string', default: DEFAULT_DATA_DIR, describe: 'data directory of the server: admin.address and admin.token are read there' })
    .option('url', { type: 'string', describe: 'URL of the admin API (http://HOST:PORT) instead of <data dir>/admin.address' })
    .option('token-file', { type: 'string', describe: 'file holding the admin token (default: <data dir>/admin.token)' })
    .option('once', { type: 'boolean', default: false, describe: 'print a plain table snapshot and exit (the default without a terminal)' })
    .option('json', { type: 'boolean', default: false, describe: 'print the snapshot {summary, extensions, calls, callbacks, ivr} as JSON and exit' })
    .check((a) => {
      for (const k of ['data-dir', 'url', 'token-file']) {
        if (Array.isArray(a[k])) throw new Error(`--${k} given more than once`);
        if (a[k] === '') throw new Error(`--${k} needs a value`);
      }
      return true;
    })
    .epilog(`Interactive on a terminal: Tab switches pane, arrows and PgUp/PgDn move, Enter details, / filter, s sort, h hang up a call, ? help, q quit. ${EXIT_CODES}`);
}

/** The `status` command for the root parser in cli/main.ts. */
export const statusCommand: CommandModule = {
  command: 'status',
  describe: 'live view of a running server: extensions, calls, call-backs, IVR (--once / --json: a snapshot)',
  builder: (y) => defineStatus(y),
  handler: async (a) => {
    process.exitCode = await executeStatus(
      {
        dataDir: String(a['data-dir']),
        url: a.url as string | undefined,
        tokenFile: a['token-file'] as string | undefined,
        once: a.once === true,
        json: a.json === true,
      },
      { out: process.stdout, err: process.stderr, isTTY: Boolean(process.stdout.isTTY) },
    );
  },
};
