import { mkdirSync } from 'node:fs';
import type { Argv, CommandModule } from 'yargs';
import { loadConfigFile, ConfigError } from '../lib/config/load.js';
import { defaultConfig, type Config } from '../lib/config/schema.js';
import { nodeName } from '../lib/config/node-name.js';
import { ReloadableLogger } from '../lib/log-reloadable.js';
import { reloadConfig } from './reload.js';

interface ServeArgs {
  config?: string;
  'data-dir'?: string;
  bind?: string;
  'sip-port'?: number;
  'callback-port'?: number;
  'admin-listen'?: string;
  'event-channel-port'?: number;
  'log-format'?: 'auto' | 'text' | 'json';
  'log-level'?: 'debug' | 'info' | 'warn' | 'error';
}

/** Config file (or built-in defaults) with the command-line flags on top. */
export function resolveServeConfig(args: ServeArgs): Config {
  const config = args.config ? loadConfigFile(args.config) : defaultConfig();
  if (args['data-dir'] !== undefined) config.data.dir = args['data-dir'];
  if (args.bind !== undefined) {
    if (args.bind.includes(':')) {
      config.sip.bind6 = args.bind;
      config.sip.bind = '';
    } else {
      config.sip.bind = args.bind;
      config.sip.bind6 = '';
    }
  }
  if (args['sip-port'] !== undefined) config.sip.port = args['sip-port'];
  if (args['callback-port'] !== undefined) config.callback.port = args['callback-port'];
  if (args['admin-listen'] !== undefined) config.admin.listen = args['admin-listen'];
  if (args['event-channel-port'] !== undefined) config.eventChannel.port = args['event-channel-port'];
  if (args['log-format'] !== undefined) config.log.format = args['log-format'];
  if (args['log-level'] !== undefined) config.log.level = args['log-level'];
  return config;
}

export const serveCommand: CommandModule<object, ServeArgs> = {
  command: 'serve',
  describe: 'Run the SIP server (registrar with digest authentication)',
  builder: (y: Argv) =>
    y
      .option('config', { type: 'string', describe: 'YAML configuration file (see docs/CONFIG.md); built-in defaults without it' })
      .option('data-dir', { type: 'string', describe: 'Data folder (SQLite store, CDR files); default ./data' })
      .option('bind', { type: 'string', describe: 'Listen only on this address (IPv4 or IPv6); default all of 0.0.0.0 and ::' })
      .option('sip-port', { type: 'number', describe: 'SIP port for UDP and TCP (0 picks a free one); default 5060' })
      .option('callback-port', { type: 'number', describe: 'UDP port of the call-back service (0 turns it off); default 5080' })
      .option('admin-listen', { type: 'string', describe: 'host:port of the admin API and /metrics ("" turns it off, port 0 picks a free one); default 127.0.0.1:8080' })
      .option('event-channel-port', { type: 'number', describe: 'TCP port of the WebSocket event channel (0 turns it off); default 5080' })
      .option('log-format', { choices: ['auto', 'text', 'json'] as const, describe: 'Log lines as text or JSON (auto: text on a terminal)' })
      .option('log-level', { choices: ['debug', 'info', 'warn', 'error'] as const, describe: 'Lowest level logged' })
      .check((a) => {
        const p = a['sip-port'];
        if (p !== undefined && (!Number.isInteger(p) || p < 0 || p > 65535)) return `--sip-port must be 0..65535, got ${String(p)}`;
        const c = a['callback-port'];
        if (c !== undefined && (!Number.isInteger(c) || c < 0 || c > 65535)) return `--callback-port must be 0..65535, got ${String(c)}`;
        const e = a['event-channel-port'];
        if (e !== undefined && (!Number.isInteger(e) || e < 0 || e > 65535)) return `--event-channel-port must be 0..65535, got ${String(e)}`;
        const l = a['admin-listen'];
        if (l !== undefined && l !== '' && !/^(\[[0-9A-Fa-f:.]+\]|[0-9.]+|[A-Za-z0-9.-]+):\d{1,5}$/.test(l)) return `--admin-listen must be host:port (or "" for off), got ${l}`;
        return true;
      }) as unknown as Argv<ServeArgs>,
  handler: async (args) => {
    let config: Config;
    try {
      config = resolveServeConfig(args);
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`minisipserver: configuration error: ${err.message}\n`);
        process.exit(2);
      }
      throw err;
    }
    const logger = new ReloadableLogger({
      level: config.log.level as 'info',
      format: config.log.format as 'auto',
      peerEventsPerSecond: config.log.peerEventsPerSecond,
      node: config.node.name,
    });
    const workers = await import('../lib/pbx/workers.js');
    const worker = workers.workerIdentity();
    if (config.sip.workers > 1 && worker === undefined) {
      await runPrimary(config, logger, workers);
      return;
    }
    if (worker?.port !== undefined) config.sip.port = worker.port;
    const { PbxServer } = await import('../lib/pbx/server.js');
    const { openStore } = await import('../lib/store/open-store.js');
    let server: InstanceType<typeof PbxServer>;
    try {
      mkdirSync(config.data.dir, { recursive: true });
      const store = await openStore(config, logger);
      server = new PbxServer(config, logger, worker, { store });
    } catch (err) {
      process.stderr.write(`minisipserver: ${(err as Error).message}\n`);
      process.exit(1);
    }
    // Signal handlers come before anything announces the server, so a SIGTERM sent as soon as
    // the port is printed is handled as a clean stop.
    let stopping = false;
    const shutdown = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info('server.signal', { signal });
      const force = setTimeout(() => process.exit(1), 5000);
      force.unref();
      server.stop().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGINT', () => shutdown('SIGINT'));
    process.on('SIGHUP', () => {
      if (stopping) return;
      logger.info('server.signal', { signal: 'SIGHUP' });
      reloadConfig(args.config, () => resolveServeConfig(args), server, logger);
    });
    let info;
    try {
      info = await server.start();
    } catch (err) {
      process.stderr.write(`minisipserver: ${(err as Error).message}\n`);
      await server.stop().catch(() => {});
      process.exit(1);
    }
    if (worker !== undefined) {
      const router = server.router;
      workers.announceListening(info.port, server.dialogPort, (ports) => {
        if (router) router.peers = ports;
      });
      return;
    }
    if (info.createdDefaults) {
      // Printed once on the terminal (stdout), never written to the log.
      process.stdout.write('First start: created extensions (note these passwords now; they are not shown again):\n');
      for (const e of info.createdDefaults) process.stdout.write(`  ${e.number}  password ${e.password}\n`);
    }
    const plain = config.sip.transports.filter((t) => t !== 'tls');
    const where = [
      ...(plain.length > 0 ? [`on port ${info.port} (${plain.join('/')})`] : []),
      ...(info.tlsPort !== 0 ? [`TLS on port ${info.tlsPort}`] : []),
    ].join(', ');
    process.stdout.write(`minisipserver listening ${where}, data in ${config.data.dir}, node ${nodeName(config)}\n`);
  },
};

