/**
 * The persistent store behind the PBX: extensions (credentials as HA1 only), registrar
 * bindings, bans and a small key/value meta table. Implementations: sqlite.ts (embedded
 * default) and mariadb.ts (one database shared by several servers); open-store.ts picks one.
 * Every method but flush(), claimMeta() and close() is synchronous: call-time lookups never wait.
 */
import { randomBytes } from 'node:crypto';
import type { TransportName } from '../sip/transport/types.js';

export interface ExtensionRecord {
  number: string;
  displayName: string;
  /** The realm the HA1 values were computed with; a realm change makes them useless. */
  realm: string;
  ha1Md5: string;
  ha1Sha256: string;
  /** Epoch ms. */
  createdAt: number;
  /** Restricted call classes this extension may dial: sorted, unique class names. */
  allow: string[];
}

export interface BindingRecord {
  aor: string;
  /** The Contact URI. */
  contact: string;
  /** The full Contact element as received, including its parameters. */
  contactHeader: string;
  /** Epoch ms. */
  expiresAt: number;
  callId: string;
  cseq: number;
  q?: number;
  instanceId?: string;
  regId?: number;
  transport: TransportName;
  sourceAddress: string;
  sourcePort: number;
  localAddress?: string;
  localPort?: number;
  userAgent?: string;
  /**
   * RFC 3327: the Path header field values of the REGISTER, in order (each a name-addr with
   * its parameters); requests to this contact carry them as Route. Absent without Path.
   */
  path?: string[];
  /** Epoch ms. */
  updatedAt: number;
}

/** A banned source address (lib/security), as the store keeps it. */
export interface BanRecord {
  /** The address as the kernel reports sources (IPv4 dotted quad, IPv6 compressed lower case). */
  address: string;
  /** Epoch ms the ban ends; for a removed ban, when it was removed. */
  expiresAt: number;
  /** auth, scanner or rate for automatic bans; the administrator's text for manual ones. */
  reason: string;
  /** How many times the address was banned (a repeat offender's ban is longer). */
  offences: number;
  /** Epoch ms the ban was placed. */
  createdAt: number;
  /** Placed with `minisipserver ban add`. */
  manual: boolean;
  /** Lifted with `minisipserver ban remove` (kept a while so that every server process sees it). */
  removed: boolean;
  /** Changes with every write of the row: server processes read what changed since the last one they saw. */
  seq: number;
}

export interface ImportCounts {
  added: number;
  replaced: number;
  skipped: number;
}

export type StoreKind = 'sqlite' | 'mariadb';

export interface Store {
  readonly kind: StoreKind;
  /**
   * False while the database cannot be written (MariaDB unreachable): reads still answer from
   * memory and writes are kept and retried. Always true for SQLite.
   */
  readonly available: boolean;
  getExtension(number: string): ExtensionRecord | undefined;
  listExtensions(): ExtensionRecord[];
  countExtensions(): number;
  /** Throws ExtensionExistsError if the number is taken. */
  addExtension(rec: ExtensionRecord): void;
  /** Changes the given fields (not the number); false if there is no such extension. */
  updateExtension(number: string, patch: Partial<ExtensionRecord>): boolean;
  /** Also removes the extension's bindings (AOR equal to the number or sip(s):number@...). */
  removeExtension(number: string): boolean;
  /** One transaction. 'replace' keeps an existing record's createdAt and allow (import files carry no grants). */
  importExtensions(recs: ExtensionRecord[], mode: 'skip-existing' | 'replace'): ImportCounts;
  /** All bindings not expired at `now`. */
  loadBindings(now: number): BindingRecord[];
  /** Live bindings of one address-of-record (what other server processes registered too). */
  loadBindingsOf(aor: string, now: number): BindingRecord[];
  /** Addresses-of-record with at least one live binding. */
  countRegistered(now: number): number;
  /** Upserts keyed by (aor, contact), then deletes; one transaction. */
  saveBindings(upserts: BindingRecord[], deletes: Array<{ aor: string; contact: string }>): void;
  /** Deletes bindings expired at `now`; returns how many. */
  purgeExpiredBindings(now: number): number;
  /** The row of an address, active, expired or removed; undefined when there is none. */
  getBan(address: string): BanRecord | undefined;
  /** Bans in force at `now` (not expired, not removed), the latest to end first, at most `limit`. */
  listBans(now: number, limit?: number): BanRecord[];
  /** Rows written after `seq` (any state), in seq order, at most `limit`. */
  bansSince(seq: number, limit: number): BanRecord[];
  /** The highest seq written so far (0 for none). */
  lastBanSeq(): number;
  /** Writes the row of `ban.address` (replacing any); returns its new seq. */
  saveBan(ban: Omit<BanRecord, 'seq'>): number;
  /** Deletes rows that ended (expired or removed) before `before`; returns how many. */
  purgeBans(before: number): number;
  getMeta(key: string): string | undefined;
  setMeta(key: string, value: string): void;
  /**
   * Sets `key` to `value` only if the store (shared by every server on it) holds no value for
   * it yet, and resolves with the value it holds then: the first writer's. Servers starting
   * together on an empty store agree through it on what only one of them may create.
   */
  claimMeta(key: string, value: string): Promise<string>;
  /** Changes whenever another connection (e.g. `minisipserver ext`) has changed the database. */
  dataVersion(): number;
  /**
   * Resolves once every write made before the call is in the database; rejects with the reason
   * when one was refused or the database could not be reached (the writes stay queued).
   * SQLite writes at once: resolves at once.
   */
  flush(): Promise<void>;
  /** Writes what is still queued (bounded in time), then releases the database. */
  close(): void | Promise<void>;
}

/** The meta key of the digest nonce secret (64 hex digits), created by the store at its first open. */
export const NONCE_SECRET_KEY = 'secret';

/** A new nonce secret: 32 random bytes in hex. */
export function newNonceSecret(): string {
  return randomBytes(32).toString('hex');
}

export class ExtensionExistsError extends Error {
  constructor(readonly number: string) {
    super(`extension ${number} already exists`);
    this.name = 'ExtensionExistsError';
  }
}

/** A write the store cannot take now (MariaDB: too many writes waiting for the database). */
export class StoreBusyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreBusyError';
  }
}

/** The database file cannot be used as it is; the message says which file and what to do. */
export class StoreOpenError extends Error {
  constructor(readonly file: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreOpenError';
  }
}
