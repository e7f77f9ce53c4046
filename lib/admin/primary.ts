/**
 * The admin API, the event channel and /metrics of a server run as several sip.workers
 * processes: served by the primary, over the merged live state of the workers (workers-live.ts)
 * and their metrics added up (prom-client's AggregatorRegistry, each metric's own aggregator).
 */
import { AggregatorRegistry, Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { openStore } from '../store/open-store.js';
import type { Store } from '../store/store.js';
import { packageVersion } from '../version.js';
import { EventChannel } from './event-channel.js';
import { AdminServer } from './http.js';
import { loadOrCreateToken, removeAdminAddress, writeAdminAddress } from './token.js';
import { WorkersLive, type PrimaryCommand, type WorkerFeed } from './workers-live.js';

/** What the primary needs of its worker pool. */
export interface WorkerLink {
  readonly workerCount: number;
  send(index: number, msg: PrimaryCommand): void;
  onMessage: (index: number, msg: unknown) => void;
  onRestart: (index: number) => void;
}

/** How long a scrape waits for the workers' metrics. */
const METRICS_WAIT_MS = 1000;

export async function startPrimaryAdmin(config: Config, logger: Logger, pool: WorkerLink, node: string): Promise<{ close(): Promise<void> }> {
  if (config.admin.listen === '' && config.eventChannel.port === 0) return { close: async () => undefined };
  const store: Store = await openStore(config, logger);
  const live = new WorkersLive({ store, version: packageVersion(), node, workers: pool.workerCount, send: (i, m) => pool.send(i, m) });
  const pending = new Map<number, { left: number; parts: unknown[][]; done: () => void }>();
  let reqIds = 0;
  pool.onMessage = (index, msg) => {
    const m = msg as WorkerFeed;
    if (m?.type === 'metrics') {
      const p = pending.get(m.reqId);
      if (!p) return;
      p.parts.push(Array.isArray(m.metrics) ? m.metrics : []);
      if (--p.left === 0) p.done();
      return;
    }
    live.feed(index, m);
  };
  pool.onRestart = (index) => {
    live.workerRestarted(index);
    pool.send(index, { type: 'live-hello' });
  };
  // What the workers sent before this listened is asked for again.
  for (let i = 0; i < pool.workerCount; i++) pool.send(i, { type: 'live-hello' });

  const metrics = {
    contentType: Registry.PROMETHEUS_CONTENT_TYPE,
    render: async (): Promise<string> => {
      const reqId = ++reqIds;
      const parts: unknown[][] = [];
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, METRICS_WAIT_MS);
        pending.set(reqId, { left: pool.workerCount, parts, done: () => (clearTimeout(timer), resolve()) });
        for (let i = 0; i < pool.workerCount; i++) pool.send(i, { type: 'metrics-request', reqId });
      });
      pending.delete(reqId);
      return AggregatorRegistry.aggregate(parts as Parameters<typeof AggregatorRegistry.aggregate>[0]).metrics();
    },
  };

  const log = (level: 'debug' | 'info' | 'warn', event: string, fields: Record<string, unknown>) => logger[level](event, fields);
  const peerLog = (level: 'debug' | 'info' | 'warn', event: string, fields: Record<string, unknown>) => logger.peer(level, event, fields);
  const channel = new EventChannel(
    { live, log, peerLog },
    { bind: config.sip.bind || config.sip.bind6 || '0.0.0.0', port: config.eventChannel.port, allow: config.eventChannel.allow },
  );
  await channel.start();
  let admin: AdminServer | null = null;
  let url: string | null = null;
  if (config.admin.listen !== '') {
    try {
      const token = loadOrCreateToken(config.data.dir, (level, event, fields) => logger[level](event, fields));
      admin = new AdminServer({ live, metrics, token, metricsToken: config.admin.metricsToken, log, peerLog, version: packageVersion() }, { listen: config.admin.listen });
      const started = await admin.start();
      if (started) {
        url = started.url;
        writeAdminAddress(config.data.dir, url);
      }
    } catch (err) {
      logger.error('admin.start_failed', { error: (err as Error).message, hint: 'the server runs without the admin API' });
    }
  }
  return {
    close: async () => {
      if (url) removeAdminAddress(config.data.dir, url);
      await Promise.all([channel.close(), admin?.close(500)]);
      await store.close();
    },
  };
}
