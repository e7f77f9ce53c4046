/**
 * Structured logging: one JSON object a line (for journald and log shippers) or a readable line
 * on a terminal. Events caused by peers go through a per-second budget so that a flood of bad
 * packets cannot fill the disk; what is held back is counted and reported once a second.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface LoggerOptions {
  level?: LogLevel;
  format?: 'auto' | 'text' | 'json';
  peerEventsPerSecond?: number;
  write?: (line: string) => void;
  isTTY?: boolean;
  now?: () => number;
  /** node.name: added to every JSON line (the readable terminal form leaves it out). */
  node?: string;
}

export class Logger {
  private readonly minRank: number;
  private readonly json: boolean;
  private readonly write: (line: string) => void;
  private readonly now: () => number;
  private readonly peerBudget: number;
  private readonly node: string | undefined;
  private peerWindowStart = 0;
  private peerCount = 0;
  private peerSuppressed = 0;

  constructor(opts: LoggerOptions = {}) {
    this.minRank = RANK[opts.level ?? 'info'];
    const tty = opts.isTTY ?? Boolean(process.stderr.isTTY);
    this.json = opts.format === 'json' || ((opts.format ?? 'auto') === 'auto' && !tty);
    this.write = opts.write ?? ((line) => process.stderr.write(line + '\n'));
    this.now = opts.now ?? Date.now;
    this.peerBudget = opts.peerEventsPerSecond ?? 20;
    this.node = opts.node || undefined;
  }

  debug(event: string, fields?: Record<string, unknown>): void {
    this.log('debug', event, fields);
  }
  info(event: string, fields?: Record<string, unknown>): void {
    this.log('info', event, fields);
  }
  warn(event: string, fields?: Record<string, unknown>): void {
    this.log('warn', event, fields);
  }
  error(event: string, fields?: Record<string, unknown>): void {
    this.log('error', event, fields);
  }

  enabled(level: LogLevel): boolean {
    return RANK[level] >= this.minRank;
  }

  /** An event a remote peer caused (bad message, failed authentication): rate-limited. */
  peer(level: LogLevel, event: string, fields?: Record<string, unknown>): void {
    if (RANK[level] < this.minRank) return;
    const t = this.now();
    if (t - this.peerWindowStart >= 1000) {
      if (this.peerSuppressed > 0) {
        this.log('warn', 'log.suppressed', { count: this.peerSuppressed, reason: 'peer event budget per second reached' });
      }
      this.peerWindowStart = t;
      this.peerCount = 0;
      this.peerSuppressed = 0;
    }
    if (this.peerCount >= this.peerBudget) {
      this.peerSuppressed++;
      return;
    }
    this.peerCount++;
    this.log(level, event, fields);
  }

  log(level: LogLevel, event: string, fields?: Record<string, unknown>): void {
    if (RANK[level] < this.minRank) return;
    const time = new Date(this.now()).toISOString();
    if (this.json) {
      this.write(JSON.stringify(this.node === undefined ? { time, level, event, ...fields } : { time, level, node: this.node, event, ...fields }));
      return;
    }
    let line = `${time.slice(11, 23)} ${level.toUpperCase().padEnd(5)} ${event}`;
    if (fields) {
      for (const [k, v] of Object.entries(fields)) {
        const s = typeof v === 'string' ? (/[\s"=]/.test(v) ? JSON.stringify(v) : v) : JSON.stringify(v);
        line += ` ${k}=${s}`;
      }
    }
    this.write(line);
  }
}

/** A logger that writes nothing (tests, library use). */
export const silentLogger = new Logger({ level: 'error', write: () => {} });
