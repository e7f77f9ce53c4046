/**
 * Auto-ban and flood limits (`security.*`, docs/SECURITY.md): per source address, a token bucket
 * of messages, a count of failed authentications, and the bans, which the store keeps (they
 * survive a restart and are shared by sip.workers processes and `minisipserver ban`).
 *
 * The SIP stack asks admit() for every datagram and TCP message before parsing it (a banned
 * source, or one with an empty bucket, costs one or two Map lookups and nothing else), message()
 * once it is parsed (the bucket is charged, scanner User-Agents are refused), and refund() when
 * the transaction layer absorbed it as a retransmission. Time on this path is a tick counter
 * advanced by a timer (no clock read per message).
 *
 * Memory is bounded: the rate and failure tables hold at most `security.tableSize` sources each
 * (lib/security/bounded-table.ts), and so does the table of bans in force.
 */
import type { BlockList } from 'node:net';
import { addressList } from '../config/address-entry.js';
import type { Logger } from '../log.js';
import type { SipMessage } from '../sip/message.js';
import { detach } from '../sip/transaction/message-keys.js';
import type { BanRecord, Store } from '../store/store.js';
import { banLengthMs, describeDuration, nextOffences, OFFENCE_MEMORY_MS } from './bans.js';
import { BoundedTable, type TableEntry } from './bounded-table.js';

/** The `security` section of the configuration. */
export interface SecuritySettings {
  maxFailures: number;
  window: number;
  banTime: number;
  maxBanTime: number;
  ratePerSecond: number;
  burst: number;
  sustainedSeconds: number;
  scannerUserAgents: readonly string[];
  trusted: readonly string[];
  tableSize: number;
}

export type AutoBanReason = 'auth' | 'scanner' | 'rate';

/** Plain numbers bumped where things happen, read by the metrics when scraped. */
export interface SecurityCounters {
  /** Bans placed by this process by reason; `manual`: `ban add` seen by this process. */
  bans: Record<AutoBanReason | 'manual', number>;
  /** Messages dropped unanswered: from a banned source, over the rate, a scanner's. */
  dropped: { banned: number; rate: number; scanner: number };
  /** TCP connections closed at accept (banned source, or over the rate; also counted in `dropped`). */
  connectionsRefused: number;
  /** Authentication failures counted towards bans (trusted sources' are not). */
  failures: number;
}

export interface GuardOptions {
  settings: SecuritySettings;
  /** Where bans are kept; null: in memory only (tests, tools). */
  store: Pick<Store, 'getBan' | 'listBans' | 'bansSince' | 'lastBanSeq' | 'saveBan' | 'purgeBans' | 'dataVersion'> | null;
  logger: Logger;
  /** Sources that count as trusted besides security.trusted (trunk peers). */
  isTrustedPeer?: (address: string) => boolean;
  /**
   * This process reports what it learns from the store (bans placed with `ban add`, bans that end)
   * and purges old rows: true when alone, and in the first of several sip.workers processes only,
   * so that each event is logged once.
   */
  reportShared?: boolean;
  now?: () => number;
  /** Starts the tick timer (default true); tests drive poll() themselves. */
  timer?: boolean;
}

/** Per-source token bucket. */
export class RateEntry implements TableEntry {
  used = true;
  slot = 0;
  /** The trust epoch `trusted` was decided in (-1: not yet). */
  trustEpoch = -1;
  trusted = false;
  /** Tick of the first drop of the current run of drops, and of the last drop. */
  excessStart = 0;
  lastDrop = -1e9;
  /** The User-Agent of the source's last request (copied off the message) and whether it is a scanner's. */
  userAgent: string | undefined = undefined;
  scanner = false;
  constructor(
    public tokens: number,
    public tick: number,
  ) {}
}

class FailureEntry implements TableEntry {
  used = true;
  slot = 0;
  count = 0;
  constructor(public start: number) {}
}

interface ActiveBan {
  until: number;
  reason: string;
  offences: number;
  manual: boolean;
  seq: number;
}

