/**
 * The MariaDB store: one database shared by several servers (docs/STORE.md).
 *
 * The Store interface stays synchronous: each process keeps the tables in memory (mirror.ts),
 * loaded at open. Reads are answered from memory. A write changes memory at once and is queued;
 * one loop writes the queue in one transaction (bulk statements) and then reads what other
 * servers changed since its last look (every store.mariadb.pollMs: the longest another server's
 * change takes to be seen here), bumping dataVersion() when something came.
 *
 * While the database cannot be reached, `available` is false (logged once, and once again when
 * it is back), reads go on from memory, writes stay queued and are retried with back-off, and
 * the pool reconnects by itself. The queue holds at most `maxQueued` rows (a row written again
 * takes no more room); beyond that a write is refused with StoreBusyError and memory is left
 * as it was.
 *
 * Two servers adding the same extension number at once: the database's primary key decides;
 * the one whose insert came second logs `store.extension_conflict`, reads the row back into
 * memory, and its flush() rejects with ExtensionExistsError.
 */
import type { Pool, PoolConnection } from 'mariadb';
import type { Logger } from '../log.js';
import { connectMariaDb, createMariaDbPool } from './mariadb-connect.js';
import { loadSnapshot, readChanges, readClock, type Change } from './mariadb-reads.js';
import { describeMariaDb, type MariaDbSettings } from './mariadb-settings.js';
import { migrateMariaDb } from './mariadb-migrations.js';
import { claimMetaRow } from './mariadb-meta.js';
import { describeDbError, isRowError, writeBatch, type BatchOutcome, type WriteOp } from './mariadb-writes.js';
import { extensionOf } from './mariadb-reads.js';
import type { StoreMirror } from './mirror.js';
import type { ExtensionRow } from './rows.js';
import {
  ExtensionExistsError,
  StoreBusyError,
  StoreOpenError,
  type BanRecord,
  type BindingRecord,
  type ExtensionRecord,
  type ImportCounts,
  type Store,
  NONCE_SECRET_KEY,
  newNonceSecret,
} from './store.js';

export type StoreLogger = Pick<Logger, 'info' | 'warn' | 'error'>;

export interface MariaDbStoreOptions {
  settings: MariaDbSettings;
  logger: StoreLogger;
  /** Rows waiting for the database beyond which writes are refused. Default 100,000. */
  maxQueued?: number;
  /** How long a connection attempt may take (ms). Default 1000. */
  connectTimeoutMs?: number;
}

/** Longest value of each binding field the database holds (VARCHAR lengths, mariadb-migrations.ts). */
const BINDING_LIMITS: ReadonlyArray<[keyof BindingRecord, number]> = [
  ['aor', 200], ['contact', 500], ['contactHeader', 2000], ['callId', 255], ['instanceId', 255], ['transport', 8],
  ['sourceAddress', 64], ['localAddress', 64], ['userAgent', 255],
];
const PATH_LIMIT = 4000;
const EXTENSION_LIMITS: ReadonlyArray<[keyof ExtensionRecord, number]> = [
  ['number', 64], ['displayName', 255], ['realm', 255], ['ha1Md5', 64], ['ha1Sha256', 128],
];

/** Tombstones are kept this long; a server that has not polled for longer reads everything again. */
const TOMBSTONE_KEEP_MS = 3_600_000;
/** How often expired bindings and old tombstones are deleted from the database. */
const MAINTENANCE_MS = 60_000;
/** Writes wait this long after the first of a batch, so that a burst goes in one transaction. */
const FLUSH_DELAY_MS = 5;
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 5000;
/** close() tries this long to write what is queued. */
const CLOSE_FLUSH_MS = 5000;

interface Queued {
  op: WriteOp;
  /** The table row it writes ('e' number, 'b' aor contact, 'n' address, 'm' key): a poll leaves pending rows alone. */
  row: string;
  serial: number;
}

