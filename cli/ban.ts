// `minisipserver ban list|add|remove`: the source addresses the server drops unanswered
// (docs/SECURITY.md), read and written in the store of the data directory. A running server
// (every sip.workers process) picks a change up within about a second.
import type { Argv, CommandModule } from 'yargs';
import { canonicalAddress, describeDuration, FOREVER_MS, nextOffences, parseDuration } from '../lib/security/bans.js';
import type { BanRecord, Store } from '../lib/store/store.js';
import { parseSubcommand } from './yargs-parse.js';

export interface BanIo {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  /** The clock (tests). */
  now?: () => number;
}

/** dataDir: --data-dir when given; config: --config (its store.kind and data.dir). */
export type BanRequest = { dataDir?: string; config?: string } & (
  | { action: 'list'; json: boolean }
  | { action: 'add'; address: string; for: string; reason: string }
  | { action: 'remove'; address: string }
);

/** One ban of `ban list --json`. */
export interface BanListItem {
  address: string;
  /** ISO time the ban ends; null for `--for forever`. */
  until: string | null;
  secondsLeft: number | null;
  reason: string;
  offences: number;
  manual: boolean;
  /** ISO time the ban was placed. */
  since: string;
}

const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;
const EXIT_CODES = 'Exit codes: 0 done; 1 remove: the address is not banned, or the database cannot be used; 2 usage error (not an IP address, unreadable duration).';
const DEFAULT_DATA_DIR = './data';
const DEFAULT_FOR = '1d';

/** Registers `list`, `add` and `remove` on `y`; `run` receives the parsed request. */
export function defineBanSubcommands(y: Argv, run: (request: BanRequest) => void | Promise<void>): Argv {
  const where = (a: Record<string, unknown>) => ({
    ...(a['data-dir'] !== undefined ? { dataDir: String(a['data-dir']) } : {}),
    ...(a['config'] !== undefined ? { config: String(a['config']) } : {}),
  });
  return y
    .option('data-dir', { type: 'string', describe: `directory holding minisipserver.db (default: data.dir of --config, else ${DEFAULT_DATA_DIR})` })
    .option('config', { type: 'string', describe: 'configuration file: its store (store.kind sqlite or mariadb) and data.dir' })
    .command(
      'list',
      'list the bans in force: address, until, reason, offences',
      (v) => v.option('json', { type: 'boolean', default: false, describe: 'print JSON' }),
      (a) => run({ action: 'list', json: a['json'] === true, ...where(a) }),
    )
    .command(
      'add <address>',
      'ban a source address: its packets are dropped unanswered, its TCP connections refused (not for addresses in security.trusted or trunk peers)',
      (v) =>
        v
          .positional('address', { type: 'string', demandOption: true, describe: 'an IPv4 or IPv6 address' })
          .option('for', { type: 'string', default: DEFAULT_FOR, describe: 'how long: 90s, 10m, 2h, 1d, 1w, or forever' })
          .option('reason', { type: 'string', default: 'manual', describe: 'why (shown by ban list and logged by the server)' }),
      (a) => run({ action: 'add', address: String(a['address']), for: String(a['for']), reason: String(a['reason']), ...where(a) }),
    )
    .command(
      'remove <address>',
      'lift the ban of a source address (its repeat-offence count is forgotten)',
      (v) => v.positional('address', { type: 'string', demandOption: true, describe: 'an IPv4 or IPv6 address' }),
      (a) => run({ action: 'remove', address: String(a['address']), ...where(a) }),
    );
}

/** Runs `minisipserver ban <argv...>` in-process; resolves to the exit code. */
export async function runBan(argv: string[], io: BanIo): Promise<number> {
  let request: BanRequest | undefined;
  const define = (y: Argv) =>
    defineBanSubcommands(y, (r) => {
      request = r;
    });
  const code = await parseSubcommand(define, { name: 'ban', demand: 'name a ban command: list, add, remove', epilog: EXIT_CODES }, argv, io, () => request !== undefined);
  if (code !== null || !request) return code ?? EXIT_USAGE;
  return executeBan(request, io);
}

