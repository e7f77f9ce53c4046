/**
 * Header name -> canonical (lower-case, long form) name, for the parser's hot path.
 *
 * Common names are matched in place (case-insensitively, without slicing the line) and come back
 * as the interned string constants below, so later `===` tests and Headers lookups compare
 * pointers. Anything else goes through message.ts's canonicalName, memoised in a bounded cache
 * so random names from peers cannot grow it.
 */
import { canonicalName } from '../message.js';

const KNOWN = [
  'via', 'from', 'to', 'call-id', 'cseq', 'contact', 'max-forwards', 'content-length', 'content-type',
  'expires', 'allow', 'supported', 'user-agent', 'server', 'authorization', 'proxy-authorization',
  'www-authenticate', 'proxy-authenticate', 'route', 'record-route', 'allow-events', 'require',
  'proxy-require', 'unsupported', 'event', 'subscription-state', 'accept', 'accept-encoding',
  'accept-language', 'date', 'session-expires', 'min-se', 'min-expires', 'p-asserted-identity',
  'p-preferred-identity', 'privacy', 'refer-to', 'referred-by', 'replaces', 'reason', 'rseq', 'rack',
  'diversion', 'content-disposition', 'content-encoding', 'retry-after', 'timestamp', 'subject',
  'warning', 'alert-info', 'call-info', 'path', 'organization', 'x-real-ip',
] as const;

/** Known names grouped by length: a lookup compares only names of the right length. */
const BY_LENGTH: string[][] = [];
for (const name of KNOWN) (BY_LENGTH[name.length] ??= []).push(name);

function sameIgnoringCase(s: string, start: number, name: string): boolean {
  for (let k = 0; k < name.length; k++) {
    // | 32 folds ASCII upper case to lower case and leaves '-' and digits unchanged.
    if ((s.charCodeAt(start + k) | 32) !== name.charCodeAt(k)) return false;
  }
  return true;
}

const cache = new Map<string, string>();
const CACHE_LIMIT = 512;

/** Canonical name of the header name s[start, end) (which the caller checked is a token). */
export function canonicalHeaderName(s: string, start: number, end: number): string {
  const candidates = BY_LENGTH[end - start];
  if (candidates !== undefined) {
    for (const name of candidates) if (sameIgnoringCase(s, start, name)) return name;
  }
  const raw = s.slice(start, end);
  let c = cache.get(raw);
  if (c === undefined) {
    c = canonicalName(raw);
    if (cache.size < CACHE_LIMIT) cache.set(raw, c);
  }
  return c;
}

/** The names above by length and first letter: BY_SHAPE[length * 32 + (first letter & 31)]. */
const BY_SHAPE: (string[] | undefined)[] = [];
for (const name of KNOWN) (BY_SHAPE[name.length * 32 + (name.charCodeAt(0) & 31)] ??= []).push(name);
const COMPACT_KNOWN: (string | undefined)[] = [];
for (const [letter, name] of [['i', 'call-id'], ['m', 'contact'], ['e', 'content-encoding'], ['l', 'content-length'],
  ['c', 'content-type'], ['f', 'from'], ['s', 'subject'], ['k', 'supported'], ['t', 'to'], ['v', 'via'], ['o', 'event'],
  ['r', 'refer-to'], ['b', 'referred-by'], ['u', 'allow-events'], ['x', 'session-expires']] as const) {
  if ((KNOWN as readonly string[]).indexOf(name) >= 0) COMPACT_KNOWN[letter.charCodeAt(0)] = name;
}

/**
 * Fast path of the parser's header-name scan: when s[start, end) is one of the common names or
 * the compact form of one (ASCII case-insensitively), its canonical name, the interned constant
 * canonicalHeaderName gives; undefined otherwise (then s[start, end) need not even be a token).
 */
export function knownHeaderName(s: string, start: number, end: number): string | undefined {
  const c0 = s.charCodeAt(start) | 32;
  if (c0 < 97 || c0 > 122) return undefined;
  const n = end - start;
  if (n === 1) return COMPACT_KNOWN[c0];
  const candidates = BY_SHAPE[n * 32 + (c0 & 31)];
  if (candidates === undefined) return undefined;
  for (let k = 0; k < candidates.length; k++) {
    const name = candidates[k]!;
    let j = 1;
    while (j < n) {
      // | 32 folds ASCII letters; it also maps CR to '-', and a CR is never part of a name.
      const c = s.charCodeAt(start + j);
      if ((c | 32) !== name.charCodeAt(j) || c === 13) break;
      j++;
    }
    if (j === n) return name;
  }
  return undefined;
}
