/**
 * What the MariaDB store reads: the whole database at open (one consistent snapshot), and at
 * every poll the rows and tombstones written since the change number it saw last.
 */
import type { Connection } from 'mariadb';
import { StoreMirror } from './mirror.js';
import { toBinding, toExtension, type BanRow, type BindingRow, type ExtensionRow } from './rows.js';
import type { BanRecord, BindingRecord, ExtensionRecord } from './store.js';

/** A bans row as MariaDB holds it: no seq (its change number, chg, orders the rows instead). */
export type BanDbRow = Omit<BanRow, 'seq'>;

export function toBanWithoutSeq(row: BanDbRow): Omit<BanRecord, 'seq'> {
  return {
    address: row.address,
    expiresAt: Number(row.expires_at),
    reason: row.reason,
    offences: Number(row.offences),
    createdAt: Number(row.created_at),
    manual: Number(row.manual) !== 0,
    removed: Number(row.removed) !== 0,
  };
}

export interface Clock {
  /** The change number of the last committed write transaction. */
  seq: number;
  /** Tombstones up to this change number were dropped: a reader behind it must read everything again. */
  purged: number;
}

export async function readClock(conn: Connection): Promise<Clock> {
  const rows = (await conn.query('SELECT seq, purged FROM store_clock WHERE id = 1')) as Array<{ seq: number; purged: number }>;
  const row = rows[0];
  if (!row) throw new Error('store_clock has no row: the schema is damaged (run `minisipserver db status`)');
  return { seq: Number(row.seq), purged: Number(row.purged) };
}

/**
 * Everything, as of one moment (expired bindings too: reads filter them by time, and the
 * database's are deleted every minute). `firstBanSeq`: the ban seqs this process handed out so
 * far (a reload continues after them).
 */
export async function loadSnapshot(conn: Connection, firstBanSeq = 0): Promise<{ clock: Clock; mirror: StoreMirror }> {
  await conn.query('START TRANSACTION WITH CONSISTENT SNAPSHOT');
  try {
    const clock = await readClock(conn);
    const mirror = new StoreMirror(firstBanSeq);
    for (const row of (await conn.query('SELECT * FROM extensions')) as ExtensionRow[]) mirror.setExtension(extensionOf(row));
    for (const row of (await conn.query('SELECT * FROM bindings')) as BindingRow[]) mirror.setBinding(bindingOf(row));
    for (const row of (await conn.query('SELECT * FROM bans ORDER BY chg')) as BanDbRow[]) mirror.putBan(toBanWithoutSeq(row));
    for (const row of (await conn.query('SELECT `key`, value FROM meta')) as Array<{ key: string; value: string }>) mirror.setMeta(row.key, row.value);
    return { clock, mirror };
  } finally {
    await conn.query('COMMIT').catch(() => undefined);
  }
}

export function extensionOf(row: ExtensionRow): ExtensionRecord {
  return toExtension({ ...row, created_at: Number(row.created_at) });
}

export function bindingOf(row: BindingRow): BindingRecord {
  return toBinding({ ...row, expires_at: Number(row.expires_at), updated_at: Number(row.updated_at), cseq: Number(row.cseq) });
}

/** One change read by a poll, applied in chg order (a tombstone before a row of the same transaction). */
export type Change =
  | { chg: number; kind: 'extension'; rec: ExtensionRecord }
  | { chg: number; kind: 'extension.deleted'; number: string }
  | { chg: number; kind: 'binding'; rec: BindingRecord }
  | { chg: number; kind: 'binding.deleted'; aor: string; contact: string }
  | { chg: number; kind: 'ban'; rec: Omit<BanRecord, 'seq'> }
  | { chg: number; kind: 'meta'; key: string; value: string };

const DELETED_FIRST: Record<Change['kind'], number> = { 'extension.deleted': 0, 'binding.deleted': 0, extension: 1, binding: 1, ban: 1, meta: 1 };

/** Rows and tombstones with after < chg <= upTo, in the order to apply them. */
export async function readChanges(conn: Connection, after: number, upTo: number): Promise<Change[]> {
  const range = [after, upTo];
  // One connection: the connector pipelines the five statements.
  const [ext, bind, bans, meta, tomb] = await Promise.all([
    conn.execute('SELECT * FROM extensions WHERE chg > ? AND chg <= ?', range) as Promise<Array<ExtensionRow & { chg: number }>>,
    conn.execute('SELECT * FROM bindings WHERE chg > ? AND chg <= ?', range) as Promise<Array<BindingRow & { chg: number }>>,
    conn.execute('SELECT * FROM bans WHERE chg > ? AND chg <= ?', range) as Promise<Array<BanDbRow & { chg: number }>>,
    conn.execute('SELECT `key`, value, chg FROM meta WHERE chg > ? AND chg <= ?', range) as Promise<Array<{ key: string; value: string; chg: number }>>,
    conn.execute('SELECT chg, tbl, k1, k2 FROM store_tombstones WHERE chg > ? AND chg <= ?', range) as Promise<Array<{ chg: number; tbl: string; k1: string; k2: string }>>,
  ]);
  const out: Change[] = [];
  for (const r of ext) out.push({ chg: Number(r.chg), kind: 'extension', rec: extensionOf(r) });
  for (const r of bind) out.push({ chg: Number(r.chg), kind: 'binding', rec: bindingOf(r) });
  for (const r of bans) out.push({ chg: Number(r.chg), kind: 'ban', rec: toBanWithoutSeq(r) });
  for (const r of meta) out.push({ chg: Number(r.chg), kind: 'meta', key: r.key, value: r.value });
  for (const r of tomb) {
    if (r.tbl === 'extensions') out.push({ chg: Number(r.chg), kind: 'extension.deleted', number: r.k1 });
    else if (r.tbl === 'bindings') out.push({ chg: Number(r.chg), kind: 'binding.deleted', aor: r.k1, contact: r.k2 });
  }
  return out.sort((a, b) => a.chg - b.chg || DELETED_FIRST[a.kind] - DELETED_FIRST[b.kind]);
}