const TICK_MS = 100;
const TICKS_PER_SECOND = 1000 / TICK_MS;
/** Trust is decided again this often (trunk peers' addresses come from DNS and change). */
const TRUST_REFRESH_TICKS = 30 * TICKS_PER_SECOND;
/** How often rows older than OFFENCE_MEMORY_MS are purged from the store. */
const PURGE_TICKS = 60 * TICKS_PER_SECOND;
/** Ban and unban lines per second; beyond it they are counted and reported once a second. */
const LOG_LINES_PER_SECOND = 50;
/** Rows read from the store per second at most (the rest the next second). */
const SYNC_ROWS_PER_POLL = 10_000;

export class SourceGuard {
  readonly counters: SecurityCounters = {
    bans: { auth: 0, scanner: 0, rate: 0, manual: 0 },
    dropped: { banned: 0, rate: 0, scanner: 0 },
    connectionsRefused: 0,
    failures: 0,
  };
  /** Told of every ban that comes into force in this process (the stack closes TCP connections). */
  onBan: ((address: string) => void) | undefined = undefined;

  private readonly bans = new Map<string, ActiveBan>();
  private readonly rates: BoundedTable<RateEntry>;
  private readonly failures: BoundedTable<FailureEntry>;
  private readonly now: () => number;
  private readonly logger: Logger;
  private readonly store: GuardOptions['store'];
  private readonly reportShared: boolean;
  private readonly isTrustedPeer: ((address: string) => boolean) | undefined;

  // Derived from the settings (configure()).
  private settings!: SecuritySettings;
  private trustedList: BlockList | null = null;
  private perTick = 0;
  private burst = 0;
  private sustainedTicks = 0;
  private windowMs = 0;
  private scanners: string[] | null = null;
  /** Returned by admit() when rate limiting is off: charging it changes nothing. */
  private readonly pass = new RateEntry(Infinity, 0);

  /** Clock of the hot path: advanced by the timer. */
  private tick: number;
  private clockMs: number;
  private epoch = 0;
  private ticks = 0;
  private timer: NodeJS.Timeout | undefined;

  private lastSeq = 0;
  private dataVersion = -1;
  private logLines = 0;
  private logSuppressed = 0;
  private ignoredWarned = new Set<string>();

  constructor(opts: GuardOptions) {
    this.now = opts.now ?? Date.now;
    this.logger = opts.logger;
    this.store = opts.store;
    this.reportShared = opts.reportShared ?? true;
    this.isTrustedPeer = opts.isTrustedPeer;
    this.clockMs = this.now();
    this.tick = Math.floor(this.clockMs / TICK_MS);
    this.rates = new BoundedTable(opts.settings.tableSize);
    this.failures = new BoundedTable(opts.settings.tableSize);
    this.configure(opts.settings);
    this.load();
    if (opts.timer !== false) {
      this.timer = setInterval(() => this.poll(), TICK_MS);
      this.timer.unref();
    }
  }

