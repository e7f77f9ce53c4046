/**
 * Copies finished CDR records into the store's `cdr` table (cdr.format with db), off the call
 * path: push() only queues, one loop writes batches. The daily files are written first and
 * regardless; this copy may wait for the database, and it is bounded:
 * - while the database cannot be written, records wait and the batch is retried with back-off
 *   (logged once when records start waiting, and once when they are written);
 * - beyond `maxQueued` waiting records a new record is not queued (it stays in the files): logged
 *   once when it starts, and with how many and which start times when the database is back or
 *   the server stops;
 * - a record the database refuses (a value it cannot hold) is dropped, logged once a minute.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../log.js';
import type { CdrTable, QueuedCdr } from '../store/cdr-rows.js';
import type { CdrRecord } from './record.js';

export interface CdrDbQueueOptions {
  /** Opens the table; throws while the database cannot be reached (tried again later). */
  open: () => Promise<CdrTable>;
  /** The database, for messages. */
  where: string;
  logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** Records waiting at most; default 20,000 (a few MB). */
  maxQueued?: number;
  /** Records per transaction; default 500. */
  batchSize?: number;
  /** How long the first record of a batch waits for others (ms); default 20. */
  batchDelayMs?: number;
  /** Back-off between retries (ms); default 250 up to 5000. */
  retryMinMs?: number;
  retryMaxMs?: number;
}

/** Counts since start, read by the metrics and tests. */
export interface CdrDbCounts {
  written: number;
  dropped: number;
  refused: number;
}

const REFUSED_LOG_MS = 60_000;

export class CdrDbQueue {
  readonly counts: CdrDbCounts = { written: 0, dropped: 0, refused: 0 };
  private queue: QueuedCdr[] = [];
  private table: CdrTable | undefined;
  private readonly maxQueued: number;
  private readonly batchSize: number;
  private readonly batchDelayMs: number;
  private readonly retryMinMs: number;
  private readonly retryMaxMs: number;
  private failures = 0;
  /** Since when records wait for an unreachable database (0: not waiting). */
  private waitingSince = 0;
  private writtenWhileWaiting = 0;
  private dropped: { count: number; first: string; last: string } | null = null;
  private refusedLogged = 0;
  private refusedSinceLog = 0;
  private closing = false;
  private closeDeadline = 0;
  /** Ends the wait for records (push, close). */
  private wake: (() => void) | undefined;
  /** Ends a back-off early (close only: new records do not hurry a retry). */
  private wakeRetry: (() => void) | undefined;
  private readonly loop: Promise<void>;
  private closed: Promise<void> | undefined;

  constructor(private readonly opts: CdrDbQueueOptions) {
    this.maxQueued = Math.max(1, opts.maxQueued ?? 20_000);
    this.batchSize = Math.max(1, opts.batchSize ?? 500);
    this.batchDelayMs = opts.batchDelayMs ?? 20;
    this.retryMinMs = opts.retryMinMs ?? 250;
    this.retryMaxMs = opts.retryMaxMs ?? 5000;
    this.loop = this.run();
  }

  /** Records waiting to be written. */
  get waiting(): number {
    return this.queue.length;
  }

  /** Queues a copy of the record; never waits, never throws. */
  push(rec: CdrRecord): void {
    if (this.closing) return;
    if (this.queue.length >= this.maxQueued) {
      if (this.dropped === null) {
        this.dropped = { count: 0, first: rec.start_time, last: rec.start_time };
        this.opts.logger.warn('cdr.db_queue_full', {
          limit: this.maxQueued,
          hint: 'the database has not taken call records for a while: new records go to the CDR files only until it does (how many is logged then)',
        });
      }
      this.dropped.count++;
      this.dropped.last = rec.start_time;
      this.counts.dropped++;
      return;
    }
    this.queue.push({ uid: randomBytes(16).toString('hex'), rec });
    this.wake?.();
  }

