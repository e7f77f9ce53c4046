/**
 * First-writer-wins meta rows of the MariaDB store: a value only one server may create (the
 * nonce secret, the first-start extensions' marker), settled by the meta table's primary key.
 */
import type { Connection } from 'mariadb';

/**
 * Inserts `key` = `value` unless the row exists, in one write transaction with its own change
 * number (so that servers already running read it at their next poll); returns the value the
 * database holds now and that change number.
 */
export async function claimMetaRow(conn: Connection, key: string, value: string): Promise<{ value: string; chg: number }> {
  await conn.beginTransaction();
  try {
    const clock = (await conn.query('UPDATE store_clock SET seq = LAST_INSERT_ID(seq + 1) WHERE id = 1')) as { insertId: number | bigint };
    const chg = Number(clock.insertId);
    if (!(chg > 0)) throw new Error('store_clock has no row: the schema is damaged (run `minisipserver db status`)');
    await conn.execute('INSERT IGNORE INTO meta (`key`, value, chg) VALUES (?, ?, ?)', [key, value, chg]);
    const rows = (await conn.execute('SELECT value FROM meta WHERE `key` = ?', [key])) as Array<{ value: string }>;
    await conn.commit();
    return { value: rows[0]?.value ?? value, chg };
  } catch (err) {
    await conn.rollback().catch(() => undefined);
    throw err;
  }
}
