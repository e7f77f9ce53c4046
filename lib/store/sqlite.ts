/**
 * The embedded store: one SQLite file, <dataDir>/minisipserver.db, in WAL mode. All statements
 * are prepared once at open; better-sqlite3 is synchronous, so each call is one short step.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { embeddedAddon } from '../platform/native-addon.js';
import { migrate } from './migrations.js';
import { bindingParams, extensionParams, toBan, toBinding, toExtension, type BanRow, type BindingRow, type ExtensionRow } from './rows.js';
import {
  ExtensionExistsError,
  StoreOpenError,
  type BanRecord,
  type BindingRecord,
  type ExtensionRecord,
  type ImportCounts,
  type Store,
  NONCE_SECRET_KEY,
  newNonceSecret,
} from './store.js';

export const DATABASE_FILE_NAME = 'minisipserver.db';

/** Escapes GLOB metacharacters so a number matches only itself. */
function globLiteral(text: string): string {
  return text.replace(/[*?[\]]/g, (c) => `[${c}]`);
}

/**
 * Opens (creating if needed) the store in `dataDir`. A file that is not a usable SQLite
 * database is reported with a StoreOpenError and left exactly as it was: it is never
 * recreated, so no data is lost by accident.
 */
export function openSqliteStore(dataDir: string): Store {
  const file = join(dataDir, DATABASE_FILE_NAME);
  let db: Database.Database;
  try {
    mkdirSync(dataDir, { recursive: true });
    const nativeBinding = embeddedAddon<object>('better_sqlite3');
    // better-sqlite3 takes a loaded addon object here; its type declarations only know a path.
    db = nativeBinding ? new Database(file, { nativeBinding } as unknown as Database.Options) : new Database(file);
  } catch (err) {
    throw new StoreOpenError(file, `${file}: cannot open the database (${describe(err)}); check that the data directory exists and is writable`, { cause: err });
  }
  try {
    // Reading the schema first makes SQLite validate the header before anything is written.
    db.prepare('SELECT count(*) FROM sqlite_master').get();
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    migrate(db, file);
    return new SqliteStore(db);
  } catch (err) {
    db.close();
    if (err instanceof Error && err.message.startsWith(file)) throw new StoreOpenError(file, err.message, { cause: err });
    throw new StoreOpenError(
      file,
      `${file}: not a usable minisipserver database (${describe(err)}). It was left untouched: ` +
        'restore it from a backup, or move it aside to start with an empty database',
      { cause: err },
    );
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

class SqliteStore implements Store {
  readonly kind = 'sqlite';
  readonly available = true;
  private readonly stmt;
  private readonly importTx;
  private readonly saveBindingsTx;
  private readonly removeExtensionTx;
  private readonly updateExtensionTx;

  constructor(private readonly db: Database.Database) {
    this.stmt = {
      getExtension: db.prepare<[string], ExtensionRow>('SELECT * FROM extensions WHERE number = ?'),
      listExtensions: db.prepare<[], ExtensionRow>('SELECT * FROM extensions ORDER BY number'),
      countExtensions: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM extensions'),
      insertExtension: db.prepare<[ExtensionRow]>(
        `INSERT INTO extensions (number, display_name, realm, ha1_md5, ha1_sha256, created_at, allow)
         VALUES (@number, @display_name, @realm, @ha1_md5, @ha1_sha256, @created_at, @allow) ON CONFLICT (number) DO NOTHING`,
      ),
      replaceExtension: db.prepare<[ExtensionRow]>(
        `UPDATE extensions SET display_name = @display_name, realm = @realm, ha1_md5 = @ha1_md5,
           ha1_sha256 = @ha1_sha256, created_at = @created_at, allow = @allow WHERE number = @number`,
      ),
      deleteExtension: db.prepare<[string]>('DELETE FROM extensions WHERE number = ?'),
      deleteBindingsOf: db.prepare<[string, string, string]>('DELETE FROM bindings WHERE aor = ? OR aor GLOB ? OR aor GLOB ?'),
      loadBindings: db.prepare<[number], BindingRow>('SELECT * FROM bindings WHERE expires_at > ?'),
      loadBindingsOf: db.prepare<[string, number], BindingRow>('SELECT * FROM bindings WHERE aor = ? AND expires_at > ?'),
      countRegistered: db.prepare<[number], { n: number }>('SELECT count(DISTINCT aor) AS n FROM bindings WHERE expires_at > ?'),
      upsertBinding: db.prepare<[BindingRow]>(
        `INSERT INTO bindings (aor, contact, contact_header, expires_at, call_id, cseq, q, instance_id, reg_id, transport,
           source_address, source_port, local_address, local_port, user_agent, path, updated_at)
         VALUES (@aor, @contact, @contact_header, @expires_at, @call_id, @cseq, @q, @instance_id, @reg_id, @transport,
           @source_address, @source_port, @local_address, @local_port, @user_agent, @path, @updated_at)
         ON CONFLICT (aor, contact) DO UPDATE SET contact_header = excluded.contact_header, expires_at = excluded.expires_at,
           call_id = excluded.call_id, cseq = excluded.cseq, q = excluded.q, instance_id = excluded.instance_id,
           reg_id = excluded.reg_id, transport = excluded.transport, source_address = excluded.source_address,
           source_port = excluded.source_port, local_address = excluded.local_address, local_port = excluded.local_port,
           user_agent = excluded.user_agent, path = excluded.path, updated_at = excluded.updated_at`,
      ),
      deleteBinding: db.prepare<[string, string]>('DELETE FROM bindings WHERE aor = ? AND contact = ?'),
      purgeBindings: db.prepare<[number]>('DELETE FROM bindings WHERE expires_at <= ?'),
      getBan: db.prepare<[string], BanRow>('SELECT * FROM bans WHERE address = ?'),
      listBans: db.prepare<[number, number], BanRow>('SELECT * FROM bans WHERE expires_at > ? AND removed = 0 ORDER BY expires_at DESC LIMIT ?'),
      bansSince: db.prepare<[number, number], BanRow>('SELECT * FROM bans WHERE seq > ? ORDER BY seq LIMIT ?'),
      lastBanSeq: db.prepare<[], { seq: number | null }>('SELECT max(seq) AS seq FROM bans'),
      // REPLACE deletes the old row of the address and inserts a new one: a new seq.
      saveBan: db.prepare<[Omit<BanRow, 'seq'>]>(
        `INSERT OR REPLACE INTO bans (address, expires_at, reason, offences, created_at, manual, removed)
         VALUES (@address, @expires_at, @reason, @offences, @created_at, @manual, @removed)`,
      ),
      purgeBans: db.prepare<[number]>('DELETE FROM bans WHERE expires_at < ?'),
      getMeta: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
      setMeta: db.prepare<[string, string]>(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      ),
      claimMeta: db.prepare<[string, string]>('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING'),
    };
    // Servers sharing this file (registrar.shared) that start together must use one nonce secret.
    this.stmt.claimMeta.run(NONCE_SECRET_KEY, newNonceSecret());

    this.importTx = db.transaction((recs: ExtensionRecord[], mode: 'skip-existing' | 'replace'): ImportCounts => {
      const counts: ImportCounts = { added: 0, replaced: 0, skipped: 0 };
      for (const rec of recs) {
        const params = extensionParams(rec);
        if (this.stmt.insertExtension.run(params).changes === 1) {
          counts.added++;
        } else if (mode === 'replace') {
          const existing = this.stmt.getExtension.get(rec.number);
          this.stmt.replaceExtension.run({
            ...params,
            created_at: existing?.created_at ?? params.created_at,
            allow: existing?.allow ?? params.allow,
          });
          counts.replaced++;
        } else {
          counts.skipped++;
        }
      }
      return counts;
    });

    this.saveBindingsTx = db.transaction((upserts: BindingRecord[], deletes: Array<{ aor: string; contact: string }>) => {
      for (const b of upserts) this.stmt.upsertBinding.run(bindingParams(b));
      for (const d of deletes) this.stmt.deleteBinding.run(d.aor, d.contact);
    });

    this.removeExtensionTx = db.transaction((number: string): boolean => {
      const removed = this.stmt.deleteExtension.run(number).changes > 0;
      const user = globLiteral(number);
      this.stmt.deleteBindingsOf.run(number, `sip:${user}@*`, `sips:${user}@*`);
      return removed;
    });

    this.updateExtensionTx = db.transaction((number: string, patch: Partial<ExtensionRecord>): boolean => {
      const row = this.stmt.getExtension.get(number);
      if (row === undefined) return false;
      const merged: ExtensionRecord = { ...toExtension(row), ...patch, number };
      this.stmt.replaceExtension.run(extensionParams(merged));
      return true;
    });
  }

  getExtension(number: string): ExtensionRecord | undefined {
    const row = this.stmt.getExtension.get(number);
    return row === undefined ? undefined : toExtension(row);
  }

  listExtensions(): ExtensionRecord[] {
    return this.stmt.listExtensions.all().map(toExtension);
  }

  countExtensions(): number {
    return this.stmt.countExtensions.get()?.n ?? 0;
  }

  addExtension(rec: ExtensionRecord): void {
    if (this.stmt.insertExtension.run(extensionParams(rec)).changes === 0) throw new ExtensionExistsError(rec.number);
  }

  updateExtension(number: string, patch: Partial<ExtensionRecord>): boolean {
    return this.updateExtensionTx(number, patch);
  }

  removeExtension(number: string): boolean {
    return this.removeExtensionTx(number);
  }

  importExtensions(recs: ExtensionRecord[], mode: 'skip-existing' | 'replace'): ImportCounts {
    return this.importTx(recs, mode);
  }

  loadBindings(now: number): BindingRecord[] {
    return this.stmt.loadBindings.all(now).map(toBinding);
  }

  loadBindingsOf(aor: string, now: number): BindingRecord[] {
    return this.stmt.loadBindingsOf.all(aor, now).map(toBinding);
  }

  countRegistered(now: number): number {
    return this.stmt.countRegistered.get(now)?.n ?? 0;
  }

  saveBindings(upserts: BindingRecord[], deletes: Array<{ aor: string; contact: string }>): void {
    if (upserts.length === 0 && deletes.length === 0) return;
    this.saveBindingsTx(upserts, deletes);
  }

  purgeExpiredBindings(now: number): number {
    return this.stmt.purgeBindings.run(now).changes;
  }

  getBan(address: string): BanRecord | undefined {
    const row = this.stmt.getBan.get(address);
    return row === undefined ? undefined : toBan(row);
  }

  listBans(now: number, limit = -1): BanRecord[] {
    return this.stmt.listBans.all(now, limit).map(toBan);
  }

  bansSince(seq: number, limit: number): BanRecord[] {
    return this.stmt.bansSince.all(seq, limit).map(toBan);
  }

  lastBanSeq(): number {
    return this.stmt.lastBanSeq.get()?.seq ?? 0;
  }

  saveBan(ban: Omit<BanRecord, 'seq'>): number {
    const r = this.stmt.saveBan.run({
      address: ban.address,
      expires_at: ban.expiresAt,
      reason: ban.reason,
      offences: ban.offences,
      created_at: ban.createdAt,
      manual: ban.manual ? 1 : 0,
      removed: ban.removed ? 1 : 0,
    });
    return Number(r.lastInsertRowid);
  }

  purgeBans(before: number): number {
    return this.stmt.purgeBans.run(before).changes;
  }

  getMeta(key: string): string | undefined {
    return this.stmt.getMeta.get(key)?.value;
  }

  setMeta(key: string, value: string): void {
    this.stmt.setMeta.run(key, value);
  }

  async claimMeta(key: string, value: string): Promise<string> {
    this.stmt.claimMeta.run(key, value);
    return this.stmt.getMeta.get(key)?.value ?? value;
  }

  dataVersion(): number {
    return this.db.pragma('data_version', { simple: true }) as number;
  }

  async flush(): Promise<void> {}

  close(): void {
    if (this.db.open) this.db.close();
  }
}
