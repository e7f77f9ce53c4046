import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultConfig, type Config } from '../../lib/config/schema.js';
import { Logger } from '../../lib/log.js';
import { PbxServer } from '../../lib/pbx/server.js';
import { Extensions } from '../../lib/pbx/extensions.js';
import { claimPorts } from './ports.js';
import { openStore } from '../../lib/store/open-store.js';

export interface TestServer {
  server: PbxServer;
  port: number;
  dataDir: string;
  config: Config;
  logLines: string[];
  createdDefaults: Array<{ number: string; password: string }> | null;
  stop(): Promise<void>;
}

/**
 * A real server on 127.0.0.1 with a free port, a fresh data folder and a media port range of its
 * own (test files run side by side), in this process.
 */
export async function startTestServer(
  opts: {
    configure?: (c: Config) => void;
    dataDir?: string;
    users?: Array<[string, string]>;
    /** The first retry of a failed trunk registration after this many ms (30 s otherwise). */
    trunkRetryMs?: number;
    /** The log's budget of lines a second for events a peer causes (1000 otherwise). */
    peerEventsPerSecond?: number;
  } = {},
): Promise<TestServer> {
  const config = defaultConfig();
  config.sip.bind = '127.0.0.1';
  config.sip.bind6 = '';
  config.sip.port = 0;
  config.data.dir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'mss-test-'));
  config.media.bind = '127.0.0.1';
  const media = await claimPorts(1000);
  config.media.portMin = media.portMin;
  // The last port of the claim is the call-back service's (the relay keeps to whole pairs below).
  config.media.portMax = media.portMax - 2;
  config.callback.port = media.portMax;
  // Off unless a test turns them on (then on port 0): test files run side by side.
  config.admin.listen = '';
  config.eventChannel.port = 0;
  opts.configure?.(config);
  const logLines: string[] = [];
  const logger = new Logger({ format: 'json', level: 'debug', write: (l) => logLines.push(l), peerEventsPerSecond: opts.peerEventsPerSecond ?? 1000 });
  // A configured MariaDB store is opened as `serve` does; the SQLite default by the server itself.
  const store = config.store.kind === 'sqlite' ? undefined : await openStore(config, logger);
  const server = new PbxServer(config, logger, undefined, { ...(store ? { store } : {}), ...(opts.trunkRetryMs !== undefined ? { trunkRetryMs: opts.trunkRetryMs } : {}) });
  if (opts.users) {
    const ext = new Extensions(server.store, config.sip.realm);
    for (const [n, p] of opts.users) if (!server.store.getExtension(n)) ext.add(n, { password: p });
  }
  let info;
  try {
    info = await server.start();
  } catch (err) {
    media.release();
    throw err;
  }
  const stop = async () => {
    await server.stop();
    media.release();
  };
  return { server, port: info.port, dataDir: config.data.dir, config, logLines, createdDefaults: info.createdDefaults, stop };
}
