/**
 * What a ban is, shared by the server (lib/security/guard.ts) and `minisipserver ban`: how long
 * one lasts for a repeat offender, how addresses are written, how durations are read.
 */
import { isIP } from 'node:net';
import type { BanRecord } from '../store/store.js';

/**
 * A ban that ended less than this long ago makes the next one a repeat offence (its length
 * doubles). Rows are purged from the store this long after they end.
 */
export const OFFENCE_MEMORY_MS = 86_400_000;

/** `ban add --for forever`: the end of year 9999. */
export const FOREVER_MS = 253_402_300_799_000;

/** The offence count of a new ban of an address whose last row is `prev`. */
export function nextOffences(prev: BanRecord | undefined, now: number): number {
  if (prev === undefined || prev.removed || prev.expiresAt + OFFENCE_MEMORY_MS < now) return 1;
  return prev.offences + 1;
}

/** Length in ms of ban number `offences`: banTime, doubling with each repeat, at most maxBanTime. */
export function banLengthMs(offences: number, banTimeSeconds: number, maxBanTimeSeconds: number): number {
  const doublings = Math.min(Math.max(0, offences - 1), 40);
  return Math.min(banTimeSeconds * 2 ** doublings, Math.max(banTimeSeconds, maxBanTimeSeconds)) * 1000;
}

/**
 * `text` as the kernel reports a source address (how the ban table is keyed): IPv4 as a dotted
 * quad, IPv6 in lower case with the longest run of zero groups compressed; null when `text` is
 * not an IP address.
 */
export function canonicalAddress(text: string): string | null {
  const t = text.trim().replace(/^\[(.*)\]$/, '$1');
  const family = isIP(t);
  if (family === 4) return t;
  if (family !== 6) return null;
  if (t.includes('.') || t.includes('%')) return t.toLowerCase(); // ::ffff:192.0.2.1, fe80::1%eth0: as given
  return new URL(`http://[${t}]/`).hostname.slice(1, -1);
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** "90", "90s", "10m", "2h", "1d", "1w" -> ms; "forever" -> Infinity; null when unreadable or 0. */
export function parseDuration(text: string): number | null {
  const t = text.trim().toLowerCase();
  if (t === 'forever') return Infinity;
  const m = /^(\d{1,9})\s*([smhdw]?)$/.exec(t);
  if (!m) return null;
  const ms = Number(m[1]) * UNIT_MS[m[2] || 's']!;
  return ms > 0 ? ms : null;
}

/** A length of time for people: "45 s", "10 min", "2 h", "1 d 6 h". */
export function describeDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  const d = Math.floor(s / 86_400);
  const h = Math.round((s - d * 86_400) / 3600);
  return h > 0 ? `${d} d ${h} h` : `${d} d`;
}
