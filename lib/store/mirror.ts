/**
 * The tables of a store held in memory, answering every read of the Store interface with the
 * SQLite store's semantics. The MariaDB store keeps one per process: loaded at open, changed at
 * once by the process's own writes and by what the poll brings from other servers.
 */
import type { BanRecord, BindingRecord, ExtensionRecord } from './store.js';

function copyExtension(rec: ExtensionRecord): ExtensionRecord {
  return { ...rec, allow: [...rec.allow] };
}

function copyBinding(b: BindingRecord): BindingRecord {
  return b.path === undefined ? { ...b } : { ...b, path: [...b.path] };
}

/** The address-of-record of the extension's bindings besides the bare number: sip(s):number@... */
export function isBindingOf(aor: string, number: string): boolean {
  return aor === number || aor.startsWith(`sip:${number}@`) || aor.startsWith(`sips:${number}@`);
}

export class StoreMirror {
  private readonly extensions = new Map<string, ExtensionRecord>();
  private readonly bindings = new Map<string, Map<string, BindingRecord>>();
  /** In seq order: a changed row is deleted and set again, so it moves to the end. */
  private readonly bans = new Map<string, BanRecord>();
  private readonly meta = new Map<string, string>();
  private banSeq: number;

  /** `firstBanSeq`: ban seqs start after it (a reloaded mirror goes on from the one it replaces). */
  constructor(firstBanSeq = 0) {
    this.banSeq = firstBanSeq;
  }

  // ---- extensions ----

  getExtension(number: string): ExtensionRecord | undefined {
    const rec = this.extensions.get(number);
    return rec === undefined ? undefined : copyExtension(rec);
  }

  hasExtension(number: string): boolean {
    return this.extensions.has(number);
  }

  listExtensions(): ExtensionRecord[] {
    return [...this.extensions.values()].sort((a, b) => (a.number < b.number ? -1 : a.number > b.number ? 1 : 0)).map(copyExtension);
  }

  countExtensions(): number {
    return this.extensions.size;
  }

  setExtension(rec: ExtensionRecord): void {
    this.extensions.set(rec.number, copyExtension(rec));
  }

  deleteExtension(number: string): boolean {
    return this.extensions.delete(number);
  }

  /** The extension's bindings go with it (what SQLite's removeExtension deletes). */
  deleteBindingsOf(number: string): void {
    for (const aor of [...this.bindings.keys()]) if (isBindingOf(aor, number)) this.bindings.delete(aor);
  }

  // ---- bindings ----

  loadBindings(now: number): BindingRecord[] {
    const out: BindingRecord[] = [];
    for (const list of this.bindings.values()) for (const b of list.values()) if (b.expiresAt > now) out.push(copyBinding(b));
    return out;
  }

  loadBindingsOf(aor: string, now: number): BindingRecord[] {
    const out: BindingRecord[] = [];
    const list = this.bindings.get(aor);
    if (list) for (const b of list.values()) if (b.expiresAt > now) out.push(copyBinding(b));
    return out;
  }

  countRegistered(now: number): number {
    let n = 0;
    for (const list of this.bindings.values()) {
      for (const b of list.values()) {
        if (b.expiresAt > now) {
          n++;
          break;
        }
      }
    }
    return n;
  }

  setBinding(b: BindingRecord): void {
    let list = this.bindings.get(b.aor);
    if (!list) this.bindings.set(b.aor, (list = new Map()));
    list.set(b.contact, copyBinding(b));
  }

  deleteBinding(aor: string, contact: string): void {
    const list = this.bindings.get(aor);
    if (!list) return;
    list.delete(contact);
    if (list.size === 0) this.bindings.delete(aor);
  }

  hasBinding(aor: string, contact: string): boolean {
    return this.bindings.get(aor)?.has(contact) === true;
  }

  purgeExpiredBindings(now: number): number {
    let n = 0;
    for (const [aor, list] of this.bindings) {
      for (const [contact, b] of list) {
        if (b.expiresAt <= now) {
          list.delete(contact);
          n++;
        }
      }
      if (list.size === 0) this.bindings.delete(aor);
    }
    return n;
  }

  // ---- bans ----

  getBan(address: string): BanRecord | undefined {
    const ban = this.bans.get(address);
    return ban === undefined ? undefined : { ...ban };
  }

  listBans(now: number, limit = -1): BanRecord[] {
    const live = [...this.bans.values()].filter((b) => b.expiresAt > now && !b.removed);
    live.sort((a, b) => b.expiresAt - a.expiresAt);
    return (limit < 0 ? live : live.slice(0, limit)).map((b) => ({ ...b }));
  }

  bansSince(seq: number, limit: number): BanRecord[] {
    const out: BanRecord[] = [];
    for (const b of this.bans.values()) {
      if (out.length >= limit) break;
      if (b.seq > seq) out.push({ ...b });
    }
    return out;
  }

  lastBanSeq(): number {
    return this.banSeq;
  }

  /** Replaces the row of the address; returns its new seq (seqs are this process's own). */
  putBan(ban: Omit<BanRecord, 'seq'>): number {
    const seq = ++this.banSeq;
    this.bans.delete(ban.address);
    this.bans.set(ban.address, { ...ban, seq });
    return seq;
  }

  purgeBans(before: number): number {
    let n = 0;
    for (const [address, b] of this.bans) {
      if (b.expiresAt < before) {
        this.bans.delete(address);
        n++;
      }
    }
    return n;
  }

  // ---- meta ----

  getMeta(key: string): string | undefined {
    return this.meta.get(key);
  }

  setMeta(key: string, value: string): void {
    this.meta.set(key, value);
  }
}