/** Performs a parsed request against the store of its data directory; resolves to the exit code. */
export async function executeBan(req: BanRequest, io: BanIo): Promise<number> {
  const fail = (code: number, text: string): number => {
    io.err.write(`minisipserver ban ${req.action}: ${text}\n`);
    return code;
  };
  let address = '';
  let lengthMs = 0;
  if (req.action !== 'list') {
    const a = canonicalAddress(req.address);
    if (a === null) return fail(EXIT_USAGE, `${JSON.stringify(req.address)} is not an IP address (one address a ban; a whole range is a firewall's job)`);
    address = a;
  }
  if (req.action === 'add') {
    const ms = parseDuration(req.for);
    if (ms === null) return fail(EXIT_USAGE, `--for ${JSON.stringify(req.for)}: give a duration such as 90s, 10m, 2h, 1d, 1w, or forever`);
    lengthMs = ms;
    if (req.reason.trim() === '' || req.reason.length > 200) return fail(EXIT_USAGE, '--reason: give a short text (1-200 characters)');
  }
  // The store modules load only when a command really runs (not for --help).
  const { openCommandStore, finishStore } = await import('./store-open.js');
  let openFailure: string | null = '';
  const opened = await openCommandStore({ ...(req.config !== undefined ? { config: req.config } : {}), ...(req.dataDir !== undefined ? { dataDir: req.dataDir } : {}) }, (line) => {
    if (openFailure === null) io.err.write(`${line}\n`);
    else openFailure ||= line;
  });
  if (opened === null) return fail(EXIT_FAILURE, openFailure);
  openFailure = null;
  const store = opened.store;
  const code = perform(req, store, address, lengthMs, io, fail);
  // A shared database takes the change after it was made: a refusal is the command's failure.
  const failure = await finishStore(store);
  return failure === null ? code : fail(EXIT_FAILURE, `the change was not saved: ${failure}`);
}

function perform(req: BanRequest, store: Store, address: string, lengthMs: number, io: BanIo, fail: (code: number, text: string) => number): number {
  const now = (io.now ?? Date.now)();
  try {
    switch (req.action) {
      case 'list': {
        const items = store.listBans(now).map((b) => listItem(b, now));
        if (req.json) io.out.write(`${JSON.stringify(items)}\n`);
        else if (items.length === 0) io.out.write('no source address is banned\n');
        else for (const b of items) io.out.write(`${listLine(b)}\n`);
        return EXIT_OK;
      }
      case 'add': {
        const prev = store.getBan(address);
        const offences = nextOffences(prev, now);
        const until = lengthMs === Infinity ? FOREVER_MS : Math.min(FOREVER_MS, now + lengthMs);
        store.saveBan({ address, expiresAt: until, reason: req.reason.trim(), offences, createdAt: now, manual: true, removed: false });
        const length = until === FOREVER_MS ? 'until removed' : `for ${describeDuration(until - now)}, until ${new Date(until).toISOString()}`;
        io.out.write(`banned ${address} ${length} (reason ${req.reason.trim()}); a running server drops its packets within about a second\n`);
        return EXIT_OK;
      }
      case 'remove': {
        const prev = store.getBan(address);
        if (prev === undefined || prev.removed || prev.expiresAt <= now) return fail(EXIT_FAILURE, `${address} is not banned`);
        // The row stays, marked removed, until purged: every server process reads the change.
        store.saveBan({ ...prev, expiresAt: now, offences: 0, removed: true });
        io.out.write(`removed the ban of ${address}\n`);
        return EXIT_OK;
      }
    }
  } catch (err) {
    return fail(EXIT_FAILURE, err instanceof Error ? err.message : String(err));
  }
}

function listItem(b: BanRecord, now: number): BanListItem {
  const forever = b.expiresAt >= FOREVER_MS;
  return {
    address: b.address,
    until: forever ? null : new Date(b.expiresAt).toISOString(),
    secondsLeft: forever ? null : Math.max(0, Math.round((b.expiresAt - now) / 1000)),
    reason: b.reason,
    offences: b.offences,
    manual: b.manual,
    since: new Date(b.createdAt).toISOString(),
  };
}

/** Tab-separated: address, until (and what is left), reason, offences. */
function listLine(b: BanListItem): string {
  const until = b.until === null ? 'until removed' : `${b.until} (${describeDuration(b.secondsLeft! * 1000)} left)`;
  return [b.address, until, b.reason + (b.manual && b.reason !== 'manual' ? ' (manual)' : ''), `offences ${b.offences}`].join('\t');
}

export const banCommand: CommandModule = {
  command: 'ban',
  describe: 'source addresses the server drops unanswered: ban list|add|remove',
  builder: (y) =>
    defineBanSubcommands(y, async (request) => {
      process.exitCode = await executeBan(request, { out: process.stdout, err: process.stderr });
    })
      .demandCommand(1, 'name a ban command: list, add, remove')
      .epilog(EXIT_CODES),
  handler: () => undefined,
};