interface Waiter {
  upTo: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

function rowKey(table: 'e' | 'b' | 'n' | 'm', ...parts: string[]): string {
  return `${table}\u0000${parts.join('\u0000')}`;
}

function tooLong(value: string | undefined, max: number): boolean {
  return value !== undefined && value.length > max;
}

/** Opens the store: connects, migrates under the lock, loads everything, starts the loop. */
export async function openMariaDbStore(opts: MariaDbStoreOptions): Promise<MariaDbStore> {
  const where = describeMariaDb(opts.settings);
  const connectTimeoutMs = opts.connectTimeoutMs ?? 1000;
  const conn = await connectMariaDb(opts.settings, connectTimeoutMs);
  let snapshot: Awaited<ReturnType<typeof loadSnapshot>>;
  try {
    await migrateMariaDb(conn, where);
    // Servers starting together on an empty database must end with one nonce secret: the first
    // insert wins and every server reads that one in its snapshot.
    await claimMetaRow(conn, NONCE_SECRET_KEY, newNonceSecret());
    snapshot = await loadSnapshot(conn);
  } catch (err) {
    await conn.end().catch(() => undefined);
    const message = (err as Error).message.startsWith(where) ? (err as Error).message : `${where}: ${describeDbError(err)}`;
    throw new StoreOpenError(where, message, { cause: err });
  }
  await conn.end().catch(() => undefined);
  const pool = createMariaDbPool(opts.settings, connectTimeoutMs);
  return new MariaDbStore(pool, where, opts, snapshot.mirror, snapshot.clock.seq);
}

export class MariaDbStore implements Store {
  readonly kind = 'mariadb';
  private isAvailable = true;
  private unavailableSince = 0;
  private version = 0;
  private queue = new Map<string, Queued>();
  /** The batch being written, or undefined. */
  private inFlight: Map<string, Queued> | undefined;
  private serial = 0;
  private waiters: Waiter[] = [];
  /** Change numbers of this process's own transactions not yet passed by the poll. */
  private readonly ownChanges = new Set<number>();
  private failures = 0;
  private closing = false;
  private closeDeadline = 0;
  private closed: Promise<void> | undefined;
  private readonly loopDone: Promise<void>;
  private wakeUp: (() => void) | undefined;
  private lastPoll = 0;
  private lastMaintenance = Date.now();
  private oversizeReported = 0;
  private oversizeCount = 0;
  private readonly maxQueued: number;
  private readonly pollMs: number;
  private readonly logger: StoreLogger;

  constructor(
    private readonly pool: Pool,
    /** user@host:port/database, for messages. */
    readonly where: string,
    opts: MariaDbStoreOptions,
    private mirror: StoreMirror,
    /** The change number this process has read up to. */
    private seen: number,
  ) {
    this.maxQueued = Math.max(1, opts.maxQueued ?? 100_000);
    this.pollMs = opts.settings.pollMs;
    this.logger = opts.logger;
    // The pool emits 'error' for every connection it fails to make (an EventEmitter 'error'
    // nobody listens to would end the process); the loop reports the outage itself, once.
    (pool as unknown as { on(event: 'error', fn: (err: unknown) => void): void }).on('error', () => undefined);
    this.loopDone = this.run();
  }

  get available(): boolean {
    return this.isAvailable;
  }

  /** Rows waiting to be written. */
  get queued(): number {
    return this.queue.size + (this.inFlight?.size ?? 0);
  }

  // ---- reads: from memory ----

  getExtension(number: string): ExtensionRecord | undefined {
    return this.mirror.getExtension(number);
  }

  listExtensions(): ExtensionRecord[] {
    return this.mirror.listExtensions();
  }

  countExtensions(): number {
    return this.mirror.countExtensions();
  }

  loadBindings(now: number): BindingRecord[] {
    return this.mirror.loadBindings(now);
  }

  loadBindingsOf(aor: string, now: number): BindingRecord[] {
    return this.mirror.loadBindingsOf(aor, now);
  }