/**
 * `sip.workers` above 1: create the first-start extensions here (their passwords are printed
 * once, by this process), start the workers, pass signals on, exit when they have.
 */
async function runPrimary(config: Config, logger: ReloadableLogger, workers: typeof import('../lib/pbx/workers.js')): Promise<void> {
  const { openStore } = await import('../lib/store/open-store.js');
  const { Extensions } = await import('../lib/pbx/extensions.js');
  let createdDefaults: Array<{ number: string; password: string }> | null;
  try {
    mkdirSync(config.data.dir, { recursive: true });
    const store = await openStore(config, logger);
    try {
      createdDefaults = await new Extensions(store, config.sip.realm).ensureDefaults();
      await store.flush();
    } finally {
      await store.close();
    }
  } catch (err) {
    process.stderr.write(`minisipserver: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const pool = new workers.WorkerPool(config.sip.workers, logger);
  let adminHandle: { close(): Promise<void> } | null = null;
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info('server.signal', { signal, workers: config.sip.workers });
    pool.signal(signal);
    const force = setTimeout(() => process.exit(1), 6000);
    force.unref();
    pool.stopped().then(async (code) => {
      await adminHandle?.close().catch(() => undefined);
      process.exit(code);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => pool.signal('SIGHUP'));
  let port: number;
  try {
    port = await pool.start();
  } catch (err) {
    process.stderr.write(`minisipserver: ${(err as Error).message}\n`);
    pool.signal('SIGTERM');
    await pool.stopped();
    process.exit(1);
  }
  // The admin API, the event channel and /metrics cover every worker: the primary serves them.
  const { startPrimaryAdmin } = await import('../lib/admin/primary.js');
  try {
    adminHandle = await startPrimaryAdmin(config, logger, pool, nodeName(config));
  } catch (err) {
    logger.error('admin.start_failed', { error: (err as Error).message, hint: 'the server runs without the admin API' });
  }
  if (createdDefaults) {
    process.stdout.write('First start: created extensions (note these passwords now; they are not shown again):\n');
    for (const e of createdDefaults) process.stdout.write(`  ${e.number}  password ${e.password}\n`);
  }
  process.stdout.write(`minisipserver listening on port ${port} (udp, ${config.sip.workers} workers), data in ${config.data.dir}, node ${nodeName(config)}\n`);
}