  /** Resolves when nothing waits (true), or after `timeoutMs` (false). Bounded polling. */
  async drained(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < timeoutMs / 10 + 1 && Date.now() < deadline; i++) {
      if (this.queue.length === 0 && !this.writing) return true;
      await sleep(10, false);
    }
    return this.queue.length === 0 && !this.writing;
  }

  /** Writes what waits (trying for up to `timeoutMs`), then closes the table; what is left is logged. */
  close(timeoutMs = 5000): Promise<void> {
    this.closed ??= (async () => {
      this.closing = true;
      this.closeDeadline = Date.now() + timeoutMs;
      this.wake?.();
      this.wakeRetry?.();
      await this.loop;
      const left = this.queue.length;
      if (left > 0) {
        this.addDropped(this.queue[0]!.rec.start_time, this.queue[left - 1]!.rec.start_time, left);
        this.queue = [];
      }
      this.reportDropped('the server stopped before the database took them');
      await this.table?.close().catch(() => undefined);
    })();
    return this.closed;
  }

  private writing = false;

  private async run(): Promise<void> {
    // Bounded by close(): each turn either writes a batch, waits for records, or backs off.
    for (;;) {
      if (this.queue.length === 0) {
        if (this.closing) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        if (!this.closing && this.batchDelayMs > 0) await sleep(this.batchDelayMs, false);
        continue;
      }
      const batch = this.queue.slice(0, this.batchSize);
      this.writing = true;
      try {
        this.table ??= await this.opts.open();
        const result = await this.table.insert(batch);
        this.queue.splice(0, batch.length);
        this.counts.written += result.written;
        for (const r of result.refused) this.refusedOne(r.rec, r.error);
        this.failures = 0;
        this.back(result.written);
      } catch (err) {
        this.failures++;
        this.stillAway(err);
        if (this.closing && Date.now() >= this.closeDeadline) return;
        const backOff = Math.min(this.retryMaxMs, this.retryMinMs * 2 ** Math.min(this.failures - 1, 10));
        await sleep(this.closing ? Math.min(backOff, Math.max(0, this.closeDeadline - Date.now())) : backOff, !this.closing, (wake) => {
          this.wakeRetry = wake;
        });
        this.wakeRetry = undefined;
      } finally {
        this.writing = false;
      }
    }
  }

  private stillAway(err: unknown): void {
    if (this.waitingSince !== 0) return;
    this.waitingSince = Date.now();
    this.writtenWhileWaiting = 0;
    this.opts.logger.warn('cdr.db_waiting', {
      where: this.opts.where,
      error: describe(err),
      waiting: this.queue.length,
      hint: 'call records cannot be written to the cdr table now: they are in the CDR files, and wait here to be written when the database is back',
    });
  }

  private back(written: number): void {
    if (this.waitingSince === 0) return;
    this.writtenWhileWaiting += written;
    if (this.queue.length > 0) return;
    this.opts.logger.info('cdr.db_written', {
      where: this.opts.where,
      written: this.writtenWhileWaiting,
      waitedSeconds: Math.round((Date.now() - this.waitingSince) / 1000),
    });
    this.waitingSince = 0;
    this.reportDropped('the queue of records waiting for the database was full');
  }

  private addDropped(first: string, last: string, count: number): void {
    if (this.dropped === null) this.dropped = { count: 0, first, last };
    this.dropped.count += count;
    this.dropped.last = last;
    this.counts.dropped += count;
  }

  private reportDropped(reason: string): void {
    if (this.dropped === null) return;
    this.opts.logger.warn('cdr.db_dropped', {
      records: this.dropped.count,
      firstStart: this.dropped.first,
      lastStart: this.dropped.last,
      reason,
      hint: 'these records are in the CDR files only (cdr query over the files finds them)',
    });
    this.dropped = null;
  }

  private refusedOne(rec: CdrRecord, error: string): void {
    this.counts.refused++;
    this.refusedSinceLog++;
    const now = Date.now();
    if (now - this.refusedLogged < REFUSED_LOG_MS) return;
    this.opts.logger.warn('cdr.db_refused', {
      recordId: rec.record_id,
      error,
      records: this.refusedSinceLog,
      hint: 'the database refused these records (a value it cannot hold); they are in the CDR files only',
    });
    this.refusedLogged = now;
    this.refusedSinceLog = 0;
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Waits `ms`; `unref`: does not keep the process alive. `onWake` gets a function ending the wait early. */
function sleep(ms: number, unref: boolean, onWake?: (wake: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    if (unref) timer.unref();
    onWake?.(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