  countRegistered(now: number): number {
    return this.mirror.countRegistered(now);
  }

  getBan(address: string): BanRecord | undefined {
    return this.mirror.getBan(address);
  }

  listBans(now: number, limit = -1): BanRecord[] {
    return this.mirror.listBans(now, limit);
  }

  bansSince(seq: number, limit: number): BanRecord[] {
    return this.mirror.bansSince(seq, limit);
  }

  lastBanSeq(): number {
    return this.mirror.lastBanSeq();
  }

  getMeta(key: string): string | undefined {
    return this.mirror.getMeta(key);
  }

  dataVersion(): number {
    return this.version;
  }

  // ---- writes: memory now, the database by the loop ----

  addExtension(rec: ExtensionRecord): void {
    this.checkExtension(rec);
    if (this.mirror.hasExtension(rec.number)) throw new ExtensionExistsError(rec.number);
    this.reserve(1);
    this.mirror.setExtension(rec);
    this.enqueueExtension({ kind: 'ext.insert', rec, onConflict: 'error' }, rec.number);
  }

  updateExtension(number: string, patch: Partial<ExtensionRecord>): boolean {
    const existing = this.mirror.getExtension(number);
    if (existing === undefined) return false;
    const merged: ExtensionRecord = { ...existing, ...patch, number };
    this.checkExtension(merged);
    this.reserve(1);
    this.mirror.setExtension(merged);
    this.enqueueExtension({ kind: 'ext.update', rec: merged }, number);
    return true;
  }

  removeExtension(number: string): boolean {
    this.reserve(1);
    const existed = this.mirror.deleteExtension(number);
    this.mirror.deleteBindingsOf(number);
    this.enqueueExtension({ kind: 'ext.delete', number }, number);
    return existed;
  }

  importExtensions(recs: ExtensionRecord[], mode: 'skip-existing' | 'replace'): ImportCounts {
    for (const rec of recs) this.checkExtension(rec);
    this.reserve(recs.length);
    const counts: ImportCounts = { added: 0, replaced: 0, skipped: 0 };
    for (const rec of recs) {
      const existing = this.mirror.getExtension(rec.number);
      if (existing === undefined) {
        this.mirror.setExtension(rec);
        this.enqueueExtension({ kind: 'ext.insert', rec, onConflict: mode === 'replace' ? 'replace' : 'skip' }, rec.number);
        counts.added++;
      } else if (mode === 'replace') {
        const merged = { ...rec, createdAt: existing.createdAt, allow: existing.allow };
        this.mirror.setExtension(merged);
        this.enqueueExtension({ kind: 'ext.update', rec: merged }, rec.number);
        counts.replaced++;
      } else {
        counts.skipped++;
      }
    }
    return counts;
  }

  saveBindings(upserts: BindingRecord[], deletes: Array<{ aor: string; contact: string }>): void {
    if (upserts.length === 0 && deletes.length === 0) return;
    this.reserve(upserts.length + deletes.length);
    for (const b of upserts) {
      this.mirror.setBinding(b);
      const row = rowKey('b', b.aor, b.contact);
      if (this.bindingFits(b)) {
        this.enqueue(row, row, { kind: 'binding.upsert', rec: b });
      } else {
        // Served by this process from memory; the database must not keep an older version of it.
        this.reportOversize(b);
        if (!tooLong(b.aor, 200) && !tooLong(b.contact, 500)) this.enqueue(row, row, { kind: 'binding.delete', aor: b.aor, contact: b.contact });
      }
    }
    for (const d of deletes) {
      this.mirror.deleteBinding(d.aor, d.contact);
      const row = rowKey('b', d.aor, d.contact);
      this.enqueue(row, row, { kind: 'binding.delete', aor: d.aor, contact: d.contact });
    }
  }