  /** Takes new settings (a configuration reload): bans stay, trust is decided again. */
  configure(s: SecuritySettings): void {
    const resize = this.settings !== undefined && this.settings.tableSize !== s.tableSize;
    this.settings = { ...s, scannerUserAgents: [...s.scannerUserAgents], trusted: [...s.trusted] };
    this.trustedList = addressList(s.trusted);
    this.perTick = (s.ratePerSecond * TICK_MS) / 1000;
    this.burst = Math.max(1, s.burst);
    this.sustainedTicks = s.sustainedSeconds * TICKS_PER_SECOND;
    this.windowMs = s.window * 1000;
    const tokens = s.scannerUserAgents.map((u) => u.trim().toLowerCase()).filter((u) => u !== '');
    this.scanners = tokens.length > 0 ? tokens : null;
    this.epoch++;
    // The verdicts kept per source were made with the old list.
    for (const e of this.rates.values()) e.userAgent = undefined;
    if (resize) {
      this.rates.resize(s.tableSize);
      this.failures.resize(s.tableSize);
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  // ---- the hot path ------------------------------------------------------------------------

  /**
   * Before a message from `address` is parsed: null drops it (the source is banned, or has used
   * up its rate); otherwise the handle message() and refund() take.
   */
  admit(address: string): RateEntry | null {
    if (this.bans.size !== 0) {
      const ban = this.bans.get(address);
      if (ban !== undefined && this.inForce(address, ban)) {
        this.counters.dropped.banned++;
        return null;
      }
    }
    if (this.perTick === 0) return this.pass;
    const e = this.rates.get(address);
    if (e === undefined) {
      const fresh = new RateEntry(this.burst, this.tick);
      this.rates.insert(address, fresh);
      return fresh;
    }
    e.used = true;
    const tick = this.tick;
    if (e.tick !== tick) {
      const tokens = e.tokens + (tick - e.tick) * this.perTick;
      e.tokens = tokens < this.burst ? tokens : this.burst;
      e.tick = tick;
    }
    if (e.tokens >= 1) return e;
    return this.overLimit(address, e);
  }

  /**
   * A message admitted and parsed (null: it could not be parsed): charges the source's bucket;
   * false drops a request from a scanner's User-Agent (which also counts as a failure).
   */
  message(e: RateEntry, msg: SipMessage | null, address: string): boolean {
    e.tokens -= 1;
    if (this.scanners === null || msg === null || msg.kind !== 'request') return true;
    if (e.trusted && e.trustEpoch === this.epoch) return true;
    // Header names are stored canonical (lower case): no case mapping on this path.
    const h = msg.headers;
    const i = h.names.indexOf('user-agent');
    if (i < 0) return true;
    const ua = h.values[i]!;
    // A source keeps its User-Agent: comparing it with the last one is cheaper than hashing it.
    if (ua !== e.userAgent) {
      e.scanner = this.isScanner(ua);
      if (e !== this.pass) e.userAgent = detach(ua);
    }
    if (!e.scanner) return true;
    if (this.trustedSource(address, e)) return true;
    this.counters.dropped.scanner++;
    this.failure(address, 'scanner');
    return false;
  }

  /** The transaction layer absorbed the message as a retransmission: it does not count. */
  refund(e: RateEntry): void {
    if (e === this.pass) return;
    const tokens = e.tokens + 1;
    e.tokens = tokens < this.burst ? tokens : this.burst;
  }

  /** A TCP connection from `address` being accepted: false refuses it. */
  admitConnection(address: string): boolean {
    const e = this.admit(address);
    if (e === null) {
      this.counters.connectionsRefused++;
      return false;
    }
    e.tokens -= 1;
    return true;
  }

  /**
   * The cheapest check, for a transport before it copies a datagram: true drops it (`address`
   * is banned). A Map lookup while bans are in force, a size check otherwise.
   */
  banned(address: string): boolean {
    if (this.bans.size === 0) return false;
    const ban = this.bans.get(address);
    if (ban === undefined || !this.inForce(address, ban)) return false;
    this.counters.dropped.banned++;
    return true;
  }

  /** Whether `address` is trusted: security.trusted or a trunk peer. */
  trusted(address: string): boolean {
    return this.trustedSource(address, this.rates.get(address));
  }

  /** A failed authentication from `address` (wrong password, unknown user, forged nonce). */
  authFailed(address: string): void {
    this.failure(address, 'auth');
  }

  // ---- what the hot path calls rarely ---------------------------------------------------------

  private inForce(address: string, ban: ActiveBan): boolean {
    if (ban.until > this.clockMs) return true;
    this.bans.delete(address);
    this.ended(address, ban, 'expired');
    return false;
  }

  private overLimit(address: string, e: RateEntry): RateEntry | null {
    if (this.trustedSource(address, e)) {
      e.tokens = this.burst;
      return e;
    }
    this.counters.dropped.rate++;
    const tick = this.tick;
    if (tick - e.lastDrop > TICKS_PER_SECOND) e.excessStart = tick;
    e.lastDrop = tick;
    if (this.sustainedTicks > 0 && tick - e.excessStart >= this.sustainedTicks) this.ban(address, 'rate');
    return null;
  }

  private isScanner(ua: string): boolean {
    const lower = ua.toLowerCase();
    for (const s of this.scanners!) if (lower.includes(s)) return true;
    return false;
  }

  /** security.trusted or a trunk peer; decided once per trust epoch for a source with an entry. */
  private trustedSource(address: string, e: RateEntry | undefined): boolean {
    if (e === undefined || e === this.pass) return this.isTrusted(address);
    if (e.trustEpoch !== this.epoch) {
      e.trustEpoch = this.epoch;
      e.trusted = this.isTrusted(address);
    }
    return e.trusted;
  }

  /** security.trusted or a trunk peer (never banned, never rate-limited). */
  isTrusted(address: string): boolean {
    const list = this.trustedList;
    if (list !== null) {
      try {
        if (list.check(address, address.includes(':') ? 'ipv6' : 'ipv4')) return true;
      } catch {
        // not an IP address: not trusted
      }
    }
    return this.isTrustedPeer?.(address) === true;
  }

  private failure(address: string, kind: 'auth' | 'scanner'): void {
    const max = this.settings.maxFailures;
    if (max === 0) return;
    if (this.trustedSource(address, this.rates.get(address))) return;
    this.counters.failures++;
    const now = this.now();
    let f = this.failures.get(address);
    if (f === undefined) {
      f = new FailureEntry(now);
      this.failures.insert(address, f);
    } else if (now - f.start >= this.windowMs) {
      f.start = now;
      f.count = 0;
    }
    f.used = true;
    f.count++;
    if (f.count >= max) this.ban(address, kind);
  }

  // ---- bans ----------------------------------------------------------------------------------

  /** Bans `address` now (a no-op for a trusted one or one banned already); true when it was banned. */
  ban(address: string, reason: AutoBanReason): boolean {
    const now = this.now();
    const current = this.bans.get(address);
    if (current !== undefined && current.until > now) return false;
    if (this.isTrusted(address)) return false;
    if (current !== undefined) this.bans.delete(address); // ended, not yet swept: this is a new ban
    let prev: BanRecord | undefined;
    try {
      prev = this.store?.getBan(address);
    } catch (err) {
      this.storeFailed(err);
    }
    const offences = nextOffences(prev, now);
    const lengthMs = banLengthMs(offences, this.settings.banTime, this.settings.maxBanTime);
    const rec = { address, expiresAt: now + lengthMs, reason, offences, createdAt: now, manual: false, removed: false };
    let seq = 0;
    try {
      seq = this.store?.saveBan(rec) ?? 0;
    } catch (err) {
      this.storeFailed(err);
    }
    this.counters.bans[reason]++;
    this.place(address, { until: rec.expiresAt, reason, offences, manual: false, seq });
    this.report('warn', 'security.banned', {
      address,
      reason,
      until: new Date(rec.expiresAt).toISOString(),
      seconds: Math.round(lengthMs / 1000),
      offences,
      hint: `every packet from ${address} is dropped for ${describeDuration(lengthMs)}; \`minisipserver ban remove ${address}\` lifts it`,
    });
    return true;
  }

  /** Whether `address` is banned now. */
  isBanned(address: string): boolean {
    const ban = this.bans.get(address);
    return ban !== undefined && ban.until > this.now();
  }

  /** Bans in force in this process. */
  get bannedCount(): number {
    return this.bans.size;
  }

  /** Sources tracked in the rate and failure tables. */
  get tableSizes(): { rates: number; failures: number } {
    return { rates: this.rates.size, failures: this.failures.size };
  }

  /** Into the table of bans in force (bounded: the oldest gives way); its state is forgotten. */
  private place(address: string, ban: ActiveBan): void {
    const isNew = !this.bans.has(address);
    if (isNew && this.bans.size >= this.settings.tableSize) {
      const oldest = this.bans.keys().next().value;
      if (oldest !== undefined) this.bans.delete(oldest);
    }
    this.bans.set(address, ban);
    this.rates.delete(address);
    this.failures.delete(address);
    if (isNew) this.onBan?.(address);
  }

  private ended(address: string, ban: ActiveBan, cause: 'expired' | 'removed'): void {
    if (!this.reportShared) return;
    this.report('info', 'security.unbanned', { address, cause, reason: ban.reason, offences: ban.offences });
  }

  // ---- the store -----------------------------------------------------------------------------

  /** The bans in force when the server starts. */
  private load(): void {
    const store = this.store;
    if (store === null) return;
    try {
      const now = this.now();
      this.dataVersion = store.dataVersion();
      this.lastSeq = store.lastBanSeq();
      let n = 0;
      for (const r of store.listBans(now, this.settings.tableSize)) {
        if (this.isTrusted(r.address)) continue;
        this.bans.set(r.address, { until: r.expiresAt, reason: r.reason, offences: r.offences, manual: r.manual, seq: r.seq });
        n++;
      }
      if (n > 0 && this.reportShared) this.logger.info('security.bans_loaded', { count: n });
    } catch (err) {
      this.storeFailed(err);
    }
  }

  /** What other processes (sip.workers, `minisipserver ban`) wrote since the last look. */
  private sync(): void {
    const store = this.store;
    if (store === null) return;
    try {
      const v = store.dataVersion();
      if (v === this.dataVersion) return;
      this.dataVersion = v;
      const now = this.now();
      for (let read = 0; read < SYNC_ROWS_PER_POLL; ) {
        const rows = store.bansSince(this.lastSeq, 1000);
        for (const r of rows) {
          this.lastSeq = r.seq;
          this.applyRow(r, now);
        }
        read += rows.length;
        if (rows.length < 1000) return;
      }
      this.dataVersion = -1; // more to read: look again next time whatever the version
    } catch (err) {
      this.storeFailed(err);
    }
  }

  private applyRow(r: BanRecord, now: number): void {
    const cur = this.bans.get(r.address);
    if (cur !== undefined && cur.seq >= r.seq) return;
    if (!r.removed && r.expiresAt > now) {
      if (this.isTrusted(r.address)) {
        if (cur !== undefined) this.bans.delete(r.address);
        if (this.reportShared && !this.ignoredWarned.has(r.address) && this.ignoredWarned.size < 1000) {
          this.ignoredWarned.add(r.address);
          this.logger.warn('security.ban_ignored', { address: r.address, hint: 'the address is in security.trusted or a trunk peer: never banned' });
        }
        return;
      }
      this.place(r.address, { until: r.expiresAt, reason: r.reason, offences: r.offences, manual: r.manual, seq: r.seq });
      if (cur === undefined && r.manual && this.reportShared) {
        // Counted and logged once, by the process that reports for all (sip.workers).
        this.counters.bans.manual++;
        this.report('warn', 'security.banned', {
          address: r.address,
          reason: r.reason,
          until: new Date(r.expiresAt).toISOString(),
          seconds: Math.round((r.expiresAt - now) / 1000),
          offences: r.offences,
          manual: true,
        });
      }
      return;
    }
    if (cur !== undefined) {
      this.bans.delete(r.address);
      this.ended(r.address, cur, r.removed ? 'removed' : 'expired');
    }
  }

  private storeFailed(err: unknown): void {
    this.logger.error('security.store_failed', { error: (err as Error).message, hint: 'bans stay in force in this process but are not kept for a restart' });
  }

  // ---- the timer -----------------------------------------------------------------------------

  /** Every tick (100 ms): the clock; every second: bans that ended, the store, the log budget. */
  poll(): void {
    this.clockMs = this.now();
    this.tick = Math.floor(this.clockMs / TICK_MS);
    if (++this.ticks % TICKS_PER_SECOND !== 0) return;
    if (this.ticks % TRUST_REFRESH_TICKS === 0) this.epoch++;
    if (this.bans.size > 0) {
      for (const [address, ban] of this.bans) {
        if (ban.until > this.clockMs) continue;
        this.bans.delete(address);
        this.ended(address, ban, 'expired');
      }
    }
    this.sync();
    if (this.reportShared && this.store !== null && this.ticks % PURGE_TICKS === 0) {
      try {
        this.store.purgeBans(this.clockMs - OFFENCE_MEMORY_MS);
      } catch (err) {
        this.storeFailed(err);
      }
    }
    if (this.logSuppressed > 0) {
      this.logger.warn('security.log_suppressed', { count: this.logSuppressed, reason: `more than ${LOG_LINES_PER_SECOND} ban lines in a second` });
    }
    this.logLines = 0;
    this.logSuppressed = 0;
  }

  private report(level: 'info' | 'warn', event: string, fields: Record<string, unknown>): void {
    if (this.logLines >= LOG_LINES_PER_SECOND) {
      this.logSuppressed++;
      return;
    }
    this.logLines++;
    this.logger[level](event, fields);
  }
}
