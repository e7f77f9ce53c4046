/**
 * `sip.workers` above 1: this (primary) process starts that many server processes sharing the
 * SIP port, supervises them and passes signals on. Each worker is a full PbxServer bound with
 * SO_REUSEPORT: the kernel sends all datagrams of one source to one worker, so a phone's
 * REGISTER, INVITE, retransmissions and CANCEL meet the same transactions; what a worker starts
 * itself carries its private port in Via and Contact (see SipStack.sharedUdp). Registrations
 * are shared through the store.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../log.js';
import { runningAsSingleExecutable } from '../platform/native-addon.js';

/** Environment a worker is started with: `index/count`, and the SIP port once known. */
export const WORKER_ENV = 'MINISIPSERVER_WORKER';
export const WORKER_PORT_ENV = 'MINISIPSERVER_WORKER_PORT';
/** The secret that authenticates datagrams handed between workers (lib/sip/worker-router.ts). */
export const WORKER_TOKEN_ENV = 'MINISIPSERVER_WORKER_TOKEN';

/** Worker -> primary. */
export interface WorkerMessage {
  type: 'listening';
  port: number;
  privatePort: number;
}

/** Primary -> workers: every worker's private port, by index. */
export interface PeersMessage {
  type: 'peers';
  ports: number[];
}

/** The worker this process is, from its environment; undefined for a normal or primary process. */
export function workerIdentity(): { index: number; count: number; port?: number; token: Buffer } | undefined {
  const m = /^(\d+)\/(\d+)$/.exec(process.env[WORKER_ENV] ?? '');
  const token = Buffer.from(process.env[WORKER_TOKEN_ENV] ?? '', 'hex');
  if (!m || token.length !== 16) return undefined;
  const port = Number(process.env[WORKER_PORT_ENV] ?? '');
  return { index: Number(m[1]), count: Number(m[2]), token, ...(Number.isInteger(port) && port > 0 ? { port } : {}) };
}

/** Tells the primary that this worker serves on `port`; `onPeers` gets the siblings' private ports. */
export function announceListening(port: number, privatePort: number, onPeers: (ports: number[]) => void): void {
  process.on('message', (msg: PeersMessage) => {
    if (msg?.type === 'peers' && Array.isArray(msg.ports)) onPeers(msg.ports.map(Number));
  });
  // The primary is gone (killed): stop cleanly rather than serve on unsupervised.
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  process.send?.({ type: 'listening', port, privatePort } satisfies WorkerMessage);
}

const RESTARTS_PER_MINUTE = 5;
const START_TIMEOUT_MS = 20_000;

export class WorkerPool {
  private readonly children = new Map<number, ChildProcess>();
  private port = 0;
  private stopping = false;
  private restarts: number[] = [];
  private readonly privatePorts: number[] = [];
  private readonly token = randomBytes(16).toString('hex');
  /** Every other message a worker sends (its live state for the admin API), with its index. */
  onMessage: (index: number, msg: unknown) => void = () => undefined;
  /** A worker was started again after it died. */
  onRestart: (index: number) => void = () => undefined;

  constructor(
    private readonly count: number,
    private readonly logger: Logger,
  ) {}

  /** Starts every worker (the first one picks the port when it is 0); resolves with the port. */
  async start(): Promise<number> {
    this.port = await this.startWorker(0);
    for (let i = 1; i < this.count; i++) await this.startWorker(i);
    this.tellPeers();
    return this.port;
  }

  /** Passes a signal to every worker. */
  signal(sig: NodeJS.Signals): void {
    if (sig === 'SIGTERM' || sig === 'SIGINT') this.stopping = true;
    for (const child of this.children.values()) child.kill(sig);
  }

  /** Resolves with the worst exit code once every worker has exited. */
  async stopped(): Promise<number> {
    const codes = await Promise.all(
      [...this.children.values()].map(
        (c) => new Promise<number>((resolve) => (c.exitCode !== null ? resolve(c.exitCode) : c.once('exit', (code) => resolve(code ?? 1)))),
      ),
    );
    return Math.max(0, ...codes);
  }

  private startWorker(index: number): Promise<number> {
    const args = runningAsSingleExecutable() ? process.argv.slice(2) : [process.argv[1]!, ...process.argv.slice(2)];
    const env = {
      ...process.env,
      [WORKER_ENV]: `${index}/${this.count}`,
      [WORKER_TOKEN_ENV]: this.token,
      ...(this.port ? { [WORKER_PORT_ENV]: String(this.port) } : {}),
    };
    const child = spawn(process.execPath, [...process.execArgv, ...args], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.children.set(index, child);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`worker ${index} did not start within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
      child.on('message', (msg: WorkerMessage) => {
        if (msg?.type !== 'listening') {
          this.onMessage(index, msg);
          return;
        }
        clearTimeout(timer);
        this.privatePorts[index] = msg.privatePort;
        resolve(msg.port);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (this.children.get(index) === child) this.children.delete(index);
        reject(new Error(`worker ${index} exited (${signal ?? `code ${code}`}) while starting`));
        if (!this.stopping) this.onUnexpectedExit(index, code, signal);
      });
    });
  }

  /** Sends `msg` to worker `index` (dropped when it is not running). */
  send(index: number, msg: unknown): void {
    const child = this.children.get(index);
    if (child?.connected) child.send(msg as object);
  }

  get workerCount(): number {
    return this.count;
  }

  private tellPeers(): void {
    const msg: PeersMessage = { type: 'peers', ports: [...this.privatePorts] };
    for (const child of this.children.values()) if (child.connected) child.send(msg);
  }

  /** A worker that dies is started again (bounded: a crash loop stops the whole server). */
  private onUnexpectedExit(index: number, code: number | null, signal: NodeJS.Signals | null): void {
    const now = Date.now();
    this.restarts = this.restarts.filter((t) => now - t < 60_000);
    this.logger.error('worker.exited', { worker: index, code, signal, restartsLastMinute: this.restarts.length });
    if (this.restarts.length >= RESTARTS_PER_MINUTE) {
      this.logger.error('worker.crash_loop', { hint: 'the server stops; see the errors above' });
      this.signal('SIGTERM');
      return;
    }
    this.restarts.push(now);
    this.startWorker(index).then(
      () => {
        this.tellPeers();
        this.onRestart(index);
        this.logger.info('worker.restarted', { worker: index });
      },
      (err: Error) => this.logger.error('worker.restart_failed', { worker: index, error: err.message }),
    );
  }
}