  /**
   * From memory only: every server drops expired bindings by time itself, and the database's
   * are deleted by the loop's maintenance, so no deletes need to travel.
   */
  purgeExpiredBindings(now: number): number {
    return this.mirror.purgeExpiredBindings(now);
  }

  saveBan(ban: Omit<BanRecord, 'seq'>): number {
    if (tooLong(ban.address, 64) || tooLong(ban.reason, 255)) throw new Error(`ban of ${ban.address.slice(0, 64)}: the address (64) or reason (255 characters) is too long for the database`);
    this.reserve(1);
    const rec: Omit<BanRecord, 'seq'> = {
      address: ban.address,
      expiresAt: ban.expiresAt,
      reason: ban.reason,
      offences: ban.offences,
      createdAt: ban.createdAt,
      manual: ban.manual,
      removed: ban.removed,
    };
    const seq = this.mirror.putBan(rec);
    const row = rowKey('n', ban.address);
    this.enqueue(row, row, { kind: 'ban.upsert', rec });
    return seq;
  }

  purgeBans(before: number): number {
    this.reserve(1);
    const n = this.mirror.purgeBans(before);
    this.enqueue('purge-bans', 'purge-bans', { kind: 'bans.purge', before });
    return n;
  }

  setMeta(key: string, value: string): void {
    if (tooLong(key, 128) || Buffer.byteLength(value) > 65535) throw new Error(`meta ${key.slice(0, 128)}: the key (128 characters) or value (65535 bytes) is too long for the database`);
    this.reserve(1);
    this.mirror.setMeta(key, value);
    const row = rowKey('m', key);
    this.enqueue(row, row, { kind: 'meta.set', key, value });
  }

  /** Straight to the database (not queued): rejects while it cannot be reached. */
  async claimMeta(key: string, value: string): Promise<string> {
    if (tooLong(key, 128) || Buffer.byteLength(value) > 65535) throw new Error(`meta ${key.slice(0, 128)}: the key (128 characters) or value (65535 bytes) is too long for the database`);
    if (this.closing) throw new Error(`${this.where}: the store is closed; this change was not made`);
    const claimed = await this.withConnection((conn) => claimMetaRow(conn, key, value));
    this.ownChanges.add(claimed.chg);
    // A write of this key still queued here is newer than what the database holds.
    if (!this.pendingRows().has(rowKey('m', key))) this.mirror.setMeta(key, claimed.value);
    return this.mirror.getMeta(key) ?? claimed.value;
  }

  flush(): Promise<void> {
    if (this.queue.size === 0 && this.inFlight === undefined) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push({ upTo: this.serial, resolve, reject });
      this.wake(true);
    });
  }

  /** Writes what is queued (trying for up to 5 s), stops the loop, closes the pool. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.closing = true;
      this.closeDeadline = Date.now() + CLOSE_FLUSH_MS;
      this.wake(true);
      await this.loopDone;
      const lost = this.queue.size;
      if (lost > 0) {
        this.logger.error('store.writes_lost', { where: this.where, writes: lost, hint: 'the database could not be reached while stopping: these changes were not saved' });
      }
      for (const w of this.waiters.splice(0)) w.reject(new Error(`${this.where}: closed before ${lost} writes could be saved`));
      await this.pool.end().catch(() => undefined);
    })();
    return this.closed;
  }

  // ---- the queue ----

  /** The database's own checks (NOT NULL, lengths), made before anything changes. */
  private checkExtension(rec: ExtensionRecord): void {
    const name = String(rec.number).slice(0, 64);
    for (const [field, max] of EXTENSION_LIMITS) {
      const value = rec[field];
      if (typeof value !== 'string') throw new Error(`extension ${name}: ${field} must be text`);
      if (value.length > max) throw new Error(`extension ${name}: ${field} is longer than the database holds (${max} characters)`);
    }
    if (!Number.isSafeInteger(rec.createdAt) || !Array.isArray(rec.allow)) throw new Error(`extension ${name}: createdAt must be epoch ms and allow a list`);
    if (rec.allow.join(',').length > 600) throw new Error(`extension ${name}: too many allowed classes for the database`);
  }

  private bindingFits(b: BindingRecord): boolean {
    for (const [field, max] of BINDING_LIMITS) if (tooLong(b[field] as string | undefined, max)) return false;
    return b.path === undefined || b.path.join('\n').length <= PATH_LIMIT;
  }

  /** A peer's oversize binding: logged at most once a minute, with how many there were. */
  private reportOversize(b: BindingRecord): void {
    this.oversizeCount++;
    const now = Date.now();
    if (now - this.oversizeReported < 60_000) return;
    this.oversizeReported = now;
    this.logger.warn('store.binding_too_long', {
      aor: b.aor.slice(0, 64),
      count: this.oversizeCount,
      hint: 'a Contact, Call-ID, Path or User-Agent longer than the database columns: the registration works on this server only, other servers do not see it',
    });
    this.oversizeCount = 0;
  }

  /** Throws StoreBusyError, changing nothing, when `rows` more would not fit in the queue. */
  private reserve(rows: number): void {
    if (this.closing) throw new Error(`${this.where}: the store is closed; this change was not made`);
    if (this.queue.size + rows <= this.maxQueued) return;
    throw new StoreBusyError(
      `${this.where}: ${this.queue.size} writes are waiting for the database (at most ${this.maxQueued}); this change was refused. ` +
        (this.isAvailable ? 'The database is slow to take writes' : 'The database cannot be reached') + ': check it and its network',
    );
  }

  private enqueueExtension(op: WriteOp, number: string): void {
    // Extension changes are never merged: each keeps its place and its own outcome.
    this.serial++;
    this.enqueue(`e#${this.serial}`, rowKey('e', number), op);
  }

  private enqueue(key: string, row: string, op: WriteOp): void {
    const serial = ++this.serial;
    // delete + set moves the key to the end: a batch is written in the order of the last writes.
    this.queue.delete(key);
    this.queue.set(key, { op, row, serial });
    this.wake(false);
  }

  private pendingRows(): Set<string> {
    const rows = new Set<string>();
    for (const q of this.queue.values()) rows.add(q.row);
    if (this.inFlight) for (const q of this.inFlight.values()) rows.add(q.row);
    return rows;
  }

  // ---- the loop ----

  /** Starts the next round now (flush() callers and close() also during back-off). */
  private wake(urgent: boolean): void {
    if (this.failures > 0 && !urgent) return;
    this.wakeUp?.();
  }

  private async run(): Promise<void> {
    for (;;) {
      if (this.closing && (this.queue.size === 0 || Date.now() > this.closeDeadline)) return;
      try {
        if (this.queue.size > 0) await this.flushQueue();
        const now = Date.now();
        if (!this.closing && now - this.lastPoll >= this.pollMs) {
          this.lastPoll = now;
          await this.poll();
        }
        if (!this.closing && now - this.lastMaintenance >= MAINTENANCE_MS) {
          this.lastMaintenance = now;
          await this.maintain(now);
        }
        this.failures = 0;
        this.setAvailable();
      } catch (err) {
        this.failures++;
        this.setUnavailable(err);
        for (const w of this.waiters.splice(0)) w.reject(new Error(`${this.where}: ${describeDbError(err)}`, { cause: err }));
      }
      await this.sleep(this.nextDelay());
    }
  }

  private nextDelay(): number {
    if (this.closing) return this.failures > 0 ? RETRY_MIN_MS : 0;
    if (this.failures > 0) return Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** (this.failures - 1));
    const untilPoll = Math.max(0, this.lastPoll + this.pollMs - Date.now());
    return this.queue.size > 0 ? Math.min(FLUSH_DELAY_MS, untilPoll) : untilPoll;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      // Only the poll of an idle store may let the process end; queued writes and waiters hold it.
      if (this.queue.size === 0 && this.waiters.length === 0 && !this.closing) timer.unref();
      const self = this;
      function done(): void {
        clearTimeout(timer);
        if (self.wakeUp === done) self.wakeUp = undefined;
        resolve();
      }
      this.wakeUp = done;
    });
  }

  private async withConnection<T>(fn: (conn: PoolConnection) => Promise<T>): Promise<T> {
    const conn = await this.pool.getConnection();
    try {
      return await fn(conn);
    } finally {
      await conn.release().catch(() => undefined);
    }
  }

  private async flushQueue(): Promise<void> {
    const batch = this.queue;
    const upTo = this.serial;
    this.queue = new Map();
    this.inFlight = batch;
    const ops = [...batch.values()].map((q) => q.op);
    let result: { chg: number; outcome: BatchOutcome };
    try {
      result = await this.withConnection(async (conn) => {
        const ctx = {
          refused: (op: WriteOp, err: unknown) => this.logger.warn('store.write_refused', { where: this.where, write: op.kind, error: describeDbError(err), hint: 'the database refused this row; the others were written' }),
          conflict: (op: Extract<WriteOp, { kind: 'ext.insert' }>) =>
            this.logger.warn('store.extension_conflict', { number: op.rec.number, hint: 'another server added this number at the same time; its record is kept' }),
        };
        try {
          return await writeBatch(conn, ops, Date.now(), false, ctx);
        } catch (err) {
          if (!isRowError(err)) throw err;
          // One row the database refuses must not hold back the others.
          return await writeBatch(conn, ops, Date.now(), true, ctx);
        }
      });
    } catch (err) {
      // Kept for the next round, before anything written since.
      const merged = new Map<string, Queued>();
      for (const [k, q] of batch) if (!this.queue.has(k)) merged.set(k, q);
      for (const [k, q] of this.queue) merged.set(k, q);
      this.queue = merged;
      throw err;
    } finally {
      this.inFlight = undefined;
    }
    this.ownChanges.add(result.chg);
    if (result.outcome.reread.size > 0) await this.reread(result.outcome.reread);
    const error = result.outcome.errors[0];
    this.waiters = this.waiters.filter((w) => {
      if (w.upTo > upTo) return true;
      if (error) w.reject(error);
      else w.resolve();
      return false;
    });
  }

  /** Extension rows whose database version may differ from memory: read back. */
  private async reread(numbers: Set<string>): Promise<void> {
    const list = [...numbers];
    const rows = await this.withConnection((conn) => conn.execute(`SELECT * FROM extensions WHERE number IN (${list.map(() => '?').join(', ')})`, list)) as ExtensionRow[];
    const pending = this.pendingRows();
    for (const number of list) {
      if (pending.has(rowKey('e', number))) continue;
      const row = rows.find((r) => r.number === number);
      if (row) this.mirror.setExtension(extensionOf(row));
      else this.mirror.deleteExtension(number);
    }
    this.version++;
  }

  private async poll(): Promise<void> {
    await this.withConnection(async (conn) => {
      const clock = await readClock(conn);
      if (clock.seq === this.seen) return;
      if (this.seen < clock.purged) {
        await this.reload(conn);
        return;
      }
      const changes = await readChanges(conn, this.seen, clock.seq);
      if (this.apply(changes) > 0) this.version++;
      this.seen = clock.seq;
      for (const chg of this.ownChanges) if (chg <= clock.seq) this.ownChanges.delete(chg);
    });
  }

  /** Applies what other servers wrote; rows with a write of ours still queued are left as they are. */
  private apply(changes: Change[]): number {
    if (changes.length === 0) return 0;
    const pending = this.pendingRows();
    let applied = 0;
    for (const c of changes) {
      if (this.ownChanges.has(c.chg)) continue;
      switch (c.kind) {
        case 'extension':
          if (pending.has(rowKey('e', c.rec.number))) continue;
          this.mirror.setExtension(c.rec);
          break;
        case 'extension.deleted':
          if (pending.has(rowKey('e', c.number))) continue;
          this.mirror.deleteExtension(c.number);
          break;
        case 'binding':
          if (pending.has(rowKey('b', c.rec.aor, c.rec.contact))) continue;
          this.mirror.setBinding(c.rec);
          break;
        case 'binding.deleted':
          if (pending.has(rowKey('b', c.aor, c.contact))) continue;
          this.mirror.deleteBinding(c.aor, c.contact);
          break;
        case 'ban':
          if (pending.has(rowKey('n', c.rec.address))) continue;
          this.mirror.putBan(c.rec);
          break;
        case 'meta':
          if (pending.has(rowKey('m', c.key))) continue;
          this.mirror.setMeta(c.key, c.value);
          break;
      }
      applied++;
    }
    return applied;
  }

  /** Behind the tombstones kept (this process did not poll for an hour): everything is read again. */
  private async reload(conn: PoolConnection): Promise<void> {
    const { clock, mirror } = await loadSnapshot(conn, this.mirror.lastBanSeq());
    const old = this.mirror;
    // Rows with writes of ours still queued keep what this process made of them.
    for (const q of [...this.queue.values(), ...(this.inFlight?.values() ?? [])]) {
      const op = q.op;
      if (op.kind === 'ext.insert' || op.kind === 'ext.update') mirror.setExtension(old.getExtension(op.rec.number) ?? op.rec);
      else if (op.kind === 'ext.delete') {
        mirror.deleteExtension(op.number);
        mirror.deleteBindingsOf(op.number);
      } else if (op.kind === 'binding.upsert') mirror.setBinding(op.rec);
      else if (op.kind === 'binding.delete') mirror.deleteBinding(op.aor, op.contact);
      else if (op.kind === 'ban.upsert') mirror.putBan(op.rec);
      else if (op.kind === 'meta.set') mirror.setMeta(op.key, op.value);
    }
    this.mirror = mirror;
    this.seen = clock.seq;
    this.ownChanges.clear();
    this.version++;
    this.logger.info('store.reloaded', { where: this.where, hint: 'this server had not read the changes of others for longer than they are kept: everything was read again' });
  }

  /** Deletes expired bindings and old tombstones (every server does it now and then; it is cheap). */
  private async maintain(now: number): Promise<void> {
    await this.withConnection(async (conn) => {
      await conn.execute('DELETE FROM bindings WHERE expires_at <= ?', [now]);
      const rows = (await conn.execute('SELECT MAX(chg) AS upTo FROM store_tombstones WHERE at < ?', [now - TOMBSTONE_KEEP_MS])) as Array<{ upTo: number | null }>;
      const upTo = rows[0]?.upTo;
      if (upTo === null || upTo === undefined) return;
      await conn.beginTransaction();
      try {
        await conn.execute('UPDATE store_clock SET purged = GREATEST(purged, ?) WHERE id = 1', [upTo]);
        await conn.execute('DELETE FROM store_tombstones WHERE chg <= ?', [upTo]);
        await conn.commit();
      } catch (err) {
        await conn.rollback().catch(() => undefined);
        throw err;
      }
    });
  }

  private setUnavailable(err: unknown): void {
    if (!this.isAvailable) return;
    this.isAvailable = false;
    this.unavailableSince = Date.now();
    this.logger.warn('store.unavailable', {
      where: this.where,
      error: describeDbError(err),
      queued: this.queued,
      hint: 'REGISTERs get 503 with Retry-After until the database is back; calls go on from memory and writes are kept and retried. Check that MariaDB runs and is reachable there, and its log',
    });
  }

  private setAvailable(): void {
    if (this.isAvailable) return;
    this.isAvailable = true;
    this.logger.info('store.available', { where: this.where, downSeconds: Math.round((Date.now() - this.unavailableSince) / 1000), queued: this.queued });
  }
}
